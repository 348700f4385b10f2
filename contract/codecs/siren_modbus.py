"""Modbus RTU register map of a dozor-compatible siren controller (sans-IO).

All registers are holding registers (function codes 3 and 16), unit id = the siren's bus address.

    addr  name            access  meaning
    0     CMD             W       1 = activate, 2 = stop, 3 = silent test (written last in one FC16 block)
    1     PATTERN         W       Pattern code (see Pattern)
    2     DURATION_S      W       Maximum activation in seconds (1..3600); the controller stops by itself
    3     CMD_SEQ         W       Command sequence number (wraps at 65536); echoed in STATUS_SEQ
    10    STATUS          R       0 idle, 1 spinning up, 2 sounding, 3 silent test running, 4 fault
    11    FAULTS          R       bit 0 AC power lost, 1 battery low, 2 amplifier/driver, 3 cabinet door open
    12    BATTERY_DV      R       Battery voltage in decivolts
    13    REMAINING_S     R       Seconds left in the current activation
    14    STATUS_SEQ      R       CMD_SEQ of the last command the controller executed
    15    SELFTEST        R       0 never run, 1 pass, 2 fail (result of the last silent test)
    16    FW_VERSION      R       major * 256 + minor

A write is one FC16 of registers 0..3, so a controller never sees a half-written command.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, IntFlag

from contract.models import DeviceState, Signal

CMD_BLOCK_ADDR = 0
STATUS_BLOCK_ADDR = 10
STATUS_BLOCK_LEN = 7
MAX_DURATION_S = 3600


class Cmd(IntEnum):
    NONE = 0
    ACTIVATE = 1
    STOP = 2
    SILENT_TEST = 3


class Pattern(IntEnum):
    NONE = 0
    WAIL = 1  # air raid: rising/falling tone
    STEADY = 2  # all-clear: continuous tone
    HI_LO = 3  # chemical
    PULSED = 4  # radiation
    ALERT = 5  # audible test


SIGNAL_PATTERN: dict[Signal, Pattern] = {
    Signal.AIR_RAID: Pattern.WAIL,
    Signal.ALL_CLEAR: Pattern.STEADY,
    Signal.CHEMICAL: Pattern.HI_LO,
    Signal.RADIATION: Pattern.PULSED,
    Signal.TEST: Pattern.ALERT,
}


class Status(IntEnum):
    IDLE = 0
    SPINNING_UP = 1
    SOUNDING = 2
    SILENT_TEST = 3
    FAULT = 4


class Fault(IntFlag):
    AC_POWER = 1
    BATTERY_LOW = 2
    AMPLIFIER = 4
    DOOR_OPEN = 8


FAULT_NAMES = {Fault.AC_POWER: "ac_power", Fault.BATTERY_LOW: "battery_low",
               Fault.AMPLIFIER: "amplifier", Fault.DOOR_OPEN: "door_open"}

STATUS_STATE = {Status.IDLE: DeviceState.IDLE, Status.SPINNING_UP: DeviceState.SPINNING_UP,
                Status.SOUNDING: DeviceState.SOUNDING, Status.SILENT_TEST: DeviceState.SILENT_TEST,
                Status.FAULT: DeviceState.FAULT}


def encode_command(cmd: Cmd, *, pattern: Pattern = Pattern.NONE, duration_s: int = 0, seq: int = 0
                   ) -> tuple[int, list[int]]:
    """Return (start address, register values) for one FC16 write."""
    if cmd is Cmd.ACTIVATE:
        if pattern is Pattern.NONE:
            raise ValueError("activate needs a pattern")
        if not 1 <= duration_s <= MAX_DURATION_S:
            raise ValueError(f"duration_s must be 1..{MAX_DURATION_S}")
    return CMD_BLOCK_ADDR, [int(cmd), int(pattern), int(duration_s), seq & 0xFFFF]


@dataclass(frozen=True, slots=True)
class CommandBlock:
    cmd: Cmd
    pattern: Pattern
    duration_s: int
    seq: int


def decode_command(values: list[int]) -> CommandBlock:
    """The controller's side: parse registers 0..3. Raises ValueError for unknown codes."""
    if len(values) != 4:
        raise ValueError("command block is 4 registers")
    return CommandBlock(Cmd(values[0]), Pattern(values[1]), int(values[2]), int(values[3]))


@dataclass(frozen=True, slots=True)
class SirenStatus:
    status: Status
    faults: Fault
    battery_v: float
    remaining_s: int
    seq: int
    selftest: int
    fw: str

    @property
    def state(self) -> DeviceState:
        return STATUS_STATE[self.status]

    @property
    def fault_names(self) -> tuple[str, ...]:
        return tuple(name for bit, name in FAULT_NAMES.items() if self.faults & bit)


def decode_status(values: list[int]) -> SirenStatus:
    if len(values) != STATUS_BLOCK_LEN:
        raise ValueError(f"status block is {STATUS_BLOCK_LEN} registers")
    return SirenStatus(
        status=Status(values[0]),
        faults=Fault(values[1] & 0xF),
        battery_v=values[2] / 10.0,
        remaining_s=values[3],
        seq=values[4],
        selftest=values[5],
        fw=f"{values[6] >> 8}.{values[6] & 0xFF}",
    )


def encode_status(s: SirenStatus) -> list[int]:
    """The controller's side: registers 10..16."""
    major, minor = (int(x) for x in s.fw.split(".")[:2])
    return [int(s.status), int(s.faults), round(s.battery_v * 10), s.remaining_s, s.seq & 0xFFFF,
            s.selftest, (major << 8) | minor]
