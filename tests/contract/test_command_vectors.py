"""Golden vectors for the signed command envelope, plus property tests over generated commands."""

from __future__ import annotations

import json
from importlib import resources

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contract import command as c
from contract.errors import CommandRejected
from tests.contract import make_vectors as mv

VEC = json.loads(resources.files("contract").joinpath("vectors/commands.json").read_text())
KEYS = {VEC["hub_kid"]: c.public_key_from_b64(VEC["hub_public_key"])}


def verdict(token: str, now: float = VEC["now"], audience: str = VEC["audience"]) -> str:
    try:
        c.verify_command(token, keys=KEYS, audience=audience, now=now)
    except CommandRejected as exc:
        return exc.reason.value
    return "ok"


@pytest.mark.parametrize("case", VEC["cases"], ids=lambda case: case["name"])
def test_golden_command_vectors(case):
    assert verdict(case["token"]) == case["expect"]


def test_vectors_are_reproducible():
    """Ed25519 is deterministic: regenerating gives the exact committed bytes."""
    assert mv.command_vectors() == VEC


def test_rejection_carries_unverified_ids_for_the_ack():
    forged = next(x for x in VEC["cases"] if x["name"] == "forged_with_hub_kid")["token"]
    with pytest.raises(CommandRejected) as info:
        c.verify_command(forged, keys=KEYS, audience="gw-001", now=VEC["now"])
    assert info.value.jti == "01J0000000000000000000CMD1" and info.value.alert == "A-0001"


ok_token = VEC["cases"][0]["token"]


@settings(max_examples=300)
@given(pos=st.integers(min_value=0, max_value=len(ok_token) - 1), ch=st.sampled_from("AQgw_-xyz0"))
def test_any_single_character_change_is_never_accepted(pos, ch):
    mutated = ok_token[:pos] + ch + ok_token[pos + 1:]
    # base64url has slack bits in the last char of each segment: a change that decodes to the same
    # bytes is the same token, and only then may it verify.
    same_bytes = all(
        c.b64url_decode(a) == c.b64url_decode(b)
        for a, b in zip(mutated.split("."), ok_token.split("."), strict=False)
    ) if mutated.count(".") == 2 else False
    assert (verdict(mutated) == "ok") == same_bytes


@settings(max_examples=300)
@given(st.binary(max_size=600) | st.text(max_size=600))
def test_garbage_is_rejected_as_malformed_or_worse_never_crashes(data):
    assert verdict(data) != "ok"


@pytest.mark.parametrize("where", ["header", "payload"])
def test_deeply_nested_json_is_malformed_not_a_crash(where):
    deep = c.b64url(("[" * 5000 + "]" * 5000).encode())
    h, p, sig = ok_token.split(".")
    token = f"{deep}.{p}.{sig}" if where == "header" else f"{h}.{deep}.{sig}"
    with pytest.raises(CommandRejected) as info:
        c.verify_command(token, keys=KEYS, audience="gw-001", now=VEC["now"])
    # a nested header cannot be parsed at all; a swapped payload fails the signature before it is parsed
    assert info.value.reason.value == ("malformed" if where == "header" else "bad_signature")


_ids = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,20}", fullmatch=True)


@settings(max_examples=60, deadline=None)
@given(aud=_ids, targets=st.lists(_ids, min_size=1, max_size=5, unique=True),
       by=st.none() | st.text(max_size=40), iat=st.integers(0, 2**40), act=st.sampled_from(list(c.Action)))
def test_the_hubs_signer_makes_the_same_bytes_as_pyjwt(aud, targets, by, iat, act):
    """sign_command builds the JWS itself (the hub's hot path): byte for byte what PyJWT makes, for any claims
    (non-ASCII names of who ordered it too), so the wire and every gateway's verifier are unchanged."""
    import jwt

    key = mv.HUB
    params = c.CommandParams(signal=c.Signal.AIR_RAID, duration_s=60) if act is c.Action.ACTIVATE else \
        c.CommandParams()
    claims = c.CommandClaims(aud=aud, jti="j" * 12, iat=iat, exp=iat + 30, act=act, targets=tuple(targets),
                             params=params, alert="a-1", mode=c.Mode.EXERCISE, by=by)
    kid = c.key_id(key.public_key())
    want = jwt.encode(claims.model_dump(mode="json", exclude_none=True), key, algorithm=c.ALG,
                      headers={"kid": kid, "typ": c.TYP})
    assert c.sign_command(claims, key, kid) == want
    assert c.verify_command(want, keys={kid: key.public_key()}, audience=aud, now=iat + 1).jti == "j" * 12


