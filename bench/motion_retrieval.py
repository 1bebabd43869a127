"""Motion retrieval at database scale (thesis 4.4, eq. 4.1).

1,000 procedural motions of 300 frames; queries of 300 samples (noisy, time-warped,
drifting phone recordings of a database motion). Prints:
  retrieval_s    median seconds for one top-5 query (C DTW + lower-bound pruning)
  dtw_speedup    plain-Python DTW time / C DTW time for the same features (10 fps) and
                 window, both for an exhaustive scan of the 1,000 motions; the Python time
                 is measured on 10 of them and scaled
  top1_accuracy  fraction of queries whose own motion ranks first

    .venv/bin/python bench/motion_retrieval.py
"""
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipelines.motion.retrieval import ALPHA, MotionIndex, _dtw_row, _features, dtw_retrieve  # noqa: E402
from pipelines.motion.synthetic import motion_trajectory, noisy_query  # noqa: E402
from pipelines.motion.trajectory import Trajectory  # noqa: E402

N_MOTIONS, FRAMES, FPS, QUERIES, PY_SUBSET = 1000, 300, 30.0, 100, 10


def python_dtw(a: np.ndarray, b: np.ndarray, window: int) -> float:
    """Textbook DTW in pure Python (same cost and window as dtaidistance's)."""
    n, m = len(a), len(b)
    inf = float("inf")
    prev = [inf] * (m + 1)
    prev[0] = 0.0
    for i in range(1, n + 1):
        cur = [inf] * (m + 1)
        lo, hi = max(1, i - window), min(m, i + window)
        for j in range(lo, hi + 1):
            d = sum((x - y) ** 2 for x, y in zip(a[i - 1], b[j - 1]))
            cur[j] = d + min(prev[j], prev[j - 1], cur[j - 1])
        prev = cur
    return prev[m] ** 0.5


def database(rng):
    trajs = []
    for _ in range(N_MOTIONS):
        t, _kinds = motion_trajectory(FRAMES / FPS, FPS, rng)
        trajs.append(Trajectory(t.yaw[:FRAMES], t.translation[:FRAMES], FPS))
    return trajs


def main():
    rng = np.random.default_rng(0)
    trajs = database(rng)
    # The index resamples everything to its comparison rate (10 fps), as users get it.
    index = MotionIndex(trajs, [str(i) for i in range(N_MOTIONS)])
    targets = rng.choice(N_MOTIONS, QUERIES, replace=False)
    times, hits = [], 0
    for i in targets:
        q = noisy_query(trajs[i], rng, warp=0.1)
        start = time.perf_counter()
        best = dtw_retrieve(q, index, k=5)
        times.append(time.perf_counter() - start)
        hits += best[0].index == i

    q_yaw, q_trans = _features(noisy_query(trajs[0], rng), index.fps)
    window = int(0.15 * len(q_yaw))
    w = max(window, max(abs(len(index.yaw[j]) - len(q_yaw)) for j in range(PY_SUBSET)) + 1)
    start = time.perf_counter()
    for j in range(PY_SUBSET):
        python_dtw(q_yaw, index.yaw[j], w) + ALPHA * python_dtw(q_trans, index.translation[j], w)
    py_s = (time.perf_counter() - start) / PY_SUBSET * N_MOTIONS
    start = time.perf_counter()
    _dtw_row(q_yaw, index.yaw, window) + ALPHA * _dtw_row(q_trans, index.translation, window)
    c_s = time.perf_counter() - start

    print(f"python_dtw_full_scan_s: {py_s:.1f} (from {PY_SUBSET} pairs)")
    print(f"c_dtw_full_scan_s: {c_s:.3f}")
    print(f"retrieval_s: {statistics.median(times):.3f}")
    print(f"dtw_speedup: {py_s / c_s:.0f}")
    print(f"top1_accuracy: {hits / QUERIES:.3f}")


if __name__ == "__main__":
    main()
