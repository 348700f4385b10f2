"""Conformance over the one table of device kinds (gateway/devices/kinds.py): every kind the contract knows has a
driver of the same kind and module shape, an options model that refuses unknown keys, and a config entry that
check-config accepts with its smallest options and refuses with a misspelled one."""

from __future__ import annotations

import typing

import pytest
from pydantic import BaseModel

from contract.models import CAPABILITIES, DeviceKind
from gateway.bus import ModbusBus
from gateway.config import BusConfig, SensorDevice, parse_config
from gateway.devices.base import Device, driver_for
from gateway.devices.kinds import KINDS
from gateway.errors import ConfigError
from gateway.uart import UartBus, UartSettings
from tests.gateway.helpers import HUB_KID, HUB_PUB

ALL = sorted(KINDS)


def test_the_table_covers_every_kind_of_the_contract():
    assert set(KINDS) == {k.value for k in DeviceKind}
    sensor_kinds = set(typing.get_args(SensorDevice.model_fields["kind"].annotation))
    assert sensor_kinds | {"siren", "speaker"} == set(KINDS)


def entry(kind: str, **extra) -> str:
    spec = KINDS[kind]
    lines = [f'[[device]]\nid = "dev-1"\nkind = "{kind}"']
    if spec.bus:
        lines.append('bus = "b-1"')
    for k, v in (*spec.example, *extra.items()):
        lines.append(f"{k} = {v!r}".replace("'", '"'))
    bus = f'[[bus]]\nname = "b-1"\nport = "/dev/null"\nkind = "{spec.bus}"\n' if spec.bus else ""
    return (f'[gateway]\nid = "gw-1"\nstate_dir = "s"\n[trust.hub_keys]\n"{HUB_KID}" = "{HUB_PUB}"\n'
            f"{bus}" + "\n".join(lines) + "\n")


@pytest.mark.parametrize("kind", ALL)
def test_driver_has_the_kind_and_module_shape(kind, tmp_path):
    spec = KINDS[kind]
    cls = driver_for(kind)
    assert cls is spec.driver_class() and issubclass(cls, Device) and cls.kind.value == kind
    for method in ("start", "close", "activate", "stop", "status", "silent_test", "info"):
        assert callable(getattr(cls, method)), method
    model = spec.options_model()
    assert issubclass(model, BaseModel) and model.model_config.get("extra") == "forbid"
    cfg = parse_config(entry(kind), file="k.toml", base=tmp_path, check_files=False)
    dcfg = cfg.device[0]
    bus = None
    if spec.bus == "modbus":
        bus = ModbusBus(BusConfig(name="b-1", port="/dev/null"))
    elif spec.bus == "uart":
        bus = UartBus(UartSettings("b-1", "/dev/null"))
    dev = cls(dcfg, bus=bus)
    assert dev.info().kind.value == kind and dev.capabilities == CAPABILITIES[DeviceKind(kind)]
    if bus is not None:
        assert bus.devices == ["dev-1"]  # the driver registered with the bus object that owns the port


@pytest.mark.parametrize("kind", ALL)
def test_a_misspelled_option_is_refused_with_its_line(kind, tmp_path):
    text = entry(kind, bogus_option=1)
    with pytest.raises(ConfigError) as exc:
        parse_config(text, file="k.toml", base=tmp_path, check_files=False)
    (p,) = exc.value.details
    line = text.splitlines().index("bogus_option = 1") + 1
    assert (p.key, p.line) == ("device[0].bogus_option", line) and p.message.startswith("unknown key")


@pytest.mark.parametrize("kind", [k for k in ALL if KINDS[k].bus])
def test_a_bus_kind_mismatch_is_refused(kind, tmp_path):
    other = "uart" if KINDS[kind].bus == "modbus" else "modbus"
    text = entry(kind).replace(f'kind = "{KINDS[kind].bus}"', f'kind = "{other}"')
    with pytest.raises(ConfigError) as exc:
        parse_config(text, file="k.toml", base=tmp_path, check_files=False)
    assert any(p.key == "device[0].bus" and f'needs a bus of kind "{KINDS[kind].bus}"' in p.message
               for p in exc.value.details)


async def test_every_serial_port_is_owned_by_one_bus_object(tmp_path, caplog):
    """UART sensors register with a bus the gateway owns, like sirens on Modbus (once: "16 device(s) on 0 bus(es))."""
    from gateway.app import Gateway

    n = 16
    text = entry("siren").replace('port = "/dev/null"', f'port = "{tmp_path}/rs485"')
    for i in range(n):
        text += (f'[[bus]]\nname = "u-{i}"\nport = "{tmp_path}/tty{i}"\nkind = "uart"\n'
                 f'[[device]]\nid = "dust-{i}"\nkind = "sds011"\nbus = "u-{i}"\n')
    cfg = parse_config(text, file="k.toml", base=tmp_path, check_files=False)
    async with Gateway(cfg) as gw:
        assert len(gw.buses) == n + 1 and len(gw.devices) == n + 1
        for i in range(n):
            bus = gw.buses[f"u-{i}"]
            assert isinstance(bus, UartBus) and bus.devices == [f"dust-{i}"]
            assert gw.devices[f"dust-{i}"].uart is bus
        assert gw.buses["b-1"].devices == ["dev-1"]


def test_a_uart_carries_one_sensor(tmp_path):
    text = entry("sds011") + '[[device]]\nid = "dev-2"\nkind = "pms5003"\nbus = "b-1"\n'
    with pytest.raises(ConfigError) as exc:
        parse_config(text, file="k.toml", base=tmp_path, check_files=False)
    (p,) = exc.value.details
    assert p.key == "device[1].bus" and "carries one sensor" in p.message
