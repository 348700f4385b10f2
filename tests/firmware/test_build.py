"""`dozor firmware build`: mpy-cross output with a sha256 manifest, reproducible."""

from __future__ import annotations

import hashlib
import json

import pytest
from typer.testing import CliRunner

from dozor.cli import app
from firmware.tools.build import build, load
from firmware.tools.errors import FirmwareError


def test_build_is_reproducible_and_manifest_matches(tmp_path):
    a = build("noise", tmp_path / "a")
    b = build("noise", tmp_path / "b")
    assert a.manifest == b.manifest
    names = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert names == sorted([*a.files, "manifest.json"])
    for name, digest in a.files.items():
        data = (tmp_path / "a" / name).read_bytes()
        assert hashlib.sha256(data).hexdigest() == digest
        assert data == (tmp_path / "b" / name).read_bytes()
        if name.endswith(".mpy"):
            assert data[:2] == b"M\x06"  # mpy v6 (MicroPython 1.2x)
            assert b"/work" not in data and b"/tmp" not in data  # no host paths inside
    assert "noise_node.mpy" in a.files and "air_node.mpy" not in a.files
    assert a.files.keys() >= {"boot.py", "main.py"}  # kept as source: MicroPython runs them by name


def test_air_build_and_load_detects_damage(tmp_path):
    b = build("air", tmp_path / "air")
    assert {"air_node.mpy", "sds011.mpy", "bme280.mpy"} <= b.files.keys()
    assert load(tmp_path / "air").manifest == b.manifest
    (tmp_path / "air" / "sds011.mpy").write_bytes(b"tampered")
    with pytest.raises(FirmwareError, match="sds011.mpy does not match the manifest"):
        load(tmp_path / "air")


def test_cli_build_json_and_unknown_node(tmp_path):
    r = CliRunner().invoke(app, ["firmware", "build", "--node", "noise", "--out", str(tmp_path / "n"), "--json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.output)
    assert doc["manifest"]["node"] == "noise" and doc["manifest"]["version"] == "1.0.0"
    r = CliRunner().invoke(app, ["firmware", "build", "--node", "siren", "--out", str(tmp_path / "s")])
    assert r.exit_code == 1
    assert "unknown node kind 'siren': use --node noise or --node air" in r.output
