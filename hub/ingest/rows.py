"""How the spool packs line protocol into its rows (pure functions; hub/ingest/spool.py stores the rows).

A row is one text blob of at most ``limit`` lines, joined by ``\\n``; a flush sends consecutive rows in one
request of at most ``limit`` lines.
"""

from __future__ import annotations


def pack(texts: list[tuple[str, int]], limit: int) -> list[tuple[str, int]]:
    """Texts of known line counts (each at most a row) packed into rows of at most ``limit`` lines."""
    rows: list[tuple[str, int]] = []
    cur: list[str] = []
    cur_n = 0
    for text, k in texts:
        if cur and cur_n + k > limit:
            rows.append(("\n".join(cur), cur_n))
            cur, cur_n = [], 0
        cur.append(text)
        cur_n += k
    if cur:
        rows.append(("\n".join(cur), cur_n))
    return rows


def split_rows(chunks: list[str], limit: int) -> list[tuple[str, int]]:
    """Text chunks (one or more ``\\n``-joined lines each) packed into rows of at most ``limit`` lines; a chunk is
    split only if it is larger than a row (or has empty lines, which are dropped)."""
    texts: list[tuple[str, int]] = []
    for chunk in chunks:
        if not chunk or chunk[0] == "\n" or chunk[-1] == "\n" or "\n\n" in chunk:
            chunk = "\n".join([part for part in chunk.split("\n") if part])
            if not chunk:
                continue
        n = chunk.count("\n") + 1
        if n <= limit:
            texts.append((chunk, n))
        else:
            lines = chunk.split("\n")
            texts += [("\n".join(lines[i:i + limit]), len(lines[i:i + limit])) for i in range(0, n, limit)]
    return pack(texts, limit)
