"""How much the pack adds to ComfyUI's startup: ComfyUI's own "Import times for custom
nodes" line (0.1 s resolution, median of several starts), and a precise figure: the time
to import the pack and list its nodes in a process where ComfyUI's modules are loaded.

    .venv/bin/python bench/import_overhead.py
"""
import re
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scripts.harness.server import PACK_NAME, ComfyServer  # noqa: E402

RUNS = 3


def one_start() -> float:
    with tempfile.TemporaryDirectory() as tmp:
        server = ComfyServer(Path(tmp)).start()
        server.object_info()  # nodes are listed, so get_node_list has run
        server.stop()
        for line in server.log().splitlines():
            m = re.match(rf"\s*([\d.]+) seconds.*custom_nodes/{PACK_NAME}\s*$", line)
            if m:
                return float(m.group(1))
    raise RuntimeError("ComfyUI printed no import time for the pack")


PRECISE = r"""
import asyncio, importlib.util, sys, time
sys.path.insert(0, sys.argv[1])
from comfy.cli_args import args
args.cpu = True
import comfy.model_management, folder_paths, nodes  # what ComfyUI has loaded before custom nodes
from comfy_api.latest import io
start = time.perf_counter()
spec = importlib.util.spec_from_file_location("recompose", sys.argv[2] + "/__init__.py",
                                              submodule_search_locations=[sys.argv[2]])
pack = importlib.util.module_from_spec(spec)
sys.modules["recompose"] = pack
spec.loader.exec_module(pack)
extension = asyncio.run(pack.comfy_entrypoint())
count = len(asyncio.run(extension.get_node_list()))
print(time.perf_counter() - start, count)
"""


def precise() -> tuple:
    import subprocess

    from scripts.harness.server import COMFY_DIR, REPO

    out = subprocess.run([sys.executable, "-c", PRECISE, str(COMFY_DIR), str(REPO)], capture_output=True,
                         text=True, check=True, cwd=COMFY_DIR).stdout.split()
    return float(out[-2]), int(out[-1])


def main():
    runs = [precise() for _ in range(RUNS)]
    print(f"pack_nodes: {runs[0][1]}")
    print(f"import_overhead_precise_s: {statistics.median(r[0] for r in runs):.3f}")
    times = [one_start() for _ in range(RUNS)]
    print(f"import_overhead_runs_s: {', '.join(f'{t:.2f}' for t in times)}")
    print(f"import_overhead_s: {statistics.median(times):.2f}")


if __name__ == "__main__":
    main()
