"""The resident page as residents see it, through every state, from real parts: `python -m bench.screens` (the
README's command for docs/screens/) starts Mosquitto, a `dozor hub run` process and a simulated city on ptys,
runs `dozor alert ...` as an operator, and drives Debian Chromium at 412x915 (uk, dark) and 1366x900 (en,
light). This test runs that command and asserts on what the pages showed: DOM text, computed colours, WCAG
contrast, requests. Never on pixels."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
COMMAND = "python -m bench.screens --out docs/screens"
STATES = ["idle", "air-raid", "no-javascript", "all-clear", "chemical", "exercise", "hub-down", "offline-reload"]
RED, GREEN, AMBER = "rgb(153, 27, 27)", "rgb(22, 101, 52)", "rgb(120, 53, 15)"
NO_ALERT = ("Немає тривоги", "No alert")


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("screens")
    assert COMMAND in (ROOT / "README.md").read_text()  # the documented command is the one run here
    args = COMMAND.split()[1:]
    args[args.index("--out") + 1] = str(out)
    proc = subprocess.run([sys.executable, *args, "--json"], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rep = json.loads(proc.stdout)
    rep["dir"] = out
    return rep


def test_every_state_is_shot_at_both_sizes_with_no_failed_or_external_request(report):
    names = {p.name for p in report["dir"].iterdir()}
    for state in STATES:
        assert {f"{state}-phone.jpg", f"{state}-desktop.jpg"} <= names, state
    assert "exercise-tester-phone.jpg" in names
    assert report["failed"] == [] and report["external"] == []  # favicon included: no 404, no CDN
    for state, views in report["states"].items():
        for view, obs in views.items():
            assert obs["contrast"]["checked"] > 15 and obs["contrast"]["bad"] == [], (state, view, obs["contrast"])
            assert obs["role"] == "alert" and obs["aria_live"] == "assertive"
            assert obs["zone_name"] == ("Podil" if view == "desktop" else "Поділ")  # localised zone names
            if state != "idle":
                assert not any(n in (obs["live_text"] or "") for n in NO_ALERT), (state, view)
    dark, light = report["states"]["idle"]["phone"], report["states"]["idle"]["desktop"]
    assert dark["body_bg"] == "rgb(11, 15, 23)" and light["body_bg"] == "rgb(243, 244, 246)"


def test_air_raid_is_red_with_the_operators_message_start_and_every_shelter(report):
    for view, (status, msg) in {"phone": ("Повітряна тривога — негайно йдіть в укриття", "Ракетна загроза"),
                                "desktop": ("Air raid — go to a shelter now", "Missile threat")}.items():
        for state in ("air-raid", "no-javascript"):  # the same with JavaScript off: rendered by the server
            obs = report["states"][state][view]
            assert obs["status"] == status and obs["headline"].startswith(msg)
            assert (obs["state_bg"], obs["status_color"]) == (RED, "rgb(255, 255, 255)")
            assert obs["started"] and obs["duration"] and obs["ended"] is None
            assert {s["type"] for s in obs["shelters"]} == {"bomb_shelter", "metro", "basement", "parking",
                                                            "building"}
            assert obs["map_shelters"] == 5


def test_chemical_hazard_says_stay_indoors_and_lists_no_underground_shelter(report):
    obs = report["states"]["chemical"]["desktop"]
    assert obs["status"] == "Chemical hazard — stay indoors" and obs["state_bg"] == RED
    assert "Shut windows, doors and ventilation, and seal the gaps." in obs["guidance"]
    assert [s["type"] for s in obs["shelters"]] == ["building"] and obs["map_shelters"] == 1
    assert obs["shelter_note"].startswith("Underground shelters are not listed")
    assert [s["type"] for s in report["states"]["chemical"]["phone"]["shelters"]] == ["building"]


def test_all_clear_has_one_heading_what_to_do_and_start_end_duration_and_history(report):
    for view in ("phone", "desktop"):
        obs = report["states"]["all-clear"][view]
        assert obs["state_bg"] == GREEN
        assert sum("відбій" in h.lower() or "all clear" in h.lower() for h in obs["headings"]) == 1
        assert obs["started"] and obs["ended"] and re.fullmatch(r"\d+ (хв|min)", obs["duration"])
        assert obs["shelters"] == [] and len(obs["guidance"]) == 3
        signal, start, end, duration = obs["history24"][0]
        assert signal in ("Повітряна тривога", "Air raid") and re.fullmatch(r"\d\d\.\d\d \d\d:\d\d", start)
        assert re.fullmatch(r"\d\d:\d\d", end) and re.fullmatch(r"\d+ (хв|min)", duration)


def test_sounding_exercise_tells_every_resident_and_shows_testers_the_content(report):
    ex = report["states"]["exercise"]
    assert ex["desktop"]["status"] == "Exercise — sirens are being tested, no danger"
    assert ex["phone"]["status"] == "Навчання — перевіряють сирени, небезпеки немає"
    for view in ("phone", "desktop"):
        assert ex[view]["data_status"] == "exercise" and ex[view]["state_bg"] == AMBER
        assert "Навчання цивільного" not in ex[view]["live_text"] and "drill" not in ex[view]["live_text"]
    tester = ex["tester"]
    assert tester["exercise"] == "НАВЧАННЯ — НЕ СПРАВЖНЯ ТРИВОГА" and tester["state_bg"] == AMBER
    assert tester["notice"] == "Навчання — перевіряють сирени, небезпеки немає"
    assert "Навчання цивільного захисту" in tester["headline"]


def test_hub_down_says_connection_lost_prominently_and_offline_reload_keeps_the_last_state(report):
    down = report["states"]["hub-down"]["desktop"]
    assert re.fullmatch(r"Connection lost (just now|\d+ min ago) — information may be out of date\. Retrying…",
                        down["lost"])
    assert down["lost_kind"] == "lost" and down["lost_bg"] == "rgb(253, 224, 71)"
    assert down["status"] == "Exercise — sirens are being tested, no danger"  # still the last known state
    assert report["states"]["hub-down"]["phone"]["lost"].startswith("З'єднання втрачено")
    for view in ("phone", "desktop"):
        off = report["states"]["offline-reload"][view]
        assert off["lost_kind"] == "offline" and off["data_status"] == "exercise"
        assert off["status"] == report["states"]["exercise"][view]["status"]
    assert re.fullmatch(r"You are offline — showing the last known information, as of \d\d:\d\d\.",
                        report["states"]["offline-reload"]["desktop"]["lost"])
