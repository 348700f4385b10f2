"""The notifier: channels in parallel, a hanging channel delays nobody, exercises reach testers only."""

from __future__ import annotations

import json

from contract.models import Mode, ZoneStatus
from hub.residents import ResidentNotifier
from hub.residents.channels import (
    NtfyChannel,
    SubscriptionStore,
    TelegramChannel,
    VapidSigner,
    WebhookChannel,
    WebhookEndpoint,
    WebPushChannel,
)
from hub.residents.channels.webpush import Subscriber
from hub.residents.loopback import serve_app
from tests.residents.conftest import alert, states
from tests.residents.receivers import NtfyServer, PushService, TelegramApi, WebhookReceiver, eventually


def sub_of(browser, tester=False):
    s = browser.subscription()
    return Subscriber(s["endpoint"], s["keys"]["p256dh"], s["keys"]["auth"], frozenset({"kyiv-podil"}), tester)


class Rig:
    """All four channels against their local receivers."""

    def __init__(self, push, ntfy, tg, hook, bases, *, ntfy_timeout=5.0):
        self.push, self.ntfy, self.tg, self.hook = push, ntfy, tg, hook
        push.base = bases[0]
        self.resident, self.tester = push.browser("resident"), push.browser("tester")
        self.subs = SubscriptionStore()
        self.subs.add_many([sub_of(self.resident), sub_of(self.tester, tester=True)])
        self.webpush = WebPushChannel(self.subs, VapidSigner.generate("mailto:a@b.c"), timeout_s=5, retries=0)
        self.ntfy_ch = NtfyChannel(bases[1], public_url="https://x", timeout_s=ntfy_timeout, retries=0)
        self.tg_ch = TelegramChannel("1:T", {"kyiv-podil": "@public"}, exercise_chats={"kyiv-podil": "@testers"},
                                     public_url="https://x", base_url=bases[2], timeout_s=5, retries=0)
        self.hook_ch = WebhookChannel([WebhookEndpoint(f"{bases[3]}/hook/public", b"k"),
                                       WebhookEndpoint(f"{bases[3]}/hook/lab", b"k", exercise=True)], timeout_s=5)
        self.notifier = ResidentNotifier([self.webpush, self.ntfy_ch, self.tg_ch, self.hook_ch])


async def with_rig(body, **kw):
    push, ntfy, tg, hook = PushService(), NtfyServer(), TelegramApi("1:T"), WebhookReceiver()
    async with serve_app(push.app) as b0, serve_app(ntfy.app) as b1, serve_app(tg.app) as b2, \
            serve_app(hook.app) as b3:
        rig = Rig(push, ntfy, tg, hook, (b0, b1, b2, b3), **kw)
        try:
            await body(rig)
        finally:
            for r in (push, ntfy, tg, hook):
                r.release()
            await rig.notifier.aclose()


async def test_actual_alert_reaches_every_channel_and_every_resident():
    async def body(rig: Rig):
        a = alert(1)
        await rig.notifier.on_zone_state(a, states(a))
        await rig.notifier.drain()
        assert sorted(r["key"] for r in rig.push.received) == ["resident", "tester"]
        assert [r["key"] for r in rig.ntfy.received] == ["dozor-kyiv-podil"]
        assert [r["key"] for r in rig.tg.received] == ["@public"]
        assert sorted(r["key"] for r in rig.hook.received) == ["lab", "public"]
        assert all(ch["delivered"] >= 1 and ch["failed"] == 0 for ch in rig.notifier.channel_report())
    await with_rig(body)


