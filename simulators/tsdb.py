"""Real time-series stores for tests, benchmarks and the demo, bound to 127.0.0.1 only.

- ``VictoriaMetrics``: Debian's ``victoria-metrics`` (accepts InfluxDB line protocol on ``/api/v2/write``
  and ``/write``; query with PromQL on ``/api/v1/query`` or raw samples on ``/api/v1/export``).
- ``InfluxDB1``: Debian's ``influxd`` 1.6 (v1 ``/write`` and InfluxQL ``/query``; no ``/api/v2``).

Each runs as a child process on a free loopback port with its data in a temporary directory.
``stop()`` / ``start()`` / ``restart()`` keep the port and the data, so a test can take the store down
and bring it back. ``close()`` stops it and removes the directory.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import httpx

from simulators.brokers import BrokerError, ChildServer, free_port


class TsdbError(BrokerError):
    """A store could not be started or did not become ready."""


def _binary(name: str) -> str:
    found = shutil.which(name) or next((p for p in (f"/usr/bin/{name}", f"/usr/sbin/{name}")
                                        if Path(p).exists()), None)
    if not found:
        raise TsdbError(f"{name} is not installed: run `make deps` (apt-get install victoria-metrics influxdb)")
    return found


class _Server(ChildServer):
    stop_timeout_s = 10.0
    name = "tsdb"
    ready_path = "/"
    ready_status = 200

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.dir = Path(tempfile.mkdtemp(prefix=f"dozor-{self.name}-"))
        self.log_path = self.dir / f"{self.name}.log"
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        raise NotImplementedError

    def start(self, timeout: float = 20.0):
        log = open(self.log_path, "ab")  # noqa: SIM115 - owned by the child
        self.proc = subprocess.Popen(self.command(), stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        log.close()
        try:
            self.wait_ready(timeout)
        except TsdbError:
            self.stop()
            raise
        return self

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=1.0) as client:
            while time.monotonic() < deadline:
                if self.proc is not None and self.proc.poll() is not None:
                    raise TsdbError(f"{self.name} exited with {self.proc.returncode}: {self.log_tail()}")
                with contextlib.suppress(httpx.HTTPError):
                    if client.get(self.url + self.ready_path).status_code == self.ready_status:
                        return
                time.sleep(0.05)
        raise TsdbError(f"{self.name} not ready on {self.url} after {timeout}s: {self.log_tail()}")

    def log_tail(self, n: int = 600) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""



class VictoriaMetrics(_Server):
    name = "victoria-metrics"
    ready_path = "/health"

    def command(self) -> list[str]:
        return [_binary("victoria-metrics"), f"-storageDataPath={self.dir / 'vm'}",
                f"-httpListenAddr=127.0.0.1:{self.port}", "-retentionPeriod=100y", "-search.latencyOffset=1s"]

    def flush(self) -> None:
        """Make recent writes searchable now (``/internal/force_flush``)."""
        httpx.get(self.url + "/internal/force_flush", timeout=10.0).raise_for_status()

    def export(self, match: str) -> list[dict]:
        """Raw samples of every series matching a PromQL series selector (JSON lines of /api/v1/export)."""
        import json

        r = httpx.post(self.url + "/api/v1/export", data={"match[]": match}, timeout=30.0)
        r.raise_for_status()
        return [json.loads(line) for line in r.text.splitlines() if line.strip()]


class InfluxDB1(_Server):
    name = "influxdb"
    ready_path = "/ping"
    ready_status = 204

    def __init__(self, port: int | None = None, *, database: str = "dozor") -> None:
        super().__init__(port)
        self.database = database
        self.rpc_port = free_port()
        self.conf = self.dir / "influxdb.conf"

    def _write_config(self) -> None:
        out = subprocess.run([_binary("influxd"), "config"], capture_output=True, text=True, check=False)
        if not out.stdout.strip():
            raise TsdbError(f"`influxd config` printed nothing: {out.stderr[-400:]}")
        text = re.sub(r'(?m)^bind-address = .*$', f'bind-address = "127.0.0.1:{self.rpc_port}"', out.stdout)
        text = text.replace("/var/lib/influxdb", str(self.dir / "influx"))
        text = re.sub(r'(?ms)(^\[http\].*?^  bind-address = )[^\n]*',
                      lambda m: f'{m.group(1)}"127.0.0.1:{self.port}"', text, count=1)
        text = re.sub(r'(?m)^reporting-enabled = .*$', "reporting-enabled = false", text)
        text = text.replace('bind-address = ":', 'bind-address = "127.0.0.1:')  # disabled services, to be safe
        self.conf.write_text(text)

    def command(self) -> list[str]:
        if not self.conf.exists():
            self._write_config()
        return [_binary("influxd"), "run", "-config", str(self.conf)]

    def start(self, timeout: float = 20.0):
        super().start(timeout)
        self.query(f'CREATE DATABASE "{self.database}"', method="POST")
        return self

    def query(self, q: str, *, method: str = "GET") -> dict:
        params = {"q": q, "db": self.database}
        r = httpx.request(method, self.url + "/query", params=params, timeout=30.0)
        r.raise_for_status()
        return r.json()
