"""The real frontend in headless chromium: every workflow loads with no missing node
types or broken links, runs when queued as the frontend builds it (graphToPrompt) and
passes its output check, and one queued with the Run button shows its output image."""
import importlib
import json
import shutil
import subprocess

import pytest

from scripts.harness.server import REPO

from .conftest import OUT
from .workflows import WORKFLOWS

SCRIPT = REPO / "tests" / "browser" / "load_workflows.mjs"
QUEUE_PREFERENCE = ("face_undistort", "aligntok_roundtrip")


@pytest.fixture(scope="module")
def browser_report(comfy):
    if not shutil.which("node") or not shutil.which("chromium"):
        pytest.fail("node and Debian chromium are needed (make setup installs them)")
    if not (REPO / "node_modules" / "playwright-core").exists():
        pytest.fail("playwright-core is missing: run make setup")
    comfy.post("/api/settings/Comfy.TutorialCompleted", True)
    names = [p.stem for p in WORKFLOWS]
    queue = next((n for n in QUEUE_PREFERENCE if n in names), names[0])
    shot = OUT / "browser" / "frontend.png"
    shot.parent.mkdir(parents=True, exist_ok=True)
    cmd = ["node", str(SCRIPT), comfy.url("/"), str(shot), queue, *map(str, WORKFLOWS)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=REPO)
    assert done.returncode == 0, done.stderr[-4000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    report["screenshot"] = shot
    return report


def test_every_workflow_loads_in_the_frontend(browser_report):
    for name, r in browser_report["workflows"].items():
        assert r["missing"] == [], f"{name}: missing node types {r['missing']}"
        assert r["broken"] == [], f"{name}: broken links {r['broken']}"
        assert r["links"] == r["expectedLinks"], f"{name}: {r}"
        assert r["nodes"] > 0


@pytest.mark.parametrize("name", [p.stem for p in WORKFLOWS])
def test_workflow_queued_from_the_frontend_runs_and_checks(comfy, browser_report, name):
    r = browser_report["workflows"][name]
    assert r["status"] == 200 and r["promptId"], f"{name}: /prompt refused the frontend's prompt: {r['nodeErrors']}"
    assert not r["nodeErrors"], f"{name}: {r['nodeErrors']}"
    entry = comfy.wait(r["promptId"], timeout=900)
    importlib.import_module(f"tests.e2e.check_{name}").check(comfy, entry)


def test_queued_workflow_shows_its_output_image(browser_report):
    queued = browser_report["queued"]
    assert queued and queued["image"]["width"] > 0, browser_report
    shot = browser_report["screenshot"]
    assert shot.exists() and shot.stat().st_size > 10_000
