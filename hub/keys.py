"""The hub's Ed25519 signing keys and their lifecycle: staged -> active -> retired.

Files in ``state_dir`` (every private key mode 0600, ``runtime.keyfiles``):

    hub-signing-key            the first key, created at first start (kept where older hubs put it)
    hub-keys/<kid>.key         keys made by ``dozor hub keys stage``
    hub-keys.json              {"active": kid, "keys": {kid: {"status", "public_key", "file", "ts"}}}

Exactly one key is active: commands are signed with it. Staged keys are announced (HubState.keys) and printed
by ``dozor hub pubkey`` so gateways can pin them before they are used; retired keys are neither used nor
announced. ``activate`` refuses, unless forced, while an online gateway does not pin the key (its birth lists
the kids it trusts). A running hub re-reads ``hub-keys.json`` when it changes (``KeyRing.reload_if_changed``).
``extra_verify_keys`` (config) are older public keys still announced alongside.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from contract.command import b64url, key_id, public_key_from_b64, public_raw
from hub.errors import ConfigError
from runtime import keyfiles

log = logging.getLogger(__name__)
KEY_FILE = "hub-signing-key"
RING_DIR = "hub-keys"
RING_FILE = "hub-keys.json"
STAGED, ACTIVE, RETIRED = "staged", "active", "retired"


@dataclass(frozen=True)
class HubKeys:
    private: Ed25519PrivateKey
    kid: str
    public_b64: str
    extra: dict[str, Ed25519PublicKey] = field(default_factory=dict)  # staged + configured older keys

    @property
    def all_kids(self) -> tuple[str, ...]:
        return (self.kid, *self.extra)

    def verification_keys(self) -> dict[str, Ed25519PublicKey]:
        return {self.kid: self.private.public_key(), **self.extra}

    def public_keys_b64(self) -> dict[str, str]:
        """Every announced key (active first): exactly what gateways should pin."""
        return {kid: b64url(public_raw(pub)) for kid, pub in self.verification_keys().items()}


def write_private(path: Path, text: str) -> None:
    """Create ``path`` with mode 0600 atomically-enough: O_EXCL so two starts never overwrite each other."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text + "\n")


def _pub_b64(key: Ed25519PrivateKey) -> str:
    return b64url(public_raw(key.public_key()))


