"""The main job: run the shipped workflows that need no downloaded weights (specs with
``DEMO = True``) headless through a real ComfyUI; results land in output/.

    make demo        (or .venv/bin/python scripts/demo.py [name ...])
"""
import importlib
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scripts.harness.examples import write_example_inputs  # noqa: E402
from scripts.harness.server import REPO, ComfyServer  # noqa: E402
from scripts.harness.workflow import ui_to_api  # noqa: E402


def demo_workflows(names):
    for path in sorted((REPO / "workflows").glob("*.json")):
        spec = importlib.import_module(f"scripts.workflow_specs.{path.stem}")
        if getattr(spec, "DEMO", False) and (not names or path.stem in names):
            yield path


def main(names) -> int:
    base = REPO / ".cache" / "demo"
    write_example_inputs(base / "input")
    server = ComfyServer(base, output_dir=REPO / "output").start()
    failures = 0
    try:
        info = server.object_info()
        for path in demo_workflows(names):
            start = time.time()
            try:
                entry = server.run(ui_to_api(json.loads(path.read_text()), info), timeout=1800)
            except Exception as exc:  # report and go on with the next workflow
                failures += 1
                print(f"{path.stem}: FAILED: {exc}")
                continue
            files = server.output_files(entry)
            print(f"{path.stem}: {len(files)} file(s) in {time.time() - start:.1f}s")
            for f in files:
                print(f"  {f.relative_to(REPO)}")
    finally:
        server.stop()
    print(f"server log: {server.log_path}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
