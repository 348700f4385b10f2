"""`dozor noise ...`: offline analysis of recordings, and the hub's violations register.

    dozor noise analyze rec.wav                       levels and pass-by events of a recording
    dozor noise train --scenes 400 --seed 1           rebuild the classifier model (see noise_train.py)
    dozor noise events --since 24h [--zone Z] [--min-level 90] [--state candidate]
    dozor noise show ID                               one event: evidence, signature, audit trail
    dozor noise review ID --confirm|--dismiss --note "..." [--reviewer NAME]
    dozor noise report --month 2026-11
    dozor noise export --format csv|geojson [--out FILE] [filters as for events]
"""

from __future__ import annotations

from pathlib import Path

import typer

from dozor.commands._common import HubOpt, JsonOpt, TokenOpt, client, console, emit_json, fail

noise_app = typer.Typer(no_args_is_help=True, help="Noise levels, pass-by events and loud-exhaust evidence")


def analyze_file(path: Path, *, distance_m: float, full_scale_db: float, calibration_offset_db: float,
                 candidate_db: float, enforcement_db: float, uncertainty_db: float,
                 zone_active: list[tuple[float, float]], evidence: bool, key_seed: str | None,
                 mic_height_m: float | None = None) -> dict:
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
                                uncertainty_db=uncertainty_db, mic_height_m=mic_height_m),
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
               "lcpeak": e.levels.lcpeak, "class": e.klass, "scores": e.scores,
               "enforcement_score": e.enforcement_score, "suppressed": e.suppressed,
               "suppression": list(e.suppression), "candidate": e.candidate, "enforcement": e.enforcement,
               "flags": list(e.flags), "enforceable": e.enforcement,
               "model": e.model.version if e.model else None,
               "overload": e.overload.model_dump() if e.overload else None,
               "margin_db": e.uncertainty.margin_db if e.uncertainty else None,
               "pass_by": e.pass_by.model_dump() if e.pass_by else None,
               "absorbed_cases": [c.model_dump() for c in e.absorbed_cases or ()]}
        if evidence:
            row["evidence"] = e.to_data()
        out_events.append(row)
    return {
        "file": str(path), "fs": fmt.fs, "channels": fmt.channels, "bits": fmt.bits,
        "duration_s": round(an.meter.samples_in / fmt.fs, 3), "distance_m": distance_m, "mic_height_m": mic_height_m,
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
    from dozor.commands import noise_train

    noise_train.register(noise_app)
    app.add_typer(noise_app, name="noise")


@noise_app.command("analyze")
def analyze(
    file: Path = typer.Argument(..., help="WAV file (PCM 8/16/24/32-bit or float; channel 1 is used)"),
    distance_m: float = typer.Option(7.5, "--distance-m", min=0.5, max=100, help="microphone to lane centre, m"),
    full_scale_db: float = typer.Option(120.0, "--full-scale-db", help="dB SPL of a digital full-scale sine"),
    mic_height_m: float = typer.Option(None, "--mic-height-m", min=0, max=30, help="microphone above the road, m: "
                                       "levels at 7.5 m then use slant distances from the tailpipe"),
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
                              evidence=evidence, key_seed=seed, mic_height_m=mic_height_m)
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


# ------------------------------------------------------------------ the violations register (hub API)
SinceOpt = typer.Option("24h", "--since", help="events from: a duration ago (24h, 30m, 7d), epoch seconds or ISO "
                        "8601 (2026-11-24T18:00Z)")
UntilOpt = typer.Option(None, "--until", help="events before this time (same forms as --since)")
ZoneOpt = typer.Option(None, "--zone", "-z", help="only events of gateways in this zone")
MinLevelOpt = typer.Option(None, "--min-level", min=0, max=200, help="only events with LAFmax at 7.5 m >= this, dB")
StateOpt = typer.Option(None, "--state", help="candidate, confirmed or dismissed")
GatewayOpt = typer.Option(None, "--gateway", help="only events of this gateway")
LimitOpt = typer.Option(1000, "--limit", min=1, max=100_000, help="at most this many events")
STATES = ("candidate", "confirmed", "dismissed")
STATE_STYLE = {"candidate": "yellow", "confirmed": "bold red", "dismissed": "dim"}


def _utc(ts: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _state(state: str | None, as_json: bool) -> None:
    if state is not None and state not in STATES:
        fail(f"--state {state!r}: use one of {', '.join(STATES)}", as_json=as_json, code=2)


def _hub_call(as_json: bool, hub: str | None, token: str | None, fn):
    from dozor.client import HubClientError

    try:
        with client(hub, token) as c:
            return fn(c)
    except HubClientError as exc:
        fail(str(exc), as_json=as_json)


def _dump(model) -> dict:
    return model.model_dump(mode="json", by_alias=True)


@noise_app.command("events")
def events(since: str = SinceOpt, until: str | None = UntilOpt, zone: str | None = ZoneOpt,
           min_level: float | None = MinLevelOpt, state: str | None = StateOpt, gateway: str | None = GatewayOpt,
           limit: int = LimitOpt, hub: str | None = HubOpt, token: str | None = TokenOpt,
           as_json: bool = JsonOpt) -> None:
    """Pass-by events in the hub's violations register, oldest first."""
    _state(state, as_json)
    rows = _hub_call(as_json, hub, token, lambda c: c.noise_events(
        since=since, until=until, zone=zone, min_level=min_level, state=state, gateway=gateway, limit=limit))
    if as_json:
        emit_json([_dump(r) for r in rows])
        return
    from rich.table import Table

    t = Table(title=f"noise events since {since}{' in ' + zone if zone else ''} ({len(rows)})")
    for col in ("id", "time (UTC)", "zone", "gateway/sensor", "LAFmax", "@7.5 m", "class", "suppressed / flags",
                "enforceable", "signature", "state"):
        t.add_column(col, justify="right" if col in ("LAFmax", "@7.5 m") else "left")
    for r in rows:
        notes = ",".join(r.suppression) if r.suppressed else ",".join(r.flags)
        t.add_row(r.id, _utc(r.start), r.zone or "", f"{r.gateway}/{r.sensor}", f"{r.lafmax:.1f}",
                  f"{r.lafmax_75:.1f}", r.klass, notes or "-", "yes" if r.enforceable else "",
                  r.signature if r.signature == "verified" else f"[red]{r.signature}[/]",
                  f"[{STATE_STYLE[r.state]}]{r.state}[/]")
    console.print(t)
    if len(rows) >= limit:
        console.print(f"[yellow]only the first {limit} events: narrow the filters or raise --limit[/]")


def _print_detail(d) -> None:
    console.print(f"[bold]{d.id}[/]  {d.gateway}/{d.sensor}  zone {d.zone or '-'}  state "
                  f"[{STATE_STYLE[d.state]}]{d.state}[/]")
    console.print(f"  {_utc(d.start)} .. {_utc(d.end)} UTC  LAFmax {d.lafmax:.1f} dB, at 7.5 m {d.lafmax_75:.1f} dB, "
                  f"SEL {d.sel:.1f} dB, class {d.klass}")
    pb = d.record.get("pass_by")
    if pb:  # the record also spans the pass-by's approach/departure; the levels are this part's
        n = pb["absorbed"]
        console.print(f"  measured pass-by {_utc(pb['start'])} .. {_utc(pb['end'])} UTC "
                      f"({n} approach/departure piece{'s' if n != 1 else ''} absorbed)")
    for c in d.record.get("absorbed_cases") or ():  # pieces that were cases of their own: further maxima
        console.print(f"  also over the limit at {_utc(c['peak'])} UTC: {c['lafmax_7p5']:.1f} dB at 7.5 m "
                      "(a blip of this vehicle or a second one right behind it)")
    console.print(f"  signature {d.signature} ({d.signature_detail or '-'}); enforceable "
                  f"{'yes' if d.enforceable else 'no'}; suppressed "
                  f"{', '.join(d.suppression) if d.suppressed else 'no'}; flags {', '.join(d.flags) or '-'}")
    for b in d.blockers:
        console.print(f"  [red]cannot be confirmed:[/] {b}")
    for a in d.audit:
        prev = f" (was {a.previous})" if a.previous else ""
        console.print(f"  {_utc(a.ts)}  {a.who}: {a.action} -> {a.state}{prev}  {a.note}")


@noise_app.command("show")
def show(event_id: str = typer.Argument(..., help="event id"), hub: str | None = HubOpt,
         token: str | None = TokenOpt, as_json: bool = JsonOpt) -> None:
    """One event with its evidence record, signature status and audit trail."""
    d = _hub_call(as_json, hub, token, lambda c: c.noise_event(event_id))
    if as_json:
        emit_json(_dump(d))
        return
    _print_detail(d)


@noise_app.command("review")
def review(event_id: str = typer.Argument(..., help="event id"),
           confirm: bool = typer.Option(False, "--confirm", help="confirm as a violation"),
           dismiss: bool = typer.Option(False, "--dismiss", help="dismiss (not a violation)"),
           note: str = typer.Option(..., "--note", help="why (kept in the audit trail)"),
           reviewer: str | None = typer.Option(None, "--reviewer", envvar="DOZOR_REVIEWER",
                                               help="who reviews [default: the login name]"),
           hub: str | None = HubOpt, token: str | None = TokenOpt, as_json: bool = JsonOpt) -> None:
    """Confirm or dismiss a candidate. Unverified, siren-suppressed and non-enforceable records cannot be
    confirmed."""
    if confirm == dismiss:
        fail("give exactly one of --confirm or --dismiss", as_json=as_json, code=2)
    if not note.strip():
        fail("--note must say why", as_json=as_json, code=2)
    if reviewer is None:
        import getpass

        try:
            reviewer = getpass.getuser()
        except (KeyError, OSError):
            fail("cannot tell who you are: pass --reviewer NAME", as_json=as_json, code=2)
    action = "confirm" if confirm else "dismiss"
    d = _hub_call(as_json, hub, token, lambda c: c.noise_review(event_id, action, note, reviewer))
    if as_json:
        emit_json(_dump(d))
        return
    _print_detail(d)


@noise_app.command("report")
def report(month: str | None = typer.Option(None, "--month", help="YYYY-MM (UTC) [default: this month]"),
           hub: str | None = HubOpt, token: str | None = TokenOpt, as_json: bool = JsonOpt) -> None:
    """Monthly counts by zone, class and state, and the sensors with the most events."""
    if month is None:
        from datetime import UTC, datetime

        month = datetime.now(UTC).strftime("%Y-%m")
    r = _hub_call(as_json, hub, token, lambda c: c.noise_report(month))
    if as_json:
        emit_json(_dump(r))
        return
    from rich.table import Table

    console.print(f"noise report {r.month}: {r.total} event(s), {r.enforceable} enforceable, {r.suppressed} "
                  f"siren-suppressed, {r.unverified} unverified; "
                  + ", ".join(f"{k} {v}" for k, v in sorted(r.by_state.items())))
    for title, groups in (("zone", r.by_zone), ("class", r.by_class)):
        t = Table(title=f"by {title}")
        t.add_column(title)
        for s in STATES:
            t.add_column(s, justify="right")
        for key, counts in sorted(groups.items()):
            t.add_row(key or "-", *(str(counts.get(s, 0)) for s in STATES))
        console.print(t)
    t = Table("gateway", "sensor", "zone", "events", "confirmed", "max @7.5 m", title="top sensors")
    for s in r.top_sensors:
        t.add_row(s.gateway, s.sensor, s.zone or "-", str(s.events), str(s.confirmed),
                  "" if s.max_lafmax_75 is None else f"{s.max_lafmax_75:.1f}")
    console.print(t)


@noise_app.command("export")
def export(fmt: str = typer.Option("csv", "--format", "-f", help="csv or geojson"),
           out: Path | None = typer.Option(None, "--out", "-o", help="write here instead of standard output"),
           since: str | None = typer.Option(None, "--since", help="as for `events` [default: everything]"),
           until: str | None = UntilOpt, zone: str | None = ZoneOpt, min_level: float | None = MinLevelOpt,
           state: str | None = StateOpt, gateway: str | None = GatewayOpt,
           limit: int = typer.Option(100_000, "--limit", min=1, max=100_000, help="at most this many events"),
           hub: str | None = HubOpt, token: str | None = TokenOpt) -> None:
    """The register as CSV or GeoJSON (a FeatureCollection of points; events without coordinates have no
    geometry)."""
    if fmt not in ("csv", "geojson"):
        fail(f"--format {fmt!r}: use csv or geojson", code=2)
    _state(state, False)
    text = _hub_call(False, hub, token, lambda c: c.noise_export(
        fmt, since=since, until=until, zone=zone, min_level=min_level, state=state, gateway=gateway, limit=limit))
    if out is None:
        import sys

        sys.stdout.write(text if text.endswith("\n") else text + "\n")
        return
    try:
        out.write_text(text)
    except OSError as exc:
        fail(f"{out}: cannot write ({exc.strerror or exc})")
    console.print(f"wrote {out}")
