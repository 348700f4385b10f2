"""Sensor drivers. Importing this package registers every sensor kind with the driver registry.

Every kind has the same module shape (``_base.py`` explains it): an ``Options`` model for its config
keys, a driver class registered with ``register_driver``, readings and events handed to a sink (the
telemetry pipeline, ``gateway.telemetry.Telemetry``).
"""

from __future__ import annotations

from gateway.devices.sensors import bme280, noise_node, pms5003, sds011
from gateway.devices.sensors._base import I2C, SensorDriver, SensorOptions, SensorSink, UartSensor

__all__ = ["I2C", "SensorDriver", "SensorOptions", "SensorSink", "UartSensor", "bme280", "noise_node", "pms5003",
           "sds011"]
