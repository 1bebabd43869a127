"""Every shipped workflow, loaded as a user would (UI JSON), runs in the real server.

Each workflows/<name>.json has tests/e2e/check_<name>.py with ``check(comfy, entry)``
asserting on its outputs, and scripts/workflow_specs/<name>.py that regenerates it.
"""
import importlib
import json

import pytest

from scripts.harness.builder import UIWorkflow
from scripts.harness.server import REPO
from scripts.harness.workflow import ui_to_api

from .conftest import pack_files
from .workflows import WORKFLOWS

IDS = [p.stem for p in WORKFLOWS]


def test_there_are_workflows():
    assert WORKFLOWS, "workflows/ is empty"


@pytest.mark.parametrize("path", WORKFLOWS, ids=IDS)
def test_workflow_runs_and_its_outputs_check(comfy, object_info, path):
    try:
        check = importlib.import_module(f"tests.e2e.check_{path.stem}").check
    except ModuleNotFoundError:
        pytest.fail(f"no tests/e2e/check_{path.stem}.py for {path.name}")
    prompt = ui_to_api(json.loads(path.read_text()), object_info)
    entry = comfy.run(prompt, timeout=900)
    check(comfy, entry)


@pytest.mark.parametrize("path", WORKFLOWS, ids=IDS)
def test_workflow_matches_its_spec(object_info, path):
    """The JSON is what its spec builds against the live node definitions (no drift, no renamed inputs)."""
    spec_path = REPO / "scripts" / "workflow_specs" / f"{path.stem}.py"
    assert spec_path.exists(), f"missing {spec_path}"
    spec = importlib.import_module(f"scripts.workflow_specs.{path.stem}")
    wf = UIWorkflow(object_info)
    spec.build(wf)
    assert json.loads(wf.dumps()) == json.loads(path.read_text()), "run: .venv/bin/python scripts/build_workflows.py"


def test_running_wrote_nothing_inside_the_pack_folder(comfy, pack_before_server):
    """Runs after the workflows in this module: nothing new or changed in the pack."""
    after = pack_files()
    changed = sorted(k for k in after if pack_before_server.get(k) != after[k])
    assert not changed, changed
