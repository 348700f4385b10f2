"""Alert policies as data, pure (no I/O): who must confirm what (two-person rule), and which alert holds a
siren when two alerts overlap. The engine applies them; docs/operations.md shows both as tables.

Overlap: every device is held by at most one alert at a time (its *holder*). A new alert may take a device
over only if it *outranks* the holder:

1. An Actual outranks every Exercise; an Exercise never outranks an Actual.
2. Within the same mode, a higher signal rank wins (``RANK``); equal or lower is refused, naming the
   alerts it would affect.
3. A holder in its all-clear or stop phase ranks 0 in its mode: any new alert of the same mode (or an
   Actual over an Exercise) takes those sirens over.

Devices taken over are *superseded* in the old alert: it never sends to them again (not even a stop), so
a siren never gets commands from two alerts at once. They do not return to the old alert afterwards.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from contract.models import Mode, Signal
from hub.alerts.lifecycle import Phase

# Higher takes over lower. Chemical and radiation outrank an air raid: they change what people must do
# (seal a room / stay indoors rather than go underground).
RANK: dict[Signal, int] = {Signal.RADIATION: 5, Signal.CHEMICAL: 4, Signal.AIR_RAID: 3, Signal.TEST: 2,
                           Signal.SILENT_TEST: 1, Signal.ALL_CLEAR: 0}
MODE_RANK = {Mode.EXERCISE: 0, Mode.ACTUAL: 1}



@dataclass(frozen=True, slots=True)
class Holding:
    """What an alert is doing with its sirens right now, as far as precedence is concerned."""

    alert: str
    mode: Mode
    signal: Signal
    phase: Phase

    @property
    def rank(self) -> tuple[int, int]:
        sig = 0 if self.phase is not Phase.ACTIVATE else RANK[self.signal]
        return MODE_RANK[self.mode], sig


def outranks(mode: Mode, signal: Signal, holder: Holding) -> bool:
    """True when a new alert (``mode``, ``signal``) may take over the sirens ``holder`` holds."""
    return (MODE_RANK[mode], RANK[signal]) > holder.rank


def needs_second_person(mode: Mode, signal: Signal, actual: Iterable[Signal], exercise: Iterable[Signal]) -> bool:
    return signal in (set(actual) if mode is Mode.ACTUAL else set(exercise))


def describe(h: Holding, zones: Iterable[str]) -> str:
    what = h.signal.value if h.phase is Phase.ACTIVATE else f"{h.signal.value} ({h.phase.value.replace('_', '-')})"
    return f"{h.alert} ({h.mode.value} {what} in {', '.join(zones)})"
