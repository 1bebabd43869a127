"""Regenerate workflows/*.json from scripts/workflow_specs/*.py against a live ComfyUI.

    .venv/bin/python scripts/build_workflows.py [name ...]
"""
import importlib
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scripts.harness.builder import UIWorkflow  # noqa: E402
from scripts.harness.server import REPO, live_object_info  # noqa: E402


def main(names):
    specs = sorted((REPO / "scripts" / "workflow_specs").glob("[!_]*.py"))
    specs = [p for p in specs if not names or p.stem in names]
    info = live_object_info()
    for path in specs:
        wf = UIWorkflow(info)
        importlib.import_module(f"scripts.workflow_specs.{path.stem}").build(wf)
        out = REPO / "workflows" / f"{path.stem}.json"
        out.write_text(wf.dumps())
        print(f"wrote {out.relative_to(REPO)}")


if __name__ == "__main__":
    main(sys.argv[1:])
