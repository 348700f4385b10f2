"""Authentication and per-route roles for the hub's HTTP API.

Every route declares the role it needs with ``dependencies=[Depends(require(Role.X))]`` (or takes the
``Actor`` as a parameter: ``actor: Actor = Depends(require(Role.X))``). ``route_role`` reads that declaration
back, and ``check_routes`` refuses to build an app with a route that declares none and is not in the public
allow-list, so a forgotten declaration fails at start-up, not in production.

A request's bearer token is a dozor user token (``dzr_...``, hub/identity/tokens.py) or, when configured,
an OIDC JWT (hub/identity/oidc.py). Failed logins are counted per client address; past the limit the address
gets 429 until its window passes (brute force costs time, and Argon2 work is bounded).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Protocol

from fastapi import Depends, FastAPI, Request
from fastapi.routing import iter_route_contexts
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from hub.errors import RequestError
from hub.identity.roles import Actor, Role, satisfies
from hub.identity.tokens import key_id_of, verify_token
from hub.identity.users import UserStore

_bearer = HTTPBearer(auto_error=False)


class Unauthorized(RequestError):
    code = "unauthorized"
    status = 401


class Forbidden(RequestError):
    code = "forbidden"
    status = 403


class RateLimited(RequestError):
    code = "rate_limited"
    status = 429

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class TokenVerifier(Protocol):
    """A second way in (OIDC): a bearer JWT -> Actor, or raise Unauthorized."""

    async def actor(self, token: str) -> Actor: ...


class WindowLimiter:
    """At most ``limit`` events per ``window_s`` per key (a sliding window of monotonic times)."""

    def __init__(self, limit: int, window_s: float, *, clock: Callable[[], float] = time.monotonic,
                 max_keys: int = 10_000) -> None:
        self.limit, self.window_s, self.clock, self.max_keys = limit, window_s, clock, max_keys
        self._events: dict[str, deque[float]] = {}

    def _window(self, key: str) -> deque[float]:
        now = self.clock()
        q = self._events.get(key)
        if q is None:
            if len(self._events) >= self.max_keys:  # bounded memory: forget the quietest keys
                for k in [k for k, v in self._events.items() if not v or v[-1] < now - self.window_s]:
                    del self._events[k]
                if len(self._events) >= self.max_keys:
                    self._events.pop(next(iter(self._events)))
            q = self._events[key] = deque()
        while q and q[0] <= now - self.window_s:
            q.popleft()
        return q

    def blocked(self, key: str) -> float | None:
        """Seconds until ``key`` may try again, or None when it is under the limit."""
        q = self._window(key)
        if len(q) < self.limit:
            return None
        return max(0.0, q[0] + self.window_s - self.clock())

    def hit(self, key: str) -> None:
        self._window(key).append(self.clock())

    def take(self, key: str) -> float | None:
        """Count one event unless blocked; returns the wait when blocked."""
        wait = self.blocked(key)
        if wait is None:
            self.hit(key)
        return wait


class Authenticator:
    """Bearer token -> Actor. Argon2 verification runs once per token and hub process (off the event loop);
    after that a request costs one indexed SQLite read, so a disabled user or a rotated token is refused at
    once, also when changed by the CLI while the hub runs."""

    def __init__(self, users: UserStore, *, failures: WindowLimiter | None = None,
                 oidc: TokenVerifier | None = None, metrics_token: str | None = None,
                 on_failure: Callable[[str], None] = lambda _reason: None,
                 on_limited: Callable[[str], None] = lambda _what: None) -> None:
        self.users = users
        self.failures = failures or WindowLimiter(10, 60.0)
        self.oidc = oidc
        self.metrics_token = metrics_token
        self.on_failure, self.on_limited = on_failure, on_limited
        self._verified: dict[bytes, str] = {}  # sha256(token) -> the token hash it was verified against

    async def authenticate(self, token: str | None, client: str, *, metrics: bool = False) -> Actor:
        wait = self.failures.blocked(client)
        if wait is not None:
            self.on_limited("login")
            raise RateLimited(f"too many failed logins from {client}: try again in {wait:.0f} s", wait)
        if not token:
            self.on_failure("missing")
            raise Unauthorized("missing bearer token: send 'Authorization: Bearer <token>' "
                               "(a user token from `dozor users add`, or the admin-token of `dozor hub init`)")
        try:
            return await self._actor(token, metrics=metrics)
        except Unauthorized:
            self.failures.hit(client)
            raise

    async def _actor(self, token: str, *, metrics: bool) -> Actor:
        if metrics and self.metrics_token and hmac.compare_digest(token.encode(), self.metrics_token.encode()):
            return Actor("metrics", Role.viewer, "token")
        key_id = key_id_of(token)
        if key_id is None:
            if self.oidc is not None and token.count(".") == 2:
                return await self.oidc.actor(token)
            self.on_failure("malformed")
            raise Unauthorized("token rejected")
        if self.users.db.dialect == "postgres":  # a round trip to another process: not on the event loop, which
            cred = await asyncio.to_thread(self.users.credential, key_id)  # may be sending an alert's commands
        else:  # SQLite: a local read on the loop's own connection
            cred = self.users.credential(key_id)
        if cred is None:
            self.on_failure("unknown")
            raise Unauthorized("token rejected")
        digest = hashlib.sha256(token.encode()).digest()
        if self._verified.get(digest) != cred.token_hash:
            if not await asyncio.to_thread(verify_token, cred.token_hash, token):
                self.on_failure("mismatch")
                raise Unauthorized("token rejected")
            if len(self._verified) > 10_000:
                self._verified.clear()
            self._verified[digest] = cred.token_hash
        if cred.disabled:
            self.on_failure("disabled")
            raise Unauthorized(f"user {cred.name!r} is disabled")
        return Actor(cred.name, cred.role, "token")


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


_REQUIRES: dict[tuple[Role, bool], Callable] = {}


def require(role: Role, *, metrics: bool = False) -> Callable:
    """A FastAPI dependency: the caller's Actor, if their role satisfies ``role`` (401/403/429 otherwise).

    ``metrics=True`` also accepts the hub's separate metrics token (for Prometheus). The returned callable
    carries ``required_role``; ``route_role`` reads it."""
    key = (role, metrics)
    if key in _REQUIRES:
        return _REQUIRES[key]

    async def dependency(request: Request,
                         creds: HTTPAuthorizationCredentials | None = Depends(_bearer)) -> Actor:
        auth: Authenticator = request.app.state.identity
        actor = await auth.authenticate(creds.credentials if creds else None, client_address(request),
                                        metrics=metrics)
        if not satisfies(actor.role, role):
            auth.on_failure("forbidden")
            raise Forbidden(f"{actor.name} acts as {actor.role.value}; this needs {role.value}")
        request.state.actor = actor
        return actor

    dependency.required_role = role  # type: ignore[attr-defined]
    dependency.__name__ = f"require_{role.value.replace('-', '_')}"
    _REQUIRES[key] = dependency
    return dependency


def route_role(route) -> Role | None:
    """The role a route declares through ``require`` (searched through its dependency tree), or None. With
    several (a router's ``viewer`` and a route's ``noise-reviewer``) the most demanding one: the role that the
    fewest roles satisfy."""
    found: list[Role] = []
    dependant = getattr(route, "dependant", None)
    stack = [dependant] if dependant is not None else []
    while stack:
        dep = stack.pop()
        role = getattr(dep.call, "required_role", None)
        if role is not None:
            found.append(role)
        stack.extend(dep.dependencies)
    if not found:
        return None
    return min(found, key=lambda need: sum(1 for have in Role if satisfies(have, need)))


def check_routes(app: FastAPI, public: Iterable[str]) -> dict[str, Role | None]:
    """Every route must declare a role unless its path is in ``public``; returns {"METHOD path": role}.
    Raises RuntimeError naming the routes that declare nothing (a programming error, found at start-up)."""
    public = set(public)
    table: dict[str, Role | None] = {}
    missing = []
    for route in iter_route_contexts(app.routes):  # routers included lazily are expanded here
        path = route.path or ""
        methods = sorted(route.methods or {"GET"})
        role = route_role(route)
        for method in methods:
            table[f"{method} {path}"] = role
        if role is None and path not in public:
            missing.append(f"{','.join(methods)} {path or route.name}")
    if missing:
        raise RuntimeError("routes without a declared role (add Depends(require(Role.X)) or list them as "
                           "public): " + "; ".join(missing))
    return table
