"""`dozor provision`: a city's broker, hub and gateway identities in one folder with a fixed layout.

    DIR/ca.crt                          the city CA (public)
    DIR/ca/ca.key                       the CA's private key (0600): keep this folder offline if you can
    DIR/broker/mosquitto.conf, acl      startable as `mosquitto -c DIR/broker/mosquitto.conf`
    DIR/broker/server.crt, server.key   the broker's certificate (SAN: --broker-host, mosquitto, localhost)
    DIR/broker/crl.pem                  revoked certificates (rewritten by `provision revoke`)
    DIR/hub/hub.toml, zones.json        the hub's config (its gateway registry: zones list gateways)
    DIR/hub/client.crt, client.key      the hub's control identity (CN dozor-hub)
    DIR/hub/ingest.crt, ingest.key      the hub's ingest identity (CN dozor-hub-ingest)
    DIR/hub/admin-token                 the first operator's (admin) API token (0600), made once
    DIR/gateways/GW/                    gateway.toml, ca.crt, client.crt, client.key, identity-key (its Ed25519
                                        identity, enrolled with the hub): the cabinet's bundle
    DIR/compose.env                     variables and generated secrets for `docker compose --env-file` (0600)
    DIR/provision.json                  what was provisioned and revoked (`provision list`)

Every private key and the compose env file are written 0600. Running ``init`` again on the same folder keeps
the existing CA and identities (it only rewrites generated configs), so it is safe to repeat.
"""

from __future__ import annotations

import json
import os
import pwd
import secrets
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from contract.errors import DozorError
from contract.topics import check_id
from dozor.provision import templates as t
from dozor.provision import tenants
from runtime import pki
from runtime.keyfiles import write_secret

STATE = "provision.json"
IMAGE_UID = 10001         # the `dozor` user of the Dockerfile: owns the hub's keys and state when root provisions
BROKER_IMAGE_UID = 1883   # the `mosquitto` user of the eclipse-mosquitto image


class ProvisionError(DozorError):
    pass


@dataclass(frozen=True)
class Layout:
    root: Path

    @property
    def ca_cert(self) -> Path:
        return self.root / "ca.crt"

    @property
    def ca_key(self) -> Path:
        return self.root / "ca" / "ca.key"

    @property
    def broker(self) -> Path:
        return self.root / "broker"

    @property
    def hub(self) -> Path:
        return self.root / "hub"

    def gateway(self, gw: str) -> Path:
        return self.root / "gateways" / gw

    @property
    def state(self) -> Path:
        return self.root / STATE


def load_state(lay: Layout) -> dict:
    try:
        return json.loads(lay.state.read_text())
    except FileNotFoundError:
        raise ProvisionError(f"{lay.root} is not a provisioned city folder (no {STATE}); "
                             f"run `dozor provision init {lay.root} --broker-host HOST` first") from None


def save_state(lay: Layout, state: dict) -> None:
    tmp = lay.state.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2) + "\n")
    tmp.replace(lay.state)


def load_ca(lay: Layout) -> pki.Issued:
    return pki.Issued(pki.load_key(lay.ca_key), pki.load_cert(lay.ca_cert))


def issue_client(ca: pki.Issued, cn: str, cert: Path, key: Path) -> int:
    leaf = pki.issue(ca, cn)
    leaf.write(cert, key)
    return leaf.cert.serial_number


def _write_crl(lay: Layout, state: dict) -> None:
    every = [state["gateways"], *(r["gateways"] for r in state.get("tenants", {}).values())]
    revoked = [g["serial"] for gateways in every for g in gateways.values() if g.get("revoked")]
    revoked += state.get("revoked_serials", [])
    crl = lay.broker / "crl.pem"
    crl.write_bytes(pki.make_crl(load_ca(lay), revoked))
    crl.chmod(0o644)


def broker_url(state: dict, host: str | None = None) -> str:
    return f"mqtts://{host or state['broker_host']}:{state['port']}"


