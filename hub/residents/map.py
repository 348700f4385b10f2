"""An inline SVG map of the city's zone polygons and a zone's shelters: no tiles, no requests, no script.

Projection: equirectangular scaled by cos(latitude) around the city's centre, fine for city-sized areas. The
SVG carries its geographic bounds (``data-west/east/south/north``) so the page script can place "you are
here" with the same projection (``x = (lon - west) / (east - west) * width``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from hub.residents.geo import ZoneInfo

WIDTH = 400


def _bounds(zones: Sequence[ZoneInfo], points: Sequence[tuple[float, float]]) -> tuple[float, float, float, float]:
    lons = [p[0] for z in zones for r in z.rings[:1] for p in r] + [p[0] for p in points]
    lats = [p[1] for z in zones for r in z.rings[:1] for p in r] + [p[1] for p in points]
    w, e, s, n = min(lons), max(lons), min(lats), max(lats)
    pad_x, pad_y = max((e - w) * 0.04, 1e-4), max((n - s) * 0.04, 1e-4)
    return w - pad_x, e + pad_x, s - pad_y, n + pad_y


def render_map(zones: Sequence[ZoneInfo], zone: str, shelters: Sequence[Mapping[str, Any]], lang: str,
               label: str) -> str:
    """The SVG (or "" when no zone has a polygon). ``shelters``: public shelter dicts to mark."""
    drawn = [z for z in zones if z.rings]
    pts = [(float(s["lon"]), float(s["lat"])) for s in shelters]
    if not drawn:
        return ""
    w, e, s, n = _bounds(drawn, pts)
    kx = math.cos(math.radians((s + n) / 2))
    height = max(120, min(600, round(WIDTH * (n - s) / ((e - w) * kx))))

    def xy(lon: float, lat: float) -> str:
        return f"{(lon - w) / (e - w) * WIDTH:.1f},{(n - lat) / (n - s) * height:.1f}"

    out = [f'<svg id="map" viewBox="0 0 {WIDTH} {height}" role="img" aria-label="{escape(label)}" '
           f'data-west="{w:.6f}" data-east="{e:.6f}" data-south="{s:.6f}" data-north="{n:.6f}" '
           f'data-width="{WIDTH}" data-height="{height}">']
    for z in drawn:
        cls = "zn cur" if z.id == zone else "zn"
        d = " ".join("M" + " L".join(xy(*p) for p in ring) + "Z" for ring in z.rings)
        name = escape(z.name.get(lang) or z.id)
        out.append(f'<path class="{cls}" d="{d}" fill-rule="evenodd"><title>{name}</title></path>')
    for z in drawn:
        c = z.centroid()
        if c is not None:
            x, y = xy(c[1], c[0]).split(",")
            out.append(f'<text class="zl" x="{x}" y="{y}" text-anchor="middle">{escape(z.name.get(lang) or z.id)}'
                       "</text>")
    for i, sh in enumerate(shelters, 1):
        x, y = xy(float(sh["lon"]), float(sh["lat"])).split(",")
        name = escape(sh["name"].get(lang) or sh["name"].get("uk") or sh["id"])
        out.append(f'<g class="sh" data-id="{escape(str(sh["id"]))}"><circle cx="{x}" cy="{y}" r="7"/>'
                   f'<text x="{x}" y="{float(y) + 4:.1f}" text-anchor="middle">{i}</text><title>{name}</title></g>')
    out.append('<circle id="me" r="8" cx="-20" cy="-20" visibility="hidden"/></svg>')
    return "".join(out)