async def test_an_exercise_never_reaches_a_non_tester():
    async def body(rig: Rig):
        public_listener = rig.notifier.store.listen("kyiv-podil", tester=False)
        tester_listener = rig.notifier.store.listen("kyiv-podil", tester=True)
        await public_listener.next(), await tester_listener.next()  # current state first
        ex = alert(1, mode=Mode.EXERCISE, aid="EX-1")
        await rig.notifier.on_zone_state(ex, states(ex))
        end = alert(2, mode=Mode.EXERCISE, aid="EX-1", status=ZoneStatus.ALL_CLEAR)
        await rig.notifier.on_zone_state(end, states(end))
        await rig.notifier.drain()
        # Web Push: only the tester's endpoint, and marked.
        assert {r["key"] for r in rig.push.received} == {"tester"}
        assert all(r["payload"]["mode"] == "exercise" and r["payload"]["headline"]["uk"].startswith("[НАВЧАННЯ]")
                   and r["payload"]["headline"]["en"].startswith("[EXERCISE]") for r in rig.push.received)
        # ntfy / Telegram / webhook: tester topic, tester chat, opted-in endpoint only.
        assert {r["key"] for r in rig.ntfy.received} == {"dozor-kyiv-podil-exercise"}
        assert {r["key"] for r in rig.tg.received} == {"@testers"}
        assert {r["key"] for r in rig.hook.received} == {"lab"}
        # The public live view saw only the notice that sirens sound for an exercise, none of its content;
        # the tester view saw the exercise itself.
        notice = await public_listener.next()
        assert notice["status"] == "exercise" and notice["alert"] is None and notice["instruction"] == {}
        assert notice["headline"]["en"] == "Exercise — sirens are being tested, no danger"
        assert "[EXERCISE]" not in json.dumps(notice) and "EX-1" not in json.dumps(notice)
        assert rig.notifier.store.view("kyiv-podil")["status"] == "exercise"  # the all-clear sounds too
        assert (await tester_listener.next())["mode"] == "exercise"
        assert rig.webpush.stats.skipped_exercise == 2 and rig.hook_ch.stats.skipped_exercise == 2
    await with_rig(body)


async def test_a_hanging_channel_delays_neither_the_caller_nor_the_other_channels():
    async def body(rig: Rig):
        rig.ntfy.hang.add("dozor-kyiv-podil")
        a = alert(1)
        await rig.notifier.on_zone_state(a, states(a))
        # The hook returned before any channel finished: the sirens' path never waits on notifications.
        assert all(ch["delivered"] == 0 for ch in rig.notifier.channel_report())
        assert rig.notifier.store.view("kyiv-podil")["status"] == "active"  # the live page already has it
        # Every other channel delivers while the ntfy request is still hanging, before its timeout fires.
        await rig.push.wait_for(2)
        await rig.tg.wait_for(1)
        await rig.hook.wait_for(2)
        await eventually(lambda: rig.webpush.stats.delivered == 2 and rig.tg_ch.stats.delivered == 1
                         and rig.hook_ch.stats.delivered == 2)
        assert rig.ntfy.pending == 1 and rig.ntfy_ch.stats.timeouts == 0 and rig.ntfy_ch.stats.delivered == 0
        await rig.notifier.drain()
        assert rig.ntfy_ch.stats.timeouts == 1 and rig.ntfy_ch.stats.failed == 1
        assert rig.ntfy_ch.stats.health == "failing"
        assert rig.webpush.stats.failed == rig.tg_ch.stats.failed == rig.hook_ch.stats.failed == 0
    await with_rig(body, ntfy_timeout=1.0)


async def test_a_later_version_replaces_an_earlier_one_and_a_stale_one_is_dropped():
    async def body(rig: Rig):
        listener = rig.notifier.store.listen("kyiv-podil")
        assert (await listener.next())["version"] == 0
        a, clear = alert(1), alert(2, status=ZoneStatus.ALL_CLEAR)
        await rig.notifier.on_zone_state(clear, states(clear))
        await rig.notifier.on_zone_state(a, states(a))  # arrives late: must not roll the zone back
        await rig.notifier.drain()
        snap = await listener.next()
        assert snap["status"] == "all_clear" and snap["version"] == 2
        assert rig.notifier.store.counters["stale_dropped"] == 1
        assert [r["payload"]["version"] for r in rig.push.received] == [2, 2]  # the stale one was never sent
        assert len(rig.ntfy.received) == 1 and rig.ntfy.received[0]["json"]["priority"] == 4
    await with_rig(body)
