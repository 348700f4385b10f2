"""Each service refuses to start when one of its key files is readable by group or others, and says how to fix it."""

from __future__ import annotations

import shutil

import pytest

from simulators.brokers import free_port
from tests.deploy.helpers import city_dir, dozor


@pytest.fixture
def city(tmp_path):
    root = city_dir()
    dozor("provision", "init", str(root), "--broker-host", "127.0.0.1", "--port", str(free_port()),
          "--hub-state-dir", str(tmp_path / "hub-state"), "--store-url", "", "--api-port", str(free_port()))
    dozor("provision", "gateway", "gw-a", "--zone", "z", str(root), "--state-dir", str(tmp_path / "gw-a"))
    yield root
    shutil.rmtree(root.parent, ignore_errors=True)


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604])
def test_the_gateway_refuses_a_readable_key(city, mode):
    key = city / "gateways/gw-a/client.key"
    key.chmod(mode)
    out = dozor("gateway", "run", "--config", str(city / "gateways/gw-a/gateway.toml"), check=False)
    assert out.returncode == 1
    assert "readable by group or others" in out.stderr and f"chmod 600 {key}" in out.stderr.replace("\n", "")


@pytest.mark.parametrize("name", ["client.key", "ingest.key"])
def test_the_hub_refuses_a_readable_key(city, name):
    (city / "hub" / name).chmod(0o640)
    out = dozor("hub", "run", "--config", str(city / "hub/hub.toml"), check=False)
    assert out.returncode != 0
    assert "readable by group or others" in (out.stderr + out.stdout).replace("\n", "")


def test_the_hub_refuses_a_readable_signing_key(city, tmp_path):
    (tmp_path / "hub-state" / "hub-signing-key").chmod(0o644)
    out = dozor("hub", "run", "--config", str(city / "hub/hub.toml"), check=False)
    assert out.returncode != 0 and "hub signing key" in out.stderr + out.stdout