class KeyRing:
    def __init__(self, state_dir: Path) -> None:
        self.state_dir = Path(state_dir)
        self.path = self.state_dir / RING_FILE
        self._mtime: float | None = None

    # ------------------------------------------------------------ files
    def _load_private(self, file: str) -> Ed25519PrivateKey:
        try:
            return keyfiles.load(self.state_dir / file, strict=True, what="hub signing key")
        except keyfiles.KeyFileError as exc:
            raise ConfigError(str(exc)) from None

    def doc(self) -> dict:
        """The ring, creating the first key (or adopting ``hub-signing-key``) on first use."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        if self.path.exists():
            try:
                return json.loads(self.path.read_text())
            except (OSError, ValueError) as exc:
                raise ConfigError(f"{self.path} is unreadable ({exc}); restore it from backup") from None
        try:
            key, _ = keyfiles.load_or_create(self.state_dir / KEY_FILE, what="hub signing key", strict=False)
        except keyfiles.KeyFileError as exc:
            raise ConfigError(str(exc)) from None
        kid = key_id(key.public_key())
        doc = {"active": kid, "keys": {kid: {"status": ACTIVE, "public_key": _pub_b64(key), "file": KEY_FILE,
                                             "ts": time.time()}}}
        self._save(doc)
        return doc

    def _save(self, doc: dict) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(doc, indent=2) + "\n")
        os.replace(tmp, self.path)

    def load(self, extra_public: tuple[str, ...] = ()) -> HubKeys:
        doc = self.doc()
        self._mtime = self.path.stat().st_mtime
        active = doc["active"]
        private = self._load_private(doc["keys"][active]["file"])
        if key_id(private.public_key()) != active:
            raise ConfigError(f"{self.path}: the active key file does not hold key {active}")
        extra: dict[str, Ed25519PublicKey] = {}
        for kid, k in doc["keys"].items():
            if k["status"] == STAGED:
                extra[kid] = public_key_from_b64(k["public_key"])
        for text in extra_public:
            pub = public_key_from_b64(text)
            extra.setdefault(key_id(pub), pub)
        extra.pop(active, None)
        return HubKeys(private=private, kid=active, public_b64=_pub_b64(private), extra=extra)

    def changed(self) -> bool:
        try:
            return self.path.stat().st_mtime != self._mtime
        except OSError:
            return False

    # ------------------------------------------------------------ lifecycle
    def list(self) -> list[dict]:
        doc = self.doc()
        return [{"kid": kid, **{k: v for k, v in info.items() if k != "file"}} for kid, info in doc["keys"].items()]

    def stage(self) -> dict:
        doc = self.doc()
        key = Ed25519PrivateKey.generate()
        kid = key_id(key.public_key())
        (self.state_dir / RING_DIR).mkdir(exist_ok=True, mode=0o700)
        file = f"{RING_DIR}/{kid}.key"
        keyfiles.write_new(self.state_dir / file, key)
        doc["keys"][kid] = {"status": STAGED, "public_key": _pub_b64(key), "file": file, "ts": time.time()}
        self._save(doc)
        log.warning("staged hub key %s: pin it on every gateway, then `dozor hub keys activate %s`", kid, kid)
        return {"kid": kid, **doc["keys"][kid]}

    def _get(self, doc: dict, kid: str) -> dict:
        info = doc["keys"].get(kid)
        if info is None:
            raise ConfigError(f"no hub key {kid!r}; known: {', '.join(doc['keys'])}")
        return info

    def activate(self, kid: str, *, gateways: dict[str, tuple[str, ...]], force: bool = False) -> dict:
        """Make ``kid`` the signing key. ``gateways``: online gateway -> the kids its birth says it pins.
        Refuses (unless ``force``) while any of them does not pin ``kid``. The old active key becomes staged
        (still announced and still trusted by gateways) until it is retired."""
        doc = self.doc()
        info = self._get(doc, kid)
        if info["status"] == RETIRED:
            raise ConfigError(f"hub key {kid} is retired; stage a new key instead")
        if doc["active"] == kid:
            return {"kid": kid, "status": ACTIVE, "changed": False, "not_trusting": []}
        missing = sorted(gw for gw, kids in gateways.items() if kid not in kids)
        if missing and not force:
            raise KeyRefused(kid, missing)
        old = doc["active"]
        doc["keys"][old]["status"] = STAGED
        info["status"], info["ts"] = ACTIVE, time.time()
        doc["active"] = kid
        self._save(doc)
        log.warning("hub key %s is now active (was %s)%s", kid, old,
                    f"; FORCED although {len(missing)} online gateway(s) do not pin it" if missing else "")
        return {"kid": kid, "status": ACTIVE, "changed": True, "previous": old, "not_trusting": missing}

    def retire(self, kid: str) -> dict:
        doc = self.doc()
        info = self._get(doc, kid)
        if doc["active"] == kid:
            raise ConfigError(f"hub key {kid} is active: activate another key first")
        info["status"], info["ts"] = RETIRED, time.time()
        self._save(doc)
        return {"kid": kid, "status": RETIRED}


class KeyRefused(ConfigError):
    def __init__(self, kid: str, gateways: list[str]) -> None:
        super().__init__(f"{len(gateways)} online gateway(s) do not pin hub key {kid} and would reject every "
                         f"command signed with it: {', '.join(gateways[:20])}{' ...' if len(gateways) > 20 else ''}. "
                         "Pin it there first (dozor hub pubkey), or give --force")
        self.kid = kid
        self.gateways = gateways


def load_or_create(state_dir: Path, extra_public: tuple[str, ...] = ()) -> HubKeys:
    return KeyRing(state_dir).load(extra_public)
