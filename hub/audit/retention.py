"""Retention of the audit chain: records older than ``[hub] audit_retention_days`` leave the database for a signed
archive file, and the chain goes on from a checkpoint that stays verifiable.

``prune(log, key, before_ts, archive_dir)`` does, in this order (a crash between two steps repeats the prune
the next time, never loses a record):

1. signs a head at the last record to go (seq S, hash H) and stores it, as the anchoring task would;
2. writes records checkpoint+1..S with their signed heads to ``archive_dir/audit-<first>-<S>.jsonl`` in the
   ``dozor audit export`` format (fsynced, then renamed), so ``dozor audit verify-export`` checks it offline
   with the hub's public key alone;
3. appends an ``audit.prune`` record to the chain naming S, H, the count and the archive file: the prune is
   itself audited, and covered by the next signed head;
4. in one transaction under the chain's writer lock: the checkpoint row becomes (S, H), the records up to S
   and the signed heads below S are deleted.

``verify_log`` checks a pruned chain: the records after the checkpoint must link from H, a valid signed head at
(S, H) must still be there, and an ``audit.prune`` record after it must name (S, H). So deleting old rows and
writing a checkpoint by hand is detected: no hub signature covers such a prune.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from contract.command import b64url, key_id
from hub.audit.anchor import Anchor, Verdict, bad, load_anchors, sign_head, store_anchor, verify
from hub.audit.chain import GENESIS, AuditLog
from hub.audit.export import export_lines
from hub.errors import StoreError

ARCHIVE_DIR = "audit-archive"
PRUNE_ACTION = "audit.prune"


@dataclass(frozen=True)
class Pruned:
    first_seq: int
    through_seq: int
    through_hash: str
    records: int
    archive: Path

    def as_dict(self) -> dict:
        return {"first_seq": self.first_seq, "through_seq": self.through_seq, "through_hash": self.through_hash,
                "records": self.records, "archive": str(self.archive)}


def checkpoint(log: AuditLog) -> tuple[int, str]:
    """(seq, hash) of the last pruned record; (0, GENESIS) when nothing was ever pruned."""
    rows = log.db.query("SELECT seq, hash FROM audit_checkpoint WHERE id = 1")
    return (int(rows[0][0]), str(rows[0][1])) if rows else (0, GENESIS)


def prune(log: AuditLog, key: Ed25519PrivateKey, *, before_ts: float, archive_dir: Path) -> Pruned | None:
    """Archive and delete the records older than ``before_ts`` (never the newest one). None if there are none."""
    cp_seq, cp_hash = checkpoint(log)
    head_seq, _ = log.head()
    rows = log.db.query("SELECT MAX(seq) FROM audit_chain WHERE ts < ?", (before_ts,))
    through = min(int(rows[0][0] or 0), head_seq - 1)  # the head stays: appends link to it
    if through <= cp_seq:
        return None
    records = log.records(since_seq=cp_seq, limit=through - cp_seq)
    keys = {key_id(key.public_key()): key.public_key()}
    checked = verify(records, [], keys, first_seq=cp_seq + 1, prev_hash=cp_hash)
    if not checked.ok or not records or records[-1].seq != through:  # never archive (and drop) a broken chain
        raise StoreError(f"audit chain not pruned: {checked.problem or 'records are missing'}")
    last = records[-1]
    anchor = sign_head(last.seq, last.hash, key)
    store_anchor(log, anchor)
    anchors = [a for a in load_anchors(log) if cp_seq < a.seq <= through and a.kid == anchor.kid]
    archive = _write_archive(archive_dir, records, anchors, key)
    log.append(None, PRUNE_ACTION, f"{records[0].seq}-{through}",
               {"first_seq": records[0].seq, "through_seq": through, "through_hash": last.hash,
                "records": len(records), "archive": archive.name, "before_ts": round(before_ts, 3)})
    with log.db.transaction(lock="audit_chain") as tx:
        tx.execute("INSERT INTO audit_checkpoint (id, seq, hash, ts) VALUES (1, ?, ?, ?) ON CONFLICT (id) DO UPDATE "
                   "SET seq = excluded.seq, hash = excluded.hash, ts = excluded.ts", (through, last.hash, time.time()))
        tx.execute("DELETE FROM audit_chain WHERE seq <= ?", (through,))
        tx.execute("DELETE FROM audit_anchors WHERE seq < ?", (through,))
    return Pruned(records[0].seq, through, last.hash, len(records), archive)


def _write_archive(archive_dir: Path, records, anchors, key: Ed25519PrivateKey) -> Path:
    archive_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = archive_dir / f"audit-{records[0].seq:09d}-{records[-1].seq:09d}.jsonl"
    tmp = path.with_suffix(".tmp")
    public = b64url(key.public_key().public_bytes_raw())
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # operator names and actions: not for all
    with os.fdopen(fd, "w") as fh:
        for line in export_lines(records, anchors, kid=key_id(key.public_key()), public_key=public):
            fh.write(line + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    return path


def verify_log(log: AuditLog, anchors: Iterable[Anchor], keys: Mapping[str, Ed25519PublicKey]) -> Verdict:
    """``verify`` over what the database holds, from its checkpoint when the chain was pruned."""
    anchors = list(anchors)
    cp_seq, cp_hash = checkpoint(log)
    records = log.records(since_seq=cp_seq)
    if cp_seq == 0:
        return verify(records, anchors, keys)
    v = Verdict(ok=True)
    if not any(a.seq == cp_seq and a.hash == cp_hash and a.valid(keys) for a in anchors):
        return bad(v, 1, f"records 1..{cp_seq} are gone and no head signed by the hub covers record {cp_seq}: "
                          "they were removed, not pruned by retention")
    if not any(r.action == PRUNE_ACTION and r.details.get("through_seq") == cp_seq
               and r.details.get("through_hash") == cp_hash for r in records):
        return bad(v, 1, f"records 1..{cp_seq} are gone and no {PRUNE_ACTION} record names them: they were "
                          "removed, not pruned by retention")
    v = verify(records, anchors, keys, first_seq=cp_seq + 1, prev_hash=cp_hash)
    v.pruned_to = cp_seq
    return v
