"""`dozor sim sds011|pms5003|noise-node`: a simulated sensor on a virtual serial cable (or a real port).

    dozor sim sds011 --pty .dozor/tty-sds011 &       # the gateway's [[bus]] port = ".dozor/tty-sds011"
    dozor sim noise-node --pty .dozor/tty-noise --garbage-every 10
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import typer

from dozor.commands._common import console, fail
from dozor.commands._sim import sim_app


async def _serve(kind: str, port: str | None, pty: Path | None, period: float, garbage_every: float | None,
                 seed: int | None) -> dict[str, int]:
    from simulators.pty_link import PtyLink
    from simulators.sensors import SIMS

    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, task.cancel)
    link = None
    sim = None
    try:
        if pty is not None:
            link = await PtyLink(a_link=pty, b_link=pty.with_name(pty.name + ".device"), seed=seed).start()
            port = link.b
            console.print(f"gateway side of the cable: {pty} -> {link.pts[0]}")
        assert port is not None
        sim = SIMS[kind](port, period_s=period, seed=seed)
        async with sim:
            console.print(f"{kind} on {port} ({sim.baudrate} baud), a frame every {period}s; Ctrl-C to stop")
            while True:
                await asyncio.sleep(garbage_every or 3600)
                if garbage_every:
                    sim.inject_garbage(16)
    except asyncio.CancelledError:
        pass
    finally:
        if link is not None:
            await link.close()
    return dict(sim.counters) if sim is not None else {}


def _command(kind: str):
    def run(port: str = typer.Option(None, "--port", help="serve on this existing serial port"),
            pty: Path = typer.Option(None, "--pty", help="create a virtual cable; the gateway opens this path"),
            period: float = typer.Option(1.0, "--period", min=0.01, max=3600.0,
                                         help="seconds between spontaneous frames (active mode / levels)"),
            garbage_every: float = typer.Option(None, "--garbage-every", min=0.01,
                                                help="inject 16 bytes of line noise every N seconds"),
            seed: int = typer.Option(None, "--seed", help="seed for values and noise")) -> None:
        if (port is None) == (pty is None):
            fail("give exactly one of --port (an existing serial port) or --pty (a path for a new virtual cable)")
        counts = asyncio.run(_serve(kind, port, pty, period, garbage_every, seed))
        console.print(", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "nothing sent")

    run.__doc__ = {"sds011": "A simulated Nova SDS011 dust sensor (UART, query/active mode, sleep/work).",
                   "pms5003": "A simulated Plantower PMS5003 dust sensor (UART, passive/active mode).",
                   "noise-node": "A simulated dozor noise node (UART node frames: levels, events, status)."}[kind]
    return run


def register(app: typer.Typer) -> None:
    sim = sim_app(app)
    for kind in ("sds011", "pms5003", "noise-node"):
        sim.command(kind)(_command(kind))
