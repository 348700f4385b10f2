"""The sections of the hub config file ([hub], [mqtt], [store], [noise], [two_person], [oidc], [firmware]).

Their keys and defaults are documented in hub/config.py, which puts them together and resolves paths.
"""


from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator

from contract.broker import BrokerAddress
from contract.command import MAX_DURATION_S, MAX_LIFETIME_S, public_key_from_b64
from contract.models import Id, Signal
from contract.topics import Topics, check_tenant
from hub.errors import ConfigError


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
    # HTTPS without a front: the API's certificate chain and key (PEM, the key private to the hub's user). Then
    # api_url is https://. peer_ca_file: the CA a follower verifies the leader's https advertise_url with, when
    # forwarding an operator's request and token (default: the system's CAs).
    # whose X-Forwarded-For the API believes (addresses or networks): the TLS front (Caddy) and the other hubs.
    # Per-client limits (login failures, public requests) then count the real client, not the proxy.
    trusted_proxies: tuple[str, ...] = ("127.0.0.1", "::1")
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    peer_ca_file: Path | None = None
    audit_retention_days: float = Field(default=3650.0, gt=0)  # older records move to state_dir/audit-archive/
    memory_trim_s: float = Field(default=60.0, ge=0, le=3600)  # freed heap back to the OS this often, between alerts
    tenant: str = ""  # a named tenant's topics live under dozor/v1/<tenant>/ (contract/topics.py)
    # PostgreSQL: a standby hub takes over 0.75-1.25 x this long after the leader died (renewed every quarter of
    # it from a thread; the leader trusts it for 0.8 x after each renewal). Shorter: a faster takeover, but a
    # leader that cannot renew for 3/4 of it (database, CPU) loses it and exits (docs/operations.md).
    leader_lease_s: float = Field(default=3.0, ge=1, le=300)

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies(cls, proxies: tuple[str, ...]) -> tuple[str, ...]:
        for p in proxies:
            try:
                ipaddress.ip_network(p, strict=False)
            except ValueError:
                raise ValueError(f"trusted_proxies: {p!r} is not an IP address or network (e.g. "
                                 '"10.0.0.0/24")') from None
        return proxies

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
    # Telemetry receipts (hub.ingest.receipts): after each spool commit, tell the gateways which batches and events
    # are durable, so they re-send what a broker acknowledged and then lost. Off: gateways trust the PUBACK.
    receipts: bool = True
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
    # after an unclean stop, ask the store which of the spool's oldest lines it already holds (hub/ingest/recovery.py)
    head_check: Literal["auto", "off"] = "auto"
    head_check_url: str = ""  # default: url (set a vmselect's for a VictoriaMetrics cluster)

    @field_validator("url", "head_check_url")
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
