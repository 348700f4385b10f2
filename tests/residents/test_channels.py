"""Each channel against a local protocol-level receiver over real HTTP on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from contract.models import Mode, ZoneStatus
from hub.residents.channels import (
    NtfyChannel,
    SubscriptionStore,
    TelegramChannel,
    VapidSigner,
    WebhookChannel,
    WebhookEndpoint,
    WebPushChannel,
)
from hub.residents.channels.webhook import verify
from hub.residents.channels.webpush import Subscriber, topic_for
from hub.residents.loopback import serve_app
from tests.residents.conftest import alert, states
from tests.residents.receivers import NtfyServer, PushService, TelegramApi, WebhookReceiver


def sub_of(browser, zones=("kyiv-podil",), tester=False) -> Subscriber:
    s = browser.subscription()
    return Subscriber(s["endpoint"], s["keys"]["p256dh"], s["keys"]["auth"], frozenset(zones), tester)


async def test_webpush_is_decrypted_by_the_receiver_with_ttl_urgency_topic_and_vapid():
    push = PushService()
    async with serve_app(push.app) as base:
        push.base = base
        b1, b2 = push.browser("b1"), push.browser("b2")
        store = SubscriptionStore()
        store.add_many([sub_of(b1), sub_of(b2, zones=("kyiv-obolon",))])
        signer = VapidSigner.generate("mailto:ops@dozor.example")
        ch = WebPushChannel(store, signer, ttl_s=1800, timeout_s=5, retries=0)
        a = alert(1)
        await ch.deliver(a, states(a, zone_version=7))
        await ch.aclose()
    assert [r["key"] for r in push.received] == ["b1"]  # only the alerted zone's subscriber
    got = push.received[0]
    h = got["headers"]
    assert h["ttl"] == "1800"
    assert h["urgency"] == "high"
    assert h["topic"] == "zone-kyiv-podil" == topic_for("kyiv-podil")
    assert h["content-encoding"] == "aes128gcm"
    assert got["vapid_k"] == signer.public_key_b64
    assert got["claims"]["sub"] == "mailto:ops@dozor.example"
    assert got["claims"]["exp"] > time.time()
    p = got["payload"]
    assert p["zone"] == "kyiv-podil" and p["version"] == 7 and p["alertVersion"] == 1
    assert p["status"] == "active" and p["mode"] == "actual" and p["msgType"] == "Alert"
    assert p["headline"]["uk"] == "Повітряна тривога" and p["headline"]["en"] == "Air raid alert"
    assert got["size"] <= 4096
    assert ch.stats.delivered == 1 and ch.stats.failed == 0


def test_topic_is_at_most_32_base64url_chars_for_any_zone_id():
    import re
    for zone in ["a", "kyiv-podil", "x" * 64, "zone.with.dots", "Z_" * 20]:
        t = topic_for(zone)
        assert len(t) <= 32 and re.fullmatch(r"[A-Za-z0-9_-]+", t)
    assert topic_for("x" * 64) != topic_for("x" * 63)


async def test_webpush_prunes_404_and_410_and_retries_5xx():
    push = PushService()
    async with serve_app(push.app) as base:
        push.base = base
        gone, missing, flaky = push.browser("gone"), push.browser("missing"), push.browser("flaky")
        push.status.update({"gone": 410, "missing": 404, "flaky": 503})
        store = SubscriptionStore()
        store.add_many([sub_of(gone), sub_of(missing), sub_of(flaky)])
        ch = WebPushChannel(store, VapidSigner.generate("mailto:a@b.c"), timeout_s=5, retries=2, backoff_s=0.01)
        a = alert(1)
        await ch.deliver(a, states(a))
        await ch.aclose()
    assert len(store) == 1 and store.get(flaky.endpoint) is not None
    assert ch.stats.pruned == 2
    assert ch.stats.failed == 1 and ch.stats.retries == 2 and "http_503" in (ch.stats.last_error or "")
    assert push.received == []


async def test_subscription_store_persists_in_sqlite(tmp_path):
    path = tmp_path / "subs.sqlite"
    s = SubscriptionStore(path)
    s.add(Subscriber("https://push.example/1", "k" * 87, "a" * 22, frozenset({"z1", "z2"}), True, "en"))
    s.add(Subscriber("https://push.example/2", "k" * 87, "a" * 22, frozenset({"z2"})))
    s.remove("https://push.example/2")
    s.close()
    again = SubscriptionStore(path)
    assert [x.endpoint for x in again.for_zone("z2")] == ["https://push.example/1"]
    assert again.get("https://push.example/1").tester is True


async def test_ntfy_publishes_one_message_per_zone_topic_with_exact_fields():
    ntfy = NtfyServer()
    async with serve_app(ntfy.app) as base:
        ch = NtfyChannel(base, public_url="https://alerts.example", token="tk_secret", timeout_s=5)
        a = alert(1, zones=("kyiv-podil", "kyiv-obolon"))
        await ch.deliver(a, states(a))
        clear = alert(2, zones=("kyiv-podil",), status=ZoneStatus.ALL_CLEAR)
        await ch.deliver(clear, states(clear))
        await ch.aclose()
    assert sorted(r["key"] for r in ntfy.received[:2]) == ["dozor-kyiv-obolon", "dozor-kyiv-podil"]
    m = next(r for r in ntfy.received if r["key"] == "dozor-kyiv-podil")
    assert m["headers"]["authorization"] == "Bearer tk_secret"
    j = m["json"]
    assert set(j) == {"topic", "title", "message", "priority", "tags", "click", "actions"}
    assert j["title"] == "Повітряна тривога" and j["priority"] == 5
    assert j["tags"][:2] == ["rotating_light", "warning"] and "v1" in j["tags"]
    assert j["click"] == "https://alerts.example/?zone=kyiv-podil"
    assert j["actions"][0] == {"action": "view", "label": "Укриття / Shelters",
                               "url": "https://alerts.example/?zone=kyiv-podil#shelters", "clear": False}
    assert j["actions"][1]["url"] == "https://alerts.example/cap/A-1.v1.xml"
    assert "Air raid alert" in j["message"]
    last = ntfy.received[-1]["json"]
    assert last["topic"] == "dozor-kyiv-podil" and last["title"] == "Відбій тривоги"
    assert last["priority"] == 4 and "white_check_mark" in last["tags"]


async def test_ntfy_exercise_goes_only_to_the_tester_topic_and_is_marked():
    ntfy = NtfyServer()
    async with serve_app(ntfy.app) as base:
        ch = NtfyChannel(base, public_url="https://alerts.example", timeout_s=5)
        a = alert(1, mode=Mode.EXERCISE)
        await ch.deliver(a, states(a))
        none = NtfyChannel(base, public_url="https://x", exercise_suffix=None, timeout_s=5)
        await none.deliver(a, states(a))
        await ch.aclose()
        await none.aclose()
    assert [r["key"] for r in ntfy.received] == ["dozor-kyiv-podil-exercise"]
    j = ntfy.received[0]["json"]
    assert j["title"].startswith("[НАВЧАННЯ]") and "exercise" in j["tags"] and j["priority"] == 3
    assert none.stats.skipped_exercise == 1


async def test_telegram_posts_per_zone_channel_and_honours_429_retry_after():
    api = TelegramApi("123:ABC")
    async with serve_app(api.app) as base:
        api.flood["@dozor_podil"] = 1
        ch = TelegramChannel("123:ABC", {"kyiv-podil": "@dozor_podil", "kyiv-obolon": -1001234},
                             public_url="https://alerts.example", base_url=base, timeout_s=5, retries=2,
                             backoff_s=0.01)
        a = alert(1, zones=("kyiv-podil", "kyiv-obolon"))
        await ch.deliver(a, states(a))
        await ch.aclose()
    assert sorted(r["key"] for r in api.received) == ["-1001234", "@dozor_podil"]
    assert ch.stats.retries == 1 and ch.stats.delivered == 2
    j = next(r for r in api.received if r["key"] == "@dozor_podil")["json"]
    assert set(j) == {"chat_id", "text", "parse_mode", "link_preview_options", "disable_notification",
                      "reply_markup"}
    assert j["parse_mode"] == "HTML" and j["link_preview_options"] == {"is_disabled": True}
    assert j["text"].startswith("<b>Повітряна тривога</b>") and "<b>Air raid alert</b>" in j["text"]
    assert j["reply_markup"]["inline_keyboard"][0][0]["url"] == "https://alerts.example/?zone=kyiv-podil#shelters"


async def test_telegram_wrong_token_is_a_counted_non_retryable_failure():
    api = TelegramApi("123:ABC")
    async with serve_app(api.app) as base:
        ch = TelegramChannel("999:BAD", {"kyiv-podil": "@c"}, public_url="https://x", base_url=base, retries=3)
        a = alert(1)
        await ch.deliver(a, states(a))
        await ch.aclose()
    assert ch.stats.failed == 1 and ch.stats.retries == 0 and "http_401" in ch.stats.last_error


async def test_webhook_is_hmac_signed_and_exercise_only_reaches_opted_in_endpoints():
    rx = WebhookReceiver()
    async with serve_app(rx.app) as base:
        ch = WebhookChannel([WebhookEndpoint(f"{base}/hook/city", b"s3cret"),
                             WebhookEndpoint(f"{base}/hook/lab", b"lab-key", exercise=True),
                             WebhookEndpoint(f"{base}/hook/other", b"k", zones=frozenset({"elsewhere"}))],
                            timeout_s=5)
        a = alert(1)
        await ch.deliver(a, states(a))
        ex = alert(1, mode=Mode.EXERCISE, aid="EX-1")
        await ch.deliver(ex, states(ex))
        await ch.aclose()
    assert [r["key"] for r in rx.received] == ["city", "lab", "lab"]
    assert ch.stats.skipped_exercise == 1
    for r, secret in zip(rx.received, [b"s3cret", b"lab-key", b"lab-key"], strict=True):
        h = r["headers"]
        assert verify(secret, h["x-dozor-timestamp"], r["body"], h["x-dozor-signature"])
        assert not verify(b"wrong", h["x-dozor-timestamp"], r["body"], h["x-dozor-signature"])
        assert not verify(secret, h["x-dozor-timestamp"], r["body"] + b" ", h["x-dozor-signature"])
        assert h["content-type"] == "application/json"
    doc = json.loads(rx.received[2]["body"])
    assert doc["alert"]["mode"] == "exercise" and doc["alert"]["msgType"] == "Alert"
    assert rx.received[2]["headers"]["x-dozor-mode"] == "exercise"
    assert doc["states"][0]["zone"] == "kyiv-podil"


@pytest.mark.parametrize("status", [500, 429])
async def test_webhook_retries_then_counts_failure(status):
    rx = WebhookReceiver()
    async with serve_app(rx.app) as base:
        rx.status["x"] = status
        ch = WebhookChannel([WebhookEndpoint(f"{base}/hook/x", b"k")], retries=2, backoff_s=0.01)
        a = alert(1)
        await ch.deliver(a, states(a))
        await ch.aclose()
    assert ch.stats.attempts == 3 and ch.stats.failed == 1 and ch.stats.health == "failing"


async def test_one_hanging_push_endpoint_does_not_hold_back_the_other_subscribers():
    push = PushService()
    async with serve_app(push.app) as base:
        push.base = base
        slow, fast1, fast2 = push.browser("slow"), push.browser("fast1"), push.browser("fast2")
        push.hang.add("slow")
        store = SubscriptionStore()
        store.add_many([sub_of(slow), sub_of(fast1), sub_of(fast2)])
        ch = WebPushChannel(store, VapidSigner.generate("mailto:a@b.c"), timeout_s=1.0, retries=0)
        a = alert(1)
        task = asyncio.create_task(ch.deliver(a, states(a)))
        await push.wait_for(2)
        # Both fast subscribers got theirs while the slow one's request is still open, before its timeout.
        assert sorted(r["key"] for r in push.received) == ["fast1", "fast2"]
        assert push.pending == 1 and ch.stats.timeouts == 0
        await task
        push.release()
        await ch.aclose()
    assert ch.stats.delivered == 2 and ch.stats.timeouts == 1 and ch.stats.failed == 1
    assert len(store) == 3  # a timeout is not a reason to drop a subscription
