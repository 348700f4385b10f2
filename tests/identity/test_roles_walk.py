"""Every API route against every role (and no token), each with its expected status: 401 without a token, 403
for a role that does not satisfy the route's, and neither for one that does. Requests are chosen to have no
side effects (unknown ids, empty bodies)."""

from __future__ import annotations

import re

import httpx

from hub.api import PUBLIC_PATHS
from hub.identity import Role, check_routes, satisfies
from tests.hub.helpers import make_config, running_hub
from tests.tokens import add_user


def concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "no-such-id", path)


async def test_every_route_against_every_role(mosquitto, tmp_path, token_leak_scanner):
    cfg = make_config(tmp_path, mosquitto.port, login_failures_per_min=100_000)
    tokens = {role: add_user(cfg.hub.state_dir, f"user-{role.value}", role) for role in Role}
    async with running_hub(cfg) as hub, httpx.AsyncClient(base_url=f"http://127.0.0.1:{cfg.hub.api_port}",
                                                          timeout=10) as http:
        table = check_routes(hub.app, PUBLIC_PATHS)
        walked = 0
        seen: dict[tuple[str, str], int] = {}
        for key, need in sorted(table.items()):
            method, path = key.split(" ", 1)
            if method == "HEAD":
                continue
            url = concrete(path)
            body = {} if method in ("POST", "PUT", "PATCH") else None
            if need is None:  # public: no token needed (never 401/403)
                r = await http.request(method, url, json=body)
                assert r.status_code not in (401, 403), (key, r.status_code)
                continue
            r = await http.request(method, url, json=body)
            assert r.status_code == 401, (key, "no token", r.status_code)
            r = await http.request(method, url, json=body, headers={"Authorization": "Bearer dzr_forged"})
            assert r.status_code == 401, (key, "forged", r.status_code)
            for role, token in tokens.items():
                r = await http.request(method, url, json=body, headers={"Authorization": f"Bearer {token}"})
                seen[(key, role.value)] = r.status_code
                if satisfies(role, need):
                    assert r.status_code not in (401, 403) and r.status_code < 500, (key, role, r.status_code, r.text)
                else:
                    assert r.status_code == 403, (key, role, r.status_code)
                    assert f"needs {need.value}" in r.json()["detail"]
                walked += 1
        # the walk covered the whole API, every role on every protected route
        protected = {k for k, v in table.items() if v is not None and not k.startswith("HEAD")}
        assert walked == len(protected) * len(Role) and len(protected) >= 25
        # spot checks of the table the walk enforced
        assert seen[("POST /api/v1/alerts", "viewer")] == 403 and seen[("POST /api/v1/alerts", "operator")] == 422
        assert seen[("POST /api/v1/alerts", "technician")] == 403
        assert seen[("POST /api/v1/alerts/{alert_id}/stop", "supervisor")] == 404
        assert seen[("POST /api/v1/noise/events/{event_id}/review", "operator")] == 403
        assert seen[("POST /api/v1/noise/events/{event_id}/review", "noise-reviewer")] == 422
        assert seen[("POST /api/v1/nodes", "technician")] == 422 and seen[("POST /api/v1/nodes", "operator")] == 403
        assert seen[("GET /metrics", "viewer")] == 200
