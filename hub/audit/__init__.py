"""The tamper-evident audit: one hash chain of every operator action and alert state change, signed heads
(anchors) published outside the hub's disk, verification and offline-verifiable exports.

    hub.audit.append(actor, "alert.start", alert_id, {...})     # on the Hub: Hub.audit is an AuditLog
"""

from hub.audit.anchor import Anchor, Verdict, anchor_head, load_anchors, sign_head, verify
from hub.audit.chain import AUDIT_FILE, GENESIS, AuditLog, Record, canonical
from hub.audit.export import ExportError, export_lines, verify_export

__all__ = ["AUDIT_FILE", "GENESIS", "Anchor", "AuditLog", "ExportError", "Record", "Verdict", "anchor_head",
           "canonical", "export_lines", "load_anchors", "sign_head", "verify", "verify_export"]
