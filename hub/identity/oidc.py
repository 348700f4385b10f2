"""OIDC bearer JWTs (PyJWT): signature by a key of the provider's JWKS (a file, or a URL through PyJWKClient),
issuer, audience, expiry; the role from a claim through the configured mapping. The result is an Actor with
``via="oidc"``."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import jwt

from hub.config import OidcSettings
from hub.errors import ConfigError
from hub.identity.auth import Forbidden, Unauthorized
from hub.identity.roles import SATISFIES, Actor, Role


class OidcVerifier:
    def __init__(self, cfg: OidcSettings) -> None:
        self.cfg = cfg
        self._client: jwt.PyJWKClient | None = None
        self._keys: dict[str, jwt.PyJWK] = {}
        if cfg.jwks_file is not None:
            try:
                jwks = jwt.PyJWKSet.from_json(cfg.jwks_file.read_text())
            except OSError as exc:
                raise ConfigError(f"[oidc] jwks_file {cfg.jwks_file}: {exc.strerror or exc}") from None
            except (jwt.PyJWKSetError, jwt.InvalidKeyError, ValueError) as exc:
                raise ConfigError(f"[oidc] jwks_file {cfg.jwks_file}: not a usable JWKS ({exc})") from None
            self._keys = {k.key_id or "": k for k in jwks.keys}
        else:
            self._client = jwt.PyJWKClient(cfg.jwks_url, cache_keys=True, lifespan=cfg.jwks_cache_s, timeout=10)

    def _key(self, token: str) -> Any:
        if self._client is not None:
            return self._client.get_signing_key_from_jwt(token)
        kid = jwt.get_unverified_header(token).get("kid") or ""
        if kid not in self._keys:
            if len(self._keys) == 1 and not kid:
                return next(iter(self._keys.values()))
            raise Unauthorized("OIDC token signed by an unknown key")
        return self._keys[kid]  # a PyJWK: PyJWT also checks that the token's alg is this key's

    def _decode(self, token: str) -> dict:
        c = self.cfg
        try:
            key = self._key(token)
            return jwt.decode(token, key, algorithms=list(c.algorithms), audience=c.audience, issuer=c.issuer,
                              leeway=c.leeway_s, options={"require": ["exp", "iss", "aud"]})
        except jwt.PyJWKClientError as exc:
            raise Unauthorized(f"OIDC token rejected: signing key not available ({exc})") from None
        except jwt.InvalidTokenError as exc:
            raise Unauthorized(f"OIDC token rejected: {exc}") from None
        except (TypeError, ValueError) as exc:  # a key that does not fit the token's algorithm, bad encodings
            raise Unauthorized(f"OIDC token rejected: {type(exc).__name__}") from None

    def actor_of(self, claims: dict) -> Actor:
        c = self.cfg
        name = claims.get(c.name_claim) or claims.get("sub")
        if not isinstance(name, str) or not name.strip() or len(name) > 128:
            raise Unauthorized(f"OIDC token has no usable {c.name_claim!r} or 'sub' claim")
        value: Any = claims
        for part in c.role_claim.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        values = [value] if isinstance(value, str) else [v for v in value if isinstance(v, str)] \
            if isinstance(value, list) else []
        roles = [Role(c.roles[v]) for v in values if v in c.roles]
        if not roles:
            raise Forbidden(f"{name}: the identity provider gives no dozor role (claim {c.role_claim!r}: "
                            f"{json.dumps(values)[:200]})")
        return Actor(name.strip(), max(roles, key=lambda r: len(SATISFIES[r])), "oidc")

    async def actor(self, token: str) -> Actor:
        claims = await asyncio.to_thread(self._decode, token) if self._client is not None else self._decode(token)
        return self.actor_of(claims)
