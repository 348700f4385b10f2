"""`dozor firmware build | flash | doctor`: field-node firmware for technicians (thin layer over firmware.tools)."""

from __future__ import annotations

from pathlib import Path

import typer

from dozor.commands._common import JsonOpt, console, emit_json, fail

NodeOpt = typer.Option(..., "--node", help="node kind: noise or air")
PortOpt = typer.Option(..., "--port", help="serial port of the node, e.g. /dev/ttyUSB0")


def register(app: typer.Typer) -> None:
    fw = typer.Typer(no_args_is_help=True, help="Field nodes: build, flash, provision and check firmware")
    app.add_typer(fw, name="firmware")

    @fw.command("build")
    def build_cmd(
        node: str = NodeOpt,
        out: Path = typer.Option(None, "--out", help="build folder [default: build/firmware-NODE]"),
        as_json: bool = JsonOpt,
    ) -> None:
        """Compile the node firmware with mpy-cross into a build folder with a sha256 manifest."""
        from firmware.tools.build import build
        from firmware.tools.errors import FirmwareError

        try:
            b = build(node, out or Path("build") / f"firmware-{node}")
        except FirmwareError as e:
            fail(str(e), as_json=as_json)
        if as_json:
            emit_json({"node": b.node, "folder": str(b.folder), "manifest": b.manifest})
            return
        console.print(f"built {b.node} firmware {b.version}: {len(b.files)} files in {b.folder}")

    @fw.command("flash")
    def flash_cmd(
        port: str = PortOpt,
        node: str = NodeOpt,
        device_id: str = typer.Option(..., "--id", help="node id, e.g. N-017"),
        zone: str = typer.Option(..., "--zone", help="zone the node belongs to"),
        key: str = typer.Option(None, "--key", help="64 hex digits; generated when left out"),
        cal_offset: float = typer.Option(0.0, "--cal-offset", help="microphone calibration offset, dB"),
        image: Path = typer.Option(None, "--micropython-image", help="MicroPython .bin to write with esptool"),
        build_dir: Path = typer.Option(None, "--build", help="use/create this build folder"),
        start: bool = typer.Option(True, "--start/--no-start", help="reset into the application at the end"),
        timeout: float = typer.Option(5.0, "--timeout", min=0.5, max=120.0, help="seconds to wait for a prompt"),
        as_json: bool = JsonOpt,
    ) -> None:
        """Write MicroPython (optional), copy the build, write the config, verify hashes, run the self-test."""
        from firmware.tools.errors import FirmwareError
        from firmware.tools.flash import flash

        def progress(msg: str) -> None:
            if not as_json:
                console.print(f"  {msg}")

        try:
            r = flash(port, node, device_id, zone, key=key, cal_offset_db=cal_offset, image=image,
                      build_dir=build_dir, start=start, connect_timeout_s=timeout, progress=progress)
        except FirmwareError as e:
            where = f" (step: {e.step})" if e.step else ""
            fail(f"FLASH FAILED{where}: {e}", as_json=as_json, code=e.exit_code)
        if as_json:
            emit_json(r.public())
            return
        console.print(f"OK: {r.device_id} ({r.node} node, firmware {r.version}) in zone {r.zone} is flashed, "
                      f"verified and passed its self-test")

    @fw.command("doctor")
    def doctor_cmd(
        port: str = PortOpt,
        timeout: float = typer.Option(5.0, "--timeout", min=0.5, max=120.0, help="seconds to wait for a prompt"),
        as_json: bool = JsonOpt,
    ) -> None:
        """Version, config and self-test of the node on PORT, in plain words."""
        from firmware.tools.doctor import doctor, render
        from firmware.tools.errors import FirmwareError

        try:
            r = doctor(port, connect_timeout_s=timeout)
        except FirmwareError as e:
            fail(str(e), as_json=as_json, code=e.exit_code)
        if as_json:
            emit_json(r.__dict__)
        else:
            console.print(render(r))
        if not r.ok:
            raise typer.Exit(1)
