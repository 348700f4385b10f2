"""`dozor`: one console command. Each sub-command group lives in dozor/commands/<group>.py."""

from __future__ import annotations

import typer

app = typer.Typer(no_args_is_help=True, add_completion=False, help="dozor: city warning and street sensing")


def _register() -> None:
    import importlib
    import pkgutil

    import dozor.commands as pkg

    for mod in sorted(m.name for m in pkgutil.iter_modules(pkg.__path__)):
        module = importlib.import_module(f"dozor.commands.{mod}")
        register = getattr(module, "register", None)
        if register is not None:
            register(app)


_register()


def main() -> None:
    app()
