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

import os
import tomllib
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError, field_validator

from contract.broker import BrokerAddress
from contract.command import MAX_DURATION_S, MAX_LIFETIME_S, public_key_from_b64
from contract.models import Id, Signal
from contract.topics import Topics, check_tenant
from hub.errors import ConfigError
from hub.repo.backend import Backend
from hub.repo.settings import DatabaseSettings
from hub.residents.config import ResidentsConfig
from runtime import credentials


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class HubSettings(_Section):
    state_dir: Path = Path("state/hub")
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8080, ge=0, le=65535)
    command_ttl_s: int = Field(default=30, ge=5, le=MAX_LIFETIME_S)
    confirm_deadline_s: float = Field(default=3.0, gt=0, le=120)
    max_retries: int = Field(default=3, ge=0, le=20)
    all_clear_duration_s: int = Field(default=30, ge=1, le=MAX_DURATION_S)
    zones: Path = Path("zones.json")
    extra_verify_keys: tuple[str, ...] = ()
    flush_interval_s: float = Field(default=0.2, gt=0, le=10)
    finished_in_memory_s: float = Field(default=60.0, ge=0, le=86400)  # then a finished alert lives only in the store
    alert_retention_days: float = Field(default=365.0, gt=0)  # finished alerts older than this are deleted
    metrics_token_file: Path | None = None
    max_body_bytes: int = Field(default=1_048_576, ge=1024, le=256 * 1024 * 1024)
    login_failures_per_min: int = Field(default=10, ge=1, le=100_000)
    public_requests_per_min: int = Field(default=120, ge=1, le=1_000_000)
    audit_anchor_interval_s: float = Field(default=60.0, gt=0, le=86_400)
    # PostgreSQL, several instances (hub.ha): the URL other instances forward alert requests to when this one leads
    # (default: api_url, right when all run on one host), and how often a follower re-reads the shared state
    advertise_url: str | None = Field(default=None, pattern=r"^https?://[^\s/]+$")
    follower_refresh_s: float = Field(default=0.5, gt=0, le=60)
    audit_retention_days: float = Field(default=3650.0, gt=0)  # older records move to state_dir/audit-archive/
    memory_trim_s: float = Field(default=60.0, ge=0, le=3600)  # freed heap back to the OS this often, between alerts
    tenant: str = ""  # a named tenant's topics live under dozor/v1/<tenant>/ (contract/topics.py)
    # PostgreSQL: a standby hub takes over 0.75-1.25 x this long after the leader died (renewed every quarter of
    # it from a thread; the leader trusts it for 0.8 x after each renewal). Shorter: a faster takeover, but a
    # leader that cannot renew for 3/4 of it (database, CPU) loses it and exits (docs/operations.md).
    leader_lease_s: float = Field(default=3.0, ge=1, le=300)

    @field_validator("tenant")
    @classmethod
    def _tenant(cls, tenant: str) -> str:
        return check_tenant(tenant)

    @property
    def topics(self) -> Topics:
        """This hub's tenant's topics (``Topics()``: the default tenant, ``dozor/v1/...``)."""
        return Topics(self.tenant)

    @field_validator("extra_verify_keys")
    @classmethod
    def _keys(cls, keys: tuple[str, ...]) -> tuple[str, ...]:
        for key in keys:
            try:
                public_key_from_b64(key)
            except ValueError as exc:
                raise ValueError(f"extra_verify_keys: {key[:12]}...: {exc}") from None
        return keys


class MqttSettings(BrokerAddress, _Section):
    client_id: Annotated[str, Field(min_length=1, max_length=64)] = "dozor-hub"
    username: str | None = None
    password: str | None = None
    keepalive_s: int = Field(default=15, ge=2, le=600)
    persistent_session: bool = True  # acks sent while the hub restarts wait for it at the broker
    reconnect_min_s: float = Field(default=0.2, gt=0)
    reconnect_max_s: float = Field(default=2.0, gt=0)  # the longest wait after the broker returns
    connect_timeout_s: float = Field(default=5.0, gt=0, le=120)
    publish_timeout_s: float = Field(default=10.0, gt=0, le=300)
    stuck_puback_s: float = Field(default=15.0, ge=0, le=600)  # a PUBACK this late: the session is dead (0: off)
    healthy_s: float = Field(default=10.0, gt=0, le=3600)  # up this long: the reconnect backoff starts over
    # With several broker nodes (urls): the retained hub and zone states go out again healthy_s after a connect,
    # then this often (0: never), since a cluster may drop a retained write during a leader election.
    retained_refresh_s: float = Field(default=60.0, ge=0, le=86_400)
    # Several hubs on PostgreSQL: an MQTT shared subscription group ($share/<group>/..., Mosquitto and EMQX) for
    # telemetry and events, so every instance ingests its share. Unset (and on brokers without $share, e.g. the
    # NATS cluster): only the leader ingests.
    share_group: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_-]{1,32}$")
    # The ingest connection's own certificate, for brokers that bind the client id to the certificate's
    # identity (`dozor provision`: control = CN dozor-hub, ingest = CN dozor-hub-ingest). Default: cert_file.
    ingest_cert_file: Path | None = None
    ingest_key_file: Path | None = None

    def for_ingest(self) -> MqttSettings:
        """These settings with the ingest identity's certificate in place of the control one (if given)."""
        if self.ingest_cert_file is None:
            return self
        return self.model_copy(update={"cert_file": self.ingest_cert_file,
                                       "key_file": self.ingest_key_file or self.key_file})


