"""deploy/install-gateway.sh in a throwaway root: it writes exactly the user, config, key, virtualenv, state dir
and unit it promises (with the right owners and modes), installs no web stack or DSP on a cabinet without a
microphone, and a second run changes nothing."""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from tests.deploy.helpers import ROOT, city_dir, dozor, needs

pytestmark = pytest.mark.integration
HOST_FILES = ("/etc/passwd", "/etc/group", "/etc/shadow", "/etc/gshadow")


def snapshot(root: Path) -> dict[str, tuple]:
    out = {}
    for p in sorted(root.rglob("*")):
        st = p.lstat()
        digest = hashlib.sha256(p.read_bytes()).hexdigest()[:16] if p.is_file() and not p.is_symlink() else ""
        out[str(p.relative_to(root))] = (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, digest)
    return out


def host_state() -> dict[str, str]:
    return {f: hashlib.sha256(Path(f).read_bytes()).hexdigest() for f in HOST_FILES if Path(f).exists()}


def test_install_gateway_into_a_throwaway_root_twice(tmp_path):
    needs(os.geteuid() == 0 and bool(shutil.which("useradd")), "needs root and useradd (shadow-utils)")
    city = city_dir()
    try:
        dozor("provision", "init", str(city), "--broker-host", "mqtt.example.city", "--hub-state-dir",
              str(tmp_path / "hub-state"), "--store-url", "")
        dozor("provision", "gateway", "gw-podil-01", "--zone", "podil", str(city))
        bundle = city / "gateways" / "gw-podil-01"
        root = tmp_path / "root"
        (root / "etc").mkdir(parents=True)
        for f in HOST_FILES:
            shutil.copy2(f, root / f.lstrip("/"))
        before_root, before_host = snapshot(root), host_state()
        host_had_opt = Path("/opt/dozor").exists()
        env = {**os.environ, "DOZOR_ROOT": str(root), "DOZOR_SRC": str(ROOT)}
        script = str(ROOT / "deploy" / "install-gateway.sh")
        first = subprocess.run(["bash", script, str(bundle)], env=env, capture_output=True, text=True, timeout=600)
        assert first.returncode == 0, first.stdout + first.stderr
        after = snapshot(root)
        assert host_state() == before_host, "the installer changed the host's users or groups"
        assert Path("/opt/dozor").exists() == host_had_opt

        changed = {k for k in after if before_root.get(k) != after[k]}
        top = {k.split("/opt/dozor/venv/")[0] for k in changed if not k.startswith("opt/dozor/venv/")}
        assert top == {"etc/passwd", "etc/group", "etc/shadow", "etc/gshadow", "etc/dozor", "etc/dozor/gateway",
                       "etc/dozor/gateway/gateway.toml", "etc/dozor/gateway/ca.crt", "etc/dozor/gateway/client.crt",
                       "etc/dozor/gateway/client.key", "opt", "opt/dozor", "opt/dozor/venv", "var", "var/lib",
                       "var/lib/dozor-gateway", "var/lib/dozor-gateway/identity-key", "etc/systemd", "etc/systemd/system",
                       "etc/systemd/system/dozor-gateway.service"} | {k for k in top if k.endswith("-")}
        passwd = (root / "etc/passwd").read_text()
        user = [ln for ln in passwd.splitlines() if ln.startswith("dozor-gw:")]
        assert len(user) == 1 and user[0].endswith(":/var/lib/dozor-gateway:/usr/sbin/nologin")
        uid = int(user[0].split(":")[2])
        groups = (root / "etc/group").read_text().splitlines()
        for g in ("dialout", "audio"):
            assert any(ln.startswith(f"{g}:") and "dozor-gw" in ln.split(":")[3].split(",") for ln in groups)
        assert after["etc/dozor/gateway/client.key"][:3] == (0o600, 0, 0)
        assert after["var/lib/dozor-gateway"][:2] == (0o700, uid)
        assert after["var/lib/dozor-gateway/identity-key"][:2] == (0o600, uid)
        assert (root / "var/lib/dozor-gateway/identity-key").read_bytes() == (bundle / "identity-key").read_bytes()
        assert (root / "etc/systemd/system/dozor-gateway.service").read_bytes() == \
            (ROOT / "deploy/systemd/dozor-gateway.service").read_bytes()
        venv_py = root / "opt/dozor/venv/bin/python"
        probe = subprocess.run([str(venv_py), "-c", "import importlib.util as u; print([m for m in "
                                "('pymodbus', 'serial', 'fastapi', 'uvicorn', 'scipy', 'numpy', 'amqtt') "
                                "if u.find_spec(m)])"], capture_output=True, text=True, check=True)
        assert probe.stdout.strip() == "['pymodbus', 'serial']"  # no web stack, no DSP on this cabinet

        second = subprocess.run(["bash", script, str(bundle)], env=env, capture_output=True, text=True, timeout=600)
        assert second.returncode == 0, second.stdout + second.stderr
        assert snapshot(root) == after, "a second run changed the installed system"
        assert "created user" not in second.stdout and "installed dozor" not in second.stdout
    finally:
        shutil.rmtree(city.parent, ignore_errors=True)
