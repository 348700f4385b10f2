"""The shared `dozor sim ...` sub-app.

Every module that adds a simulator command calls `sim_app(app)` inside its `register(app)` and
decorates its commands on the returned Typer. The sub-app is created once and added to `app` once.
This module deliberately defines no `register`, so the CLI's auto-registration skips it.
"""

from __future__ import annotations

import typer

_SIM: typer.Typer | None = None
_ATTACHED: set[int] = set()


def sim_app(app: typer.Typer) -> typer.Typer:
    """Return the single shared "sim" sub-app, adding it to `app` the first time."""
    global _SIM
    if _SIM is None:
        _SIM = typer.Typer(no_args_is_help=True, help="Simulators: devices, brokers, a whole city")
    if id(app) not in _ATTACHED:
        app.add_typer(_SIM, name="sim")
        _ATTACHED.add(id(app))
    return _SIM
