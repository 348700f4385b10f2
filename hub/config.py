"""Hub config: TOML -> pydantic, with errors a deployer can act on.

    [hub]
    state_dir = "state/hub"         # relative paths are relative to this file
    tenant = ""                     # the city on a shared broker: topics under dozor/v1/<tenant>/ ("" = dozor/v1/);
                                    # a named tenant's default [mqtt] client_id is dozor-hub@<tenant>
    api_host = "127.0.0.1"
    api_port = 8080
    command_ttl_s = 30
    confirm_deadline_s = 3
    max_retries = 3
    all_clear_duration_s = 30
    zones = "zones.json"
    extra_verify_keys = []          # older hub public keys (base64url) still announced during rotation
    finished_in_memory_s = 60       # a finished alert then lives only in the store (still readable)
    alert_retention_days = 365      # finished alerts older than this are deleted (the audit chain keeps its records)
    metrics_token_file = "metrics-token"  # optional: a separate bearer token for Prometheus on /metrics
    max_body_bytes = 1048576        # larger request bodies get 413 before they are read
    login_failures_per_min = 10     # failed logins per client address before 429
    public_requests_per_min = 120   # per client address: resident subscribe and live stream (429 beyond)
    audit_anchor_interval_s = 60    # how often the hub signs and publishes the audit chain head
    trusted_proxies = ["127.0.0.1", "::1"]  # whose X-Forwarded-For names the client (the TLS front, other hubs)
    tls_cert_file = "api.crt"       # optional: serve the API over HTTPS itself (with tls_key_file = "api.key")
    peer_ca_file = "ca.crt"         # optional: the CA other hubs' https advertise_url is verified with

    [mqtt]
    url = "mqtt://127.0.0.1:1883"   # or, for a clustered broker (NATS, EMQX), its nodes instead of url:
                                    # urls = ["mqtt://mq1:1883", "mqtt://mq2:1883", "mqtt://mq3:1883"]
    url_order = "in_order"          # or "random"; a lost or refused node: on to the next (contract/broker.py)
    client_id = "dozor-hub"

    [store]                         # the time-series store for telemetry, fleet and alert points
    kind = "v2"                     # "v1" (InfluxDB 1.x /write), "v2" (InfluxDB 2.x/3.x, VictoriaMetrics), "none"
    url = "http://127.0.0.1:8086"
    database = "dozor"              # v1 database; v2 bucket (``bucket = "..."`` works too)
    org = "dozor"                   # v2 only
    token = ""                      # v2 only (v1: username/password)
    token_env = "INFLUX_TOKEN"      # or: read the token from this environment variable
    spool = "spool.sqlite"          # durable spool; default state_dir/spool.sqlite
    flush_interval_s = 1.0          # how often the spool is written to the store
    commit_delay_s = 0.05           # longest a received message waits for its spool commit and PUBACK
    head_check = "auto"             # after an unclean stop, ask the store what it holds of the spool's oldest lines
                                    # (VictoriaMetrics' export API; "off": write them again); head_check_url: a vmselect

    [database]                      # where hub state lives (hub/repo/settings.py): "sqlite" files in state_dir,
    url = "sqlite"                  # or "postgresql://dozor@db:5432/dozor" with password_file / password_env

    [noise]                         # the violations register (hub/violations/)
    gateway_keys = { gw-a = "<base64url Ed25519 public key>" }   # pinned evidence keys (a list for rotation);
                                    # a pinned gateway's announced keys (GatewayState.evidence_key) are ignored
    trust_announced_keys = true     # otherwise: the evidence key announced in the gateway's birth

    [two_person]                    # the two-person rule (hub/alerts/policy.py; docs/operations.md)
    actual = ["air-raid", "chemical", "radiation"]   # Actual alerts of these signals need a second person
    exercise = []                   # Exercise alerts of these signals need one (default: none)
    confirm_window_s = 120          # a request not confirmed by a supervisor within this expires unsent
    break_glass = true              # one supervisor may send alone with --break-glass --reason (audited)

    [firmware]
    current_version = "1.0.0"       # field nodes below this are listed as out of date (GET /api/v1/nodes?outdated=true);
                                    # default: VERSION in firmware/src/version.py when the hub starts
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from pydantic import ValidationError

from hub.config_sections import (  # re-exported: callers import the sections from here
    FirmwareSettings,
    HubSettings,
    MqttSettings,
    NoiseSettings,
    OidcSettings,
    StoreSettings,
    TwoPersonSettings,
    _Section,
)
from hub.errors import ConfigError
from hub.repo.backend import Backend
from hub.repo.settings import DatabaseSettings
from hub.residents.config import ResidentsConfig
from runtime import credentials

__all__ = ["FirmwareSettings", "HubConfig", "HubSettings", "MqttSettings", "NoiseSettings", "OidcSettings",
           "StoreSettings", "TwoPersonSettings", "inline_secrets", "load_config", "parse_config"]


class HubConfig(_Section):
    hub: HubSettings = HubSettings()
    mqtt: MqttSettings = MqttSettings()
    store: StoreSettings = StoreSettings()
    database: DatabaseSettings = DatabaseSettings()  # where hub state lives (hub/repo): SQLite or PostgreSQL
    firmware: FirmwareSettings = FirmwareSettings()
    noise: NoiseSettings = NoiseSettings()
    two_person: TwoPersonSettings = TwoPersonSettings()
    oidc: OidcSettings | None = None
    # [residents]: notification channels and the resident page (see hub/residents/config.py). Without it the
    # page, its live stream and the CAP feed are still served; no notification channel is configured.
    residents: ResidentsConfig | None = None
    source: Path | None = None  # the file this was loaded from (not a TOML key)

    @property
    def state_dir(self) -> Path:
        return self.hub.state_dir

    def backend(self) -> Backend:
        """The hub state backend ([database]); reads the database password now."""
        return self.database.backend(self.hub.state_dir)

    @property
    def api_url(self) -> str:
        host = self.hub.api_host
        scheme = "https" if self.hub.tls_cert_file is not None else "http"
        return f"{scheme}://{'[' + host + ']' if ':' in host else host}:{self.hub.api_port}"


def _format(exc: ValidationError, source: str) -> str:
    lines = []
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ())]
        where = f"[{loc[0]}] {'.'.join(loc[1:])}" if len(loc) > 1 else ".".join(loc)
        msg = err.get("msg", "invalid")
        if err.get("type") == "extra_forbidden":
            msg = "unknown key (typo?)"
        lines.append(f"  {where}: {msg}")
    return f"{source}: invalid hub config:\n" + "\n".join(lines)


def _resolve_residents(r: ResidentsConfig, base: Path) -> ResidentsConfig:
    def rel(p: Path | None) -> Path | None:
        return p if p is None or p.is_absolute() else base / p

    update: dict = {"shelters_file": rel(r.shelters_file)}
    if r.webpush is not None:
        update["webpush"] = r.webpush.model_copy(update={"vapid_key_file": rel(r.webpush.vapid_key_file),
                                                         "subscriptions_db": rel(r.webpush.subscriptions_db)})
    return r.model_copy(update=update)


def parse_config(data: dict, *, base: Path, source: str = "<config>") -> HubConfig:
    try:
        cfg = HubConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format(exc, source)) from None
    hub = cfg.hub
    resolved = hub.model_copy(update={
        "state_dir": hub.state_dir if hub.state_dir.is_absolute() else (base / hub.state_dir),
        "zones": hub.zones if hub.zones.is_absolute() else (base / hub.zones),
        **{k: None if v is None else (v if v.is_absolute() else base / v) for k, v in (
            ("metrics_token_file", hub.metrics_token_file), ("tls_cert_file", hub.tls_cert_file),
            ("tls_key_file", hub.tls_key_file), ("peer_ca_file", hub.peer_ca_file))},
    })
    if (hub.tls_cert_file is None) != (hub.tls_key_file is None):
        raise ConfigError(f"{source}: [hub] tls_cert_file and tls_key_file go together (HTTPS needs both)")
    if cfg.residents is not None:
        cfg = cfg.model_copy(update={"residents": _resolve_residents(cfg.residents, base)})
    if cfg.oidc is not None:
        o = cfg.oidc
        if (o.jwks_file is None) == (o.jwks_url is None):
            raise ConfigError(f"{source}: [oidc] needs exactly one of jwks_file or jwks_url")
        if o.jwks_file is not None and not o.jwks_file.is_absolute():
            cfg = cfg.model_copy(update={"oidc": o.model_copy(update={"jwks_file": base / o.jwks_file})})
    if cfg.mqtt.reconnect_min_s > cfg.mqtt.reconnect_max_s:
        raise ConfigError(f"{source}: [mqtt] reconnect_min_s must not exceed reconnect_max_s")
    db = cfg.database
    if db.password_file is not None and not db.password_file.is_absolute():
        cfg = cfg.model_copy(update={"database": db.model_copy(update={"password_file": base / db.password_file})})
    store = cfg.store
    if store.kind != "none" and not store.url:
        raise ConfigError(f"{source}: [store] url is required for kind = {store.kind!r} "
                          '(e.g. url = "http://127.0.0.1:8086"), or set kind = "none"')
    spool = store.spool or Path("spool.sqlite")
    store = store.model_copy(update={"spool": spool if spool.is_absolute() else (
        (base / spool) if store.spool is not None else (resolved.state_dir / spool))})
    m = cfg.mqtt
    mqtt = m.model_copy(update={k: credentials.resolve(v if v is None or v.is_absolute() else base / v) for k, v in
                                (("ca_file", m.ca_file), ("cert_file", m.cert_file), ("key_file", m.key_file),
                                 ("ingest_cert_file", m.ingest_cert_file), ("ingest_key_file", m.ingest_key_file))})
    if hub.tenant and "client_id" not in (data.get("mqtt") or {}):  # two cities' hubs must not share a session
        mqtt = mqtt.model_copy(update={"client_id": f"{mqtt.client_id}@{hub.tenant}"})
    return cfg.model_copy(update={"hub": resolved, "store": store, "mqtt": mqtt})


def inline_secrets(cfg: HubConfig) -> list[str]:
    """Key paths of secrets written inline in the config file (they make the file itself a secret)."""
    found = [k for k, v in (("store.token", cfg.store.token), ("store.password", cfg.store.password),
                            ("mqtt.password", cfg.mqtt.password)) if v]
    r = cfg.residents
    if r is not None:
        if r.ntfy is not None and r.ntfy.token:
            found.append("residents.ntfy.token")
        if r.telegram is not None:
            found.append("residents.telegram.bot_token")
        found += [f"residents.webhooks[{i}].secret" for i, _ in enumerate(r.webhooks)]
    return found


def load_config(path: str | Path) -> HubConfig:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read hub config {path}: {exc.strerror or exc}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    if "source" in data:
        raise ConfigError(f"{path}: unknown top-level key 'source'")
    cfg = parse_config(data, base=path.resolve().parent, source=str(path))
    return cfg.model_copy(update={"source": path})
