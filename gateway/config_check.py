"""Every mistake in a gateway config at once: pydantic's findings turned into sentences, each device's options
checked against its kind in the device-kind table, and the cross-checks between buses and devices.

Works on the raw TOML data, so one broken section never hides the mistakes in another.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from gateway.devices.kinds import KINDS, KindSpec
from runtime.configcheck import Problem, locate, sentence, vocabulary

COMMON_DEVICE_KEYS = ("id", "kind", "bus")


def _key(loc: list[Any]) -> str:
    out = ""
    for i, part in enumerate(loc):
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in KINDS and i > 0 and isinstance(loc[i - 1], int) and loc[0] == "device":
            continue  # pydantic's discriminated-union tag, not a key the technician wrote
        else:
            out += f".{part}" if out else str(part)
    return out


def model_problems(exc: ValidationError, *, file: str, index: dict[str, int], words: set[str]) -> list[Problem]:
    out = []
    for err in exc.errors():
        loc = list(err["loc"])
        if not loc:
            continue  # a cross-check of the whole config: ``device_problems`` reports those with their keys
        if err["type"] == "union_tag_invalid":
            msg = f"kind must be one of: {', '.join(KINDS)} (got {err.get('input', {}).get('kind')!r})" \
                if isinstance(err.get("input"), dict) else sentence(err, words)
            key = _key(loc) + ".kind"
        else:
            msg, key = sentence(err, words), _key(loc)
        out.append(Problem(file, key, msg, locate(index, key)))
    return out


def _options_problems(spec: KindSpec, dev: dict, i: int, file: str, index: dict[str, int]) -> list[Problem]:
    model = spec.options_model()
    opts = {k: v for k, v in dev.items() if k not in COMMON_DEVICE_KEYS}
    try:
        model.model_validate(opts)
    except ValidationError as exc:
        words = vocabulary(model) | set(COMMON_DEVICE_KEYS)
        out = []
        for err in exc.errors():
            key = _key(["device", i, *err["loc"]])
            msg = sentence(err, words)
            if err["type"] == "extra_forbidden":
                msg = f"{msg}; a {spec.kind.value} takes: {', '.join(sorted(model.model_fields))}"
            out.append(Problem(file, key, msg, locate(index, key)))
        return out
    return []


def device_problems(data: dict[str, Any], *, file: str, index: dict[str, int]) -> list[Problem]:
    """Per-device options (the kind's model in the table) and the bus/device cross-checks."""
    out: list[Problem] = []

    def add(key: str, msg: str) -> None:
        out.append(Problem(file, key, msg, locate(index, key)))

    buses = data.get("bus") if isinstance(data.get("bus"), list) else []
    devices = data.get("device") if isinstance(data.get("device"), list) else []
    bus_kind: dict[str, str] = {}
    for i, b in enumerate(buses):
        if isinstance(b, dict) and isinstance(b.get("name"), str):
            if b["name"] in bus_kind:
                add(f"bus[{i}].name", f"bus name {b['name']!r} is used twice; each [[bus]] needs its own name")
            bus_kind[b["name"]] = b.get("kind", "modbus")
    seen_ids: dict[str, int] = {}
    on_bus: dict[str, list[str]] = {}
    addresses: dict[tuple[str, object], str] = {}
    for i, dev in enumerate(devices):
        if not isinstance(dev, dict):
            continue
        did, kind, bus = dev.get("id"), dev.get("kind"), dev.get("bus")
        if isinstance(did, str):
            if did in seen_ids:
                add(f"device[{i}].id", f"device ids must be unique; repeated: {did} (also device[{seen_ids[did]}])")
            seen_ids.setdefault(did, i)
        spec = KINDS.get(kind) if isinstance(kind, str) else None
        if spec is None:
            continue  # an unknown kind is reported by the model check
        out += _options_problems(spec, dev, i, file, index)
        if spec.bus is None:
            if bus is not None and kind != "microphone" and kind != "bme280":
                add(f"device[{i}].bus", f"a {kind} is not connected through a [[bus]]; remove this key")
            continue
        if bus is None:
            add(f"device[{i}].bus", f'required key is missing: the name of the [[bus]] (kind "{spec.bus}") '
                                    f"the {kind} is wired to")
            continue
        if not isinstance(bus, str):
            continue
        if bus not in bus_kind:
            add(f"device[{i}].bus", f"device {did!r}: bus {bus!r} is not defined; defined buses: "
                                    f"{', '.join(bus_kind) or '(none)'}")
            continue
        if bus_kind[bus] != spec.bus:
            add(f"device[{i}].bus", f'a {kind} needs a bus of kind "{spec.bus}", but bus {bus!r} is of kind '
                                    f'"{bus_kind[bus]}"')
        if not spec.shares_bus and on_bus.get(bus):
            add(f"device[{i}].bus", f"bus {bus!r} already carries {on_bus[bus][0]!r}; a UART port carries "
                                    "one sensor: give this one its own [[bus]]")
        on_bus.setdefault(bus, []).append(str(did))
        if kind == "siren" and "address" in dev:
            if (bus, dev["address"]) in addresses:
                add(f"device[{i}].address", f"device {did!r}: address {dev['address']} is already used on bus "
                                            f"{bus!r} (by {addresses[(bus, dev['address'])]!r})")
            addresses.setdefault((bus, dev["address"]), str(did))
    return out


def dedupe(problems: list[Problem]) -> list[Problem]:
    """One problem per key and kind of mistake (the kind-table check and the model may both find one; the
    first, from the kind table, names the keys the kind takes)."""
    seen, out = set(), []
    for p in problems:
        gist = (p.key, p.message.split(" (")[0].split(";")[0])
        if gist not in seen:
            seen.add(gist)
            out.append(p)
    return sorted(out, key=lambda p: (p.line or 0, p.key))
