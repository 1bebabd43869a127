"""How much the pack adds to ComfyUI's startup, from ComfyUI's own
"Import times for custom nodes" line (median of several starts).

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


def main():
    times = [one_start() for _ in range(RUNS)]
    print(f"import_overhead_runs_s: {', '.join(f'{t:.2f}' for t in times)}")
    print(f"import_overhead_s: {statistics.median(times):.2f}")


if __name__ == "__main__":
    main()
