"""Audit chain retention (issue 12 §4): old records leave the database for a signed archive, the chain stays
verifiable from its checkpoint, and a deletion dressed up as a prune is caught. On both backends."""

from __future__ import annotations

import json
import subprocess
import time

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import hub.audit.chain as chain
from contract.command import key_id
from hub.app import Hub
from hub.audit import AuditLog, anchor_head, load_anchors, verify_export
from hub.audit.retention import ARCHIVE_DIR, checkpoint, prune, verify_log
from hub.repo import Backend
from tests.hub.helpers import make_config, write_toml
from tests.identity.helpers import DOZOR

DAY = 86400.0


def build(log: AuditLog, key, monkeypatch, *, old: int, new: int) -> float:
    """``old`` records 40 days ago and ``new`` ones now (anchored after every 5th); returns now."""
    now = time.time()
    for i in range(old + new):
        ts = now - 40 * DAY + i if i < old else now + i
        monkeypatch.setattr(chain.time, "time", lambda ts=ts: ts)
        log.append(None, "test.append", f"r{i}", {"i": i})
        if i % 5 == 4:
            anchor_head(log, key)
    monkeypatch.undo()
    return now


def keys_of(key: Ed25519PrivateKey) -> dict:
    return {key_id(key.public_key()): key.public_key()}


def test_prune_archives_old_records_and_the_chain_stays_verifiable(state_backend: Backend, tmp_path, monkeypatch):
    key = Ed25519PrivateKey.generate()
    log = AuditLog.in_backend(state_backend)
    try:
        now = build(log, key, monkeypatch, old=20, new=10)
        done = prune(log, key, before_ts=now - 30 * DAY, archive_dir=tmp_path / ARCHIVE_DIR)
        assert done is not None and (done.first_seq, done.through_seq, done.records) == (1, 20, 20)
        assert checkpoint(log) == (20, done.through_hash)
        left = log.records()
        assert [r.seq for r in left] == list(range(21, 32))  # 10 new records and the audit.prune record
        assert left[-1].action == "audit.prune" and left[-1].details["through_seq"] == 20
        v = verify_log(log, load_anchors(log), keys_of(key))
        assert v.ok and v.pruned_to == 20 and v.records == 11, v.problem
        with done.archive.open() as fh:  # the archive verifies offline with the public key alone
            archived = verify_export(fh, key.public_key())
        assert archived.ok and archived.records == 20 and archived.covered_to == 20, archived.problem
        assert done.archive.stat().st_mode & 0o077 == 0
        assert prune(log, key, before_ts=now - 30 * DAY, archive_dir=tmp_path / ARCHIVE_DIR) is None
        log.append(None, "test.append", "after", {})  # appends go on linking to the kept head
        anchor_head(log, key)
        assert verify_log(log, load_anchors(log), keys_of(key)).ok
    finally:
        log.close()


def test_the_newest_record_is_never_pruned(state_backend: Backend, tmp_path, monkeypatch):
    key = Ed25519PrivateKey.generate()
    log = AuditLog.in_backend(state_backend)
    try:
        now = build(log, key, monkeypatch, old=6, new=0)
        done = prune(log, key, before_ts=now, archive_dir=tmp_path / ARCHIVE_DIR)
        assert done is not None and done.through_seq == 5
        assert [r.seq for r in log.records()][0] == 6
        assert verify_log(log, load_anchors(log), keys_of(key)).ok
    finally:
        log.close()


@pytest.mark.parametrize("anchored", [False, True])
def test_deleted_records_with_a_forged_checkpoint_are_caught(state_backend: Backend, monkeypatch, anchored):
    """An attacker with the database deletes old records and writes a checkpoint; without the hub's key there
    is no audit.prune record (and, unless the hub happened to sign that head, no signed head) for it."""
    key = Ed25519PrivateKey.generate()
    log = AuditLog.in_backend(state_backend)
    try:
        build(log, key, monkeypatch, old=0, new=12)
        through = 10 if anchored else 8  # heads are signed at 5 and 10
        rec = log.record_at(through)
        log.db.execute("INSERT INTO audit_checkpoint (id, seq, hash, ts) VALUES (1, ?, ?, ?)",
                       (through, rec.hash, time.time()))
        log.db.execute("DELETE FROM audit_chain WHERE seq <= ?", (through,))
        v = verify_log(log, load_anchors(log), keys_of(key))
        assert not v.ok and "removed, not pruned" in v.problem
        assert ("no audit.prune record" in v.problem) == anchored
    finally:
        log.close()


def test_cli_prune_then_verify(tmp_path):
    cfg = make_config(tmp_path, 1)
    write_toml(tmp_path, cfg)
    hub = Hub(cfg)  # records the signing key; the CLI adds a user change
    hub.store.close()
    hub.audit.close()
    conf = str(tmp_path / "hub.toml")
    subprocess.run([DOZOR, "users", "add", "olga", "--role", "operator", "--config", conf], check=True,
                   capture_output=True)
    r = subprocess.run([DOZOR, "audit", "prune", "--config", conf, "--days", "0.0000001", "--json"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    done = json.loads(r.stdout)
    assert done["first_seq"] == 1 and done["records"] >= 1
    r = subprocess.run([DOZOR, "audit", "verify", "--config", conf, "--json"], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert json.loads(r.stdout)["pruned_through_seq"] == done["through_seq"]
    assert (cfg.hub.state_dir / ARCHIVE_DIR / done["archive"].rsplit("/", 1)[-1]).exists()
    r = subprocess.run([DOZOR, "audit", "prune", "--config", conf, "--days", "0", "--json"], capture_output=True,
                       text=True)
    assert r.returncode == 2 and "--days" in r.stdout + r.stderr
