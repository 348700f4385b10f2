"""OIDC bearer JWTs at the protocol level: tokens signed like a provider's (RS256, ES256), keys from a JWKS file
and from a JWKS served on 127.0.0.1; issuer, audience, expiry and key checked; the role from a claim."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from hub.config import OidcSettings
from hub.errors import ConfigError
from tests.hub.helpers import make_config, running_hub

ISSUER = "https://sso.city.example/realms/kyiv"
AUD = "dozor-hub"
ROLES = {"dozor-operators": "operator", "dozor-supervisors": "supervisor", "dozor-view": "viewer"}


def jwk(public, kid: str, alg: str) -> dict:
    algo = jwt.algorithms.RSAAlgorithm if alg == "RS256" else jwt.algorithms.ECAlgorithm
    return {**json.loads(algo.to_jwk(public)), "kid": kid, "alg": alg, "use": "sig"}


@pytest.fixture(scope="module")
def provider():
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    jwks = {"keys": [jwk(rsa_key.public_key(), "rsa-1", "RS256"), jwk(ec_key.public_key(), "ec-1", "ES256")]}
    return {"rsa": rsa_key, "ec": ec_key, "jwks": jwks}


def token(provider, *, key="rsa", kid=None, **over) -> str:
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": AUD, "iat": now, "exp": now + 300, "sub": "u-17",
              "preferred_username": "olena", "realm_access": {"roles": ["offline_access", "dozor-operators"]}}
    claims.update(over)
    claims = {k: v for k, v in claims.items() if v is not None}
    alg = "RS256" if key == "rsa" else "ES256"
    return jwt.encode(claims, provider[key], algorithm=alg, headers={"kid": kid or f"{key}-1"})


class _Jwks(BaseHTTPRequestHandler):
    body = b""
    hits = 0

    def do_GET(self):  # noqa: N802 - http.server API
        type(self).hits += 1
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *_):
        pass


@pytest.fixture
def jwks_server(provider):
    handler = type("Jwks", (_Jwks,), {"body": json.dumps(provider["jwks"]).encode(), "hits": 0})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/realms/kyiv/protocol/openid-connect/certs", handler
    server.shutdown()


def oidc_config(tmp_path, port, **keys):
    cfg = make_config(tmp_path, port)
    return cfg.model_copy(update={"oidc": OidcSettings(issuer=ISSUER, audience=AUD, role_claim="realm_access.roles",
                                                       roles=ROLES, **keys)})


async def whoami(cfg, bearer: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{cfg.hub.api_port}", timeout=10) as http:
        return await http.get("/api/v1/whoami", headers={"Authorization": f"Bearer {bearer}"})


async def test_oidc_with_a_jwks_file(mosquitto, tmp_path, provider, token_leak_scanner):
    (tmp_path / "jwks.json").write_text(json.dumps(provider["jwks"]))
    cfg = oidc_config(tmp_path, mosquitto.port, jwks_file=tmp_path / "jwks.json")
    async with running_hub(cfg):
        r = await whoami(cfg, token(provider))
        assert r.json() == {"name": "olena", "role": "operator", "via": "oidc"}
        r = await whoami(cfg, token(provider, key="ec", realm_access={"roles": ["dozor-view", "dozor-supervisors"]}))
        assert r.json()["role"] == "supervisor"  # several mapped roles: the most powerful
        refused = {
            "wrong audience": token(provider, aud="another-app"),
            "wrong issuer": token(provider, iss="https://evil.example"),
            "expired": token(provider, iat=int(time.time()) - 4000, exp=int(time.time()) - 3600),
            "no expiry": token(provider, exp=None),
            "unknown key": token(provider, kid="rsa-9"),
            "wrong key for kid": token(provider, key="ec", kid="rsa-1"),
            "unsigned": jwt.encode({"iss": ISSUER, "aud": AUD, "exp": int(time.time()) + 60,
                                    "preferred_username": "x", "realm_access": {"roles": ["dozor-operators"]}},
                                   None, algorithm="none"),
        }
        for why, bearer in refused.items():
            r = await whoami(cfg, bearer)
            assert r.status_code == 401, (why, r.status_code, r.text)
        r = await whoami(cfg, token(provider, realm_access={"roles": ["offline_access"]}))
        assert r.status_code == 403 and "no dozor role" in r.json()["detail"]
        # an OIDC operator acts as a named person: the audit chain records them
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{cfg.hub.api_port}", timeout=10) as http:
            r = await http.post("/api/v1/alerts", json={"zones": ["north"], "signal": "test", "mode": "exercise"},
                                headers={"Authorization": f"Bearer {token(provider)}"})
            assert r.status_code in (201, 400), r.text  # 400 no_targets: no gateway here; the role was enough
            r = await http.post("/api/v1/noise/events/x/review", json={"action": "confirm", "note": "n"},
                                headers={"Authorization": f"Bearer {token(provider)}"})
            assert r.status_code == 403


async def test_oidc_with_a_jwks_url(mosquitto, tmp_path, provider, jwks_server, token_leak_scanner):
    url, handler = jwks_server
    cfg = oidc_config(tmp_path, mosquitto.port, jwks_url=url)
    async with running_hub(cfg):
        for _ in range(3):
            r = await whoami(cfg, token(provider, key="ec"))
            assert r.json() == {"name": "olena", "role": "operator", "via": "oidc"}
        assert handler.hits == 1  # fetched once, then cached
        assert (await whoami(cfg, token(provider, aud="x"))).status_code == 401


def test_oidc_config_errors(tmp_path, provider):
    from hub.config import parse_config

    base = {"issuer": ISSUER, "audience": AUD, "roles": ROLES}
    with pytest.raises(ConfigError, match="exactly one of jwks_file or jwks_url"):
        parse_config({"oidc": base}, base=tmp_path)
    with pytest.raises(ConfigError, match="never none or HS"):
        parse_config({"oidc": {**base, "jwks_url": "https://x", "algorithms": ["HS256"]}}, base=tmp_path)
    with pytest.raises(ConfigError, match="'root' is not a role"):
        parse_config({"oidc": {**base, "jwks_url": "https://x", "roles": {"a": "root"}}}, base=tmp_path)
