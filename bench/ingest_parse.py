"""The hub's parse of telemetry alone, both paths, in one process: no broker, no store, no threads.

    python -m bench.ingest_parse --json
      -> {"messages", "points_per_message", "compiled_us_per_message", "python_us_per_message", "speedup", ...}

The payloads are ``bench.ingest``'s (version 2 batches of ``--readings`` readings x 5 metrics, so 500 points
each by default). Each path (``hub.ingest.fastrows``: the C pass, or the Python one it stands in for) turns
every payload into line protocol with ``Ingest.batch_text`` and a latest-readings cache, as the hub's MQTT
thread does after decoding; the best of ``--repeat`` passes over all the messages is reported, per message.
Both paths must give the same lines (the bench exits 1 if they do not).
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time

from bench.ingest import _payloads


def _pass(batches, compiled: bool) -> tuple[float, list]:
    from hub.ingest import Ingest, fastrows
    from hub.ingest.latest import LatestCache

    saved = fastrows.COMPILED
    fastrows.COMPILED = compiled
    try:
        cache = LatestCache()
        ingest = Ingest(on_rows=cache.on_rows, dedup_window=len(batches) + 1)
        out = []
        t = time.perf_counter()
        for b in batches:
            out.append(ingest.batch_text(b)[0])
        return time.perf_counter() - t, out
    finally:
        fastrows.COMPILED = saved


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--messages", type=int, default=4000)
    ap.add_argument("--readings", type=int, default=100, help="readings per message (x 5 metrics)")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)

    from contract.codecs import telemetry
    from hub.ingest import fastrows

    if fastrows._fastrows is None:
        print("the compiled path is not built (setup.py needs gcc and Python's headers)", file=sys.stderr)
        return 2
    payloads = _payloads(0, 1, args.messages, args.readings, 50, 1, 1.7e9, 2)
    batches = [telemetry.decode(p, topic=t) for t, p in payloads]
    best = {True: float("inf"), False: float("inf")}
    lines = {}
    gc.collect()
    for _ in range(args.repeat):
        for compiled in (True, False):
            seconds, lines[compiled] = _pass(batches, compiled)
            best[compiled] = min(best[compiled], seconds)
    same = lines[True] == lines[False]
    n = len(batches)
    result = {"messages": n, "points_per_message": args.readings * 5,
              "compiled_us_per_message": round(best[True] / n * 1e6, 1),
              "python_us_per_message": round(best[False] / n * 1e6, 1),
              "speedup": round(best[False] / best[True], 2), "same_lines": same, "repeat": args.repeat}
    if args.json:
        print(json.dumps(result))
    else:
        for k, v in result.items():
            print(f"{k:>24}: {v}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
