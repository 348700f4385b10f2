"""The lean HTTP/1.1 transport and the sharded (worker-process) Web Push path, over real sockets."""

from __future__ import annotations

import asyncio
from concurrent.futures import Executor, Future
from concurrent.futures.process import BrokenProcessPool

import httpx
import pytest

from hub.residents.channels import SubscriptionStore, VapidSigner, WebPushChannel
from hub.residents.channels.fasthttp import Http1Transport
from hub.residents.channels.webpush import Subscriber
from hub.residents.loopback import serve_app
from tests.residents.conftest import alert, states
from tests.residents.receivers import PushService


class RawServer:
    """Answers each request with a canned response; optionally closes the connection after it."""

    def __init__(self, response: bytes, *, close_after: bool = False) -> None:
        self.response, self.close_after = response, close_after
        self.requests: list[bytes] = []
        self.connections = 0

    async def handle(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await r.readuntil(b"\r\n\r\n")
                length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                body = await r.readexactly(length)
                self.requests.append(head + body)
                w.write(self.response)
                await w.drain()
                if self.close_after:
                    break
        except asyncio.IncompleteReadError:
            return
        finally:
            w.close()

    async def __aenter__(self) -> str:
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()


async def test_chunked_response_and_keep_alive_reuse():
    srv = RawServer(b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\nX-A: 1\r\n\r\n"
                    b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\n")
    async with srv as base:
        t = Http1Transport()
        async with httpx.AsyncClient(transport=t) as c:
            for _ in range(3):
                r = await c.post(f"{base}/p?q=1", content=b"abc", headers={"TTL": "5"})
                assert r.status_code == 201 and r.content == b"hello world" and r.headers["x-a"] == "1"
        status, _, body = await Http1Transport().post(f"{base}/x", [("TTL", "1")], b"zz")
        assert status == 201 and body == b"hello world"
    assert srv.connections == 2  # three requests on one kept-alive connection, then the fast path's own
    first = srv.requests[0]
    assert first.startswith(b"POST /p?q=1 HTTP/1.1\r\n") and b"\r\ncontent-length: 3\r\n" in first.lower()
    assert first.endswith(b"abc")


async def test_connection_close_is_honoured_and_a_closed_idle_connection_is_retried_once():
    srv = RawServer(b"HTTP/1.1 410 Gone\r\nContent-Length: 0\r\n\r\n", close_after=True)
    async with srv as base:
        t = Http1Transport()
        for _ in range(3):
            status, _, _ = await t.post(f"{base}/gone", [], b"x")
            assert status == 410
    assert srv.connections == 3 and len(srv.requests) == 3


@pytest.mark.parametrize("response,err", [
    (b"garbage\r\n\r\n", httpx.RemoteProtocolError),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", httpx.RemoteProtocolError),
    (b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", httpx.RemoteProtocolError),
])
async def test_bad_responses_are_httpx_errors(response, err):
    srv = RawServer(response, close_after=True)
    async with srv as base:
        with pytest.raises(err):
            await Http1Transport().post(f"{base}/", [], b"")


async def test_connect_refused_and_bad_urls_are_httpx_errors():
    with pytest.raises(httpx.ConnectError):
        await Http1Transport().post("http://127.0.0.1:9/x", [], b"")
    with pytest.raises(httpx.UnsupportedProtocol):
        await Http1Transport().post("ftp://127.0.0.1/x", [], b"")


async def test_the_sharded_worker_path_delivers_decryptable_pushes_and_prunes_gone():
    push = PushService()
    async with serve_app(push.app) as base:
        push.base = base
        browsers = [push.browser(f"b{i}") for i in range(6)]
        push.status["b5"] = 410
        store = SubscriptionStore()
        for i, b in enumerate(browsers):
            s = b.subscription()
            store.add(Subscriber(s["endpoint"], s["keys"]["p256dh"], s["keys"]["auth"], frozenset({"kyiv-podil"}),
                                 tester=i % 2 == 0))
        ch = WebPushChannel(store, VapidSigner.generate("mailto:a@b.c"), inline_below=2, chunk=2, workers=1,
                            ttl_s=600, timeout_s=10, retries=1)
        await ch.start()
        a = alert(1)
        await ch.deliver(a, states(a))
        assert sorted(r["key"] for r in push.received) == ["b0", "b1", "b2", "b3", "b4"]
        assert all(r["headers"]["ttl"] == "600" and r["headers"]["topic"] == "zone-kyiv-podil"
                   and r["payload"]["status"] == "active" for r in push.received)
        assert ch.stats.delivered == 5 and ch.stats.pruned == 1 and len(store) == 5
        push.received.clear()
        from contract.models import Mode
        ex = alert(1, aid="EX", mode=Mode.EXERCISE)
        await ch.deliver(ex, states(ex))
        assert sorted(r["key"] for r in push.received) == ["b0", "b2", "b4"]  # testers only
        await ch.aclose()


class BrokenExecutor(Executor):
    """A worker pool whose workers all died: every job fails with BrokenProcessPool."""

    def submit(self, fn, /, *args, **kwargs):
        fut: Future = Future()
        fut.set_exception(BrokenProcessPool("worker died"))
        return fut


async def test_a_broken_worker_pool_falls_back_to_sending_in_process():
    push = PushService()
    async with serve_app(push.app) as base:
        push.base = base
        store = SubscriptionStore()
        for i in range(4):
            s = push.browser(f"b{i}").subscription()
            store.add(Subscriber(s["endpoint"], s["keys"]["p256dh"], s["keys"]["auth"], frozenset({"kyiv-podil"})))
        ch = WebPushChannel(store, VapidSigner.generate("mailto:a@b.c"), inline_below=2, chunk=2,
                            executor=BrokenExecutor(), timeout_s=10)
        a = alert(1)
        await ch.deliver(a, states(a))
        await ch.aclose()
    assert sorted(r["key"] for r in push.received) == ["b0", "b1", "b2", "b3"]
    assert ch.stats.delivered == 4 and ch.worker_fallbacks == 2 and "worker failed" in ch.stats.last_error
