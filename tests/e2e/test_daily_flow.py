"""The daily flow as the docs show it: each `<!-- daily-flow -->` shell block of README.md and docs/operations.md
runs in bash, unchanged except for the hub's address, against a `dozor hub run` process, a real Mosquitto and
gateways driving siren controllers on ptys. The docs' `[two_person]` example is the default config."""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
import tomllib
from pathlib import Path

import pytest

from hub.config import TwoPersonSettings
from tests.e2e.test_two_person import cli, running

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
BIN = str(Path(sys.executable).parent)  # this checkout's `dozor`, first on PATH as after `pip install`


def blocks(doc: str, lang: str = "sh") -> list[str]:
    text = (ROOT / doc).read_text()
    return re.findall(r"<!-- daily-flow[^>]*-->\n```" + lang + r"\n(.*?)```", text, re.S)


async def bash(script: str, env: dict[str, str], stdin: bytes) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec("bash", "-c", script, stdin=asyncio.subprocess.PIPE,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
                                                env={**os.environ, "COLUMNS": "200", **env,
                                                     "PATH": f"{BIN}:{os.environ.get('PATH', '')}"})
    out, err = await proc.communicate(stdin)
    return proc.returncode, out.decode(), err.decode()


def test_every_doc_shows_the_flow_and_the_toml_example_is_the_default():
    assert len(blocks("README.md")) == 1 and len(blocks("docs/operations.md")) == 1
    text = (ROOT / "docs/operations.md").read_text()
    toml = re.search(r"```toml\n(\[two_person\].*?)```", text, re.S).group(1)
    assert TwoPersonSettings(**tomllib.loads(toml)["two_person"]) == TwoPersonSettings()


@pytest.mark.parametrize("doc", ["README.md", "docs/operations.md"])
async def test_the_daily_flow_block_runs_as_shown(mosquitto, tmp_path, doc):
    (script,) = blocks(doc)
    async with running(mosquitto, tmp_path) as s:
        env = {"OLENA_TOKEN": s.tokens["olena"], "MARTA_TOKEN": s.tokens["marta"], "DOZOR_HUB_URL": s.url}
        code, out, err = await bash("set -u\n" + script.replace("http://127.0.0.1:8080", s.url), env, b"y\n")
        assert code == 0 and "error:" not in err, err[-3000:]
        code, listing, _ = await cli("alert", "list", "--json", env=s.env("viewer"))
        alerts = {a["id"]: a for a in json.loads(listing)}
        real = next(a for a in alerts.values() if a["mode"] == "actual" and a["confirmed_by"])
        assert real["requested_by"]["name"] == "olena" and real["confirmed_by"]["name"] == "marta"
        assert real["status"] == "stopped" and real["id"] in out  # `alert pending` listed it before the confirm
        chain = await s.chain(real["id"])
        assert [(r["action"], r["actor"]["name"]) for r in chain][:2] == [("alert.request", "olena"),
                                                                          ("alert.confirm", "marta")]
        assert "alert.request" in out and "olena" in out and "marta" in out  # `dozor audit log` printed them
        if doc == "README.md":
            assert "all-clear: " in out  # progress of the all-clear names its phase
            assert sorted(a["status"] for a in alerts.values()) == ["cancelled", "stopped"]
        else:
            glass = [a for a in alerts.values() if a["break_glass"]]
            assert len(glass) == 1 and glass[0]["status"] == "active" and glass[0]["requested_by"]["name"] == "marta"
