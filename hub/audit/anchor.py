"""Signed heads ("anchors") of the audit chain and the checks that use them.

An anchor is ``{"seq", "hash", "ts", "kid", "sig"}``: the hub's Ed25519 key (hub/keys.py) signs the canonical
JSON of ``{"seq", "hash", "ts", "kid"}``; ``sig`` is base64url. The hub stores every anchor, publishes the
newest retained on ``dozor/v1/hub/audit/head`` and as ``dozor_hub_audit_head_seq``: a copy outside the hub's
disk, so truncating the chain or rewriting its history is detectable.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from contract.command import b64url, b64url_decode, key_id
from hub.audit.chain import GENESIS, AuditLog, Record, canonical


@dataclass(frozen=True)
class Anchor:
    seq: int
    hash: str
    ts: float
    kid: str
    sig: str

    def signed_part(self) -> bytes:
        return canonical({"seq": self.seq, "hash": self.hash, "ts": self.ts, "kid": self.kid})

    def as_dict(self) -> dict:
        return {"seq": self.seq, "hash": self.hash, "ts": self.ts, "kid": self.kid, "sig": self.sig}

    @classmethod
    def from_dict(cls, d: Mapping) -> Anchor:
        return cls(int(d["seq"]), str(d["hash"]), float(d["ts"]), str(d["kid"]), str(d["sig"]))

    def valid(self, keys: Mapping[str, Ed25519PublicKey]) -> bool:
        key = keys.get(self.kid)
        if key is None:
            return False
        try:
            key.verify(b64url_decode(self.sig), self.signed_part())
        except (InvalidSignature, ValueError):
            return False
        return True


def sign_head(seq: int, digest: str, key: Ed25519PrivateKey, *, ts: float | None = None) -> Anchor:
    kid = key_id(key.public_key())
    unsigned = Anchor(seq, digest, round(ts if ts is not None else time.time(), 3), kid, "")
    return Anchor(unsigned.seq, unsigned.hash, unsigned.ts, kid, b64url(key.sign(unsigned.signed_part())))


def store_anchor(log: AuditLog, anchor: Anchor) -> None:
    log.db.execute("INSERT INTO audit_anchors VALUES (?,?,?,?,?) ON CONFLICT (seq, kid) DO UPDATE SET "
                   "hash = excluded.hash, ts = excluded.ts, sig = excluded.sig",
                   (anchor.seq, anchor.hash, anchor.ts, anchor.kid, anchor.sig))


def load_anchors(log: AuditLog) -> list[Anchor]:
    rows = log.db.query("SELECT seq, hash, ts, kid, sig FROM audit_anchors ORDER BY seq, ts")
    return [Anchor(*r) for r in rows]


def anchor_head(log: AuditLog, key: Ed25519PrivateKey) -> Anchor | None:
    """Sign and store the current head; None for an empty chain."""
    seq, digest = log.head()
    if seq == 0:
        return None
    anchor = sign_head(seq, digest, key)
    store_anchor(log, anchor)
    return anchor


@dataclass
class Verdict:
    ok: bool
    records: int = 0
    anchors: int = 0
    first_bad: int | None = None
    problem: str = ""
    covered_to: int = 0  # the highest seq covered by a valid signed head
    pruned_to: int = 0  # records up to here left the database by retention (hub/audit/retention.py)

    def as_dict(self) -> dict:
        return {"ok": self.ok, "records": self.records, "anchors": self.anchors, "first_bad_seq": self.first_bad,
                "problem": self.problem, "signed_to_seq": self.covered_to, "pruned_through_seq": self.pruned_to}


def verify(records: Iterable[Record], anchors: Iterable[Anchor], keys: Mapping[str, Ed25519PublicKey], *,
           first_seq: int = 1, prev_hash: str = GENESIS) -> Verdict:
    """Recompute the chain (in stored order) and check every anchor against it. The first problem wins."""
    by_seq: dict[int, str] = {}
    expected, prev = first_seq, prev_hash
    v = Verdict(ok=True)
    for rec in records:
        v.records += 1
        if rec.seq != expected:
            what = "is missing" if rec.seq > expected else "is out of order"
            return bad(v, expected if rec.seq > expected else rec.seq,
                        f"record {expected} {what} (found seq {rec.seq} in its place: a row was removed or "
                        "reordered)")
        if rec.computed_hash() != rec.hash:
            return bad(v, rec.seq, f"record {rec.seq} ({rec.action} {rec.subject}) does not match its hash: "
                        "it was edited (or moved from another position)")
        if rec.prev_hash != prev:
            return bad(v, rec.seq, f"record {rec.seq} ({rec.action} {rec.subject}) does not link to record "
                        f"{rec.seq - 1}: a row before it was edited, removed or reordered")
        by_seq[rec.seq] = rec.hash
        expected, prev = rec.seq + 1, rec.hash
    last = expected - 1
    for anchor in anchors:
        v.anchors += 1
        if not anchor.valid(keys):
            return bad(v, anchor.seq, f"signed head at seq {anchor.seq} has a bad signature or an unknown key "
                        f"{anchor.kid!r}")
        if anchor.seq < first_seq:
            continue
        if anchor.seq > last:
            return bad(v, last + 1, f"the chain ends at record {last} but the hub signed a head at seq "
                        f"{anchor.seq}: records were removed from the end")
        if by_seq[anchor.seq] != anchor.hash:
            return bad(v, anchor.seq, f"record {anchor.seq} differs from the head the hub signed at "
                        f"{anchor.ts:.0f}: history was rewritten")
        v.covered_to = max(v.covered_to, anchor.seq)
    return v


def bad(v: Verdict, seq: int, problem: str) -> Verdict:
    v.ok, v.first_bad, v.problem = False, seq, problem
    return v
