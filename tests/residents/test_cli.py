"""`dozor residents channels` and `dozor cap export` against a real hub router over HTTP."""

from __future__ import annotations

import asyncio
import json

import typer
import xmlschema
from typer.testing import CliRunner

from contract.models import ZoneStatus
from dozor.commands import cap as cap_cmd
from dozor.commands import residents as residents_cmd
from hub.residents import ResidentNotifier
from hub.residents.cap import XSD_PATH
from hub.residents.channels import WebhookChannel, WebhookEndpoint
from hub.residents.loopback import serve_app
from tests.residents.conftest import alert, states
from tests.residents.receivers import WebhookReceiver
from tests.residents.webapp import TOKEN, make_app


def cli() -> typer.Typer:
    app = typer.Typer()
    residents_cmd.register(app)
    cap_cmd.register(app)
    return app


async def run(*args: str, env: dict[str, str] | None = None):
    return await asyncio.to_thread(CliRunner().invoke, cli(), list(args), env={"COLUMNS": "200", **(env or {})})


async def test_residents_channels_shows_health_and_counts(zones, shelters):
    rx = WebhookReceiver()
    async with serve_app(rx.app) as hook_base:
        rx.status["down"] = 500
        notifier = ResidentNotifier([WebhookChannel([WebhookEndpoint(f"{hook_base}/hook/up", b"k")],
                                                    retries=0, backoff_s=0.01),
                                     WebhookChannel([WebhookEndpoint(f"{hook_base}/hook/down", b"k")],
                                                    retries=0, backoff_s=0.01)])
        notifier.channels[1].name = "webhook-b"
        app, _, _ = make_app(zones, shelters, notifier=notifier)
        a = alert(1)
        await notifier.on_zone_state(a, states(a))
        await notifier.drain()
        async with serve_app(app) as base:
            env = {"DOZOR_HUB_URL": base, "DOZOR_TOKEN": TOKEN}
            r = await run("residents", "channels", "--json", env=env)
            assert r.exit_code == 0, r.output
            doc = json.loads(r.output)
            by = {c["name"]: c for c in doc["channels"]}
            assert by["webhook"]["delivered"] == 1 and by["webhook"]["health"] == "ok"
            assert by["webhook-b"]["failed"] == 1 and "http_500" in by["webhook-b"]["last_error"]
            table = await run("residents", "channels", env=env)
            assert table.exit_code == 3  # a failing channel is a non-zero exit for scripts and monitoring
            assert "webhook-b" in table.output and "failing" in table.output
            denied = await run("residents", "channels", "--hub", base, "--token", "wrong")
            assert denied.exit_code == 1 and "refused" in denied.output
        await notifier.aclose()
    gone = await run("residents", "channels", "--hub", "http://127.0.0.1:9", "--token", "x")
    assert gone.exit_code == 1 and "not reachable" in gone.output


async def test_cap_export_prints_valid_cap(zones, shelters, tmp_path):
    app, notifier, _ = make_app(zones, shelters)
    a, u = alert(1), alert(2, status=ZoneStatus.ALL_CLEAR)
    await notifier.on_zone_state(a, states(a))
    await notifier.on_zone_state(u, states(u))
    xsd = xmlschema.XMLSchema(str(XSD_PATH))
    async with serve_app(app) as base:
        env = {"DOZOR_HUB_URL": base, "DOZOR_TOKEN": TOKEN}
        r = await run("cap", "export", "A-1", env=env)
        assert r.exit_code == 0, r.output
        xsd.validate(r.stdout)
        assert "<msgType>Update</msgType>" in r.stdout and "A-1.v1" in r.stdout
        out = tmp_path / "a.xml"
        r1 = await run("cap", "export", "A-1.v1", "-o", str(out), env=env)
        assert r1.exit_code == 0 and b"<msgType>Alert</msgType>" in out.read_bytes()
        missing = await run("cap", "export", "nope", env=env)
        assert missing.exit_code == 1 and "404" in missing.output


async def test_cap_import_advisories_and_promote(zones, shelters, tmp_path):
    from tests.residents.test_cap import EXTERNAL
    app, _, _ = make_app(zones, shelters)
    f = tmp_path / "ext.xml"
    f.write_bytes(EXTERNAL)
    bad = tmp_path / "bad.xml"
    bad.write_bytes(b"<alert/>")
    async with serve_app(app) as base:
        env = {"DOZOR_HUB_URL": base, "DOZOR_TOKEN": TOKEN}
        r = await run("cap", "import", str(f), "--json", env=env)
        assert r.exit_code == 0, r.output
        adv = json.loads(r.stdout)["id"]
        listed = await run("cap", "advisories", env=env)
        assert adv in listed.output and "Загроза балістики" in listed.output
        p = await run("cap", "promote", adv, "--json", env=env)
        assert p.exit_code == 0 and json.loads(p.stdout)["draft"]["signal"] == "air-raid"
        b = await run("cap", "import", str(bad), env=env)
        assert b.exit_code == 1 and "422" in b.output
        missing = await run("cap", "import", str(tmp_path / "nope.xml"), env=env)
        assert missing.exit_code == 1 and "cannot read" in missing.output
