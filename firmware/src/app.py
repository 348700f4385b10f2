# Node application: boot accounting, safe mode, watchdog, link, and the noise or air task.
import asyncio

import bootmgr
import config
import hal
import nodeframe
import version
from health import ERR_CONFIG, ERR_CRASH, ERR_FLASH_INCOMPLETE, ERR_SAFE_MODE, Health

WDT_MS = 30000
STATUS_EVERY_S = 60
SUPERVISE_MS = 1000


class App:
    def __init__(self):
        self.health = Health()
        self.cfg = None
        self.safe = None
        self.boot = None
        self.sender = None
        self.wdt = None
        self.t0 = hal.ticks_ms()

    def uptime_s(self):
        return hal.ticks_diff(hal.ticks_ms(), self.t0) // 1000

    def start(self):
        """Boot accounting and mode decision (synchronous; returns the mode)."""
        self.boot, self.safe = bootmgr.on_boot(hal.reset_cause())
        self.cfg, errors = config.load()
        for e in errors:
            self.health.error(ERR_CONFIG, e)
        if errors and self.safe is None:
            self.safe = "bad config: " + errors[0]
        if bootmgr.flash_incomplete() is not None:
            self.health.error(ERR_FLASH_INCOMPLETE, "the last flash did not finish: run `dozor firmware flash` again")
        if self.safe:
            self.health.error(ERR_SAFE_MODE, "SAFE MODE: " + self.safe)
        baud = self.cfg["uart_baud"] if self.cfg else config.DEFAULTS["uart_baud"]
        self.sender = nodeframe.Sender(hal.link_uart(self.cfg, baud).write)
        return "safe" if self.safe else self.cfg["node"]

    def send_status(self):
        cal = self.cfg["cal_offset_db"] if self.cfg else 0.0
        self.sender.send(nodeframe.STATUS, nodeframe.pack_status(
            self.uptime_s(), version.MAJOR, version.MINOR, self.boot["boots"], cal, self.health.clips,
            self.health.error_bits))

    async def status_loop(self):
        while True:
            self.send_status()
            await asyncio.sleep(STATUS_EVERY_S)

    async def supervise(self, node_task, rounds=None):
        """Feed the watchdog only while the node task makes progress; mark the boot healthy after a while."""
        last = -1
        healthy = False
        while rounds is None or rounds > 0:
            if rounds is not None:
                rounds -= 1
            await asyncio.sleep_ms(SUPERVISE_MS)
            if node_task is not None and node_task.done():
                return  # the task died: stop feeding, the watchdog resets the node
            if node_task is None or self.health.beats != last:
                last = self.health.beats
                if self.wdt is not None:
                    self.wdt.feed()
            if not healthy and hal.ticks_diff(hal.ticks_ms(), self.t0) >= bootmgr.HEALTHY_AFTER_S * 1000:
                if node_task is not None and not self.safe:
                    bootmgr.mark_healthy()
                    healthy = True

    async def guarded(self, coro_fn):
        try:
            await coro_fn(self.cfg, self.sender, self.health)
        except Exception as e:  # report, then let the watchdog restart us; the boot counter remembers
            self.health.error(ERR_CRASH, "node task crashed: %s: %s" % (type(e).__name__, e))
            self.send_status()

    async def main(self, mode):
        self.wdt = hal.watchdog(WDT_MS)
        asyncio.create_task(self.status_loop())
        node_task = None
        if mode == "noise":
            import noise_node
            node_task = asyncio.create_task(self.guarded(noise_node.run))
        elif mode == "air":
            import air_node
            node_task = asyncio.create_task(self.guarded(air_node.run))
        else:
            import selftest
            selftest.main(hardware=False)
        await self.supervise(node_task)


def run():
    if bootmgr.flash_incomplete() is not None:
        # A flash is in progress or was interrupted: stay in the REPL, no watchdog, so the flash tool can
        # finish. `dozor firmware doctor` reports this state.
        print("dozor: flash in progress or interrupted (%s): waiting for `dozor firmware flash`"
              % bootmgr.flash_incomplete())
        return None
    app = App()
    mode = app.start()
    print("dozor %s: starting in %s mode" % (version.VERSION, mode))
    asyncio.run(app.main(mode))
    return app
