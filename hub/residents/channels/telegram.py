"""A Telegram channel post per zone, through the Bot API's sendMessage over httpx.

One post to a per-zone public channel is one API call; Telegram fans it out. Exercises go only to the
zone's tester chat (``exercise_chats``), never to the public channel. 429 honours ``retry_after``.
"""

from __future__ import annotations

import asyncio
import html
from collections.abc import Mapping, Sequence

import httpx

from contract.models import ZoneState
from hub.residents.channels.base import Channel, http_error
from hub.residents.errors import ChannelError
from hub.residents.models import ResidentAlert

MAX_TEXT = 4096


class TelegramChannel(Channel):
    name = "telegram"

    def __init__(self, bot_token: str, chats: Mapping[str, str | int], *, public_url: str,
                 exercise_chats: Mapping[str, str | int] | None = None,
                 base_url: str = "https://api.telegram.org", transport: httpx.AsyncBaseTransport | None = None,
                 **kw: float) -> None:
        super().__init__(**kw)  # type: ignore[arg-type]
        self.chats = dict(chats)
        self.exercise_chats = dict(exercise_chats or {})
        self.public_url = public_url.rstrip("/")
        self._url = f"{base_url.rstrip('/')}/bot{bot_token}/sendMessage"
        self._client = httpx.AsyncClient(transport=transport, timeout=httpx.Timeout(self.timeout_s))

    def text(self, alert: ResidentAlert, state: ZoneState) -> str:
        parts = []
        for lang in ("uk", "en"):
            t = alert.text(lang)
            parts.append(f"<b>{html.escape(alert.headline(lang))}</b>")
            extra = t.instruction or t.description
            if extra:
                parts.append(html.escape(extra))
        parts.append(f"<i>{html.escape(state.zone)} · v{state.version}</i>")
        return "\n".join(parts)[:MAX_TEXT]

    def request(self, alert: ResidentAlert, state: ZoneState, chat: str | int) -> dict[str, object]:
        page = f"{self.public_url}/?zone={state.zone}"
        return {
            "chat_id": chat,
            "text": self.text(alert, state),
            "parse_mode": "HTML",
            "link_preview_options": {"is_disabled": True},
            "disable_notification": False,
            "reply_markup": {"inline_keyboard": [[{"text": "Укриття / Shelters", "url": f"{page}#shelters"}]]},
        }

    async def deliver(self, alert: ResidentAlert, states: Sequence[ZoneState]) -> None:
        await asyncio.gather(*(self._one(alert, st) for st in states))

    async def _one(self, alert: ResidentAlert, state: ZoneState) -> None:
        chat = (self.exercise_chats if alert.exercise else self.chats).get(state.zone)
        if chat is None:
            if alert.exercise and state.zone in self.chats:
                self.note_skipped_exercise()
            return
        body = self.request(alert, state, chat)

        async def post() -> None:
            try:
                resp = await self._client.post(self._url, json=body)
            except httpx.HTTPError as exc:
                raise http_error(self.name, exc) from None
            try:
                data = resp.json()
            except ValueError:
                raise ChannelError(self.name, "bad_response", f"HTTP {resp.status_code}, not JSON") from None
            if resp.status_code == 200 and isinstance(data, dict) and data.get("ok") is True:
                return
            params = data.get("parameters") if isinstance(data, dict) else None
            retry_after = params.get("retry_after") if isinstance(params, dict) else None
            desc = str(data.get("description", ""))[:200] if isinstance(data, dict) else ""
            raise ChannelError(self.name, f"http_{resp.status_code}", desc,
                               retryable=resp.status_code == 429 or resp.status_code >= 500,
                               retry_after=float(retry_after) if isinstance(retry_after, int | float) else None)

        await self.attempt(post)

    async def aclose(self) -> None:
        await self._client.aclose()
