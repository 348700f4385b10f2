"""API hardening on a real `dozor hub run` process: bodies over the cap refused before they are read (an
unauthenticated 50 MB POST does not grow the hub's memory), failed logins and the public resident endpoints
rate-limited per client address (429 + counter), /metrics and the OpenAPI document closed to anonymous callers."""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path

import httpx
import pytest

from simulators.brokers import free_port
from tests.identity.helpers import cli, hub_process
from tests.tokens import record

pytestmark = pytest.mark.integration
MB = 1024 * 1024


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def big_post(port: int, path: str, total: int, *, chunked: bool) -> tuple[int, int]:
    """POST ``total`` bytes of body; returns (HTTP status, body bytes the hub took before answering/closing)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    head = f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    head += "Transfer-Encoding: chunked\r\n\r\n" if chunked else f"Content-Length: {total}\r\n\r\n"
    s.sendall(head.encode())
    chunk = b"x" * (256 * 1024)
    sent = 0
    s.settimeout(0.5)
    response = b""
    try:
        while sent < total:
            piece = (f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n") if chunked else chunk
            try:
                s.sendall(piece)
            except TimeoutError:
                break  # the hub stopped reading (flow control): it is not buffering the rest
            sent += len(chunk)
            try:
                response += s.recv(65536)
                if response:
                    break  # answered before the body ended
            except (TimeoutError, BlockingIOError):
                pass
    except (BrokenPipeError, ConnectionResetError):
        pass
    s.settimeout(10)
    try:
        while b"\r\n\r\n" not in response:
            data = s.recv(65536)
            if not data:
                break
            response += data
    except (ConnectionResetError, TimeoutError):
        pass
    s.close()
    status = int(response.split(b" ", 2)[1]) if response.startswith(b"HTTP/1.1") else 0
    return status, sent


@pytest.fixture
async def deployed(mosquitto, tmp_path, token_leak_scanner):
    port = free_port()
    deploy = tmp_path / "city"
    rc, out, err = await cli("hub", "init", str(deploy), "--broker", mosquitto.url, "--listen", f"127.0.0.1:{port}",
                             scanner=token_leak_scanner)
    assert rc == 0, err
    admin = record(out.strip())
    config = deploy / "hub.toml"
    config.write_text(config.read_text().replace(
        "[hub]\n", "[hub]\nlogin_failures_per_min = 5\npublic_requests_per_min = 4\n", 1))
    (deploy / "zones.json").write_text(json.dumps([{"id": "centre", "gateways": ["gw-1"]}]))
    async with hub_process(config, port, tmp_path / "hub.log", scanner=token_leak_scanner) as proc:
        yield {"port": port, "admin": admin, "pid": proc.pid, "metrics_token": (deploy / "metrics-token").read_text().strip(),
               "config": config}


def other_address_client(port: int) -> httpx.AsyncClient:
    """A client from 127.0.0.2: another address for the per-address limits (the hub listens on 127.0.0.1)."""
    return httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10,
                             transport=httpx.AsyncHTTPTransport(local_address="127.0.0.2"))


async def test_a_50_mb_post_is_refused_before_it_is_read(deployed):
    port, pid = deployed["port"], deployed["pid"]
    before = rss_bytes(pid)
    for path, chunked in (("/api/v1/alerts", False), ("/api/v1/alerts", True), ("/api/v1/push/subscriptions", False)):
        status, taken = await asyncio.to_thread(big_post, port, path, 50 * MB, chunked=chunked)
        assert status == 413, (path, chunked, status)
        assert taken < 10 * MB, (path, chunked, taken)  # the hub answered (or stopped reading) early
    grown = rss_bytes(pid) - before
    assert grown < 30 * MB, f"hub RSS grew by {grown / MB:.1f} MB"  # generous; an unbounded read is 50+ MB
    async with other_address_client(port) as http:
        text = (await http.get("/metrics", headers={"Authorization": f"Bearer {deployed['metrics_token']}"})).text
    assert "dozor_hub_api_body_too_large_total 3.0" in text


async def test_failed_logins_are_limited_per_address(deployed):
    port, admin = deployed["port"], deployed["admin"]
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
        for i in range(5):
            r = await http.get("/api/v1/alerts", headers={"Authorization": f"Bearer dzr_0123456789ab_{'x' * 43}"})
            assert r.status_code == 401, i
        r = await http.get("/api/v1/alerts", headers={"Authorization": f"Bearer {admin}"})
        assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1  # even the right token, from here
        assert "too many failed logins" in r.json()["detail"]
    async with other_address_client(port) as http:  # another address is not affected
        r = await http.get("/api/v1/alerts", headers={"Authorization": f"Bearer {admin}"})
        assert r.status_code == 200
        text = (await http.get("/metrics", headers={"Authorization": f"Bearer {admin}"})).text
    assert 'dozor_hub_api_rate_limited_total{what="login"} 1.0' in text
    assert 'dozor_hub_api_auth_refusals_total{reason="unknown"} 5.0' in text


async def test_forwarded_for_is_believed_only_from_a_trusted_proxy(deployed):
    """[hub] trusted_proxies (default: loopback, the TLS front on the same machine): a front's X-Forwarded-For names
    the real client, so strangers behind the front cannot lock operators out; anyone else's is ignored, so a
    client cannot dodge its own limit by inventing addresses."""
    port, admin = deployed["port"], deployed["admin"]
    bad = f"Bearer dzr_0123456789ab_{'x' * 43}"
    async with other_address_client(port) as http:  # 127.0.0.2: not a trusted proxy
        for i in range(5):
            r = await http.get("/api/v1/alerts", headers={"Authorization": bad, "X-Forwarded-For": f"192.0.2.{i}"})
            assert r.status_code == 401, i
        r = await http.get("/api/v1/alerts", headers={"Authorization": f"Bearer {admin}",
                                                      "X-Forwarded-For": "192.0.2.99"})
        assert r.status_code == 429 and "127.0.0.2" in r.json()["detail"]
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as front:  # the trusted front
        for i in range(5):
            r = await front.get("/api/v1/alerts", headers={"Authorization": bad, "X-Forwarded-For": "203.0.113.9"})
            assert r.status_code == 401, i
        r = await front.get("/api/v1/alerts", headers={"Authorization": bad, "X-Forwarded-For": "203.0.113.9"})
        assert r.status_code == 429 and "203.0.113.9" in r.json()["detail"]
        r = await front.get("/api/v1/alerts", headers={"Authorization": f"Bearer {admin}",
                                                       "X-Forwarded-For": "198.51.100.7"})
        assert r.status_code == 200  # the operator behind the same front is not affected


async def test_public_endpoints_are_limited_per_address(deployed):
    port = deployed["port"]
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
        codes = [(await http.post("/api/v1/push/subscriptions", json={})).status_code for _ in range(5)]
        assert 429 not in codes[:4] and codes[4] == 429  # (503 before: this hub has no Web Push configured)
        codes = []
        for _ in range(5):
            async with http.stream("GET", "/api/v1/zones/centre/events") as r:
                codes.append(r.status_code)
        assert codes[:4] == [200] * 4 and codes[4] == 429
        assert (await http.get("/healthz")).status_code == 200  # not limited
    async with other_address_client(port) as http:
        assert (await http.post("/api/v1/push/subscriptions", json={})).status_code != 429
        text = (await http.get("/metrics", headers={"Authorization": f"Bearer {deployed['admin']}"})).text
    assert 'dozor_hub_api_rate_limited_total{what="subscribe"} 1.0' in text
    assert 'dozor_hub_api_rate_limited_total{what="live"} 1.0' in text


async def test_metrics_and_openapi_need_a_role_or_the_metrics_token(deployed):
    port, metrics_token = deployed["port"], deployed["metrics_token"]
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
        assert (await http.get("/metrics")).status_code == 401
        assert (await http.get("/api/v1/openapi.json")).status_code == 401
        r = await http.get("/metrics", headers={"Authorization": f"Bearer {metrics_token}"})
        assert r.status_code == 200 and "dozor_hub_audit_records_total" in r.text
        # the metrics token opens /metrics only
        r = await http.get("/api/v1/alerts", headers={"Authorization": f"Bearer {metrics_token}"})
        assert r.status_code == 401
        r = await http.get("/api/v1/openapi.json", headers={"Authorization": f"Bearer {metrics_token}"})
        assert r.status_code == 401
        r = await http.get("/api/v1/openapi.json", headers={"Authorization": f"Bearer {deployed['admin']}"})
        doc = r.json()
        assert "/api/v1/alerts" in doc["paths"]
