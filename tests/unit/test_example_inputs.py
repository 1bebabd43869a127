"""The example inputs the templates load ship with the pack: present, small, and each with its source
and licence written down."""
import json

from scripts.harness.examples import EXAMPLE_DIR
from scripts.harness.server import REPO

MAX_TOTAL_BYTES = 1_000_000  # the whole folder; a clone of the pack must stay small
FILE_INPUTS = {"LoadImage", "RecomposeLoadIMU"}


def _names_the_templates_load() -> set:
    names = set()
    for path in (REPO / "workflows").glob("*.json"):
        for node in json.loads(path.read_text())["nodes"]:
            if node["type"] in FILE_INPUTS:
                names.add(node["widgets_values"][0])
    return names


def test_every_file_a_template_loads_is_shipped():
    wanted = _names_the_templates_load()
    assert wanted, "no template loads a file"
    missing = sorted(n for n in wanted if not (EXAMPLE_DIR / n).is_file())
    assert not missing, f"not in example_inputs/: {missing} (run scripts/make_example_inputs.py)"


def test_example_inputs_are_small_and_each_has_a_source_and_licence():
    files = sorted(EXAMPLE_DIR.glob("recompose_*"))
    assert sum(f.stat().st_size for f in files) < MAX_TOTAL_BYTES
    table = (EXAMPLE_DIR / "SOURCES.md").read_text()
    rows = {line.split("|")[1].strip(" `"): line for line in table.splitlines() if line.startswith("| `")}
    for f in files:
        assert f.name in rows, f"{f.name} is not listed in example_inputs/SOURCES.md"
        licence = rows[f.name].split("|")[3]
        assert any(word in licence for word in ("public domain", "CC0", "CC BY", "this pack")), rows[f.name]


def test_example_folder_is_not_a_workflow_folder():
    """ComfyUI serves example_workflows/, example/, examples/, workflow/, workflows/ as template folders."""
    assert EXAMPLE_DIR.name not in {"example_workflows", "example", "examples", "workflow", "workflows"}
