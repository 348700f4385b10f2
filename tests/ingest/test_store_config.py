"""The [store] section: defaults, paths, readable errors; the example configs load."""

from __future__ import annotations

from pathlib import Path

import pytest

from hub.config import load_config, parse_config
from hub.errors import ConfigError
from tests.tokens import admin_token

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_defaults_and_paths(tmp_path):
    cfg = parse_config({"hub": {"state_dir": "st"}}, base=tmp_path)
    assert cfg.store.kind == "none" and cfg.store.spool == tmp_path / "st" / "spool.sqlite"
    cfg = parse_config({"hub": {"state_dir": "st"}, "store": {"kind": "v1", "url": "http://127.0.0.1:8086/",
                                                                "spool": "spool/x.sqlite"}}, base=tmp_path)
    assert cfg.store.url == "http://127.0.0.1:8086" and cfg.store.spool == tmp_path / "spool" / "x.sqlite"
    assert parse_config({"store": {"kind": "v2", "url": "http://h:1", "bucket": "b"}}, base=tmp_path).store.database == "b"


@pytest.mark.parametrize(("store", "expect"), [
    ({"kind": "influx"}, "[store] kind: Input should be 'v1', 'v2' or 'none'"),
    ({"kind": "v2"}, "[store] url is required for kind = 'v2'"),
    ({"kind": "v1", "url": "127.0.0.1:8086"}, "[store] url: Value error, expected http://host:port"),
    ({"kind": "v1", "url": "http://h:99999"}, "bad port"),
    ({"kind": "v1", "url": "http://h:1", "flush_interval_s": 0}, "[store] flush_interval_s: Input should be greater"),
    ({"kind": "v1", "url": "http://h:1", "buckets": "x"}, "[store] buckets: unknown key (typo?)"),
])
def test_readable_errors(tmp_path, store, expect):
    with pytest.raises(ConfigError) as err:
        parse_config({"store": store}, base=tmp_path, source="hub.toml")
    assert expect in str(err.value) and str(err.value).startswith("hub.toml")


def test_token_from_environment_when_the_hub_starts(tmp_path, monkeypatch):
    cfg = parse_config({"store": {"kind": "v2", "url": "http://h:1", "token_env": "DOZOR_TEST_TOKEN"}}, base=tmp_path)
    monkeypatch.delenv("DOZOR_TEST_TOKEN", raising=False)
    with pytest.raises(ConfigError, match="token_env = 'DOZOR_TEST_TOKEN' but that environment variable is not set"):
        cfg.store.resolved_token()
    monkeypatch.setenv("DOZOR_TEST_TOKEN", "s3cret")
    assert cfg.store.resolved_token() == "s3cret"


@pytest.mark.parametrize("name", ["hub.toml"])
def test_example_configs_load(name):
    cfg = load_config(EXAMPLES / name)
    assert cfg.store.kind == ("v2" if name == "hub.toml" else "none")


def test_hub_refuses_to_start_without_its_store_token(tmp_path, monkeypatch):
    from hub.app import Hub

    (tmp_path / "zones.json").write_text("[]")
    monkeypatch.delenv("DOZOR_TEST_TOKEN", raising=False)
    cfg = parse_config({"hub": {"state_dir": "st"}, "store": {"kind": "v2", "url": "http://127.0.0.1:9",
                                                                "token_env": "DOZOR_TEST_TOKEN"}}, base=tmp_path)
    admin_token(cfg.hub.state_dir)
    with pytest.raises(ConfigError, match="DOZOR_TEST_TOKEN"):
        Hub(cfg)