@settings(max_examples=80, deadline=None)
@given(first=_ids, aud=_ids, targets=st.lists(_ids, min_size=1, max_size=8, unique=True),
       by=st.none() | st.text(max_size=40), alert=st.none() | st.text(max_size=30),
       jti=st.from_regex(r"[A-Za-z0-9_.:-]{8,40}", fullmatch=True), act=st.sampled_from(list(c.Action)))
def test_a_phase_template_makes_the_same_bytes_as_the_model(first, aud, targets, by, alert, jti, act):
    """The hub encodes a phase's commands from one template (only aud, jti and targets vary): every token is byte
    for byte what sign_command makes from the full model (and so what PyJWT makes), whatever the shared fields
    hold (non-ASCII names, quotes, text that looks like the template's own marks is refused instead)."""
    key = mv.HUB
    kid = c.key_id(key.public_key())
    params = c.CommandParams(signal=c.Signal.AIR_RAID, duration_s=60) if act is c.Action.ACTIVATE else \
        c.CommandParams()

    def claims(gw: str, j: str, t: tuple[str, ...]) -> c.CommandClaims:
        return c.CommandClaims(aud=gw, jti=j, iat=1_700_000_000, exp=1_700_000_030, act=act, targets=t,
                               params=params, alert=alert, mode=c.Mode.EXERCISE, by=by)

    template = c.CommandTemplate(claims(first, "f" * 10, ("x-1",)), kid)
    data, targets_json = template.signing_input(aud, jti, tuple(targets))
    assert c.seal(data, key).decode() == c.sign_command(claims(aud, jti, tuple(targets)), key, kid)
    assert json.loads(targets_json) == targets


@pytest.mark.parametrize("aud, jti, targets", [
    ("gw-1\n", "j" * 10, ("s-1",)),  # a trailing newline ($ would let it through; the model does not)
    ("gw-1", "j" * 10, ('s"1',)),  # a quote would break out of the JSON string
    ("gw-1", "j" * 10, ("s-1", "s-1")),  # duplicates
    ("gw-1", "j" * 10, ()),  # no target
    ("gw-1", "j" * 10, tuple(f"s-{i}" for i in range(c.MAX_TARGETS + 1))),  # too many
    ("gw-1", "short", ("s-1",)),  # jti under 8 characters
    ("gw-1", "j" * 9 + "/", ("s-1",)),  # jti outside its alphabet
    ("gw-1", "j" * 10, ("s-1", "s\\2")),  # a backslash would be an escape
])
def test_a_phase_template_refuses_what_the_model_refuses(aud, jti, targets):
    kid = c.key_id(mv.HUB.public_key())
    template = c.CommandTemplate(c.CommandClaims(aud="gw-0", jti="f" * 10, iat=1, exp=31, act=c.Action.STOP,
                                                 targets=("x",), mode=c.Mode.EXERCISE), kid)
    with pytest.raises(ValueError):
        template.signing_input(aud, jti, targets)
    with pytest.raises(ValueError):  # and so does the model, which the hub then falls back to
        c.CommandClaims(aud=aud, jti=jti, iat=1, exp=31, act=c.Action.STOP, targets=targets, mode=c.Mode.EXERCISE)


def test_claims_that_hold_a_template_mark_are_encoded_one_by_one():
    claims = c.CommandClaims(aud="gw-0", jti="f" * 10, iat=1, exp=31, act=c.Action.STOP, targets=("x",),
                             mode=c.Mode.EXERCISE, by='"@@dozor-aud@@"')
    with pytest.raises(ValueError):
        c.CommandTemplate(claims, "kid")
