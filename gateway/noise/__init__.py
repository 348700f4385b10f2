"""Noise sensing on the gateway: IEC 61672 levels, pass-by events, classification, siren suppression and
signed evidence. Entry point: ``gateway.noise.pipeline.NoiseAnalyzer``."""
