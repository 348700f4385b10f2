"""Telemetry receipts (hub -> gateway, ``dozor/v1/gw/{gw}/receipt``, QoS 0): which of a gateway's telemetry
batches and events the hub has committed to its durable spool. Sans-IO.

Why: a broker's PUBACK says the broker took a message, not that it will deliver it. A clustered broker that loses
a node can acknowledge a QoS 1 publish and then lose it (NATS 2.9 with JetStream: the PUBACK leaves before the
message is stored in the replicated stream), and a single Mosquitto killed with ``kill -9`` loses the QoS 1
messages it held in memory for the hub's session. So a gateway keeps what it sent until the hub says it has it,
and sends it again (same key, same bytes; the hub de-duplicates durably) if no receipt comes in time.

Payload, compact JSON::

    {"v":1,"session":7,"seqs":[12,13],"events":["ev-1"]}

- ``session``: the gateway telemetry pipeline's session (the ``session`` of the batches it acknowledges);
- ``seqs``: batch sequence numbers of that session the hub committed (at most ``MAX_SEQS``);
- ``events``: ids of events (``…/event``) the hub committed (at most ``MAX_EVENTS``).

A hub that committed batches of several sessions of one gateway (a gateway restart) sends one receipt per
session. Anything else is refused with ``MalformedMessage`` (reason ``bad_receipt``): the gateway counts it and
goes on; a lost or refused receipt only costs a re-send that the hub de-duplicates.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from contract.errors import MalformedMessage

VERSION = 1
MAX_SEQS = 4096
MAX_EVENTS = 1024
MAX_EVENT_ID = 128  # contract.models.Event.id
MAX_BYTES = 256 * 1024
_INT_MAX = 2**63 - 1


@dataclass(frozen=True, slots=True)
class Receipt:
    session: int
    seqs: tuple[int, ...] = ()
    events: tuple[str, ...] = ()


def encode(r: Receipt) -> bytes:
    if len(r.seqs) > MAX_SEQS or len(r.events) > MAX_EVENTS:
        raise ValueError(f"a receipt holds at most {MAX_SEQS} seqs and {MAX_EVENTS} events")
    return json.dumps({"v": VERSION, "session": r.session, "seqs": list(r.seqs), "events": list(r.events)},
                      separators=(",", ":")).encode()


def _bad(detail: str) -> MalformedMessage:
    return MalformedMessage("bad_receipt", detail=detail)


def _count(value: object) -> bool:
    return type(value) is int and 0 <= value <= _INT_MAX


def decode(payload: bytes) -> Receipt:
    """``payload`` -> ``Receipt``; raises ``MalformedMessage("bad_receipt")`` for anything else."""
    if len(payload) > MAX_BYTES:
        raise _bad(f"{len(payload)} bytes")
    try:
        doc = json.loads(payload)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise _bad("not JSON") from exc
    if not isinstance(doc, dict) or doc.get("v") != VERSION:
        raise _bad("not a version 1 receipt")
    session, seqs, events = doc.get("session"), doc.get("seqs", []), doc.get("events", [])
    if not _count(session):
        raise _bad("session")
    if not isinstance(seqs, list) or len(seqs) > MAX_SEQS or not all(_count(s) for s in seqs):
        raise _bad("seqs")
    if not isinstance(events, list) or len(events) > MAX_EVENTS or not all(
            isinstance(e, str) and 0 < len(e) <= MAX_EVENT_ID for e in events):
        raise _bad("events")
    return Receipt(session, tuple(seqs), tuple(events))
