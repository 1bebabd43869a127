"""AlignTok inference cost with the real-size architecture (DINOv2-L/14 encoder + adapter,
ch-128 decoder; random weights), CPU. Each (part, size, batch) runs in a fresh process:
median time of 2 runs after one warm-up, and peak memory growth during the first run.
Sizes/batches whose estimated time exceeds the budget are skipped and listed.

    .venv/bin/python bench/aligntok_infer.py
"""
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

COMBOS = [(size, batch) for size in (256, 512, 1024) for batch in (1, 4, 8)]
BUDGET_S = 90.0  # per measured call (2 shared CPU cores)
MEMORY_MB = 6000.0  # skip combos whose estimated peak growth exceeds this (the machine has ~16 GB free)


def measure(part: str, size: int, batch: int) -> dict:
    from pipelines.aligntok.model import AlignTok, AlignTokConfig

    torch.manual_seed(0)
    model = AlignTok(AlignTokConfig()).eval()
    x = torch.rand(batch, 3, size, size)
    z = torch.randn(batch, 32, size // 16, size // 16)
    fn = (lambda: model.encode(x)) if part == "encode" else (lambda: model.decode(z))
    with torch.no_grad():
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        t0 = time.perf_counter()
        fn()
        first = time.perf_counter() - t0
        grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
        times = []
        for _ in range(2 if first < BUDGET_S / 3 else 0):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
    return {"s": sorted(times)[0] if times else first, "mb": grown}


def main():
    if len(sys.argv) == 5 and sys.argv[1] == "--one":
        print(json.dumps(measure(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))))
        return
    results, skipped = {}, []
    for part in ("encode", "decode"):
        per_pixel_s = per_pixel_mb = None
        for size, batch in COMBOS:
            estimate = per_pixel_s * size * size * batch * (size / 256) if per_pixel_s else 0.0
            mem = per_pixel_mb * size * size * batch * (size / 256) if per_pixel_mb else 0.0
            if estimate > BUDGET_S or mem > MEMORY_MB:
                skipped.append(f"{part}@{size}x{batch} (~{estimate:.0f}s, ~{mem:.0f}MB est.)")
                continue
            out = subprocess.run([sys.executable, __file__, "--one", part, str(size), str(batch)],
                                 capture_output=True, text=True, check=True).stdout
            r = json.loads(out.strip().splitlines()[-1])
            results[(part, size, batch)] = r
            per_pixel_s = max(per_pixel_s or 0.0, r["s"] / (size * size * batch * (size / 256)))
            per_pixel_mb = max(per_pixel_mb or 0.0, r["mb"] / (size * size * batch * (size / 256)))
            print(f"{part}_{size}_b{batch}_s: {r['s']:.3f}")
            print(f"{part}_{size}_b{batch}_peak_mb: {r['mb']:.0f}")
    print(f"skipped: {', '.join(skipped) or 'none'}")

    def ratio(a, b, key):
        return results[a][key] / max(results[b][key], 1e-9) if a in results and b in results else float("nan")

    for part in ("encode", "decode"):
        print(f"{part}_mem_growth_b8_over_b1_256: {ratio((part, 256, 8), (part, 256, 1), 'mb'):.2f}")
        print(f"{part}_time_growth_b8_over_b1_256: {ratio((part, 256, 8), (part, 256, 1), 's'):.2f}")
        print(f"{part}_time_growth_512_over_256: {ratio((part, 512, 1), (part, 256, 1), 's'):.2f}")
        print(f"{part}_time_growth_1024_over_256: {ratio((part, 1024, 1), (part, 256, 1), 's'):.2f}")


if __name__ == "__main__":
    main()
