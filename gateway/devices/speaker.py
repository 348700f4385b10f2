"""Loudspeaker driver: runs the configured player command on an asset pinned by sha256.

The asset is hashed again right before each play; a file that no longer matches its pin (or a command
naming a different hash) is refused with ``asset_mismatch``. ``playing`` once the player process
started, ``done`` when it exits 0; a non-zero exit is ``player_failed``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib

from contract.command import AssetRef
from contract.models import AckStage, DeviceKind, DeviceState, DeviceStatus, Signal
from gateway.config import SpeakerDevice
from gateway.devices.base import Device, register_driver
from gateway.errors import DeviceFailure

STOP_GRACE_S = 2.0


@register_driver
class SpeakerDriver(Device):
    kind = DeviceKind.SPEAKER
    cfg: SpeakerDevice

    def __init__(self, cfg: SpeakerDevice, **kw) -> None:
        super().__init__(cfg, **kw)
        self._proc: asyncio.subprocess.Process | None = None

    def _asset_file(self, signal: Signal, asset: AssetRef | None) -> str:
        pinned = self.cfg.assets.get(signal)
        if pinned is None:
            raise DeviceFailure("no_asset", f"no audio configured for {signal.value}")
        if asset is not None and asset.sha256 != pinned.sha256:
            raise DeviceFailure("asset_mismatch", f"command wants {asset.sha256[:12]}…, pinned {pinned.sha256[:12]}…")
        try:
            digest = hashlib.sha256(pinned.file.read_bytes()).hexdigest()
        except OSError as exc:
            raise DeviceFailure("asset_missing", str(exc)) from None
        if digest != pinned.sha256:
            raise DeviceFailure("asset_mismatch", f"{pinned.file} changed on disk")
        return str(pinned.file)

    async def activate(self, signal: Signal, duration_s: int, alert: str | None,
                       asset: AssetRef | None = None) -> AckStage:
        file = self._asset_file(signal, asset)
        await self.stop()
        argv = [arg.replace("{file}", file) for arg in self.cfg.player]
        try:
            self._proc = await asyncio.create_subprocess_exec(
                *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE)
        except OSError as exc:
            raise DeviceFailure("player_failed", f"{argv[0]}: {exc.strerror or exc}") from None
        return AckStage.PLAYING

    async def wait_finished(self) -> None:
        proc = self._proc
        if proc is None:
            return
        _, err = await proc.communicate()
        if proc.returncode not in (0, None) and self._proc is proc:
            tail = err.decode(errors="replace").strip().splitlines()[-1:] if err else []
            raise DeviceFailure("player_failed", f"exit {proc.returncode}: {' '.join(tail)}"[:200])

    async def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), STOP_GRACE_S)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()

    async def status(self) -> DeviceStatus:
        playing = self._proc is not None and self._proc.returncode is None
        return DeviceStatus(id=self.id, state=DeviceState.PLAYING if playing else DeviceState.IDLE)

    async def close(self) -> None:
        await self.stop()
