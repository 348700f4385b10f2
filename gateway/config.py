"""Gateway config: a TOML file -> a validated pydantic model, with errors a technician understands.

    [gateway]   id, zone?, state_dir, heartbeat_s = 5, tenant = "" (the city on a shared broker: topics under
                dozor/v1/<tenant>/; "" = the default tenant, dozor/v1/)
    [mqtt]      url = "mqtt://host:port", username?, password?, keepalive_s, reconnect_min_s, reconnect_max_s,
                connect_timeout_s, publish_timeout_s, stuck_puback_s, healthy_s
                (a clustered broker: urls = ["mqtt://mq1:1883", ...] instead of url, url_order = "in_order" |
                "random"; contract/broker.py)
    [trust]     max_activation_s = 900;  [trust.hub_keys] <kid> = "<base64url raw Ed25519 public key>"
    [[bus]]     name, port, baudrate, kind = "modbus" | "uart", timeout_s
    [[device]]  id, kind = "siren", bus, address
    [[device]]  id, kind = "speaker", player = ["aplay", "-q", "{file}"],
                assets = { "air-raid" = { file, sha256 }, ... }        (keyed by signal, pinned by sha256)
    [[device]]  id, kind = "sds011" | "pms5003" | "bme280" | "noise_node", bus, ... (sensor options)
    [[device]]  id, kind = "microphone", source = "sounddevice" | "wav" | <input device name>, file?, ...
                (options: gateway/devices/microphone.py)

Relative paths (state_dir, asset files, a microphone's WAV file) are relative to the config file's folder.
"""

from __future__ import annotations

import hashlib
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from contract import command as cc
from contract import topics
from contract.broker import BrokerAddress
from contract.models import DeviceInfo, DeviceKind, Id, Signal
from gateway.devices.kinds import KINDS as KIND_TABLE
from gateway.errors import ConfigError
from runtime import credentials
from runtime.configcheck import Problem, line_index, locate, toml_syntax_problem, vocabulary


