"""`dozor sim board --pty`: a virtual MicroPython board (real interpreter, WebAssembly) on a pty."""

from __future__ import annotations

from pathlib import Path

import typer

from dozor.commands._common import console, fail
from dozor.commands._sim import sim_app


def register(app: typer.Typer) -> None:
    sim = sim_app(app)

    @sim.command("board")
    def board(
        pty: bool = typer.Option(True, "--pty/--no-pty", help="serve the REPL on a pseudo-terminal (only mode)"),
        flash_dir: Path = typer.Option(None, "--flash", help="host folder holding the board's filesystem "
                                       "[default: a temporary folder]"),
        link: Path = typer.Option(None, "--link", help="also make this symlink to the pty, e.g. /tmp/ttyNODE"),
        uart_link: Path = typer.Option(None, "--uart-link", help="put the node's gateway UART (the frames the "
                                       "running firmware sends) on a second pty and make this symlink to it, "
                                       "e.g. /tmp/ttyNODE-LINK; point a gateway's uart [[bus]] port at it"),
    ) -> None:
        """Run the board until Ctrl-C; then use `dozor firmware flash --port <pty>` or mpremote on it."""
        from simulators.board import BoardError, VirtualBoard

        if not pty:
            fail("only --pty is supported")
        try:
            b = VirtualBoard(flash_dir, link=link, uart_link=uart_link).start()
        except BoardError as e:
            fail(str(e))
        console.print(f"virtual board on {b.port}" + (f" (link {link})" if link else "")
                      + f", filesystem in {b.flash_dir}; Ctrl-C to stop", soft_wrap=True)
        if uart_link:
            console.print(f"node -> gateway UART on {b.uart_port} (link {uart_link}), 115200 8N1", soft_wrap=True)
        try:
            b.wait()
        except KeyboardInterrupt:
            pass
        finally:
            b.stop()
