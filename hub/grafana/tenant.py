"""One Grafana folder and one datasource per tenant (city), so a city's dashboards can only read its own data.

``dozor grafana push --tenant NAME`` sends the same dashboards as for a single city, with their uids and titles
suffixed by the tenant, into the folder ``dozor-NAME``, every panel, variable and annotation bound to the datasource
``dozor-influxdb-NAME``. That datasource reads the tenant's own bucket (default ``dozor-NAME``: the tenant hub's
``[store] database``) with a token the deployer scopes to that bucket, so nothing in the tenant's folder can query
another city's series (docs/operations.md, "Several cities on one deployment").
"""

from __future__ import annotations

import copy
from typing import Any

from contract.topics import check_tenant
from hub.grafana.builder import DATASOURCE_UID
from hub.grafana.dashboards import DATASOURCE_NAME, FOLDER_TITLE, FOLDER_UID, dashboards, datasource

UID_MAX = 40  # Grafana's limit on dashboard, folder and datasource uids


def _named(tenant: str) -> str:
    if not check_tenant(tenant):
        raise ValueError("a Grafana tenant needs a name (the default tenant uses the plain dozor folder)")
    return tenant


def folder(tenant: str) -> tuple[str, str]:
    """(uid, title) of the tenant's folder."""
    return _uid(f"{FOLDER_UID}-{_named(tenant)}"), f"{FOLDER_TITLE} {tenant}"


def datasource_uid(tenant: str) -> str:
    return _uid(f"{DATASOURCE_UID}-{_named(tenant)}")


def bucket(tenant: str) -> str:
    """The tenant's own bucket (InfluxDB 2/3) or database (1.x), as `dozor provision tenant` configures it."""
    return f"dozor-{_named(tenant)}"


def tenant_datasource(url: str, token: str | None, tenant: str, *, database: str | None = None) -> dict[str, Any]:
    ds = datasource(url, token, database=database or bucket(tenant))
    return {**ds, "name": f"{DATASOURCE_NAME} ({tenant})", "uid": datasource_uid(tenant), "isDefault": False}


def tenant_dashboards(tenant: str) -> dict[str, dict[str, Any]]:
    """The dashboards of ``hub.grafana.dashboards`` for one tenant: own uids and titles, own datasource."""
    ds_uid = datasource_uid(tenant)

    def rebind(node: Any) -> Any:
        if isinstance(node, dict):
            if node.get("type") == "influxdb" and node.get("uid") == DATASOURCE_UID:
                return {**node, "uid": ds_uid}
            return {k: rebind(v) for k, v in node.items()}
        if isinstance(node, list):
            return [rebind(v) for v in node]
        return node

    out = {}
    for stem, dash in dashboards().items():
        d = rebind(copy.deepcopy(dash))
        d["uid"] = _uid(f"{dash['uid']}-{tenant}")
        d["title"] = f"{dash['title']} ({tenant})"
        d["tags"] = [*dash.get("tags", []), f"tenant:{tenant}"]
        out[f"{stem}-{tenant}"] = d
    return out


def _uid(uid: str) -> str:
    if len(uid) > UID_MAX:
        raise ValueError(f"Grafana uid {uid!r} is longer than {UID_MAX} characters: use a shorter tenant name")
    return uid
