"""Motion retrieval at database scale (thesis 4.4, eq. 4.1).

Databases of procedural motions of 300 frames (30 fps). Two kinds of query:
  noise model  a copy of a database motion, time-warped, with white yaw noise and a random-walk
               translation drift added to the trajectory itself (never passes through the IMU path)
  IMU path     the same motion performed with a simulated phone (synthetic.phone_recording: 100 Hz,
               upright in the hand at arm's length, 0.5 s standing first, re-timed by up to 10 %,
               accelerometer white noise 0.05 m/s^2 + bias 0.03 m/s^2 + 0.3 deg tilt-error gravity
               leak + step bounce, gyro-integrated yaw noise 0.0005 rad/sqrt(s) + residual bias
               0.001 rad/s, 1 deg hand sway), written as a phone CSV, read back by
               imu.imu_to_trajectory, then retrieved
Prints:
  python_dtw_full_scan_s_estimate  plain-Python DTW for the 1,000-motion scan, timed on 10 motions and scaled
  c_dtw_full_scan_s                C DTW (dtaidistance) for the same scan, same features and window
  dtw_speedup_estimate             the ratio of those two
  retrieval_s                      median seconds of one top-5 query, 1,000 motions (noise-model queries)
  top1_accuracy                    noise-model queries, 1,000 motions, seed 0
  top1_accuracy_imu_mean/_min      IMU-path queries, 1,000 motions, 100 queries per seed, seeds 0-4
  top1_accuracy_imu_yaw_term_only_mean / _translation_term_only_mean
                                   IMU-path queries (with sensor noise) ranked by one term of eq. 4.1
                                   alone, full scan: which feature the sensor noise costs
  top1_accuracy_imu_no_sensor_noise_mean  the same queries with every sensor noise off (re-timing,
                                   standing start, lever arm and step bounce kept): the ceiling the
                                   database's DTW-indistinguishable motions leave
  retrieval_s_10k                  median seconds of one top-5 IMU-path query, 10,000 motions
  exact_dtw_fraction_10k           fraction of the 10,000 motions whose DTW was computed (the rest pruned)
  top1_accuracy_imu_10k            IMU-path queries against the 10,000 motions
  queries_with_identical_copy      IMU-path queries (seeds 0-4) whose motion occurs more than once in the
                                   database (the generator draws e.g. "stand still" many times, byte for byte)
  top1_accuracy_imu_min_strict_index  top1_accuracy_imu_min counting a returned identical copy as a miss

A hit is the query's motion: its database index or an identical copy of it (same yaw and translation,
sample for sample), since no retrieval can tell identical motions apart; the strict figure is printed too.
The generator rounds segment lengths down, so clips have 297-300 frames: a copy may hold its last pose a
frame or more longer (two clips of standing still differ in nothing else, and both lie at distance 0).

    .venv/bin/python bench/motion_retrieval.py
"""
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipelines.motion.imu import imu_to_trajectory  # noqa: E402
from pipelines.motion.retrieval import ALPHA, MotionIndex, _dtw_row, _query_features, dtw_retrieve  # noqa: E402
from pipelines.motion.synthetic import motion_trajectory, noisy_query, phone_recording, recording_csv  # noqa: E402
from pipelines.motion.trajectory import Trajectory  # noqa: E402

N_MOTIONS, N_LARGE, FRAMES, FPS, QUERIES, QUERIES_LARGE, PY_SUBSET, SEEDS = 1000, 10_000, 300, 30.0, 100, 30, 10, 5


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


def database(rng, count: int) -> list:
    trajs = []
    for _ in range(count):
        t, _kinds = motion_trajectory(FRAMES / FPS, FPS, rng)
        trajs.append(Trajectory(t.yaw[:FRAMES], t.translation[:FRAMES], FPS))
    return trajs


NO_SENSOR_NOISE = dict(acc_noise=0.0, acc_bias=0.0, gyro_noise=0.0, gyro_bias=0.0, sway_deg=0.0, tilt_err_deg=0.0)


def imu_query(traj: Trajectory, rng, **noise) -> Trajectory:
    """Database motion -> simulated phone CSV -> the loader's trajectory."""
    query, _notes = imu_to_trajectory(recording_csv(phone_recording(traj, rng, **noise)), fps=FPS)
    return query


class CountingIndex(MotionIndex):
    """Counts the motions whose exact DTW is computed (what the lower bounds did not prune)."""

    exact_count = 0

    def exact(self, idx, *args):
        self.exact_count += len(idx)
        return super().exact(idx, *args)


def same_motion(trajs: list, a: int, b: int) -> bool:
    """The same index, or the same motion sample for sample where the longer one then holds its last pose."""
    if a == b:
        return True
    short, long = sorted((trajs[a], trajs[b]), key=len)
    n = len(short)
    return (np.array_equal(short.yaw, long.yaw[:n]) and np.array_equal(short.translation, long.translation[:n])
            and bool(np.all(long.yaw[n:] == short.yaw[-1]))
            and bool(np.all(long.translation[n:] == short.translation[-1])))


def has_identical_copy(trajs: list, target: int) -> bool:
    return any(same_motion(trajs, target, j) for j in range(len(trajs)) if j != target)