class StoreSettings(_Section):
    """Where telemetry, AQI, fleet and alert points go. ``kind = "none"`` keeps only the latest-state cache."""

    kind: Literal["v1", "v2", "none"] = "none"
    url: str = ""
    database: Annotated[str, Field(min_length=1, max_length=200,
                                   validation_alias=AliasChoices("database", "bucket"))] = "dozor"  # v1 db, v2 bucket
    org: str = "dozor"
    token: str = ""
    token_env: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")  # read the token from here
    username: str = ""
    password: str = ""
    spool: Path | None = None  # default: state_dir/spool.sqlite
    flush_interval_s: float = Field(default=1.0, gt=0, le=60)
    commit_delay_s: float = Field(default=0.05, gt=0, le=10)  # longest a message waits for its commit and PUBACK
    timeout_s: float = Field(default=10.0, gt=0, le=120)
    backoff_cap_s: float = Field(default=30.0, gt=0, le=3600)

    @field_validator("url")
    @classmethod
    def _url(cls, url: str) -> str:
        if url == "":
            return url
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"expected http://host:port of the time-series store, got {url!r}")
        try:
            parts.port  # noqa: B018 - raises on a bad port
        except ValueError:
            raise ValueError(f"bad port in {url!r}") from None
        return url.rstrip("/")

    def resolved_token(self) -> str:
        """``token``, else the environment variable ``token_env`` (read when the hub starts, so configs load
        anywhere; a missing variable is a ConfigError then)."""
        if self.token or not self.token_env:
            return self.token
        token = os.environ.get(self.token_env, "")
        if not token:
            raise ConfigError(f"[store] token_env = {self.token_env!r} but that environment variable is not set "
                              '(export it, put the token in [store] token, or set kind = "none")')
        return token


class NoiseSettings(_Section):
    """[noise]: evidence keys of gateways (the violations register verifies pass-by records with them)."""

    gateway_keys: dict[Id, str | tuple[str, ...]] = {}
    trust_announced_keys: bool = True

    @field_validator("gateway_keys")
    @classmethod
    def _keys(cls, keys: dict[str, str | tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
        out: dict[str, tuple[str, ...]] = {}
        for gw, value in keys.items():
            out[gw] = (value,) if isinstance(value, str) else tuple(value)
            for key in out[gw]:
                try:
                    public_key_from_b64(key)
                except ValueError as exc:
                    raise ValueError(f"gateway_keys.{gw}: {key[:12]}...: {exc}") from None
        return out


class TwoPersonSettings(_Section):
    """[two_person]: which alerts wait for a second person (a supervisor who is not the requester)."""

    # default: an Actual of every signal except the tests needs a second person; an Exercise needs one
    actual: tuple[Signal, ...] = (Signal.AIR_RAID, Signal.CHEMICAL, Signal.RADIATION)
    exercise: tuple[Signal, ...] = ()
    confirm_window_s: float = Field(default=120.0, gt=0, le=3600)
    break_glass: bool = True

    @field_validator("actual", "exercise")
    @classmethod
    def _no_all_clear(cls, signals: tuple[Signal, ...]) -> tuple[Signal, ...]:
        if Signal.ALL_CLEAR in signals:
            raise ValueError("all-clear is an update of an existing alert, not a signal an alert starts with")
        return tuple(dict.fromkeys(signals))


class OidcSettings(_Section):
    """[oidc]: accept bearer JWTs from the city's identity provider (Keycloak, Active Directory FS, ...).

    The role comes from ``role_claim`` (a dotted path, e.g. ``realm_access.roles``; a string or a list) mapped
    through ``roles`` (claim value -> dozor role); with several, the most powerful one. ``jwks_file`` (a JWKS
    document on disk) or ``jwks_url`` (fetched and cached by PyJWT's PyJWKClient) hold the signing keys."""

    issuer: str = Field(min_length=1)
    audience: str = Field(min_length=1)
    jwks_file: Path | None = None
    jwks_url: str | None = Field(default=None, pattern=r"^https?://")
    role_claim: str = "roles"
    roles: dict[str, str] = Field(min_length=1)
    name_claim: str = "preferred_username"
    algorithms: tuple[str, ...] = ("RS256", "ES256", "EdDSA")
    leeway_s: float = Field(default=30.0, ge=0, le=300)
    jwks_cache_s: int = Field(default=300, ge=1, le=86_400)

    @field_validator("roles")
    @classmethod
    def _roles(cls, roles: dict[str, str]) -> dict[str, str]:
        valid = ("viewer", "operator", "supervisor", "noise-reviewer", "technician", "admin")
        for claim, role in roles.items():
            if role not in valid:
                raise ValueError(f"roles.{claim}: {role!r} is not a role ({', '.join(valid)})")
        return roles

    @field_validator("algorithms")
    @classmethod
    def _algorithms(cls, algs: tuple[str, ...]) -> tuple[str, ...]:
        if not algs or any(a.lower() == "none" or a.startswith("HS") for a in algs):
            raise ValueError("use asymmetric algorithms only (RS256, ES256, EdDSA, ...): never none or HS*")
        return algs


class FirmwareSettings(_Section):
    current_version: str | None = Field(default=None, pattern=r"^\d{1,3}\.\d{1,3}(\.\d{1,3})?$")


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
        return f"http://{'[' + host + ']' if ':' in host else host}:{self.hub.api_port}"


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
        "metrics_token_file": None if hub.metrics_token_file is None else (
            hub.metrics_token_file if hub.metrics_token_file.is_absolute() else base / hub.metrics_token_file),
    })
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
