"""``dozor audit export``: JSON Lines an auditor verifies offline with the hub's public key alone.

    {"type": "dozor-audit-export", "version": 1, "first_seq": 1, "prev_hash": "000...", "kid": "...",
     "public_key": "<base64url Ed25519>"}
    {"type": "record", "seq": 1, "ts": ..., "actor": {...}|null, "action": "...", "subject": "...",
     "details": {...}, "prev_hash": "...", "hash": "..."}
    ...
    {"type": "anchor", "seq": N, "hash": "...", "ts": ..., "kid": "...", "sig": "..."}

The header's public key is informative only: ``verify_export`` takes the key from the auditor, never from the
file. Records are linked from ``prev_hash``; every anchor's signature is checked and so is the record it names;
the export is accepted only when its last record is covered by a valid signed head.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from contract.command import key_id
from hub.audit.anchor import Anchor, Verdict, verify
from hub.audit.chain import GENESIS, Record

FORMAT = "dozor-audit-export"


def export_lines(records: list[Record], anchors: Iterable[Anchor], *, kid: str, public_key: str) -> Iterator[str]:
    first_seq = records[0].seq if records else 0
    prev = records[0].prev_hash if records else GENESIS
    yield json.dumps({"type": FORMAT, "version": 1, "first_seq": first_seq, "prev_hash": prev, "kid": kid,
                      "public_key": public_key})
    last = records[-1].seq if records else 0
    for rec in records:
        yield json.dumps({"type": "record", **rec.as_dict()}, ensure_ascii=False)
    for a in anchors:
        if first_seq <= a.seq <= last:
            yield json.dumps({"type": "anchor", **a.as_dict()})


class ExportError(ValueError):
    pass


def verify_export(lines: Iterable[str], public_key: Ed25519PublicKey) -> Verdict:
    """Verify an export with only the hub's public key. ExportError for a file that is not an export."""
    records: list[Record] = []
    anchors: list[Anchor] = []
    header = None
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            doc = json.loads(line)
            kind = doc.get("type")
            if n == 1:
                if kind != FORMAT:
                    raise ExportError("line 1: not a dozor audit export (no header)")
                header = doc
            elif kind == "record":
                records.append(Record(int(doc["seq"]), doc["ts"], doc["actor"], doc["action"], doc["subject"],
                                      doc["details"], doc["prev_hash"], doc["hash"]))
            elif kind == "anchor":
                anchors.append(Anchor.from_dict(doc))
            else:
                raise ExportError(f"line {n}: unknown line type {kind!r}")
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            if isinstance(exc, ExportError):
                raise
            raise ExportError(f"line {n}: not a valid export line ({type(exc).__name__}: {exc})") from None
    if header is None:
        raise ExportError("empty file: not a dozor audit export")
    verdict = verify(records, anchors, {key_id(public_key): public_key},
                     first_seq=int(header["first_seq"]) or 1, prev_hash=str(header["prev_hash"]))
    if verdict.ok and records and verdict.covered_to < records[-1].seq:
        verdict.ok = False
        verdict.first_bad = verdict.covered_to + 1
        verdict.problem = (f"records {verdict.covered_to + 1}..{records[-1].seq} are not covered by a head signed "
                           "with this key")
    return verdict
