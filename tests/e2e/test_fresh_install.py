"""First use as a user meets it: a second real ComfyUI with the pack and nothing else (no models, an
input/ folder holding only one picture of the user's), every shipped template queued as the UI would.

Templates that need no downloaded weights must run; the others must stop with a message that names
the missing model, where it is published and the folder to put it in.
"""
import importlib
import json
import shutil
import uuid

import pytest
from PIL import Image

from scripts.harness.examples import EXAMPLE_DIR
from scripts.harness.server import ComfyServer, WorkflowError
from scripts.harness.workflow import ui_to_api

from .conftest import OUT
from .workflows import WORKFLOWS

USER_FILE = "recompose_coffee.jpg"  # an example name the user already has a picture under
USER_COLOUR = (10, 200, 30)


def _sources():
    import importlib.util

    spec = importlib.util.spec_from_file_location("recompose_sources", EXAMPLE_DIR.parent / "nodes" / "_sources.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.SOURCES


SOURCES = _sources()


@pytest.fixture(scope="module")
def fresh():
    base = OUT / "fresh"
    shutil.rmtree(base, ignore_errors=True)
    server = ComfyServer(base)
    server.prepare()
    Image.new("RGB", (64, 48), USER_COLOUR).save(base / "input" / USER_FILE, quality=95)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def fresh_info(fresh):
    return fresh.object_info()


def test_the_pack_copies_the_example_inputs_but_keeps_the_users_file(fresh):
    input_dir = fresh.base / "input"
    for example in sorted(EXAMPLE_DIR.glob("recompose_*")):
        assert (input_dir / example.name).is_file(), f"{example.name} was not copied into input/"
        if example.name != USER_FILE:
            assert (input_dir / example.name).read_bytes() == example.read_bytes()
    kept = Image.open(input_dir / USER_FILE).convert("RGB")
    assert kept.size == (64, 48) and kept.getpixel((5, 5))[1] > 150, "the user's file was replaced"


def _model_names(workflow: dict) -> set:
    """The published model names a template's widgets hold (their last path part is a SOURCES key)."""
    names = set()
    for node in workflow["nodes"]:
        for value in node.get("widgets_values") or []:
            if isinstance(value, str) and value.rsplit("/", 1)[-1] in SOURCES:
                names.add(value)
    return names


def _queue_and_collect(server, prompt) -> tuple[bool, list]:
    """(finished, messages): invalid nodes (core loaders check their dropdowns) and the execution error."""
    try:
        reply = server.post("/prompt", {"prompt": prompt, "client_id": uuid.uuid4().hex})
    except RuntimeError as exc:  # HTTP 400: no output is valid; the body lists the invalid nodes
        reply = json.loads(str(exc).split(": ", 1)[1])
    messages = [json.dumps(err) for err in (reply.get("node_errors") or {}).values()]
    if not reply.get("prompt_id"):
        return False, messages
    try:
        server.wait(reply["prompt_id"], timeout=900)
    except WorkflowError as exc:
        return False, messages + [exc.message]
    return not messages, messages


def _demo(path) -> bool:
    return getattr(importlib.import_module(f"scripts.workflow_specs.{path.stem}"), "DEMO", False)


@pytest.mark.parametrize("path", WORKFLOWS, ids=[p.stem for p in WORKFLOWS])
def test_template_runs_or_says_which_model_to_put_where(fresh, fresh_info, path):
    workflow = json.loads(path.read_text())
    finished, messages = _queue_and_collect(fresh, ui_to_api(workflow, fresh_info))
    if _demo(path):
        assert finished, f"{path.stem} needs no downloaded weights but failed: {messages}"
        return
    assert not finished, f"{path.stem} ran with no models at all"
    names = _model_names(workflow)
    assert names, f"{path.stem} names no published model (see nodes/_sources.py)"
    models_dir = str(fresh.base / "models")
    explained = []
    for message in messages:
        for name in names:
            source = SOURCES[name.rsplit("/", 1)[-1]]
            ours = f"Put {name} (from {source}) into {models_dir}" in message
            core = "value_not_in_list" in message and f"'{name}' not in" in message  # core loader's own check
            if ours or core:
                explained.append(message)
    assert explained, f"{path.stem}: no message names a missing model, its source and folder: {messages}"
    unexplained = [m for m in messages if m not in explained]
    assert not unexplained, f"{path.stem}: other errors than missing models: {unexplained}"
