"""`dozor firmware doctor`: what is on this node and is it healthy? Findings are sentences with a fix."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from firmware.tools.device import Node
from firmware.tools.flash import MARKER, run_selftest


@dataclass
class Report:
    port: str
    ok: bool = True
    version: str | None = None
    node: str | None = None
    config: dict | None = None
    boot: dict | None = None
    selftest: dict | None = None
    findings: list[str] = field(default_factory=list)

    def problem(self, text: str) -> None:
        self.ok = False
        self.findings.append(text)


def doctor(port: str, connect_timeout_s: float = 5.0) -> Report:
    r = Report(port)
    with Node.connect(port, timeout_s=connect_timeout_s) as n:
        n.step = "read the node"
        marker = n.read_text(MARKER)
        if marker is not None:
            r.problem(f"The last flash did not finish ({marker.strip()}). The node is NOT configured: run "
                      "`dozor firmware flash` again.")
        manifest = n.read_text("/manifest.json")
        if manifest is None:
            r.problem("No dozor firmware on this node (no manifest.json): run `dozor firmware flash`.")
        else:
            try:
                m = json.loads(manifest)
                r.version, r.node = m.get("version"), m.get("node")
            except ValueError:
                r.problem("manifest.json is damaged: run `dozor firmware flash` again.")
        boot = n.read_text("/bootstate.json")
        if boot:
            try:
                r.boot = json.loads(boot)
            except ValueError:
                r.problem("bootstate.json is damaged; it resets itself at the next good boot.")
        if r.boot and r.boot.get("failed", 0) > 3:
            r.problem(f"The node failed to boot {r.boot['failed']} times in a row and runs in SAFE MODE "
                      f"(last reset: {r.boot.get('last_reset')}). Check power and sensors, then reflash.")
        if manifest is not None:
            n.step = "self-test"
            st = run_selftest(n)
            r.selftest = st
            r.config = st.get("config")
            for c in st.get("checks", []):
                if not c.get("ok"):
                    r.problem(f"{c['name']}: {c['detail']}")
    return r


def render(r: Report) -> str:
    lines = [f"Node on {r.port}",
             f"  firmware : {r.version or 'none'} ({r.node or '?'} node)"]
    if r.config:
        lines.append(f"  identity : {r.config.get('device_id')} in zone {r.config.get('zone')}, "
                     f"calibration offset {r.config.get('cal_offset_db')} dB")
    if r.boot:
        lines.append(f"  boots    : {r.boot.get('boots')} total, {r.boot.get('failed')} failed in a row")
    if r.selftest:
        for c in r.selftest.get("checks", []):
            lines.append(f"  [{'OK ' if c.get('ok') else 'BAD'}] {c['name']}: {c['detail']}")
    lines.append("RESULT: healthy" if r.ok else "RESULT: NEEDS ATTENTION")
    lines.extend(f"  - {f}" for f in r.findings)
    return "\n".join(lines)
