"""What the scene families' tests share: determinism per seed, and about docs/noise-scenes.md a family's own
section (up to the next family's), the python examples it shows, its table of declared ranges and its command."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs" / "noise-scenes.md"


def section(heading: str) -> str:
    """The text under ``## <heading>`` up to the next ``## `` heading (not the families after it)."""
    text = DOCS.read_text()
    start = text.index(f"## {heading}\n")
    end = text.find("\n## ", start + 1)
    return text[start:] if end < 0 else text[start:end + 1]


def run_examples(text: str) -> None:
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert blocks, "the section shows a python example"
    for code in blocks:
        exec(compile(code, str(DOCS), "exec"), {})  # noqa: S102 - the docs' own example


def assert_ranges_listed(text: str, ranges: dict) -> None:
    """Every declared range has a row ``| `key` | ... |`` giving its bounds (``lo – hi``), its probability
    (``p = ...``) or its options."""
    for key, spec in ranges.items():
        row = [ln for ln in text.splitlines() if ln.startswith(f"| `{key}` |")]
        assert row, f"docs/noise-scenes.md lacks the range of {key}"
        if hasattr(spec, "lo"):
            assert f"{spec.lo:g} – {spec.hi:g}" in row[0], key
        elif hasattr(spec, "p"):
            assert f"p = {spec.p:g}" in row[0], key
        else:
            assert all(f"`{o}`" in row[0] for o in spec.options), key


def run_documented_command(text: str, module: str, cwd: Path) -> tuple[list[str], dict]:
    """Run the one ``python -m <module> ...`` command the section shows, as shown, in ``cwd``: its argv and
    its JSON summary."""
    shown = re.findall(rf"```sh\n(python -m {re.escape(module)} [^\n]*)\n```", text)
    assert len(shown) == 1, "the section shows its command once"
    argv = shlex.split(shown[0])
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, *argv[1:]], cwd=cwd, capture_output=True, text=True, timeout=600,
                          env=env)
    assert done.returncode == 0, done.stderr
    return argv, json.loads(done.stdout)


def assert_deterministic(generate, scenes, scene_seeds, duration_s: float) -> None:
    """Same seed, same audio and labels; another seed, other audio; ``scenes`` yields ``scene_seeds``' scenes."""
    a, b = generate(7, duration_s=duration_s), generate(7, duration_s=duration_s)
    assert a.audio.tobytes() == b.audio.tobytes()
    assert json.dumps(a.labels, sort_keys=True) == json.dumps(b.labels, sort_keys=True)
    assert a.audio.tobytes() != generate(8, duration_s=duration_s).audio.tobytes()
    got = list(scenes(2, seed=99, duration_s=duration_s / 2))
    assert [s.labels["seed"] for s in got] == scene_seeds(2, 99) and len(set(scene_seeds(50, 99))) == 50
    assert got[1].audio.tobytes() == generate(scene_seeds(2, 99)[1], duration_s=duration_s / 2).audio.tobytes()
