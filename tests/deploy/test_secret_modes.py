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


def test_the_hub_refuses_a_readable_metrics_token(tmp_path):
    """`dozor hub init` writes metrics-token 0600; loosened, the hub will not serve it as a credential."""
    deploy = tmp_path / "city"
    dozor("hub", "init", str(deploy), "--broker", f"mqtt://127.0.0.1:{free_port()}",
          "--listen", f"127.0.0.1:{free_port()}")
    token = deploy / "metrics-token"
    token.chmod(0o644)
    out = dozor("hub", "run", "--config", str(deploy / "hub.toml"), check=False)
    assert out.returncode != 0
    assert "metrics_token_file" in out.stderr + out.stdout and "readable by group or others" in out.stderr + out.stdout
    checked = dozor("hub", "check-config", str(deploy / "hub.toml"), check=False)
    assert checked.returncode != 0 and "hub.metrics_token_file" in checked.stdout + checked.stderr


def test_check_config_flags_inline_secrets_in_a_readable_config(tmp_path):
    deploy = tmp_path / "city"
    dozor("hub", "init", str(deploy), "--broker", f"mqtt://127.0.0.1:{free_port()}",
          "--listen", f"127.0.0.1:{free_port()}")
    config = deploy / "hub.toml"
    config.write_text(config.read_text() + '\n[residents]\npublic_url = "https://alerts.example.city"\n'
                      '[[residents.webhooks]]\nurl = "http://127.0.0.1:9/hook"\n'
                      'secret = "0123456789abcdef-not-for-anyone"\n')
    config.chmod(0o644)
    out = dozor("hub", "check-config", str(config), check=False)
    text = (out.stdout + out.stderr).replace("\n", " ")
    assert out.returncode != 0 and "residents.webhooks[0].secret" in text and "chmod 600" in text
    assert "0123456789abcdef-not-for-anyone" not in text  # the finding names the key, never the secret
    config.chmod(0o600)
    assert dozor("hub", "check-config", str(config), check=False).returncode == 0
