"""The resident-facing alert and the request bodies of the resident API.

One :class:`ResidentAlert` is one message of an alert's life: the first ``Alert``, each ``Update``
(including the all-clear, ``status=all_clear``) and a ``Cancel`` (a retraction). ``version`` grows with
every message; every channel carries it, and a later version replaces an earlier one.
"""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from contract.models import Id, Mode, Signal, ZoneStatus

Lang = Literal["uk", "en"]
LANGS: tuple[Lang, ...] = ("uk", "en")
# CAP identifiers: no spaces, commas or restricted characters.
CapId = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:\-]*$")]


class MsgType(StrEnum):
    ALERT = "Alert"
    UPDATE = "Update"
    CANCEL = "Cancel"


class AlertText(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    headline: str = Field(min_length=1, max_length=160)
    description: str = Field(default="", max_length=2000)
    instruction: str = Field(default="", max_length=2000)


# Default texts per signal, used when the operator gave none.
DEFAULT_TEXTS: dict[Signal, dict[Lang, AlertText]] = {
    Signal.AIR_RAID: {
        "uk": AlertText(headline="Повітряна тривога", instruction="Негайно прямуйте до найближчого укриття."),
        "en": AlertText(headline="Air raid alert", instruction="Go to the nearest shelter now."),
    },
    Signal.ALL_CLEAR: {
        "uk": AlertText(headline="Відбій тривоги", instruction="Небезпека минула."),
        "en": AlertText(headline="All clear", instruction="The danger has passed."),
    },
    Signal.CHEMICAL: {
        "uk": AlertText(headline="Хімічна небезпека", instruction="Зачиніть вікна, залишайтеся в приміщенні."),
        "en": AlertText(headline="Chemical hazard", instruction="Close windows and stay indoors."),
    },
    Signal.RADIATION: {
        "uk": AlertText(headline="Радіаційна небезпека", instruction="Залишайтеся в укритті."),
        "en": AlertText(headline="Radiation hazard", instruction="Stay in a shelter."),
    },
    Signal.TEST: {
        "uk": AlertText(headline="Перевірка системи оповіщення"),
        "en": AlertText(headline="Warning system test"),
    },
    Signal.SILENT_TEST: {
        "uk": AlertText(headline="Тиха перевірка системи оповіщення"),
        "en": AlertText(headline="Silent warning system test"),
    },
}
CANCEL_TEXTS: dict[Lang, AlertText] = {
    "uk": AlertText(headline="Попередження скасовано", description="Попереднє повідомлення було помилковим."),
    "en": AlertText(headline="Alert withdrawn", description="The previous message was sent in error."),
}
EXERCISE_MARK: dict[Lang, str] = {"uk": "НАВЧАННЯ", "en": "EXERCISE"}


class ResidentAlert(BaseModel):
    """One message of an alert as residents see it. ``mode`` is explicit: exercise is never real."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    id: CapId
    zones: tuple[Id, ...] = Field(min_length=1, max_length=512)
    signal: Signal
    mode: Mode
    status: ZoneStatus = ZoneStatus.ACTIVE
    msg_type: MsgType = Field(default=MsgType.ALERT, alias="msgType")
    texts: dict[Lang, AlertText] = Field(default_factory=dict)
    sent: datetime
    expires: datetime | None = None
    references: tuple[str, ...] = ()  # CAP "sender,identifier,sent" triples of earlier messages
    version: int = Field(default=1, ge=0)
    sender_name: str | None = Field(default=None, max_length=200)  # CAP senderName: who ordered this message

    @field_validator("sent", "expires")
    @classmethod
    def _aware(cls, v: datetime | None) -> datetime | None:
        if v is not None and v.tzinfo is None:
            raise ValueError("timestamps must carry a time zone")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> ResidentAlert:
        if self.msg_type is MsgType.CANCEL and self.status is not ZoneStatus.CANCELLED:
            raise ValueError("a Cancel message must have status=cancelled")
        if self.status is ZoneStatus.CANCELLED and self.msg_type is not MsgType.CANCEL:
            raise ValueError("status=cancelled needs msgType=Cancel")
        return self

    @property
    def exercise(self) -> bool:
        return self.mode is Mode.EXERCISE

    @property
    def cap_identifier(self) -> str:
        """This message's own CAP identifier (the alert id plus its version)."""
        return f"{self.id}.v{self.version}"

    def text(self, lang: Lang) -> AlertText:
        if lang in self.texts:
            return self.texts[lang]
        if self.msg_type is MsgType.CANCEL:
            return CANCEL_TEXTS[lang]
        sig = Signal.ALL_CLEAR if self.status is ZoneStatus.ALL_CLEAR else self.signal
        return DEFAULT_TEXTS[sig][lang]

    def headline(self, lang: Lang) -> str:
        """The headline as every channel shows it: exercises carry a clear mark."""
        h = self.text(lang).headline
        return f"[{EXERCISE_MARK[lang]}] {h}" if self.exercise else h

    def public_payload(self, zone: str, zone_version: int | None = None) -> dict[str, object]:
        """The small, self-describing JSON every per-subscriber channel carries (< 1 KB)."""
        return {
            "type": "zone-state",
            "zone": zone,
            "alert": self.id,
            "version": self.version if zone_version is None else zone_version,
            "alertVersion": self.version,
            "msgType": self.msg_type.value,
            "status": self.status.value,
            "signal": self.signal.value,
            "mode": self.mode.value,
            "sent": self.sent.isoformat(),
            "expires": self.expires.isoformat() if self.expires else None,
            "headline": {lang: self.headline(lang) for lang in LANGS},
            "instruction": {lang: self.text(lang).instruction for lang in LANGS},
        }


def utcnow() -> datetime:
    return datetime.now(UTC)


def _b64url_bytes(value: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError) as exc:
        raise ValueError("not base64url") from exc


class PushKeys(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    p256dh: str = Field(min_length=80, max_length=100)
    auth: str = Field(min_length=16, max_length=32)

    @field_validator("p256dh")
    @classmethod
    def _p256(cls, v: str) -> str:
        raw = _b64url_bytes(v)
        if len(raw) != 65 or raw[0] != 4:
            raise ValueError("p256dh must be a 65-byte uncompressed P-256 point")
        return v

    @field_validator("auth")
    @classmethod
    def _auth(cls, v: str) -> str:
        if len(_b64url_bytes(v)) != 16:
            raise ValueError("auth must be 16 bytes")
        return v


class PushSubscriptionInfo(BaseModel):
    """What the browser's PushSubscription.toJSON() gives."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    endpoint: str = Field(min_length=8, max_length=2048, pattern=r"^https?://[^\s]+$")
    keys: PushKeys


class SubscribeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    subscription: PushSubscriptionInfo
    zones: tuple[Id, ...] = Field(min_length=1, max_length=16)
    tester: bool = False  # opted in to receive exercises (always clearly marked)
    lang: Lang = "uk"


class UnsubscribeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    endpoint: str = Field(min_length=8, max_length=2048)
