"""`dozor`: one console command. Each sub-command group lives in dozor/commands/<group>.py and registers
itself through ``register(app)``.

The full app is built on first use (``from dozor.cli import app`` or running ``dozor``). The long-running
``dozor gateway run`` loads only its own command module, so a street-cabinet gateway does not carry the CLI's
other dependencies (hub, HTTP client, tables) in memory: see the footprint figures in docs/benchmarks.md.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys

import typer

HELP = "dozor: city warning and street sensing"
LEAN = {("gateway", "run"): "gateway"}  # argv prefix -> the only command module it needs

_app: typer.Typer | None = None


def build_app(modules: list[str] | None = None) -> typer.Typer:
    import dozor.commands as pkg

    root = typer.Typer(no_args_is_help=True, add_completion=False, help=HELP)
    names = modules if modules is not None else sorted(m.name for m in pkgutil.iter_modules(pkg.__path__))
    for name in names:
        register = getattr(importlib.import_module(f"dozor.commands.{name}"), "register", None)
        if register is not None:
            register(root)
    return root


def __getattr__(name: str):  # PEP 562: `from dozor.cli import app` builds the full app once
    global _app
    if name == "app":
        if _app is None:
            _app = build_app()
        return _app
    raise AttributeError(name)


def main() -> None:
    lean = LEAN.get(tuple(sys.argv[1:3]))
    if lean is not None:
        build_app([lean])()
    else:
        __getattr__("app")()


if __name__ == "__main__":
    main()
