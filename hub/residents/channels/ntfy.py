"""ntfy publish: one topic per zone (JSON publishing), with priority, tags, a click URL and actions.

Exercises go only to a separate tester topic per zone (``<topic><exercise_suffix>``), never to the public
zone topic; with ``exercise_suffix=None`` they are not published at all.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence

import httpx

from contract.models import ZoneState, ZoneStatus
from hub.residents.channels.base import Channel, http_error, status_error
from hub.residents.models import MsgType, ResidentAlert


class NtfyChannel(Channel):
    name = "ntfy"

    def __init__(self, base_url: str, *, public_url: str, topic_prefix: str = "dozor-",
                 topics: Mapping[str, str] | None = None, exercise_suffix: str | None = "-exercise",
                 token: str | None = None, transport: httpx.AsyncBaseTransport | None = None,
                 **kw: float) -> None:
        super().__init__(**kw)  # type: ignore[arg-type]
        self.base_url = base_url.rstrip("/")
        self.public_url = public_url.rstrip("/")
        self.topic_prefix = topic_prefix
        self.topics = dict(topics or {})
        self.exercise_suffix = exercise_suffix
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._client = httpx.AsyncClient(transport=transport, timeout=httpx.Timeout(self.timeout_s),
                                         headers=headers)

    def topic(self, zone: str, *, exercise: bool) -> str | None:
        base = self.topics.get(zone, f"{self.topic_prefix}{zone}")
        if not exercise:
            return base
        return None if self.exercise_suffix is None else base + self.exercise_suffix

    def message(self, alert: ResidentAlert, state: ZoneState, topic: str) -> dict[str, object]:
        uk, en = alert.text("uk"), alert.text("en")
        body = "\n".join(x for x in (uk.instruction or uk.description, "", alert.headline("en"),
                                     en.instruction or en.description) if x is not None).strip()
        if alert.msg_type is MsgType.CANCEL or state.status is not ZoneStatus.ACTIVE:
            priority, tags = 4, ["white_check_mark"] if state.status is ZoneStatus.ALL_CLEAR else ["x"]
        else:
            priority, tags = 5, ["rotating_light", "warning"]
        if alert.exercise:
            priority, tags = 3, [*tags, "exercise"]
        page = f"{self.public_url}/?zone={state.zone}"
        return {
            "topic": topic,
            "title": alert.headline("uk"),
            "message": body or alert.headline("en"),
            "priority": priority,
            "tags": [*tags, f"v{state.version}"],
            "click": page,
            "actions": [
                {"action": "view", "label": "Укриття / Shelters", "url": f"{page}#shelters", "clear": False},
                {"action": "view", "label": "CAP", "url": f"{self.public_url}/cap/{alert.cap_identifier}.xml"},
            ],
        }

    async def deliver(self, alert: ResidentAlert, states: Sequence[ZoneState]) -> None:
        await asyncio.gather(*(self._one(alert, st) for st in states))

    async def _one(self, alert: ResidentAlert, state: ZoneState) -> None:
        topic = self.topic(state.zone, exercise=alert.exercise)
        if topic is None:
            self.note_skipped_exercise()
            return
        msg = self.message(alert, state, topic)

        async def post() -> None:
            try:
                resp = await self._client.post(f"{self.base_url}/", json=msg)
            except httpx.HTTPError as exc:
                raise http_error(self.name, exc) from None
            if resp.status_code != 200:
                raise status_error(self.name, resp)

        await self.attempt(post)

    async def aclose(self) -> None:
        await self._client.aclose()
