"""`dozor firmware build | flash | doctor | nodes`: field-node firmware for technicians (thin layer over
firmware.tools and the hub client).

`flash --hub URL` (or DOZOR_HUB_URL) registers the node with the hub after a good flash and self-test: id, kind,
zone, --lat/--lon, the SHA-256 of its key (never the key) and the firmware version. A registration failure
after a good flash exits with EXIT_NOT_REGISTERED (6), so scripts can tell "node fine, hub missed it" from a
failed flash (1-5, see firmware/tools/errors.py).
"""

from __future__ import annotations

from pathlib import Path

import typer

from dozor.commands._common import HubOpt, JsonOpt, TokenOpt, client, console, emit_json, err_console, fail

NodeOpt = typer.Option(..., "--node", help="node kind: noise or air")
PortOpt = typer.Option(..., "--port", help="serial port of the node, e.g. /dev/ttyUSB0")
EXIT_NOT_REGISTERED = 6


def provisioner() -> str:
    import getpass
    import socket

    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no user name in a bare container
        user = "unknown"
    return f"{user}@{socket.gethostname()}"[:128]


def register_flashed(r, hub: str, token: str | None, lat: float | None, lon: float | None) -> dict:
    """Record a flashed node with the hub; raises HubClientError."""
    import hashlib

    from hub.models import NodeRegistration

    reg = NodeRegistration(id=r.device_id, kind=r.node, zone=r.zone, lat=lat, lon=lon,
                           key_sha256=hashlib.sha256(bytes.fromhex(r.key)).hexdigest(), fw=r.version,
                           provisioned_by=provisioner())
    with client(hub, token) as c:
        return c.register_node(reg).model_dump()


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
        lat: float = typer.Option(None, "--lat", min=-90.0, max=90.0, help="where the node is mounted (degrees)"),
        lon: float = typer.Option(None, "--lon", min=-180.0, max=180.0, help="where the node is mounted (degrees)"),
        hub: str = typer.Option(None, "--hub", envvar="DOZOR_HUB_URL",
                                help="register the node with this hub after the flash, e.g. http://hub:8080"),
        token: str = TokenOpt,
        as_json: bool = JsonOpt,
    ) -> None:
        """Write MicroPython (optional), copy the build, write the config, verify hashes, run the self-test;
        with --hub, then register the node with the hub."""
        from dozor.client import HubClientError
        from firmware.tools.errors import FirmwareError
        from firmware.tools.flash import flash

        if (lat is None) != (lon is None):
            fail("give both --lat and --lon, or neither", as_json=as_json)

        def progress(msg: str) -> None:
            if not as_json:
                console.print(f"  {msg}")

        try:
            r = flash(port, node, device_id, zone, key=key, cal_offset_db=cal_offset, image=image,
                      build_dir=build_dir, start=start, connect_timeout_s=timeout, progress=progress)
        except FirmwareError as e:
            where = f" (step: {e.step})" if e.step else ""
            fail(f"FLASH FAILED{where}: {e}", as_json=as_json, code=e.exit_code)
        flashed = (f"{r.device_id} ({r.node} node, firmware {r.version}) in zone {r.zone} is flashed, verified "
                   "and passed its self-test")
        doc = r.public()
        if hub:
            try:
                doc["hub"] = register_flashed(r, hub, token, lat, lon)
            except HubClientError as e:
                msg = (f"node flashed and checked, but the hub did not record it: {e}. The node is fine; "
                       f"register it later by running the same flash command with --hub when the hub is reachable")
                if as_json:
                    emit_json({**doc, "error": msg})
                else:
                    console.print(f"OK: {flashed}")
                    err_console.print(f"[bold red]error:[/] {msg}")
                raise typer.Exit(EXIT_NOT_REGISTERED) from None
        if as_json:
            emit_json(doc)
            return
        console.print(f"OK: {flashed}" + (f"; registered with the hub at {hub}" if hub else ""))

    @fw.command("nodes")
    def nodes_cmd(
        outdated: bool = typer.Option(False, "--outdated", help="only nodes whose firmware is out of date"),
        hub: str = HubOpt,
        token: str = TokenOpt,
        as_json: bool = JsonOpt,
    ) -> None:
        """Field nodes the hub knows: provisioned ones and those its gateways report, with their firmware."""
        from dozor.client import HubClientError

        try:
            with client(hub, token) as c:
                rows = c.nodes(outdated=outdated)
        except HubClientError as e:
            fail(str(e), as_json=as_json)
        if as_json:
            emit_json([n.model_dump() for n in rows])
            return
        if not rows:
            console.print("no out-of-date nodes" if outdated else "no nodes known to the hub")
            return
        for n in rows:
            where = f"on {n.gateway}" if n.gateway else "never reported by a gateway"
            boots = "" if n.boot_count is None else f", {n.boot_count} boots, errors {n.error_bits:#06x}"
            flag = " OUT OF DATE" if n.outdated else ""
            flag += " (not registered: provision it with `dozor firmware flash --hub`)" if n.provisioned_at is None else ""
            console.print(f"{n.id:<12} {n.kind or '?':<5} zone {n.zone or '?':<10} fw {n.fw or '-'} "
                          f"(reports {n.reported_fw or '-'}) {where}, {n.state or 'state unknown'}{boots}{flag}")
        if rows and rows[0].current_version:
            console.print(f"current firmware: {rows[0].current_version}")

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
