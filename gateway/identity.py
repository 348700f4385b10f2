"""The gateway's Ed25519 identity key and the per-session message counter (``contract.signed``).

The key lives in ``state_dir/identity-key`` (``IDENTITY_KEY_FILE``): base64url raw seed, mode 0600, generated
at first start (or placed there by ``dozor provision``), refused if its group or the world can read it. The hub
accepts this gateway's births, heartbeats, acks, last-wills and events only when they verify against the public
key enrolled for it (``dozor gateways enroll GW --pubkey ...``; ``dozor gateway identity CONFIG`` prints it).
A new state dir means a new key, hence a new enrollment: the hub resets the gateway's session epoch then.

Counter: ``new_session(n)`` is called before every connection attempt; the last-will of that connection is
sealed at once with ``ctr = 0`` (it is signed before anything else of the session exists, and a session has
exactly one); the birth is then ``ctr = 1`` and every later message takes the next value.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from contract.command import b64url, key_id, public_raw
from contract.models import Ack, Event, GatewayState, Heartbeat
from contract.signed import WILL_CTR, seal
from gateway.errors import ConfigError
from runtime import keyfiles

IDENTITY_KEY_FILE = "identity-key"


@dataclass
class GatewayIdentity:
    private: Ed25519PrivateKey
    kid: str = ""
    public_b64: str = ""
    session: int = 0
    ctr: int = 0

    def __post_init__(self) -> None:
        public = self.private.public_key()
        self.kid = key_id(public)
        self.public_b64 = b64url(public_raw(public))

    def new_session(self, session: int) -> None:
        self.session, self.ctr = session, 0

    def will(self, state: GatewayState) -> bytes:
        """The last-will of the current session: sealed now, with the reserved counter 0."""
        return seal(state.model_copy(update={"ctr": WILL_CTR, "session": self.session}).to_bytes(),
                    self.private, self.kid)

    def seal(self, msg: GatewayState | Heartbeat | Ack | Event) -> bytes:
        """Stamp the next counter of this session (and the session, for acks and events) and sign."""
        self.ctr += 1
        update: dict[str, int] = {"ctr": self.ctr}
        if isinstance(msg, Ack | Event):
            update["session"] = self.session
        return seal(msg.model_copy(update=update).to_bytes(), self.private, self.kid)


def key_path(state_dir: Path) -> Path:
    return state_dir / IDENTITY_KEY_FILE


def load_or_create(state_dir: Path) -> GatewayIdentity:
    path = key_path(state_dir)
    try:
        key, _ = keyfiles.load_or_create(path, what="gateway identity key", strict=True)
    except keyfiles.KeyFileError as exc:
        raise ConfigError(str(path), [str(exc)]) from None
    return GatewayIdentity(key)
