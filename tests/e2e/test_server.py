"""The pack inside a real ComfyUI: registration, node metadata, templates, robustness."""
import json

import pytest

from scripts.harness.server import PACK_NAME
from scripts.harness.workflow import input_specs

from .workflows import WORKFLOWS


def our_nodes(object_info):
    return {k: v for k, v in object_info.items() if k.startswith("Recompose")}


def test_pack_loaded_without_import_errors(comfy, object_info):
    log = comfy.log()
    failed = [line for line in log.splitlines() if "Cannot import" in line and PACK_NAME in line]
    assert not failed, log[-3000:]
    assert "Error while calling comfy_entrypoint" not in log, log[-3000:]
    assert "Recompose: the" not in log, log[-3000:]
    assert len(our_nodes(object_info)) >= 1


def test_every_node_has_description_and_tooltips(object_info):
    problems = []
    for name, info in our_nodes(object_info).items():
        if not info.get("description"):
            problems.append(f"{name}: no description")
        if not info.get("category", "").startswith("Recompose"):
            problems.append(f"{name}: category {info.get('category')!r} is not under Recompose")
        for inp, spec, _opt in input_specs(info):
            opts = spec[1] if len(spec) > 1 else {}
            if not opts.get("tooltip"):
                problems.append(f"{name}.{inp}: no tooltip")
        for i, tip in enumerate(info.get("output_tooltips") or []):
            if not tip:
                problems.append(f"{name} output {i}: no tooltip")
    assert not problems, "\n".join(problems)


def test_workflows_are_served_as_templates(comfy):
    templates = comfy.get("/api/workflow_templates")
    served = set(templates.get(PACK_NAME, []))
    assert served == {p.stem for p in WORKFLOWS}, templates
    for path in WORKFLOWS:
        got = comfy.get(f"/api/workflow_templates/{PACK_NAME}/{path.name}")
        assert got == json.loads(path.read_text())


def test_every_template_has_a_thumbnail_the_browser_can_fetch(comfy):
    import io
    import urllib.request

    from PIL import Image, ImageStat

    for path in WORKFLOWS:
        with urllib.request.urlopen(comfy.url(f"/api/workflow_templates/{PACK_NAME}/{path.stem}.jpg"), timeout=30) as r:
            assert r.headers["Content-Type"] == "image/jpeg", path.stem
            image = Image.open(io.BytesIO(r.read()))
        assert image.size == (512, 384) and image.convert("L").getextrema()[1] > 100, path.stem
        picture = image.crop((0, 0, 512, 312)).convert("L")  # above the title bar: not an empty panel
        assert ImageStat.Stat(picture).stddev[0] > 8, f"{path.stem}: the thumbnail shows no example"


def test_server_keeps_working_after_a_failed_prompt(comfy, object_info):
    """A node error reaches the user as a message and the next prompt still runs."""
    bad = {"1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": 0}},
           "2": {"class_type": "ImageCrop", "inputs": {"image": ["1", 0], "width": 0, "height": 8, "x": 0, "y": 0}},
           "3": {"class_type": "PreviewImage", "inputs": {"images": ["2", 0]}}}
    with pytest.raises(RuntimeError, match="width"):  # rejected at validation: width 0 < min 1
        comfy.run(bad, timeout=60)
    good = {"1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": 0}},
            "2": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}}}
    entry = comfy.run(good, timeout=60)
    assert entry["status"]["status_str"] == "success"


def test_nodes_md_lists_every_node(object_info):
    from scripts.list_nodes import render
    from scripts.harness.server import REPO

    assert (REPO / "NODES.md").read_text() == render(object_info), "run: .venv/bin/python scripts/list_nodes.py"