def init(root: Path, *, broker_host: str, port: int = 8883, bind: str = "0.0.0.0",
         hub_state_dir: Path = Path("/var/lib/dozor-hub"), api_host: str | None = None, api_port: int | None = None,
         store_url: str = "http://influxdb:8086", city: str = "dozor city", broker_user: str | None = None,
         hub_uid: int | None = None) -> dict:
    """Create (or refresh) a city folder. Existing keys and certificates are kept, and so are the API address
    and port of an earlier run unless given again (a refresh must not silently move the hub's API)."""
    from hub.keys import load_or_create  # the hub's own code creates its signing key, in its state dir

    root = root.resolve()
    lay = Layout(root)
    for d in (root, lay.ca_key.parent, lay.broker, lay.broker / "data", lay.hub, root / "gateways"):
        d.mkdir(parents=True, exist_ok=True)
    lay.ca_key.parent.chmod(0o700)
    prior = json.loads(lay.state.read_text()) if lay.state.exists() else None
    if not lay.ca_key.exists():
        pki.make_ca(f"{city} CA").write(lay.ca_cert, lay.ca_key)
    ca = load_ca(lay)
    state = prior or {"created": time.time(), "gateways": {}, "revoked_serials": []}
    hosts = tuple(dict.fromkeys((broker_host, "mosquitto", "localhost", "127.0.0.1")))
    server = lay.broker / "server.crt"
    if not server.exists() or state.get("broker_host") != broker_host:
        pki.issue(ca, broker_host, server_hosts=hosts).write(server, lay.broker / "server.key")
    for cn, name in ((t.HUB_ID, "client"), (t.HUB_INGEST_ID, "ingest")):
        if not (lay.hub / f"{name}.crt").exists():
            state.setdefault("hub_serials", {})[cn] = issue_client(ca, cn, lay.hub / f"{name}.crt",
                                                                      lay.hub / f"{name}.key")
    uid = _broker_uid(broker_user)
    for p in (lay.broker / "server.key", lay.broker / "data"):
        if os.stat(p).st_uid != uid:
            os.chown(p, uid, -1)
    (lay.broker / "data").chmod(0o700)
    hub_state_dir = hub_state_dir if hub_state_dir.is_absolute() else (Path.cwd() / hub_state_dir)
    hub_state_dir.mkdir(parents=True, exist_ok=True)
    hub_state_dir.chmod(0o700)  # keys, users, audit chain: the hub's user only
    keys = load_or_create(hub_state_dir)
    admin_written = first_admin(lay.hub, hub_state_dir, keys.kid, root)
    api_host = api_host or state.get("api_host") or "127.0.0.1"
    api_port = api_port or state.get("api_port") or 8080
    huid = hub_uid if hub_uid is not None else (IMAGE_UID if os.geteuid() == 0 else os.geteuid())
    for p in (lay.hub / "client.key", lay.hub / "ingest.key"):
        if p.stat().st_uid != huid:
            os.chown(p, huid, -1)
    own(hub_state_dir, huid)
    state.update(broker_uid=uid, hub_uid=huid, broker_host=broker_host, port=port, bind=bind,
                 hub_state_dir=str(hub_state_dir), hub_keys=keys.public_keys_b64(), api_host=api_host,
                 api_port=api_port)
    (lay.broker / "mosquitto.conf").write_text(t.mosquitto_conf(root, port=port, bind=bind))
    (lay.broker / "acl").write_text(tenants.broker_acl(state))  # single city: templates.acl(), unchanged
    (lay.hub / "hub.toml").write_text(t.hub_toml(broker_url=broker_url(state), state_dir=hub_state_dir,
                                                 api_host=api_host, api_port=api_port, store_url=store_url))
    if not (lay.hub / "zones.json").exists():
        (lay.hub / "zones.json").write_text(t.zones_json([]))
    _write_crl(lay, state)
    _write_compose_env(lay, state)
    save_state(lay, state)
    out = listing(root)
    out["admin_token_written"] = admin_written
    if not admin_written and not (lay.hub / "admin-token").exists():
        out["note"] = (f"the hub state dir {hub_state_dir} already has users, so no new admin token was made; "
                       f"use an existing admin's token, or `dozor users rotate-token admin --config "
                       f"{lay.hub / 'hub.toml'}` to issue a new one")
    return out


def _broker_uid(user: str | None) -> int:
    """Who reads the broker's key: Mosquitto started as root drops to its ``mosquitto`` user before it loads the
    key, so the key (0600) must belong to that user; compose runs the container as the same uid."""
    if user is None:
        if os.geteuid() != 0:
            return os.geteuid()
        user = "mosquitto"
        try:
            pwd.getpwnam(user)
        except KeyError:
            return BROKER_IMAGE_UID
    if user.isdigit():
        return int(user)
    try:
        return pwd.getpwnam(user).pw_uid
    except KeyError:
        raise ProvisionError(f"--broker-user {user!r}: no such user on this machine") from None


