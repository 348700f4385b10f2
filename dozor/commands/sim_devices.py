"""`dozor sim siren ...` and `dozor sim speaker ...`: simulated alerting devices."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import typer

from dozor.commands._common import console, fail
from dozor.commands._sim import sim_app


async def _serve_sirens(port: str | None, link_path: Path | None, count: int, first: int, spinup: float) -> None:
    from simulators.pty_link import PtyLink
    from simulators.siren import SimSiren, SirenBus

    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, task.cancel)
    sirens = [SimSiren(address=first + i, spinup_s=spinup) for i in range(count)]
    link = None
    try:
        if link_path is not None:
            link = await PtyLink(a_link=link_path).start()
            port = link.b
            console.print(f"gateway side of the cable: {link_path} -> {link.pts[0]}")
        assert port is not None
        async with SirenBus(port, sirens):
            console.print(f"{count} siren(s), unit ids {first}..{first + count - 1}, on {port}; Ctrl-C to stop")
            await asyncio.Event().wait()
    except asyncio.CancelledError:
        for s in sirens:
            console.print(f"unit {s.address}: {s.activations} activation(s), {len(s.log)} command(s)")
    finally:
        if link is not None:
            await link.close()


def register(app: typer.Typer) -> None:
    sim = sim_app(app)

    @sim.command("siren")
    def siren(port: str = typer.Option(None, "--port", help="serve on this existing serial port"),
              link: Path = typer.Option(None, "--link", help="create a virtual cable; the gateway opens this path"),
              count: int = typer.Option(1, "--count", min=1, max=247, help="controllers on the bus"),
              first: int = typer.Option(1, "--first-address", min=1, max=247),
              spinup: float = typer.Option(1.5, "--spinup", min=0.0, help="seconds before STATUS reads sounding"),
              ) -> None:
        """Simulated Modbus RTU siren controllers on one RS-485 bus."""
        if (port is None) == (link is None):
            fail("give exactly one of --port (an existing serial port) or --link (a path for a new virtual cable)")
        if first + count - 1 > 247:
            fail("unit ids must stay within 1..247")
        asyncio.run(_serve_sirens(port, link, count, first, spinup))

    @sim.command("speaker")
    def speaker(file: Path = typer.Argument(..., help="audio file (WAV)"),
                record: Path = typer.Option(..., "--record", help="folder for played.jsonl"),
                no_wait: bool = typer.Option(False, "--no-wait", help="do not sleep for the duration")) -> None:
        """A loudspeaker player that records what it played (use as a speaker's `player`)."""
        from simulators.speaker import main

        args = ["--record", str(record), str(file)] + (["--no-wait"] if no_wait else [])
        raise typer.Exit(main(args))
