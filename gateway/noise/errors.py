"""Errors of the noise subsystem. All derive from NoiseError, itself a GatewayError (so a DozorError).
Evidence errors belong to the contract: contract.evidence.EvidenceError."""

from __future__ import annotations

from gateway.errors import GatewayError


class NoiseError(GatewayError):
    """Root of every error gateway.noise raises on purpose."""


class ConfigError(NoiseError):
    """A noise configuration value is out of range (a technician-readable message)."""


class WavError(NoiseError):
    """A WAV file is truncated, malformed or in an unsupported format."""


class FrameError(NoiseError):
    """A noise-node UART frame is malformed (bad length, CRC or field)."""


class SampleError(NoiseError):
    """Audio samples are unusable (NaN, infinity, wrong shape)."""
