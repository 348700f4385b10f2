"""`dozor gateway check-config` and `dozor hub check-config` find every planted mistake at once, each with its
file, key path, line and a sentence (no raw regexes); unknown keys are refused in every section, device options
included."""

from __future__ import annotations

import json
import re
import shutil

from typer.testing import CliRunner

from dozor.cli import app
from tests.deploy.helpers import ROOT

runner = CliRunner()


def line_of(text: str, needle: str) -> int:
    (n,) = [i for i, line in enumerate(text.splitlines(), start=1) if needle in line]
    return n


def plant(text: str, edits: list[tuple[str, str]]) -> str:
    for old, new in edits:
        assert old in text, old
        text = text.replace(old, new, 1)
    return text


GATEWAY_MISTAKES = [  # (original line, planted line, expected key, words the sentence must contain)
    ("heartbeat_s = 5\n", 'heartbeat_s = "five"\n', "gateway.heartbeat_s", "must be a number"),
    ("keepalive_s = 30\n", "keepalive = 30\n", "mqtt.keepalive", "did you mean 'keepalive_s'"),
    ("full_scale_db = 120.0", "full_scale_dbb = 120.0", "device[5].full_scale_dbb", "did you mean 'full_scale_db'"),
    ("interval_s = 145", "interval_s = -5", "device[6].interval_s", "must be more than 0"),
    ('bus = "rs485-1"\naddress = 2', 'bus = "rs485-9"\naddress = 2', "device[1].bus", "is not defined"),
]


def test_gateway_check_config_finds_all_five_planted_mistakes(tmp_path):
    good = (ROOT / "examples" / "gateway.toml").read_text()
    shutil.copytree(ROOT / "examples" / "gateway-assets", tmp_path / "gateway-assets")
    ok = tmp_path / "good.toml"
    ok.write_text(good)
    assert runner.invoke(app, ["gateway", "check-config", str(ok)]).exit_code == 0
    bad = plant(good, [(old, new) for old, new, _, _ in GATEWAY_MISTAKES])
    path = tmp_path / "gateway.toml"
    path.write_text(bad)
    res = runner.invoke(app, ["gateway", "check-config", str(path), "--json"])
    assert res.exit_code == 2, res.output
    details = json.loads(res.stdout)["details"]
    assert len(details) == 5, json.dumps(details, indent=1)
    got = {d["key"]: d for d in details}
    for _, new, key, words in GATEWAY_MISTAKES:
        assert key in got, (key, details)
        assert got[key]["line"] == line_of(bad, new.splitlines()[0]), got[key]
        assert words in got[key]["message"] and got[key]["file"] == str(path)
        assert not re.search(r"\^|\$|\\d|\[A-Z", got[key]["message"]), "a raw regex in a message"
    text = runner.invoke(app, ["gateway", "check-config", str(path)])
    assert text.exit_code == 2 and all(f"{path}:{d['line']}: {d['key']}:" in text.output.replace("\n  ", "\n")
                                       for d in details)


HUB_MISTAKES = [
    ("api_port = ", "api_prot = ", "hub.api_prot", "did you mean 'api_port'"),
    ("max_retries = 3", 'max_retries = "three"', "hub.max_retries", "must be a whole number"),
    ('kind = "v2"', 'kind = "v3"', "store.kind", "must be one of"),
    ("persistent_session = true", "keepalive_s = 1", "mqtt.keepalive_s", "must be at least 2"),
    ('sender = "', 'sendr = "', "residents.sendr", "did you mean 'sender'"),
]


def test_hub_check_config_finds_all_five_planted_mistakes(tmp_path):
    for f in ("hub.toml", "zones.json", "shelters.geojson"):
        shutil.copy(ROOT / "examples" / f, tmp_path / f)
    good = (tmp_path / "hub.toml").read_text()
    res = runner.invoke(app, ["hub", "check-config", str(tmp_path / "hub.toml"), "--json"])
    assert res.exit_code == 0, res.output
    bad = plant(good, [(old, new) for old, new, _, _ in HUB_MISTAKES])
    (tmp_path / "hub.toml").write_text(bad)
    res = runner.invoke(app, ["hub", "check-config", str(tmp_path / "hub.toml"), "--json"])
    assert res.exit_code == 2, res.output
    details = json.loads(res.stdout)["details"]
    assert len(details) == 5, json.dumps(details, indent=1)
    got = {d["key"]: d for d in details}
    for _, new, key, words in HUB_MISTAKES:
        assert got[key]["line"] == line_of(bad, new), got[key]
        assert words in got[key]["message"], got[key]


def test_hub_check_config_checks_that_shelters_name_real_zones(tmp_path):
    for f in ("hub.toml", "zones.json", "shelters.geojson"):
        shutil.copy(ROOT / "examples" / f, tmp_path / f)
    shelters = json.loads((tmp_path / "shelters.geojson").read_text())
    shelters["features"][0]["properties"]["zone"] = "kyiv-nowhere"
    (tmp_path / "shelters.geojson").write_text(json.dumps(shelters))
    res = runner.invoke(app, ["hub", "check-config", str(tmp_path / "hub.toml"), "--json"])
    assert res.exit_code == 2
    (d,) = json.loads(res.stdout)["details"]
    assert d["key"] == "residents.shelters_file" and "'kyiv-nowhere' is not a known zone" in d["message"]


def test_every_example_passes_check_config():
    for f in sorted((ROOT / "examples").glob("gateway*.toml")):
        res = runner.invoke(app, ["gateway", "check-config", str(f)])
        assert res.exit_code == 0, (f, res.output)
    for f in sorted((ROOT / "examples").glob("hub*.toml")):
        res = runner.invoke(app, ["hub", "check-config", str(f)])
        assert res.exit_code == 0, (f, res.output)


def test_unknown_keys_are_refused_in_every_gateway_section(tmp_path):
    good = (ROOT / "examples" / "gateway.toml").read_text()
    shutil.copytree(ROOT / "examples" / "gateway-assets", tmp_path / "gateway-assets")
    sections = [m.group(0) for m in re.finditer(r"^\[\[?[a-z_.]+\]\]?$", good, re.M)]
    assert len(sections) >= 6
    free_form = ("[trust.hub_keys]", "[device.assets]")  # tables keyed by key id / signal, not by key names
    for header in [h for h in dict.fromkeys(sections) if h not in free_form]:
        bad = good.replace(header + "\n", header + "\nbogus_key = 1\n", 1)
        path = tmp_path / "g.toml"
        path.write_text(bad)
        res = runner.invoke(app, ["gateway", "check-config", str(path), "--json"])
        assert res.exit_code == 2, header
        details = json.loads(res.stdout)["details"]
        assert [d["message"].split(" (")[0].split(";")[0] for d in details] == ["unknown key"], (header, details)
        assert details[0]["line"] == line_of(bad, "bogus_key") , (header, details)


def test_check_config_of_the_lean_cabinet_path_needs_no_numpy():
    import subprocess
    import sys

    code = ("import sys; sys.modules['numpy'] = None; sys.modules['scipy'] = None\n"
            "from gateway.config import load_config\n"
            f"cfg = load_config({str(ROOT / 'examples' / 'gateway.toml')!r})\n"
            "print(len(cfg.device))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
