# Noise node: I2S samples -> LevelMeter -> LEVELS frame every second, EVENT frame per threshold crossing.
from array import array

import hal
import levels
import nodeframe

BLOCK = 2400  # 50 ms at 48 kHz


def make_meter(cfg):
    return levels.LevelMeter(eq=cfg["mic"], cal_offset_db=cfg["cal_offset_db"], threshold_db=cfg["threshold_db"])


def publish(meter, sender, uptime_s, health):
    for s in meter.take_seconds():
        health.clips += s["clips"]
        sender.send(nodeframe.LEVELS, nodeframe.pack_levels(uptime_s, s["laeq"], s["lafmax"], s["la10"],
                                                            s["la90"], clipped=s["clips"] > 0))
    for e in meter.take_events():
        sender.send(nodeframe.EVENT, nodeframe.pack_event(e["start_ms"], e["duration_ms"], e["lafmax"],
                                                          e["laeq"], e["sel"], 0, clipped=e["clipped"]))


async def run(cfg, sender, health):
    mic = hal.Mic(cfg)
    meter = make_meter(cfg)
    raw = array("i", bytes(4 * BLOCK))
    buf = array("f", bytes(4 * BLOCK))
    t0 = hal.ticks_ms()
    while True:
        nbytes = await mic.readinto(raw)
        k = nbytes // 4
        if k <= 0:
            health.error(0x0004, "microphone returned no samples: check the I2S wiring")
            continue
        clips = levels.i32_to_float(raw, buf, k)
        meter.feed(buf, k, clips)
        publish(meter, sender, hal.ticks_diff(hal.ticks_ms(), t0) // 1000, health)
        health.beat()
