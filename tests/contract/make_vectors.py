"""Regenerate contract/vectors/*.json: `python -m tests.contract.make_vectors`.

Ed25519 signatures are deterministic, so every token here is byte-exact. The keys are test keys:
HUB seed = bytes 0..31, ATTACKER seed = bytes 32..63. Never deploy them.
"""

from __future__ import annotations

import json
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from contract import command as c
from contract.codecs import siren_modbus as sm
from contract.models import Action, Mode, Signal

OUT = Path(__file__).resolve().parents[2] / "contract" / "vectors"
NOW = 1_800_000_000
HUB = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
ATTACKER = Ed25519PrivateKey.from_private_bytes(bytes(range(32, 64)))
HUB_KID = c.key_id(HUB.public_key())


def claims(**over) -> c.CommandClaims:
    base = dict(aud="gw-001", jti="01J0000000000000000000CMD1", iat=NOW - 1, exp=NOW + 30,
                act=Action.ACTIVATE, targets=("siren-1", "siren-2"),
                params=c.CommandParams(signal=Signal.AIR_RAID, duration_s=180),
                alert="A-0001", mode=Mode.ACTUAL)
    base.update(over)
    return c.CommandClaims.model_validate(base)


def tamper(token: str) -> str:
    h, p, s = token.split(".")
    body = json.loads(c.b64url_decode(p))
    body["targets"] = ["siren-1", "siren-2", "siren-3"]
    return ".".join([h, c.b64url(json.dumps(body, separators=(",", ":")).encode()), s])


def alg_none(token: str) -> str:
    _h, p, _s = token.split(".")
    h = c.b64url(json.dumps({"alg": "none", "typ": c.TYP, "kid": HUB_KID}).encode())
    return f"{h}.{p}."


def command_vectors() -> dict:
    ok = c.sign_command(claims(), HUB)
    cases = [
        ("valid_activate", ok, "ok"),
        ("valid_stop", c.sign_command(claims(jti="01J0000000000000000000CMD2", act=Action.STOP,
                                              params=c.CommandParams()), HUB), "ok"),
        ("valid_exercise", c.sign_command(claims(jti="01J0000000000000000000CMD3", mode=Mode.EXERCISE), HUB), "ok"),
        ("expired", c.sign_command(claims(iat=NOW - 100, exp=NOW - 10), HUB), "expired"),
        ("expires_now", c.sign_command(claims(iat=NOW - 30, exp=NOW), HUB), "expired"),
        ("from_the_future", c.sign_command(claims(iat=NOW + 60, exp=NOW + 120), HUB), "not_yet_valid"),
        ("wrong_audience", c.sign_command(claims(aud="gw-002"), HUB), "wrong_audience"),
        ("lifetime_too_long", c.sign_command(claims(exp=NOW + 3600), HUB), "lifetime_too_long"),
        ("unknown_key", c.sign_command(claims(), ATTACKER), "unknown_key"),
        ("forged_with_hub_kid", c.sign_command(claims(), ATTACKER, kid=HUB_KID), "bad_signature"),
        ("tampered_targets", tamper(ok), "bad_signature"),
        ("alg_none", alg_none(ok), "bad_algorithm"),
        ("not_a_jws", "hello", "malformed"),
        ("empty", "", "malformed"),
    ]
    return {
        "now": NOW,
        "audience": "gw-001",
        "hub_public_key": c.b64url(c.public_raw(HUB.public_key())),
        "hub_kid": HUB_KID,
        "hub_seed_TEST_ONLY": c.private_seed_b64(HUB),
        "cases": [{"name": n, "token": t, "expect": e} for n, t, e in cases],
    }


def siren_vectors() -> dict:
    addr, regs = sm.encode_command(sm.Cmd.ACTIVATE, pattern=sm.Pattern.WAIL, duration_s=180, seq=7)
    status = sm.SirenStatus(sm.Status.SOUNDING, sm.Fault.AC_POWER | sm.Fault.DOOR_OPEN, 12.6, 175, 7, 1, "1.4")
    return {
        "activate_wail_180_seq7": {"address": addr, "registers": regs},
        "status_sounding_ac_door": {"registers": sm.encode_status(status), "state": "sounding",
                                    "faults": list(status.fault_names), "battery_v": 12.6, "fw": "1.4"},
    }


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for name, data in (("commands", command_vectors()), ("siren_modbus", siren_vectors())):
        (OUT / f"{name}.json").write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
        print("wrote", OUT / f"{name}.json")


if __name__ == "__main__":
    main()
