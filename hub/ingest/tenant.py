"""The tenant label on every stored series: a hub of a named tenant (``[hub] tenant``) writes each line with the
tag ``tenant=<name>``, whatever made it (readings, compact series, AQI, events, fleet and alert points, noise).

It is added at the one place every line passes, the writer, so no producer can forget it. Grafana and other
readers of a shared store filter on it (VictoriaMetrics enforces it with ``extra_label=tenant=<name>`` on its
query API; docs/operations.md "Several cities on one deployment"). The default tenant writes lines unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence

from contract.topics import check_tenant
from hub.ingest.writer import Writer

TAG = "tenant"


def with_tenant(line: str, tenant: str) -> str:
    """``line`` (or several ``\\n``-joined lines) with ``,tenant=<tenant>`` right after each measurement.

    The measurement ends at its first unescaped comma or space (line protocol escapes both with a backslash);
    a tenant name needs no escaping (contract.topics.TENANT_RE)."""
    if "\n" in line:
        return "\n".join(with_tenant(part, tenant) for part in line.split("\n") if part)
    i, n = 0, len(line)
    while i < n:
        c = line[i]
        if c == "\\":
            i += 2
            continue
        if c in ", ":
            break
        i += 1
    return f"{line[:i]},{TAG}={tenant}{line[i:]}"


class TenantTagged:
    """A ``Writer`` that tags every line with the tenant before the real writer sends it."""

    def __init__(self, inner: Writer, tenant: str) -> None:
        if not check_tenant(tenant):
            raise ValueError("TenantTagged needs a named tenant (the default tenant writes lines unchanged)")
        self.inner = inner
        self.tenant = tenant
        self.name = inner.name

    def write(self, lines: Sequence[str]) -> None:
        self.inner.write([with_tenant(line, self.tenant) for line in lines])

    def close(self) -> None:
        self.inner.close()
