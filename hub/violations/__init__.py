"""The noise violations register: signed pass-by evidence from gateways, reviewed by people.

``service.Violations`` (dispatcher hooks for events and births, signature checks, the review rules),
``register.Register`` (SQLite: events, append-only audit, evidence keys), ``export`` (filters, monthly report,
CSV, GeoJSON), ``api.router`` (/api/v1/noise/...), ``models`` (API shapes).
"""