class _M(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GatewaySection(_M):
    id: Id
    zone: Id | None = None
    state_dir: Path
    heartbeat_s: float = Field(default=5.0, gt=0, le=3600)
    durable_replay: bool = False  # also fsync every seen jti; unclean restarts are covered either way (replay.py)
    tenant: str = ""  # a named tenant's topics live under dozor/v1/<tenant>/ (contract/topics.py)

    @field_validator("tenant")
    @classmethod
    def _tenant(cls, tenant: str) -> str:
        return topics.check_tenant(tenant)

    @property
    def topics(self) -> topics.Topics:
        return topics.Topics(self.tenant)


class MqttSection(BrokerAddress, _M):
    username: str | None = None
    password: str | None = None
    keepalive_s: int = Field(default=30, ge=5, le=3600)
    reconnect_min_s: float = Field(default=0.2, gt=0, le=60)
    # The cap bounds the wait after the broker returns: 1.5 s (jittered down to 0.75 s) -> back within ~2 s.
    reconnect_max_s: float = Field(default=1.5, gt=0, le=3600)
    connect_timeout_s: float = Field(default=5.0, gt=0, le=120)
    publish_timeout_s: float = Field(default=5.0, gt=0, le=300)  # one publish; a timeout forces a reconnect
    stuck_puback_s: float = Field(default=10.0, ge=0, le=600)  # any PUBACK this late: the link is dead (0: off)
    healthy_s: float = Field(default=10.0, gt=0, le=3600)  # up this long: the reconnect backoff starts over

    @model_validator(mode="after")
    def _backoff(self) -> MqttSection:
        if self.reconnect_max_s < self.reconnect_min_s:
            raise ValueError("reconnect_max_s must be >= reconnect_min_s")
        return self


class TrustSection(_M):
    hub_keys: dict[str, str] = Field(min_length=1)
    max_activation_s: int = Field(default=900, ge=1, le=cc.MAX_DURATION_S)

    @field_validator("hub_keys")
    @classmethod
    def _keys(cls, v: dict[str, str]) -> dict[str, str]:
        for kid, text in v.items():
            try:
                key = cc.public_key_from_b64(text)
            except ValueError as exc:
                raise ValueError(f"key {kid!r}: {exc}") from None
            if cc.key_id(key) != kid:
                raise ValueError(f"key id {kid!r} does not match its key (the key's id is {cc.key_id(key)!r})")
        return v

    def public_keys(self) -> dict[str, Ed25519PublicKey]:
        return {kid: cc.public_key_from_b64(text) for kid, text in self.hub_keys.items()}


class BusConfig(_M):
    name: Id
    port: str = Field(min_length=1)
    baudrate: int = Field(default=19200, ge=300, le=4_000_000)
    kind: Literal["modbus", "uart"] = "modbus"
    timeout_s: float = Field(default=0.5, gt=0, le=10)
    reopen_s: float = Field(default=1.0, gt=0, le=300)


class Asset(_M):
    file: Path
    sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


class SirenOptions(_M):
    """A siren's own keys (besides id, kind, bus): the device-kind table validates entries with this."""

    address: int = Field(ge=1, le=247)
    spinup_timeout_s: float = Field(default=10.0, gt=0, le=120)


class SirenDevice(SirenOptions):
    id: Id
    kind: Literal["siren"]
    bus: Id


class SpeakerOptions(_M):
    """A loudspeaker's own keys (besides id, kind)."""

    player: list[str] = Field(default_factory=lambda: ["aplay", "-q", "{file}"], min_length=1)
    assets: dict[Signal, Asset] = Field(default_factory=dict)

    @field_validator("player")
    @classmethod
    def _player(cls, v: list[str]) -> list[str]:
        if not any("{file}" in arg for arg in v):
            raise ValueError('the player command must contain "{file}" where the audio file goes')
        return v


class SpeakerDevice(SpeakerOptions):
    id: Id
    kind: Literal["speaker"]


class SensorDevice(BaseModel):
    """Sensor devices belong to their own drivers; their options (checked against the kind's ``Options`` in the
    device-kind table when the config is parsed) are passed through to them."""

    model_config = ConfigDict(extra="allow", frozen=True)
    id: Id
    kind: Literal["sds011", "pms5003", "bme280", "noise_node", "microphone"]
    bus: Id | None = None


KINDS = tuple(KIND_TABLE)
DeviceConfig = Annotated[SirenDevice | SpeakerDevice | SensorDevice, Field(discriminator="kind")]


class TelemetrySection(_M):
    """[telemetry]: the outbox bound and how its backlog drains after an outage."""

    outbox_max_mb: float = Field(default=64.0, gt=0, le=100_000)
    flush_s: float = Field(default=1.0, gt=0, le=3600)
    # group commit's coalescing window (ms): a tenth of the fastest 4 Hz poll at most, so readings merge into fewer
    # commits while each is still on disk long before its driver polls again (a waiting driver ends it at once)
    coalesce_ms: float = Field(default=15.0, ge=0, le=25)
    drain_rate: float = Field(default=2000.0, gt=0, le=1_000_000)  # backlog items per second after a reconnect
    drain_burst: float = Field(default=4000.0, gt=0, le=1_000_000)
    health_interval_s: float = Field(default=60.0, gt=0, le=86_400)
    wire_version: Literal[1, 2] = 2  # telemetry batches: 2 compact (hub >= the compact format), 1 per reading
    # A PUBACKed batch or event without the hub's receipt (gateway.receipts) after this long is sent again (then
    # after 2x, 4x, then every 8x; docs/protocol.md "Receipts"). 0: trust the broker's PUBACK alone.
    receipt_timeout_s: float = Field(default=10.0, ge=0, le=3600)


class GatewayConfig(_M):
    gateway: GatewaySection
    mqtt: MqttSection = MqttSection()
    trust: TrustSection
    telemetry: TelemetrySection = TelemetrySection()
    bus: list[BusConfig] = Field(default_factory=list)
    device: list[DeviceConfig] = Field(default_factory=list)

    @model_validator(mode="after")
    def _cross(self) -> GatewayConfig:
        buses = {b.name: b for b in self.bus}
        if len(buses) != len(self.bus):
            raise ValueError("bus names must be unique")
        ids = [d.id for d in self.device]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"device ids must be unique; repeated: {', '.join(dupes)}")
        seen: set[tuple[str, int]] = set()
        for d in self.device:
            bus_name = getattr(d, "bus", None)
            if bus_name is not None and bus_name not in buses:
                raise ValueError(f"device {d.id!r}: bus {bus_name!r} is not defined; defined buses: "
                                 f"{', '.join(buses) or '(none)'}")
            if isinstance(d, SirenDevice):
                if buses[d.bus].kind != "modbus":
                    raise ValueError(f"device {d.id!r}: a siren needs a bus of kind \"modbus\"")
                if (d.bus, d.address) in seen:
                    raise ValueError(f"device {d.id!r}: address {d.address} is already used on bus {d.bus!r}")
                seen.add((d.bus, d.address))
        return self

    def device_infos(self) -> tuple[DeviceInfo, ...]:
        return tuple(DeviceInfo(id=d.id, kind=DeviceKind(d.kind), bus=getattr(d, "bus", None),
                                address=getattr(d, "address", None)) for d in self.device)