def first_admin(hub_dir: Path, state_dir: Path, kid: str, root: Path) -> bool:
    """A hub without users refuses to start: create ``admin`` once, its token in ``hub_dir``/admin-token (0600).
    True if it did; False if the state dir already had users (nothing is overwritten)."""
    from dozor.commands.users import local_actor
    from hub.audit import AuditLog
    from hub.identity import Role, UserStore

    users = UserStore.in_state_dir(state_dir)
    try:
        if users.active_count() > 0:
            return False
        user, token = users.add("admin", Role.admin)
    finally:
        users.close()
    write_secret(hub_dir / "admin-token", token.encode())
    audit = AuditLog.in_state_dir(state_dir)
    try:
        audit.append(local_actor(), "provision.init", str(root), {"kid": kid})
        audit.append(local_actor(), "user.add", user.name, {"role": user.role.value})
    finally:
        audit.close()
    return True


def _write_compose_env(lay: Layout, state: dict) -> None:
    path = lay.root / "compose.env"
    old: dict[str, str] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            if "=" in line and not line.startswith("#"):
                k, v = line.split("=", 1)
                old[k] = v
    values = {
        "DOZOR_CITY": str(lay.root),
        "DOZOR_BROKER_HOST": state["broker_host"],
        "DOZOR_MQTT_PORT": str(state["port"]),
        "DOZOR_HUB_STATE": state["hub_state_dir"],
        "DOZOR_BROKER_UID": str(state["broker_uid"]),
        "DOZOR_HUB_UID": str(state["hub_uid"]),
        "INFLUX_TOKEN": old.get("INFLUX_TOKEN") or secrets.token_urlsafe(32),
        "INFLUX_ADMIN_PASSWORD": old.get("INFLUX_ADMIN_PASSWORD") or secrets.token_urlsafe(24),
        "GRAFANA_ADMIN_PASSWORD": old.get("GRAFANA_ADMIN_PASSWORD") or secrets.token_urlsafe(24),
        "DOZOR_PUBLIC_HOST": old.get("DOZOR_PUBLIC_HOST") or state["broker_host"],
    }
    text = "# Generated by `dozor provision init` (secrets: keep this file 0600, out of git)\n"
    write_secret(path, (text + "".join(f"{k}={v}\n" for k, v in values.items())).encode())


def add_gateway(root: Path, gw: str, *, zone: str, state_dir: str = "/var/lib/dozor-gateway",
                broker_host: str | None = None, tenant: str = "") -> dict:
    """Issue ``gw``'s client certificate, register it with the hub (its zone in zones.json) and write its bundle.
    ``tenant``: a gateway of that tenant (``dozor provision tenant``), registered with that tenant's hub."""
    check_id(gw, "gateway id")
    check_id(zone, "zone")
    lay = Layout(root.resolve())
    state = load_state(lay)
    sc = tenants.scope(lay.root, state, tenant)
    if gw in t.RESERVED:
        raise ProvisionError(f"{gw!r} is the hub's own identity; choose another gateway id")
    prior = sc.gateways(state).get(gw)
    if prior and prior.get("revoked"):
        raise ProvisionError(f"gateway {gw} was revoked; provision the replacement cabinet under a new id")
    out = sc.bundle(gw)
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(lay.ca_cert, out / "ca.crt")
    serial = prior["serial"] if prior and (out / "client.key").exists() else \
        issue_client(load_ca(lay), sc.cn(gw), out / "client.crt", out / "client.key")
    from hub.keys import load_or_create  # every key the hub announces now (active and staged: a rotation)

    hub = sc.hub_record(state)
    hub["hub_keys"] = load_or_create(sc.hub_state_dir).public_keys_b64()
    (out / "gateway.toml").write_text(t.gateway_toml(gw=gw, zone=zone, broker_url=broker_url(state, broker_host),
                                                     hub_keys=hub["hub_keys"], state_dir=state_dir, tenant=tenant))
    kid = _enroll_identity(sc, hub["hub_uid"], gw, out)
    _register_with_hub(sc.hub, gw, zone)
    sc.gateways(state)[gw] = {"zone": zone, "serial": serial, "revoked": False, "identity_kid": kid,
                              "created": (prior or {}).get("created", time.time())}
    save_state(lay, state)
    if tenant or state.get("tenants"):  # per-identity ACL blocks: this gateway needs its own (then kill -HUP)
        (lay.broker / "acl").write_text(tenants.broker_acl(state))
    return {"gateway": gw, "zone": zone, "bundle": str(out), "serial": f"{serial:x}", "identity_kid": kid,
            **({"tenant": tenant, "mqtt_username": sc.cn(gw)} if tenant else {})}