def per_term_hits(query: Trajectory, index: MotionIndex, trajs: list, target: int) -> tuple:
    """Whether each of eq. 4.1's terms alone (full scan) ranks the target's motion first: (yaw, translation)."""
    q_yaw, q_trans = _query_features(query, index.fps)
    _total, d_yaw, d_trans = index.exact(np.arange(len(index)), q_yaw, q_trans, int(0.15 * len(q_yaw)), ALPHA)
    return same_motion(trajs, int(np.argmin(d_yaw)), target), same_motion(trajs, int(np.argmin(d_trans)), target)


def imu_accuracy(seed: int) -> tuple:
    """(top-1 with sensor noise, top-1 of the same path with none: re-timing and DTW ties only,
    top-1 of the yaw term alone and of the translation term alone, with sensor noise, top-1 with sensor
    noise counting only the target index, queries whose motion has an identical copy)."""
    rng = np.random.default_rng(seed)
    trajs = database(rng, N_MOTIONS)
    index = MotionIndex(trajs, [str(i) for i in range(N_MOTIONS)])
    targets = rng.choice(N_MOTIONS, QUERIES, replace=False)
    queries = [imu_query(trajs[i], rng) for i in targets]
    found = [dtw_retrieve(q, index, k=5)[0].index for q in queries]
    noisy = [same_motion(trajs, f, i) for f, i in zip(found, targets)]
    strict = [f == i for f, i in zip(found, targets)]
    quiet = [same_motion(trajs, dtw_retrieve(imu_query(trajs[i], rng, **NO_SENSOR_NOISE), index, k=5)[0].index, i)
             for i in targets]
    yaw_only, trans_only = np.mean([per_term_hits(q, index, trajs, i) for q, i in zip(queries, targets)], axis=0)
    copies = sum(has_identical_copy(trajs, i) for i in targets)
    return (float(np.mean(noisy)), float(np.mean(quiet)), float(yaw_only), float(trans_only),
            float(np.mean(strict)), copies)


def large_database() -> tuple:
    rng = np.random.default_rng(100)
    trajs = database(rng, N_LARGE)
    index = CountingIndex(trajs, [str(i) for i in range(N_LARGE)])
    times, hits = [], 0
    for i in rng.choice(N_LARGE, QUERIES_LARGE, replace=False):
        query = imu_query(trajs[i], rng)
        start = time.perf_counter()
        best = dtw_retrieve(query, index, k=5)
        times.append(time.perf_counter() - start)
        hits += same_motion(trajs, best[0].index, i)
    return statistics.median(times), index.exact_count / (N_LARGE * QUERIES_LARGE), hits / QUERIES_LARGE


def main():
    rng = np.random.default_rng(0)
    trajs = database(rng, N_MOTIONS)
    # The index resamples everything to its comparison rate (10 fps), as users get it.
    index = MotionIndex(trajs, [str(i) for i in range(N_MOTIONS)])
    targets = rng.choice(N_MOTIONS, QUERIES, replace=False)
    times, hits = [], 0
    for i in targets:
        q = noisy_query(trajs[i], rng, warp=0.1)
        start = time.perf_counter()
        best = dtw_retrieve(q, index, k=5)
        times.append(time.perf_counter() - start)
        hits += same_motion(trajs, best[0].index, i)

    q_yaw, q_trans = _query_features(noisy_query(trajs[0], rng), index.fps)
    window = int(0.15 * len(q_yaw))
    w = max(window, max(abs(len(index.yaw[j]) - len(q_yaw)) for j in range(PY_SUBSET)) + 1)
    start = time.perf_counter()
    for j in range(PY_SUBSET):
        python_dtw(q_yaw, index.yaw[j], w) + ALPHA * python_dtw(q_trans, index.translation[j], w)
    py_s = (time.perf_counter() - start) / PY_SUBSET * N_MOTIONS
    start = time.perf_counter()
    _dtw_row(q_yaw, index.yaw, window) + ALPHA * _dtw_row(q_trans, index.translation, window)
    c_s = time.perf_counter() - start

    imu, imu_quiet, yaw_only, trans_only, strict, copies = zip(*[imu_accuracy(seed) for seed in range(SEEDS)])
    large_s, exact_fraction, large_top1 = large_database()

    print(f"top1_accuracy_imu_per_seed: {' '.join(f'{a:.2f}' for a in imu)}")
    print(f"python_dtw_full_scan_s_estimate: {py_s:.1f} (from {PY_SUBSET} pairs)")
    print(f"c_dtw_full_scan_s: {c_s:.3f}")
    print(f"retrieval_s: {statistics.median(times):.3f}")
    print(f"dtw_speedup_estimate: {py_s / c_s:.0f}")
    print(f"top1_accuracy: {hits / QUERIES:.3f}")
    print(f"top1_accuracy_imu_mean: {np.mean(imu):.3f}")
    print(f"top1_accuracy_imu_min: {np.min(imu):.3f}")
    print(f"queries_with_identical_copy: {sum(copies)} of {QUERIES * SEEDS}")
    print(f"top1_accuracy_imu_min_strict_index: {np.min(strict):.3f}")
    print(f"top1_accuracy_imu_no_sensor_noise_mean: {np.mean(imu_quiet):.3f}")
    print(f"top1_accuracy_imu_yaw_term_only_mean: {np.mean(yaw_only):.3f}")
    print(f"top1_accuracy_imu_translation_term_only_mean: {np.mean(trans_only):.3f}")
    print(f"retrieval_s_10k: {large_s:.3f}")
    print(f"exact_dtw_fraction_10k: {exact_fraction:.3f}")
    print(f"top1_accuracy_imu_10k: {large_top1:.3f}")


if __name__ == "__main__":
    main()
