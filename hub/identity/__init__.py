"""Identities and roles: users with their own tokens (Argon2id hashes only), OIDC bearer JWTs, and the one
mechanism every API route declares its role through (``require``). See docs/operations.md for the role table."""

from hub.identity.auth import (
    Authenticator,
    Forbidden,
    RateLimited,
    Unauthorized,
    WindowLimiter,
    check_routes,
    require,
    route_role,
)
from hub.identity.roles import SATISFIES, Actor, Role, parse_role, satisfies
from hub.identity.users import IdentityError, User, UserStore, users_path

__all__ = ["SATISFIES", "Actor", "Authenticator", "Forbidden", "IdentityError", "RateLimited", "Role",
           "Unauthorized", "User", "UserStore", "WindowLimiter", "check_routes", "parse_role", "require",
           "route_role", "satisfies", "users_path"]
