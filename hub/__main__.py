"""python -m hub --config F"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys

from hub.app import Hub
from hub.config import load_config
from hub.errors import HubError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hub", description="dozor hub")
    parser.add_argument("--config", required=True, help="hub TOML config")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        hub = Hub(load_config(args.config))
    except HubError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(hub.run(handle_signals=True))
    except HubError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
