"""`dozor sim noise-node --pty PATH` in its own process; the gateway driver reads it through PATH."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

from gateway.devices.sensors.noise_node import NoiseNodeDriver
from tests.sensors.helpers import Sink, device, uart_bus, wait_until

ROOT = Path(__file__).resolve().parents[2]


async def test_sim_noise_node_command_over_its_own_pty(tmp_path):
    tty = tmp_path / "tty-noise"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "from dozor.cli import main; main()", "sim", "noise-node", "--pty", str(tty),
        "--period", "0.02", "--garbage-every", "0.05", "--seed", "3", cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, env={**os.environ, "COLUMNS": "200"})
    sink = Sink()
    try:
        await wait_until(tty.exists, "the command made the cable", timeout=20)
        drv = NoiseNodeDriver(device("noise_node", dev_id="noise-1"), bus=uart_bus(tty, 115200), sink=sink)
        await drv.start()
        try:
            await wait_until(lambda: len(sink.readings) >= 5 and drv.stats["resync_bytes"] > 0, "levels and noise")
        finally:
            await drv.close()
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        out, _ = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 0, out.decode()
    assert "sent_levels" in out.decode()
    assert not tty.exists(), "the cable is removed on exit"
    assert all(set(r.metrics) == {"laeq", "lafmax", "la10", "la90"} for r in sink.readings)
