"""``Violations``: pass-by evidence from gateway Events into the register, and the review flow.

Each Event with ``kind == "noise.passby"`` (a dispatcher hook, sync, never raises) is validated as a
``contract.evidence.NoiseEvidence`` and its signature checked with the gateway's evidence keys:

- keys pinned in the hub config (``[noise] gateway_keys``), else the keys the gateway announced in its births
  (``GatewayState.evidence_key``), kept in the register so records signed before a key rotation still verify;
- signed with a known key and the signature holds -> ``verified``; unsigned or signed with a key the hub does not
  know -> kept as ``unverified`` (never confirmable); a known key whose signature fails, an invalid record or a
  record naming another gateway -> rejected, counted (``dozor_hub_noise_events_total{outcome}``) and logged;
- an unverified record is verified later when its key becomes known (a birth, or pinned keys at start), with an
  audit entry ``verified``.

A record may become a confirmed violation only if it is verified, not siren-suppressed and the record's own
enforcement verdict (``enforcement``: class exhaust, no suppression, no flag, L(7.5 m) - uncertainty over the
threshold, set by the gateway) is true. Each stored event and each review also writes a ``noise_event`` point to
the time-series store through the hub's ingest spool (when ``[store]`` is configured).
"""

from __future__ import annotations

import json
import logging
import math
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from prometheus_client import Counter as PromCounter
from pydantic import ValidationError

from contract.command import key_id, public_key_from_b64
from contract.evidence import EVENT_KIND, EvidenceError, NoiseEvidence, verify
from contract.models import Event
from hub.config import NoiseSettings
from hub.errors import RequestError, StoreError
from hub.ingest.lineproto import Point, to_ms
from hub.repo import Database
from hub.violations.register import Filters, Register

log = logging.getLogger(__name__)
Emit = Callable[[Callable[[], list[str]]], None]


class NotFound(RequestError):
    code = "not_found"
    status = 404


class ReviewRefused(RequestError):
    code = "review_refused"
    status = 409


def confirm_blockers(row: dict[str, Any]) -> list[str]:
    """Why a stored event can never be confirmed as a violation (empty: it can)."""
    out = []
    if row["signature"] != "verified":
        out.append(f"its signature is {row['signature']} ({row.get('signature_detail') or 'no trusted key'}): "
                   "only records verified with the gateway's evidence key can be enforcement cases")
    if row["suppressed"]:
        out.append(f"it is siren-suppressed ({', '.join(row['suppression']) or 'siren'}): "
                   "sirens and the sounds around them are never violations")
    if not row["enforceable"]:
        why = f"class {row['class']}" + (f", flags {', '.join(row['flags'])}" if row["flags"] else "")
        out.append(f"the gateway's enforcement verdict is false ({why}, "
                   f"LAFmax at 7.5 m {row['lafmax_75']:.1f} dB)")
    return out


def enforceable(record: NoiseEvidence) -> bool:
    """The gateway's enforcement verdict, honoured only where the evidence backs it: a record with clipped
    samples is an enforcement case only if its overload block says the unclipped part alone proves the
    exceedance (older records without that block never do)."""
    if not record.enforcement:
        return False
    clipped = "clipped" in record.flags or record.levels.clipped_samples > 0
    return not clipped or (record.overload is not None and record.overload.proves_exceedance)


