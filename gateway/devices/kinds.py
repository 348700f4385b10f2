"""The one table of device kinds: which driver, which config keys, which bus, which install extra.

It drives three things, so they cannot drift apart:

- ``gateway.config`` validates every ``[[device]]`` entry against its kind's ``options`` model (unknown keys,
  wrong types and out-of-range values are reported with the key's path and line);
- ``gateway.devices.base.driver_for`` imports the kind's ``driver`` module (which registers the class);
- ``tests/gateway/test_device_kinds.py`` runs a conformance test over every kind in it.

``options`` names a pydantic model of the kind's own keys (besides ``id``, ``kind`` and ``bus``). The models
live in modules that import no heavy dependency (``microphone_options`` has no numpy), so `check-config` runs
on a technician's laptop without the DSP installed.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel

from contract.models import DeviceKind


@dataclass(frozen=True)
class KindSpec:
    kind: DeviceKind
    driver: str                                 # "module:Class"
    options: str                                # "module:Model" of the kind's own config keys
    bus: Literal["modbus", "uart"] | None       # the [[bus]] kind it needs (None: no [[bus]])
    extra: str = "gateway"                      # pip extra its driver needs (pip install 'dozor[...]')
    shares_bus: bool = False                    # several devices of this kind on one bus (Modbus unit ids)
    example: tuple[tuple[str, object], ...] = ()  # the smallest valid options (docs and the conformance test)

    def options_model(self) -> type[BaseModel]:
        module, name = self.options.split(":")
        return getattr(importlib.import_module(module), name)

    def driver_class(self) -> type:
        module, name = self.driver.split(":")
        return getattr(importlib.import_module(module), name)


KINDS: dict[str, KindSpec] = {s.kind.value: s for s in (
    KindSpec(DeviceKind.SIREN, "gateway.devices.siren:SirenDriver", "gateway.config:SirenOptions", "modbus",
             shares_bus=True, example=(("address", 1),)),
    KindSpec(DeviceKind.SPEAKER, "gateway.devices.speaker:SpeakerDriver", "gateway.config:SpeakerOptions", None),
    KindSpec(DeviceKind.SDS011, "gateway.devices.sensors.sds011:Sds011Driver",
             "gateway.devices.sensors.sds011:Options", "uart"),
    KindSpec(DeviceKind.PMS5003, "gateway.devices.sensors.pms5003:Pms5003Driver",
             "gateway.devices.sensors.pms5003:Options", "uart"),
    KindSpec(DeviceKind.NOISE_NODE, "gateway.devices.sensors.noise_node:NoiseNodeDriver",
             "gateway.devices.sensors.noise_node:Options", "uart"),
    KindSpec(DeviceKind.BME280, "gateway.devices.sensors.bme280:Bme280Driver",
             "gateway.devices.sensors.bme280:Options", None),
    KindSpec(DeviceKind.MICROPHONE, "gateway.devices.microphone:MicrophoneDriver",
             "gateway.devices.microphone_options:Options", None, extra="microphone",
             example=(("source", "wav"), ("file", "street.wav"))),
)}
