"""Test gateways' identity keys: one Ed25519 key per gateway id (derived from the id, for tests only), the hub
state dirs of hubs running in this test process (tests/hub/helpers.running_hub registers them), and a sealer
that signs payloads with a per-session counter exactly as gateway/identity.py does."""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from contract.command import b64url, key_id, public_raw
from contract.signed import seal

HUB_STATES: list[Path] = []  # hubs started in this process: fake gateways enroll into each


def test_key(gateway: str) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"dozor-test-identity:" + gateway.encode()).digest())


def public_b64(gateway: str) -> str:
    return b64url(public_raw(test_key(gateway).public_key()))


def enroll(gateway: str, state_dirs: list[Path] | None = None) -> None:
    from hub.gwtrust import enroll as hub_enroll

    for state_dir in (HUB_STATES if state_dirs is None else state_dirs):
        hub_enroll(state_dir, gateway, public_b64(gateway), actor="test")


class Sealer:
    """Seals models like a gateway: ``ctr`` 0 for the will, then 1, 2, ... within a session."""

    def __init__(self, gateway: str, key: Ed25519PrivateKey | None = None, session: int = 1) -> None:
        self.key = key or test_key(gateway)
        self.kid = key_id(self.key.public_key())
        self.session = session
        self.ctr = 0
        self.lock = threading.Lock()

    def will(self, msg) -> bytes:
        return seal(msg.model_copy(update={"ctr": 0}).to_bytes(), self.key, self.kid)

    def __call__(self, msg, *, session: bool = False) -> bytes:
        with self.lock:
            self.ctr += 1
            update = {"ctr": self.ctr}
            if session:
                update["session"] = self.session
            return seal(msg.model_copy(update=update).to_bytes(), self.key, self.kid)


def enroll_gateway(state_dir: Path, gateway: str, hub_states: list[Path] | None = None) -> str:
    """Enroll a real gateway's identity key (created in its state dir if missing), as `dozor gateways enroll`
    does, into the given hub state dirs (default: every hub running in this process). Returns the public key."""
    from gateway.identity import load_or_create
    from hub.gwtrust import enroll as hub_enroll

    ident = load_or_create(Path(state_dir))
    for hub_state in (HUB_STATES if hub_states is None else hub_states):
        hub_enroll(hub_state, gateway, ident.public_b64, actor="test")
    return ident.public_b64


class Unsealer:
    """Reads what a real gateway publishes: every sealed message must verify against the identity key the gateway
    announced in its birth (a birth verifies against the key it carries)."""

    def __init__(self) -> None:
        self.keys: dict = {}

    def __call__(self, wire: bytes) -> bytes:
        import json

        from contract.command import public_key_from_b64
        from contract.signed import open_sealed, split

        payload, _kid, _sig = split(wire)
        announced = json.loads(payload).get("identity_key") if payload.startswith(b"{") else None
        if announced:
            key = public_key_from_b64(announced)
            self.keys[key_id(key)] = key
        return open_sealed(wire, self.keys)