class Violations:
    def __init__(self, settings: NoiseSettings, path: Path | Database, *, zone_of: Callable[[str], str | None],
                 emit: Emit | None = None, registry=None) -> None:
        self.settings = settings
        self.register = Register(path)
        self.zone_of = zone_of
        self.emit = emit
        self.counters: Counter[str] = Counter()
        self._events = PromCounter("dozor_hub_noise_events", "Noise pass-by events by outcome", ["outcome"],
                                   registry=registry) if registry is not None else None
        self._reviews = PromCounter("dozor_hub_noise_reviews", "Reviews of noise events", ["action", "result"],
                                    registry=registry) if registry is not None else None
        self.pinned: dict[str, dict[str, Ed25519PublicKey]] = {
            gw: {key_id(k): k for k in map(public_key_from_b64, keys)}
            for gw, keys in settings.gateway_keys.items()}  # type: ignore[arg-type]
        self.announced: dict[str, dict[str, Ed25519PublicKey]] = {}
        for gw, kid, key in self.register.keys():
            try:
                self.announced.setdefault(gw, {})[kid] = public_key_from_b64(key)
            except ValueError:
                self._count("bad_stored_key")
        for gw in self.pinned:  # keys pinned since the last start verify what was kept unverified
            self.reverify(gw)

    def _count(self, outcome: str) -> None:
        self.counters[outcome] += 1
        if self._events is not None:
            self._events.labels(outcome).inc()

    # ------------------------------------------------------------ keys
    def keys_for(self, gateway: str) -> tuple[dict[str, Ed25519PublicKey], str]:
        if gateway in self.pinned:
            return self.pinned[gateway], "config"
        if self.settings.trust_announced_keys:
            return self.announced.get(gateway, {}), "birth"
        return {}, "none"

    def on_state(self, msg: Any) -> None:
        """Dispatcher hook for gateway births: remember the announced evidence key (``evidence_key``)."""
        text = getattr(msg, "evidence_key", None)
        if getattr(msg, "state", None) != "online" or not text:
            return
        try:
            key = public_key_from_b64(text)
        except ValueError as exc:
            self._count("bad_announced_key")
            log.warning("gateway %s announced an unusable evidence key: %s", msg.gateway, exc)
            return
        kid = key_id(key)
        known = self.announced.setdefault(msg.gateway, {})
        if kid in known:
            return
        if msg.gateway in self.pinned and kid not in self.pinned[msg.gateway]:
            self._count("announced_key_ignored")
            log.warning("gateway %s announced evidence key %s, but its keys are pinned in [noise] gateway_keys: "
                        "ignored", msg.gateway, kid)
        try:
            self.register.add_key(msg.gateway, kid, text.strip(), "birth")
        except StoreError:
            self._count("store_error")
            log.exception("cannot keep the evidence key of %s", msg.gateway)
        known[kid] = key
        log.info("gateway %s evidence key %s (from its birth)", msg.gateway, kid)
        self.reverify(msg.gateway)

    def reverify(self, gateway: str) -> int:
        """Records of ``gateway`` kept as unverified (their key was not known yet, e.g. the event came before the
        birth) are verified once the key is known; a signature that then fails stays unverified and is counted.
        Never raises."""
        keys, source = self.keys_for(gateway)
        done = 0
        try:
            for event_id, kid, text in self.register.unverified(gateway, list(keys)):
                try:
                    verify(json.loads(text), {kid: keys[kid]})
                except (EvidenceError, ValueError):
                    self._count("reverify_bad_signature")
                    log.warning("noise event %s of %s: bad signature with key %s (%s): stays unverified",
                                event_id, gateway, kid, source)
                    continue
                if self.register.mark_verified(event_id, kid, source, f"key {kid} ({source})"):
                    self._count("reverified")
                    done += 1
        except StoreError:
            self._count("store_error")
            log.exception("cannot re-verify noise events of %s", gateway)
        return done

    # ------------------------------------------------------------ events
    def on_event(self, msg: Any) -> None:
        """Dispatcher hook: sync, never raises (a bug is logged and counted as ``error``)."""
        if not isinstance(msg, Event) or msg.kind != EVENT_KIND:
            return
        try:
            self._on_event(msg)
        except StoreError:
            self._count("store_error")
            log.exception("cannot store noise event %s of %s", msg.id, msg.gateway)
        except Exception:  # noqa: BLE001 - never raise inside a message callback
            self._count("error")
            log.exception("noise event %s of %s failed", msg.id, msg.gateway)

    def _reject(self, msg: Event, outcome: str, detail: str) -> None:
        self._count(f"rejected_{outcome}")
        log.warning("noise event %s from %s rejected (%s): %s", msg.id, msg.gateway, outcome, detail)

    def _on_event(self, msg: Event) -> None:
        try:
            record = NoiseEvidence.model_validate(msg.data)
        except ValidationError as exc:
            err = exc.errors()[0]
            return self._reject(msg, "invalid", f"{'.'.join(map(str, err['loc']))}: {err['msg']}"[:200])
        if record.gateway != msg.gateway:
            return self._reject(msg, "gateway_mismatch", f"the record names gateway {record.gateway!r}")
        keys, source = self.keys_for(msg.gateway)
        kid = record.signature.kid if record.signature else None
        if record.signature is None:
            status, detail = "unverified", "record is not signed"
        elif kid not in keys:
            status, detail = "unverified", f"unknown key {kid!r} for gateway {msg.gateway}"
        else:
            try:
                verify(record, {kid: keys[kid]})
            except EvidenceError as exc:
                return self._reject(msg, "bad_signature", f"{exc} (key {kid} from {source})")
            status, detail = "verified", f"key {kid} ({source})"
        lv, loc = record.levels, record.location
        numbers = (record.start, record.end, record.peak, lv.lafmax, lv.lafmax_7p5, lv.sel)
        if not all(math.isfinite(v) for v in numbers):
            return self._reject(msg, "invalid", "non-finite level or time")
        row = {"id": msg.id, "record_id": record.id, "gateway": msg.gateway, "sensor": record.sensor.id,
               "zone": self.zone_of(msg.gateway),               "lat": loc.lat, "lon": loc.lon, "distance_m": loc.distance_to_lane_m, "start": record.start,
               "end": record.end, "peak": record.peak, "lafmax": lv.lafmax, "lafmax_75": lv.lafmax_7p5,
               "sel": lv.sel, "class": record.klass, "scores": dict(record.scores),
               "suppressed": record.suppressed, "suppression": list(record.suppression),
               "flags": list(record.flags), "candidate": record.candidate, "enforceable": enforceable(record),
               "signature": status, "kid": kid, "key_source": source if status == "verified" else None,
               "signature_detail": detail, "state": "candidate", "record": _json(record.to_data())}
        if not self.register.insert(row):
            self._count("duplicate")
            return None
        self._count(f"stored_{status}")
        if status != "verified":
            log.info("noise event %s from %s kept as unverified: %s", msg.id, msg.gateway, detail)
        self._point(row)
        return None

    def _point(self, row: dict[str, Any]) -> None:
        if self.emit is None:
            return
        tags = {"gateway": row["gateway"], "zone": row["zone"] or "", "class": row["class"], "state": row["state"]}
        fields = {"lafmax": float(row["lafmax"]), "lafmax_75": float(row["lafmax_75"]), "sel": float(row["sel"]),
                  "enforceable": 1.0 if row["enforceable"] else 0.0}
        self.emit(lambda: [Point("noise_event", fields, to_ms(row["peak"]), tags).line()])

    # ------------------------------------------------------------ review
    def get(self, event_id: str) -> dict[str, Any]:
        row = self.register.get(event_id, record=True)
        if row is None:
            raise NotFound(f"no noise event {event_id!r} in the register")
        row["audit"] = self.register.audit(event_id)
        row["blockers"] = confirm_blockers(row)
        return row

    def list(self, f: Filters) -> list[dict[str, Any]]:
        return self.register.list(f)

    def review(self, event_id: str, action: str, note: str, reviewer: str) -> dict[str, Any]:
        row = self.register.get(event_id)
        if row is None:
            raise NotFound(f"no noise event {event_id!r} in the register")
        state = {"confirm": "confirmed", "dismiss": "dismissed"}[action]
        if row["state"] == state:
            self._review(action, "refused")
            raise ReviewRefused(f"noise event {event_id} is already {state}")
        if action == "confirm":
            blockers = confirm_blockers(row)
            if blockers:
                self._review(action, "refused")
                raise ReviewRefused(f"noise event {event_id} cannot be confirmed as a violation: "
                                    + "; ".join(blockers))
        if not self.register.set_state(event_id, row["state"], state, who=reviewer, action=action, note=note):
            self._review(action, "refused")
            raise ReviewRefused(f"noise event {event_id} changed while it was being reviewed: look again")
        self._review(action, "done")
        log.info("noise event %s %s by %s (was %s)", event_id, state, reviewer, row["state"])
        self._point({**row, "state": state})
        return self.get(event_id)

    def _review(self, action: str, result: str) -> None:
        self.counters[f"review_{action}_{result}"] += 1
        if self._reviews is not None:
            self._reviews.labels(action, result).inc()

    def close(self) -> None:
        self.register.close()


def _json(data: dict[str, Any]) -> str:
    return json.dumps(data, separators=(",", ":"), sort_keys=True)