def _enroll_identity(sc: tenants.Scope, hub_uid: int, gw: str, out: Path) -> str:
    """The gateway's Ed25519 identity key (signs its births, heartbeats, acks, events) is made here, into the
    bundle (``identity-key``, 0600; the installer moves it into the cabinet's state dir), and its public half is
    enrolled with the hub: the hub never trusts a key on first use."""
    from gateway.identity import load_or_create
    from hub.gwtrust import enroll

    ident = load_or_create(out)
    enroll(sc.hub_state_dir, gw, ident.public_b64, actor=f"local:{_who()}", reason="dozor provision gateway")
    own(sc.hub_state_dir, hub_uid)
    return ident.kid


def _who() -> str:
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return str(os.geteuid())


def own(folder: Path, uid: int) -> None:
    """The hub's state (SQLite with WAL) must stay writable by the user that runs the hub."""
    for p in (folder, *folder.rglob("*")):
        if p.stat().st_uid != uid:
            os.chown(p, uid, -1)


def _zones(hub_dir: Path) -> list[dict]:
    return json.loads((hub_dir / "zones.json").read_text())


def _register_with_hub(hub_dir: Path, gw: str, zone: str) -> None:
    """The hub's registry of gateways is its zones file: a gateway listed in a zone receives that zone's alerts."""
    zones = _zones(hub_dir)
    for z in zones:
        if z["id"] == zone:
            if gw not in z.setdefault("gateways", []):
                z["gateways"].append(gw)
            break
    else:
        zones.append({"id": zone, "name": zone, "gateways": [gw]})
    (hub_dir / "zones.json").write_text(t.zones_json(zones))


def revoke(root: Path, gw: str, tenant: str = "") -> dict:
    """Revoke ``gw`` at the broker (its certificate into the CRL; reload the broker afterwards) and at the hub
    (removed from every zone, so no alert is addressed to it, and its identity key un-enrolled, so the hub
    ignores anything it signs from then on)."""
    lay = Layout(root.resolve())
    state = load_state(lay)
    sc = tenants.scope(lay.root, state, tenant)
    entry = sc.gateways(state).get(gw)
    if entry is None:
        raise ProvisionError(f"no gateway {gw!r} was provisioned in {sc.base}")
    entry["revoked"] = True
    entry["revoked_at"] = time.time()
    _write_crl(lay, state)
    zones = _zones(sc.hub)
    for z in zones:
        z["gateways"] = [g for g in z.get("gateways", []) if g != gw]
        z["devices"] = [d for d in z.get("devices", []) if not d.startswith(f"{gw}/")]
    (sc.hub / "zones.json").write_text(t.zones_json(zones))
    from hub.gwtrust import revoke as untrust

    hub_revoked = untrust(sc.hub_state_dir, gw, reason="dozor provision revoke", actor="provision")
    save_state(lay, state)
    if state.get("tenants"):
        (lay.broker / "acl").write_text(tenants.broker_acl(state))  # its ACL block goes too
    return {"gateway": gw, "revoked": True, "hub_enrollment_removed": hub_revoked,
            "serial": f"{entry['serial']:x}", "crl": str(lay.broker / "crl.pem"),
            "next": "reload the broker (kill -HUP <mosquitto pid>, or `docker compose kill -s HUP mosquitto`) "
                    "and the hub (restart) so both apply it"}


def listing(root: Path) -> dict:
    lay = Layout(root.resolve())
    state = load_state(lay)
    return {"dir": str(lay.root), "broker": broker_url(state), "bind": state["bind"],
            "admin_token_file": str(lay.hub / "admin-token"),
            "hub_state_dir": state["hub_state_dir"], "hub_keys": state["hub_keys"],
            "gateways": [{"gateway": gw, "zone": g["zone"], "serial": f"{g['serial']:x}", "revoked": g["revoked"],
                          "identity_kid": g.get("identity_kid"),
                          "bundle": str(lay.gateway(gw))} for gw, g in sorted(state["gateways"].items())],
            **({"tenants": tenants.listing(lay.root, state)} if state.get("tenants") else {})}
