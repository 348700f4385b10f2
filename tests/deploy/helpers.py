"""Shared pieces of the deployment tests: the real CLI, the broker on the generated config, mTLS paho clients."""

from __future__ import annotations

import json
import os
import signal
import ssl
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from simulators.brokers import BrokerError, ChildServer, wait_port

ROOT = Path(__file__).resolve().parents[2]
DOZOR = str(Path(sys.executable).with_name("dozor"))


def dozor(*args: str, check: bool = True, env: dict | None = None, cwd: Path | None = None
          ) -> subprocess.CompletedProcess:
    out = subprocess.run([DOZOR, *args], capture_output=True, text=True, timeout=120, cwd=cwd,
                         env={**os.environ, **(env or {})})
    if check and out.returncode != 0:
        raise AssertionError(f"dozor {' '.join(args)} -> {out.returncode}\n{out.stdout}\n{out.stderr}")
    return out


def dozor_json(*args: str, **kw) -> dict:
    return json.loads(dozor(*args, "--json", **kw).stdout)


def city_dir() -> Path:
    """A provisioning folder the broker's own user can traverse (pytest's tmp_path is private to root; Mosquitto
    started as root reads its ACL and CRL after dropping to the ``mosquitto`` user)."""
    root = Path(tempfile.mkdtemp(prefix="dozor-city-"))
    root.chmod(0o755)
    return root / "city"


class GeneratedBroker(ChildServer):
    """Mosquitto started exactly as documented: ``mosquitto -c DIR/broker/mosquitto.conf``."""

    def __init__(self, city: Path, port: int) -> None:
        self.city, self.port = city, port
        self.dir = Path(tempfile.mkdtemp(prefix="dozor-genbroker-"))
        self.log = self.dir / "mosquitto.log"

    def start(self) -> GeneratedBroker:
        with open(self.log, "ab") as fh:
            self.proc = subprocess.Popen(["mosquitto", "-c", str(self.city / "broker" / "mosquitto.conf")],
                                         stdout=fh, stderr=fh, stdin=subprocess.DEVNULL)
        try:
            wait_port(self.port, proc=self.proc)
        except BrokerError as exc:
            raise BrokerError(f"{exc}: {self.log.read_text()[-1500:]}") from None
        return self

    def reload(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGHUP)


@dataclass
class Conn:
    client: mqtt.Client
    connected: threading.Event = field(default_factory=threading.Event)
    disconnected: threading.Event = field(default_factory=threading.Event)
    rc: object = None
    messages: list[tuple[str, bytes]] = field(default_factory=list)
    granted: list = field(default_factory=list)
    subscribed: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def connect(port: int, *, ca: Path | None, cert: Path | None = None, key: Path | None = None,
            client_id: str = "", wait_s: float = 10.0) -> Conn:
    """A paho client over TLS; ``conn.connected`` is set once the broker accepted it (CONNACK 0)."""
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311,
                    clean_session=True)
    conn = Conn(c)
    c.tls_set(ca_certs=str(ca) if ca else None, certfile=str(cert) if cert else None,
              keyfile=str(key) if key else None, cert_reqs=ssl.CERT_REQUIRED if ca else ssl.CERT_NONE)
    if ca is None:
        c.tls_insecure_set(True)

    def on_connect(_c, _u, _f, rc, _p=None):
        conn.rc = rc
        if not rc.is_failure:
            conn.connected.set()
        else:
            conn.disconnected.set()

    def on_disconnect(_c, _u, _f, rc, _p=None):
        conn.rc = conn.rc if conn.rc is not None else rc
        conn.disconnected.set()

    def on_subscribe(_c, _u, _mid, granted, _p=None):
        conn.granted = list(granted)
        conn.subscribed.set()

    c.on_connect, c.on_disconnect, c.on_subscribe = on_connect, on_disconnect, on_subscribe
    c.on_message = lambda _c, _u, m: conn.messages.append((m.topic, m.payload))
    try:
        c.connect("127.0.0.1", port, keepalive=30)
    except (OSError, ssl.SSLError) as exc:  # the TLS handshake itself was refused
        conn.error = exc
        conn.disconnected.set()
        return conn
    c.loop_start()
    conn.connected.wait(wait_s) or conn.disconnected.wait(wait_s)
    return conn


class Procs:
    """Child processes started by a test, each logging to its own file; all stopped (SIGTERM) at the end."""

    def __init__(self, logdir: Path) -> None:
        self.logdir = logdir
        self.procs: dict[str, subprocess.Popen] = {}

    def start(self, name: str, *args: str, env: dict | None = None) -> subprocess.Popen:
        with open(self.logdir / f"{name}.log", "ab") as fh:
            p = subprocess.Popen([DOZOR, *args], stdout=fh, stderr=fh, stdin=subprocess.DEVNULL,
                                 env={**os.environ, **(env or {})})
        self.procs[name] = p
        return p

    def log(self, name: str) -> str:
        return (self.logdir / f"{name}.log").read_text(errors="replace")

    def close(self) -> None:
        for p in self.procs.values():
            if p.poll() is None:
                p.terminate()
        for p in self.procs.values():
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    def __enter__(self) -> Procs:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def until(predicate, what: str, attempts: int = 300, every: float = 0.1, procs: Procs | None = None):
    import time

    last_exc = None
    for _ in range(attempts):
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:  # not up yet (connection refused, file missing)
            last_exc = exc
        time.sleep(every)
    logs = "" if procs is None else "\n".join(f"--- {n}\n{procs.log(n)[-1500:]}" for n in procs.procs)
    raise AssertionError(f"timed out waiting for {what} (last error: {last_exc!r})\n{logs}")


SIREN_DEVICES = """
[[bus]]
name = "rs485-1"
port = "{tty}"
kind = "modbus"
baudrate = 19200
timeout_s = 0.3

[[device]]
id = "siren-1"
kind = "siren"
bus = "rs485-1"
address = 1

[[device]]
id = "siren-2"
kind = "siren"
bus = "rs485-1"
address = 2
"""


def start_cabinet(procs: Procs, bundle: Path, tty: Path) -> None:
    """A street cabinet from its provisioned bundle: two simulated sirens on a virtual RS-485 cable (pty) and
    `dozor gateway run` on the bundle's gateway.toml with the bus and sirens added, as a technician would."""
    import shutil
    import tomllib

    gw = bundle.name
    state = Path(tomllib.loads((bundle / "gateway.toml").read_text())["gateway"]["state_dir"])
    state.mkdir(parents=True, exist_ok=True, mode=0o700)
    shutil.copy2(bundle / "identity-key", state / "identity-key")  # what install-gateway.sh does
    procs.start(f"sirens-{gw}", "sim", "siren", "--link", str(tty), "--count", "2", "--spinup", "0")
    until(tty.exists, f"the virtual cable {tty}", procs=procs)
    conf = bundle / "gateway.toml"
    if "[[bus]]" not in conf.read_text():
        conf.write_text(conf.read_text() + SIREN_DEVICES.format(tty=tty))
    procs.start(f"gateway-{gw}", "gateway", "run", "--config", str(conf))


def needs(ok: bool, what: str) -> None:
    """Skip where a host tool is absent on a developer's machine; in CI (``CI`` set, where `./run test`
    installs it) its absence is a failure, so a missing tool can never hide a test."""
    if ok:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{what} (CI must provide it)")
    pytest.skip(what)
