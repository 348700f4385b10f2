"""Secrets stay out of git and out of images: .gitignore and .dockerignore cover every state dir and key file a
demo, an example or `dozor provision` writes."""

from __future__ import annotations

import fnmatch
import subprocess

import pytest

from tests.deploy.helpers import ROOT

# Paths a demo run, the examples and a provisioned city write (relative to the repo root).
SECRET_PATHS = [
    ".dozor/hub/api-token",
    ".dozor/hub/hub-signing-key",
    ".dozor/hub/hub.sqlite",
    ".dozor/gw-sim-01/evidence-key",
    ".dozor/hub-demo/api-token",
    "examples/state/hub/api-token",
    "city/ca/ca.key",
    "city/broker/server.key",
    "city/hub/client.key",
    "city/gateways/gw-a/client.key",
    "city/compose.env",
    "city/hub/admin-token",
    "hub/metrics-token",
    ".env",
]


def git_ignored(path: str) -> bool:
    out = subprocess.run(["git", "check-ignore", "-q", "--no-index", path], cwd=ROOT)
    assert out.returncode in (0, 1), out
    return out.returncode == 0


@pytest.mark.parametrize("path", SECRET_PATHS)
def test_git_ignores_state_and_secrets(path):
    assert git_ignored(path), f"{path} would be committed"


def test_the_demo_state_dir_is_ignored_as_a_whole():
    assert git_ignored(".dozor/")
    assert not git_ignored("examples/hub.toml") and not git_ignored("deploy/systemd/dozor-hub.service")


def docker_ignored(path: str, patterns: list[str]) -> bool:
    """Docker's rules, as far as .dockerignore here uses them: a pattern is anchored at the context root and
    matches the path or one of its parent folders; a leading ``**/`` matches at any depth; ``!`` re-includes."""
    parts = path.split("/")
    prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    suffixes = ["/".join(parts[i:j]) for i in range(len(parts)) for j in range(i + 1, len(parts) + 1)]
    ignored = False
    for raw in patterns:
        neg, pat = raw.startswith("!"), raw.lstrip("!").rstrip("/")
        if pat.startswith("**/"):
            hit = any(fnmatch.fnmatchcase(s, pat[3:]) for s in suffixes)
        else:
            hit = any(fnmatch.fnmatchcase(p, pat) for p in prefixes)
        if hit:
            ignored = not neg
    return ignored


def test_docker_build_context_excludes_state_and_secrets():
    patterns = [ln.strip() for ln in (ROOT / ".dockerignore").read_text().splitlines()
                if ln.strip() and not ln.startswith("#")]
    for path in SECRET_PATHS + [".git/config", ".venv/bin/python", "tests/deploy/helpers.py"]:
        assert docker_ignored(path, patterns), f"{path} would be copied into the image"
    for path in ("pyproject.toml", "README.md", "hub/app.py", "gateway/app.py", "contract/vectors/commands.json"):
        assert not docker_ignored(path, patterns), f"{path} is needed to build the image"


def test_no_secret_is_tracked():
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    leaks = [p for p in tracked.splitlines()
             if p.endswith((".key", "-token", "hub-signing-key", "evidence-key", "compose.env"))
             or p.startswith(".dozor/")]
    assert leaks == []
