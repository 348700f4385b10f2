"""`dozor sim noise-scene`: a street noise scene as WAV plus ground-truth labels."""

from __future__ import annotations

from pathlib import Path

import typer

from dozor.commands._common import console, fail
from dozor.commands._sim import sim_app


def register(app: typer.Typer) -> None:
    sim = sim_app(app)

    @sim.command("noise-scene")
    def noise_scene(
        seed: int = typer.Option(0, "--seed", help="scene seed (same seed, same scene)"),
        out: Path = typer.Option(..., "--out", help="WAV file to write (mono, 48 kHz)"),
        labels: Path = typer.Option(None, "--labels", help="JSON file for the ground-truth labels"),
        duration: float = typer.Option(40.0, "--duration", min=5.0, max=600.0, help="seconds"),
        distance_m: float = typer.Option(None, "--distance-m", min=2.0, max=50.0,
                                         help="microphone to lane (default: random 3..15 m)"),
        bits: int = typer.Option(16, "--bits", help="16 (PCM) or 32 (float)"),
    ) -> None:
        """Traffic, legal and loud-exhaust vehicles, horns, sirens, rain or wind, with labels."""
        from simulators.noise_scene import generate, write_scene

        if bits not in (16, 32):
            fail("--bits must be 16 or 32")
        scene = generate(seed, duration_s=duration, distance_m=distance_m)
        try:
            write_scene(scene, out, labels, bits=bits)
        except OSError as exc:
            fail(f"cannot write: {exc}")
        kinds = [s["kind"] for s in scene.sources]
        console.print(f"wrote {out} ({duration} s, distance {scene.labels['distance_m']} m): {', '.join(kinds)}")