def _resolve(data: dict[str, Any], base: Path) -> None:
    mq = data.get("mqtt")
    if isinstance(mq, dict):
        for key in ("ca_file", "cert_file", "key_file"):
            if isinstance(mq.get(key), str):
                p = Path(mq[key]).expanduser()
                mq[key] = str(credentials.resolve(p if p.is_absolute() else base / p))
    gw = data.get("gateway")
    if isinstance(gw, dict) and isinstance(gw.get("state_dir"), str):
        p = Path(gw["state_dir"]).expanduser()
        gw["state_dir"] = str(p if p.is_absolute() else base / p)
    for dev in data.get("device", []) if isinstance(data.get("device"), list) else []:
        if isinstance(dev, dict) and dev.get("kind") == "microphone" and isinstance(dev.get("file"), str):
            p = Path(dev["file"]).expanduser()
            dev["file"] = str(p if p.is_absolute() else base / p)
        assets = dev.get("assets") if isinstance(dev, dict) else None
        if isinstance(assets, dict):
            for a in assets.values():
                if isinstance(a, dict) and isinstance(a.get("file"), str):
                    p = Path(a["file"]).expanduser()
                    a["file"] = str(p if p.is_absolute() else base / p)


def _check_assets(cfg: GatewayConfig) -> list[tuple[str, str]]:
    problems = []
    for i, d in enumerate(cfg.device):
        if not isinstance(d, SpeakerDevice):
            continue
        for signal, asset in d.assets.items():
            where = f"device[{i}].assets.{signal.value}"
            try:
                digest = hashlib.sha256(asset.file.read_bytes()).hexdigest()
            except OSError as exc:
                problems.append((f"{where}.file", f"cannot read {asset.file}: {exc.strerror or exc}"))
                continue
            if digest != asset.sha256:
                problems.append((f"{where}.sha256", f"{asset.file} has sha256 {digest}, the config pins "
                                 f"{asset.sha256}; replace the file or update the pin"))
    return problems


def parse_config(text: str, *, file: str = "<config>", base: Path | None = None,
                 check_files: bool = True) -> GatewayConfig:
    """Parse and validate; on any mistake raise ConfigError listing *every* mistake found (with key paths and
    line numbers), not just the first."""
    from gateway.config_check import dedupe, device_problems, model_problems

    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        p = toml_syntax_problem(file, exc)
        raise ConfigError(file, [str(p)], [p]) from None
    _resolve(data, base or Path.cwd())
    index = line_index(text)
    problems = device_problems(data, file=file, index=index)
    cfg = None
    try:
        cfg = GatewayConfig.model_validate(data)
    except ValidationError as exc:
        problems += model_problems(exc, file=file, index=index, words=vocabulary(GatewayConfig))
    if cfg is not None and check_files and not problems:
        problems += [Problem(file, key, msg, locate(index, key)) for key, msg in _check_assets(cfg)]
    if problems or cfg is None:
        problems = dedupe(problems) or [Problem(file, "", "the config is not valid")]
        raise ConfigError(file, [str(p) for p in problems], problems)
    return cfg


def load_config(path: str | Path, *, check_files: bool = True) -> GatewayConfig:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(str(path), [f"cannot read the file: {exc.strerror or exc}"]) from None
    except UnicodeDecodeError:
        raise ConfigError(str(path), ["the file is not UTF-8 text"]) from None
    return parse_config(text, file=str(path), base=path.resolve().parent, check_files=check_files)
