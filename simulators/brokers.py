"""MQTT brokers for tests, benchmarks and the demo. Every broker binds to 127.0.0.1 only.

- ``Mosquitto``: the real broker (Debian package ``mosquitto``), started as a child process on a free
  loopback port; ``restart()`` keeps the port so clients can reconnect.
- ``EmbeddedBroker``: amqtt in-process, MQTT 3.1.1 only, for the zero-install demo.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from contract.errors import DozorError


class BrokerError(DozorError):
    pass


PORT_FLOOR = 20000  # free_port hands out ports from here up to the kernel's ephemeral range


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A loopback TCP port nothing listens on, distinct from every other port handed out on this machine lately.

    Ports come from below the kernel's ephemeral range, so no outgoing connection can take one between this
    call and the server's bind (asking the kernel for port 0 gave an ephemeral port, which a client socket of a
    parallel test once took first). A counter file shared under ``flock`` by every process of this user (pytest
    workers, their children, two runs at once) walks the range, so two callers never get the same port until it
    wraps; a port something already holds is skipped."""
    import fcntl

    low, high = PORT_FLOOR, max(PORT_FLOOR + 1000, _ephemeral_low())
    counter = Path(tempfile.gettempdir()) / f"dozor-ports-{os.getuid()}"
    with open(counter, "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        f.seek(0)
        text = f.read().strip()
        nxt = int(text) if text.isdigit() else low + os.getpid() % (high - low)
        for _ in range(high - low):
            port = low + (nxt - low) % (high - low)
            nxt = port + 1
            if _bindable(port):
                break
        else:
            raise BrokerError(f"no free loopback port in {low}..{high - 1}")
        f.seek(0)
        f.truncate()
        f.write(str(nxt))
        f.flush()
    return port


def wait_port(port: int, timeout: float = 30.0, host: str = "127.0.0.1",
              proc: subprocess.Popen | None = None) -> None:
    """Until something listens on ``port``; fails at once if ``proc`` (the server) exited. The timeout only
    bounds a failing start: a loaded machine can take seconds to start a TLS broker."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.2):
            return
        if proc is not None and proc.poll() is not None:
            raise BrokerError(f"the server for {host}:{port} exited with {proc.returncode} before listening")
        time.sleep(0.02)
    raise BrokerError(f"nothing listening on {host}:{port} after {timeout}s")


class ChildServer:
    """Lifecycle shared by every server a test or benchmark starts as a child process: ``self.proc`` is the
    process, ``self.dir`` its private temp folder; subclasses provide ``start()``."""

    proc: subprocess.Popen | None = None
    dir: Path
    stop_timeout_s: float = 5.0

    def start(self):  # pragma: no cover - abstract
        raise NotImplementedError

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(self.stop_timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def restart(self, down_s: float = 0.0) -> None:
        """Stop and start again on the same port, keeping the data folder."""
        self.stop()
        time.sleep(down_s)
        self.start()

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


def make_test_pki(folder: Path, host: str = "127.0.0.1") -> dict[str, Path]:
    """A throwaway CA and a server certificate for ``host`` (tests and demos only; never deploy these)."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)

    def cert(subject: str, key, issuer_name, issuer_key, *, ca: bool) -> x509.Certificate:
        b = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
             .issuer_name(issuer_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
             .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=2))
             .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if not ca:
            b = b.add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(host))]),
                                critical=False)
        return b.sign(issuer_key, hashes.SHA256())

    ca_key, srv_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dozor test CA")])
    ca_cert = cert("dozor test CA", ca_key, ca_name, ca_key, ca=True)
    srv_cert = cert(host, srv_key, ca_name, ca_key, ca=False)
    paths = {"ca": folder / "ca.crt", "cert": folder / "server.crt", "key": folder / "server.key"}
    paths["ca"].write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    paths["cert"].write_bytes(srv_cert.public_bytes(serialization.Encoding.PEM))
    paths["key"].write_bytes(srv_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                   serialization.NoEncryption()))
    for p in paths.values():
        os.chmod(p, 0o644)  # mosquitto drops privileges when started as root
    return paths


class Mosquitto(ChildServer):
    def __init__(self, port: int | None = None, *, extra_conf: str = "", tls: bool = False,
                 persistence: bool = False) -> None:
        self.binary = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists()
                                                     else None)
        if not self.binary:
            raise BrokerError("mosquitto is not installed: run `make deps` (apt-get install mosquitto)")
        self.port = port or free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="dozor-mosq-"))
        os.chmod(self.dir, 0o777)  # mosquitto drops privileges when started as root
        self.conf = self.dir / "mosquitto.conf"
        self.tls = tls
        self.pki = make_test_pki(self.dir) if tls else {}
        tls_conf = (f"cafile {self.pki['ca']}\ncertfile {self.pki['cert']}\nkeyfile {self.pki['key']}\n"
                    if tls else "")
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\n{tls_conf}allow_anonymous true\n"
            + (f"persistence true\npersistence_location {self.dir}/\n" if persistence else "persistence false\n") +
            "log_dest stdout\nlog_type error\nlog_type warning\nmax_queued_messages 1000000\n"
            "max_inflight_messages 0\nset_tcp_nodelay true\n" + extra_conf
        )
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"{'mqtts' if self.tls else 'mqtt'}://127.0.0.1:{self.port}"

    def start(self) -> Mosquitto:
        log = open(self.dir / "mosquitto.log", "ab")  # noqa: SIM115 - owned by the child
        self.proc = subprocess.Popen([self.binary, "-c", str(self.conf)], stdout=log, stderr=log,
                                     stdin=subprocess.DEVNULL)
        log.close()
        try:
            wait_port(self.port, proc=self.proc)
        except BrokerError:
            self.stop()
            raise BrokerError(f"mosquitto did not start: {(self.dir / 'mosquitto.log').read_text()[-500:]}") from None
        return self

class EmbeddedBroker:
    """amqtt inside the current event loop. MQTT 3.1.1 only, no shared subscriptions."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self._broker = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    async def start(self) -> EmbeddedBroker:
        import logging

        from amqtt.broker import Broker

        for name in ("amqtt", "transitions"):
            logging.getLogger(name).setLevel(logging.ERROR)
        config = {
            "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{self.port}"}},
            "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
        }
        self._broker = Broker(config)
        await self._broker.start()
        return self

    async def stop(self) -> None:
        if self._broker is not None:
            await self._broker.shutdown()
            self._broker = None
