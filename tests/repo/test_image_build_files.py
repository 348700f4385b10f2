"""The image (Dockerfile) builds the hub's compiled ingest path as pip would anywhere: no Docker engine runs here,
so these check the files it is built from. setup.py must be in the build context and copied (without it pip
builds no extension and the hub silently runs the Python path), a host-built .so must never be copied in, and
the compiler the build needs must not stay in the image."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_image_copies_setup_py_and_no_host_built_extension():
    docker = (ROOT / "Dockerfile").read_text()
    copied = [line.split()[1:-1] for line in docker.splitlines() if line.startswith("COPY ")]
    assert any("setup.py" in srcs for srcs in copied), "setup.py (the compiled ingest path) is not copied"
    ignore = (ROOT / ".dockerignore").read_text().splitlines()
    assert "**/*.so" in ignore and "setup.py" not in ignore
    assert "hub/ingest/_fastrows.c" in (ROOT / "setup.py").read_text()


def test_the_image_removes_the_compiler_it_built_with():
    docker = (ROOT / "Dockerfile").read_text()
    run = next(block for block in re.split(r"\n(?=[A-Z]+ )", docker) if "pip install" in block)
    assert "gcc" in run and "purge" in run and run.index("pip install") < run.index("purge"), run


def test_a_plain_install_builds_the_compiled_path_into_the_wheel(tmp_path):
    """What the image's `pip install '.[demo]'` does (not the editable install of development): the wheel holds
    the extension, built from a copy of the tree with no host-built .so in it."""
    import shutil
    import subprocess
    import sys
    import zipfile

    src = tmp_path / "src"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(
        ".git", ".venv", "node_modules", "*.so", "__pycache__", "*.egg-info", "build", "tests", "docs", "bench"))
    out = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path / "dist"),
                          str(src)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    (wheel,) = (tmp_path / "dist").glob("dozor-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert any(re.fullmatch(r"hub/ingest/_fastrows\..*\.so", n) for n in names), names[:20]
