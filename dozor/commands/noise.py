"""`dozor noise ...`: offline analysis of recordings (the violations register and review come later)."""

from __future__ import annotations

from pathlib import Path

import typer

from dozor.commands._common import JsonOpt, console, emit_json, fail

noise_app = typer.Typer(no_args_is_help=True, help="Noise levels, pass-by events and loud-exhaust evidence")


def analyze_file(path: Path, *, distance_m: float, full_scale_db: float, calibration_offset_db: float,
                 candidate_db: float, enforcement_db: float, uncertainty_db: float,
                 zone_active: list[tuple[float, float]], evidence: bool, key_seed: str | None) -> dict:
    """Library-level body of `dozor noise analyze` (also used by tests)."""
    from contract.command import private_key_from_seed_b64
    from gateway.noise.detector import DetectorConfig
    from gateway.noise.dsp import MeterConfig
    from gateway.noise.pipeline import AnalyzerConfig, NoiseAnalyzer
    from gateway.noise.sources import wav_source

    fmt, blocks = wav_source(path)
    key = private_key_from_seed_b64(key_seed) if key_seed else None
    cfg = AnalyzerConfig(
        meter=MeterConfig(fs=fmt.fs, full_scale_db=full_scale_db, calibration_offset_db=calibration_offset_db),
        detector=DetectorConfig(distance_m=distance_m, candidate_db=candidate_db, enforcement_db=enforcement_db,
                                uncertainty_db=uncertainty_db),
        sensor="wav", sensor_kind="wav",
    )
    an = NoiseAnalyzer(cfg, key=key)
    for a, b in zone_active:
        an.suppressor.add_zone_interval(a, b)
    seconds, events = [], []
    for x in blocks:
        r = an.feed(x)
        seconds += r.seconds
        events += r.events
    events += an.close().events
    out_events = []
    for e in events:
        row = {"id": e.id, "start": e.start, "end": e.end, "peak": e.peak, "lafmax": e.levels.lafmax,
               "lafmax_7p5": e.levels.lafmax_7p5, "laeq": e.levels.laeq, "sel": e.levels.sel,
               "lcpeak": e.levels.lcpeak, "class": e.klass, "scores": e.scores, "suppressed": e.suppressed,
               "suppression": list(e.suppression), "candidate": e.candidate, "enforcement": e.enforcement,
               "flags": list(e.flags)}
        if evidence:
            row["evidence"] = e.to_data()
        out_events.append(row)
    return {
        "file": str(path), "fs": fmt.fs, "channels": fmt.channels, "bits": fmt.bits,
        "duration_s": round(an.meter.samples_in / fmt.fs, 3), "distance_m": distance_m,
        "seconds": [s.as_dict() for s in seconds], "events": out_events,
        "counters": {**{f"detector_{k}": v for k, v in an.detector.counters.items()}, **dict(an.counters),
                     "clipped_samples": an.meter.clipped_total},
    }


def _zone(spec: str) -> tuple[float, float]:
    try:
        a, b = (float(v) for v in spec.split(":"))
    except ValueError:
        raise typer.BadParameter(f"{spec!r}: expected START:END in seconds, e.g. 12.5:40") from None
    if not 0 <= a < b:
        raise typer.BadParameter(f"{spec!r}: need 0 <= START < END")
    return a, b


def register(app: typer.Typer) -> None:
    app.add_typer(noise_app, name="noise")


@noise_app.command("analyze")
def analyze(
    file: Path = typer.Argument(..., help="WAV file (PCM 8/16/24/32-bit or float; channel 1 is used)"),
    distance_m: float = typer.Option(7.5, "--distance-m", min=0.5, max=100, help="microphone to lane centre, m"),
    full_scale_db: float = typer.Option(120.0, "--full-scale-db", help="dB SPL of a digital full-scale sine"),
    calibration_offset_db: float = typer.Option(0.0, "--calibration-offset-db", min=-20, max=20),
    candidate_db: float = typer.Option(85.0, "--candidate-db", help="candidate threshold at 7.5 m"),
    enforcement_db: float = typer.Option(95.0, "--enforcement-db", help="enforcement threshold at 7.5 m"),
    uncertainty_db: float = typer.Option(2.0, "--uncertainty-db", min=0, max=10),
    zone_active: list[str] = typer.Option([], "--siren-active", help="START:END seconds when the hub said "
                                          "sirens were sounding (repeatable)"),
    evidence: bool = typer.Option(False, "--evidence", help="include the full evidence record of each event"),
    key_file: Path = typer.Option(None, "--key", help="sign evidence with this Ed25519 seed (base64url file)"),
    as_json: bool = JsonOpt,
) -> None:
    """Per-second levels (LAeq, LAFmax, LAS) and pass-by events of a recording."""
    from gateway.noise.errors import NoiseError

    zones = [_zone(z) for z in zone_active]
    seed = None
    if key_file is not None:
        try:
            seed = key_file.read_text().strip()
        except OSError as exc:
            fail(f"{key_file}: cannot read key ({exc.strerror})", as_json=as_json)
    try:
        result = analyze_file(file, distance_m=distance_m, full_scale_db=full_scale_db,
                              calibration_offset_db=calibration_offset_db, candidate_db=candidate_db,
                              enforcement_db=enforcement_db, uncertainty_db=uncertainty_db, zone_active=zones,
                              evidence=evidence, key_seed=seed)
    except (NoiseError, ValueError) as exc:
        fail(str(exc), as_json=as_json, code=2)
    if as_json:
        emit_json(result)
        return
    from rich.table import Table

    console.print(f"{result['file']}: {result['duration_s']} s at {result['fs']} Hz, "
                  f"{len(result['seconds'])} seconds, {len(result['events'])} event(s)")
    t = Table("start", "end", "LAFmax", "@7.5 m", "SEL", "class", "suppressed", "enforcement")
    for e in result["events"]:
        t.add_row(f"{e['start']:.1f}", f"{e['end']:.1f}", f"{e['lafmax']:.1f}", f"{e['lafmax_7p5']:.1f}",
                  f"{e['sel']:.1f}", e["class"], ",".join(e["suppression"]) or "-", "yes" if e["enforcement"] else "")
    console.print(t)
