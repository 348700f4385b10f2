"""Technician tooling for dozor field nodes: build (mpy-cross), flash (esptool + mpremote), doctor.

CPython only; imports nothing from gateway/hub/simulators. Every failure is a ``FirmwareError`` whose
message says what happened and what to do, in words for a technician on a ladder.
"""
