"""Memory of the hub's per-gateway anti-replay windows (contract/signed.py ReplayGuard) once full.

    python -m bench.replay_window_mem --gateways 250

Each gateway's guard judges the last WINDOW counters. It used to keep them as a set of ints, trimmed only at
2 x WINDOW: ~0.74 MB per gateway once a gateway had sent 8,192 signed messages (a day of heartbeats), which the
1 h soak read as a steady leak. The guard is now a WINDOW-bit bitmap.
"""

from __future__ import annotations

import argparse
import json
import tracemalloc

from contract.signed import WINDOW, ReplayGuard


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gateways", type=int, default=250)
    args = ap.parse_args()
    tracemalloc.start()
    guards = [ReplayGuard() for _ in range(args.gateways)]
    for g in guards:
        for c in range(1, 2 * WINDOW + 1):
            g.admit(1, c)
    current, _ = tracemalloc.get_traced_memory()
    print(json.dumps({"gateways": args.gateways, "counters_each": 2 * WINDOW,
                      "traced_mib": round(current / 2**20, 2),
                      "bytes_per_gateway": round(current / args.gateways)}))


if __name__ == "__main__":
    main()
