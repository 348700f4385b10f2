"""Build the hub's authenticator from its config: the user store, the failed-login limiter, the optional
metrics token and OIDC. A hub without any enabled user (and without OIDC) refuses to start."""

from __future__ import annotations

from hub.config import HubConfig
from hub.errors import ConfigError
from hub.identity.auth import Authenticator, WindowLimiter
from hub.identity.users import UserStore
from hub.metrics import HubMetrics
from runtime.keyfiles import KeyFileError, check_private


def read_metrics_token(config: HubConfig) -> str | None:
    path = config.hub.metrics_token_file
    if path is None:
        return None
    try:
        check_private(path, "[hub] metrics_token_file")
        token = path.read_text().strip()
    except KeyFileError as exc:
        raise ConfigError(str(exc)) from None
    except OSError as exc:
        raise ConfigError(f"[hub] metrics_token_file {path}: {exc.strerror or exc}") from None
    if len(token) < 16:
        raise ConfigError(f"[hub] metrics_token_file {path}: the token is too short (at least 16 characters)")
    return token


def build_authenticator(config: HubConfig, users: UserStore, metrics: HubMetrics) -> Authenticator:
    oidc = None
    if config.oidc is not None:
        from hub.identity.oidc import OidcVerifier

        oidc = OidcVerifier(config.oidc)
    if users.active_count() == 0 and oidc is None:
        where = f" --config {config.source}" if config.source else ""
        raise ConfigError(f"no users in {users.path}: a hub without users refuses to start. Create the first "
                          f"one with `dozor users add NAME --role admin{where}` (or start a new deployment "
                          "with `dozor hub init DIR`)")
    return Authenticator(users, failures=WindowLimiter(config.hub.login_failures_per_min, 60.0), oidc=oidc,
                         metrics_token=read_metrics_token(config),
                         on_failure=lambda reason: metrics.api_auth_refusals.labels(reason).inc(),
                         on_limited=lambda what: metrics.api_rate_limited.labels(what).inc())
