"""Every API route declares its role through hub.identity.require, except an explicit public allow-list."""

from __future__ import annotations

import pytest
from fastapi import APIRouter, Depends, FastAPI

from hub.api import PUBLIC_PATHS
from hub.app import Hub
from hub.identity import SATISFIES, Role, check_routes, require, satisfies
from tests.hub.helpers import make_config


@pytest.fixture
def hub(tmp_path):
    h = Hub(make_config(tmp_path, 1))  # not started: only its app is inspected
    yield h
    h.store.close()


def test_every_route_declares_a_role_or_is_public(hub):
    table = check_routes(hub.app, PUBLIC_PATHS)
    public = {k for k, role in table.items() if role is None}
    assert {k.split(" ", 1)[1] for k in public} == set(PUBLIC_PATHS)
    # the resident surface is open; everything operators use is not
    assert table["GET /api/v1/zones/{zone}/events"] is None and table["POST /api/v1/push/subscriptions"] is None
    assert table["POST /api/v1/alerts"] is Role.operator
    assert table["POST /api/v1/noise/events/{event_id}/review"] is Role.noise_reviewer
    assert table["POST /api/v1/nodes"] is Role.technician
    assert table["GET /metrics"] is Role.viewer and table["GET /api/v1/openapi.json"] is Role.viewer
    assert table["POST /api/v1/cap/import"] is Role.operator


def test_a_route_without_a_role_is_refused_at_start_up():
    app = FastAPI(openapi_url=None)  # (the default docs routes would be refused too)
    ok = APIRouter(dependencies=[Depends(require(Role.viewer))])
    ok.get("/fine")(lambda: 1)
    app.include_router(ok)
    app.get("/forgotten")(lambda: 2)
    with pytest.raises(RuntimeError, match="GET /forgotten"):
        check_routes(app, public=())
    assert check_routes(app, public={"/forgotten"})["GET /fine"] is Role.viewer


def test_role_table():
    assert all(satisfies(Role.admin, need) for need in Role)
    assert satisfies(Role.supervisor, Role.operator) and satisfies(Role.supervisor, Role.viewer)
    assert not satisfies(Role.operator, Role.supervisor)
    for specialist in (Role.technician, Role.noise_reviewer):
        assert SATISFIES[specialist] == {specialist, Role.viewer}
    assert all(satisfies(have, Role.viewer) for have in Role)
    assert [need for need in Role if satisfies(Role.viewer, need)] == [Role.viewer]
