"""Real `dozor` processes for identity and audit tests: the CLI as a subprocess and `dozor hub run`."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from pathlib import Path

import httpx

DOZOR = str(Path(sys.executable).with_name("dozor"))


async def cli(*args: str, env: dict | None = None, scanner=None, stdin: bytes | None = None,
              cwd: Path | None = None) -> tuple[int, str, str]:
    """Run `dozor ARGS`; its stderr goes to the leak scanner (stdout may carry a token shown once, by design)."""
    proc = await asyncio.create_subprocess_exec(
        DOZOR, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        env={**os.environ, "COLUMNS": "200", **(env or {})}, cwd=cwd)
    out, err = await asyncio.wait_for(proc.communicate(stdin), 120)
    if scanner is not None:
        scanner.watch_text(f"stderr of dozor {' '.join(args[:2])}", err.decode())
    return proc.returncode, out.decode(), err.decode()


def _tail(log: Path) -> str:
    return log.read_text(errors="replace")[-2000:]


@contextlib.asynccontextmanager
async def hub_process(config: Path, port: int, log: Path, scanner=None):
    """`dozor hub run --config CONFIG` (log level DEBUG: the scanner reads everything it logs) until healthy."""
    fh = open(log, "ab")  # noqa: SIM115, ASYNC230 - owned by the child for its lifetime
    proc = await asyncio.create_subprocess_exec(DOZOR, "hub", "run", "--config", str(config), "--log-level", "DEBUG",
                                                stdout=fh, stderr=fh)
    if scanner is not None:
        scanner.watch_file(log)
    try:
        async with httpx.AsyncClient() as http:
            for _ in range(300):
                if proc.returncode is not None:
                    raise AssertionError(f"hub exited {proc.returncode}: {_tail(log)}")
                with contextlib.suppress(httpx.TransportError):
                    if (await http.get(f"http://127.0.0.1:{port}/healthz")).status_code == 200:
                        break
                await asyncio.sleep(0.1)
            else:
                raise AssertionError(f"hub did not come up: {_tail(log)}")
        yield proc
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 15)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        fh.close()
