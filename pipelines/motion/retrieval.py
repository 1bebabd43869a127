"""Motion retrieval by dynamic time warping (thesis eq. 4.1):

    D_i = DTW(yaw, yaw_i) + alpha * DTW(translation, translation_i),   alpha = 0.1

with translation compared through its velocity less its 1 s mean (see VELOCITY_S and DRIFT_S:
the IMU's double-integrated position drifts; its velocity much less, and slowly).

Yaw is compared on the circle: each sample is embedded as (cos, sin), whose Euclidean
distance grows monotonically with the wrapped angle difference, so 359 deg and 1 deg are
close while a full twirl still differs from standing still. Both series are smoothed
(0.15 s) and compared at 10 fps inside a Sakoe-Chiba band of 15 % of the query's length
(tempo differences up to that much are absorbed; motions that differ only by much
slower or faster segments stay apart). The DTWs run in
dtaidistance's C library; candidates are visited in order of a lower bound (the last
samples' distance and LB_Keogh) and exact distances stop once no remaining bound can
beat the current k-th best.
"""
from dataclasses import dataclass

import numpy as np
from dtaidistance import dtw_ndim
from scipy.ndimage import gaussian_filter1d, maximum_filter1d, minimum_filter1d

from ..common import InputError
from .trajectory import Trajectory

ALPHA = 0.1
SMOOTH_S = 0.15
# Translation is compared through its velocity (derivative DTW), scaled to the displacement
# over VELOCITY_S seconds so it stays in metres. Why: a phone's position comes from integrating
# acceleration twice, and gravity leaking through a 0.3 deg tilt error (0.05 m/s^2, wandering
# slowly) grows into metres of position drift over a 10 s clip but only ~0.1-0.5 m/s of velocity
# error. That velocity error still wanders over seconds (an accelerometer bias makes it a ramp),
# so the velocity's local mean (a Gaussian of DRIFT_S) is subtracted, on both sides alike: what
# is compared is how the velocity changes over about a second (starts, stops, side steps, the
# path bending), which the drift barely touches; a ramp loses nothing but its edges.
# Measured on IMU-path queries of seeds 10-11 (300 queries each, not the bench's seeds 0-4):
# translation alone picks the right motion 23 % / 21 % of the time from raw velocities and
# 54 % / 47 % after subtracting the 1 s mean (seed 10 with a 2 s mean: 48 %, 4 s: 38 %); eq. 4.1's
# total with DRIFT_S = 1 goes 0.90 / 0.88 (VELOCITY_S 2 s), 0.91 / 0.90 (4 s), 0.93 / 0.93 (8 s),
# against 0.89 / 0.87 before (seed 12, 200 queries: 0.925 at 8 s, 0.93 at 16 s). The larger scale gives the high-passed velocity, smaller than the
# raw one, back the weight the raw velocity had.
VELOCITY_S = 8.0
DRIFT_S = 1.0
# The query's start heading is not its first sample alone: a sensor's heading jitters (white noise,
# a hand's sway), and every relative yaw, and the translation turned into the initial heading,
# inherits the reference's error over the whole clip. Where the recording stands still at the start
# (Trajectory.still_s, from the IMU loader's zero-velocity detection), the body's heading is constant
# and the mean over that time is its estimate (the sway averages out). Otherwise a least-squares
# line through the first START_FIT_S (10 samples at 30 fps): white noise sigma gives sigma at the
# first sample, sigma sqrt(38 / 110) = 0.59 sigma from the line, and a line, unlike a mean, is exact
# for a turn that starts at once at a steady rate. The database's clips are clean: their first sample is kept.
START_FIT_S = 0.3
BATCH = 256  # candidates per C call: few enough that pruning can stop after the first ones


@dataclass
class Match:
    index: int
    name: str
    distance: float
    yaw_distance: float
    translation_distance: float


def _start_heading(traj: Trajectory) -> float:
    """The heading at the start: the mean over the standing start if that lasts START_FIT_S or more,
    else a least-squares line through the first START_FIT_S, at the first sample."""
    n = min(len(traj), int(round(START_FIT_S * traj.fps)) + 1)
    standing = min(len(traj), int(traj.still_s * traj.fps))
    if standing >= n:
        return float(np.mean(np.unwrap(traj.yaw[:standing])))
    if n < 2:
        return float(traj.yaw[0])
    return float(np.polyfit(np.arange(n), np.unwrap(traj.yaw[:n]), 1)[1])


def _query_features(query: Trajectory, fps: float) -> tuple:
    """``_features`` of a (noisy) query, relative to its estimated start heading (``_start_heading``)."""
    return _features(query, fps, yaw0=_start_heading(query))


def _features(traj: Trajectory, fps: float, smooth_s: float = SMOOTH_S, yaw0: float = None) -> tuple:
    """(cos, sin) of relative yaw and the relative translation's velocity less its DRIFT_S mean,
    times VELOCITY_S; low-passed then resampled (IMU yaw jitters; the database's does not: smoothing both
    compares their shapes). Relative to ``yaw0``, by default the first sample's heading."""
    sigma = smooth_s * traj.fps
    # Relative to the start before smoothing: a smoothed first sample already holds part of a
    # turn that starts at once, and every later sample would be off by it (a database clip
    # starting mid-turn against a recording that starts standing).
    rel = traj.relative(yaw0)
    # yaw is unwrapped, so smoothing it keeps fast twirls (smoothing cos/sin would not)
    yaw = gaussian_filter1d(np.unwrap(rel.yaw), sigma, mode="nearest")
    trans = gaussian_filter1d(rel.translation, sigma, axis=0, mode="nearest")
    rel = Trajectory(yaw, trans, traj.fps).resampled(fps)
    yaw = np.ascontiguousarray(np.stack([np.cos(rel.yaw), np.sin(rel.yaw)], 1))
    velocity = np.gradient(rel.translation, axis=0) * fps
    velocity -= gaussian_filter1d(velocity, DRIFT_S * fps, axis=0, mode="nearest")
    return yaw, np.ascontiguousarray(velocity * VELOCITY_S)


class MotionIndex:
    """Pre-computed retrieval features of a database (resampled to a common rate)."""

    def __init__(self, trajectories: list, names: list, fps: float = 10.0, progress=None):
        self.fps = fps
        self.names = list(names)
        feats = []
        for t in trajectories:
            feats.append(_features(t, fps))
            if progress is not None:
                progress.step()
        self.yaw = [f[0] for f in feats]
        self.translation = [f[1] for f in feats]
        self.lengths = np.array([len(y) for y in self.yaw])
        self._ends = [np.stack([s[-1] for s in series]) for series in (self.yaw, self.translation)]
        self._blocks = [_block_boxes(series) for series in (self.yaw, self.translation)]

    def __len__(self) -> int:
        return len(self.names)

    def lower_bounds(self, q_yaw: np.ndarray, q_trans: np.ndarray, window: int, alpha: float) -> np.ndarray:
        """Per motion, a value no larger than its D: for each term the larger of two DTW bounds,
        the last samples' distance (every path pairs the last samples) and LB_Keogh (every query
        sample is paired with some sample inside the band, so it is at least as far as the
        band's bounding box)."""
        band = _band(len(q_yaw), self.lengths, window)
        bounds = []
        for ends, blocks, q in zip(self._ends, self._blocks, (q_yaw, q_trans)):
            bounds.append(np.maximum(np.linalg.norm(ends - q[-1], axis=1), _lb_keogh(q, *blocks, band)))
        return bounds[0] + alpha * bounds[1]

    def exact(self, idx: np.ndarray, q_yaw: np.ndarray, q_trans: np.ndarray, window: int, alpha: float) -> tuple:
        d_yaw = _dtw_row(q_yaw, [self.yaw[i] for i in idx], window)
        d_trans = _dtw_row(q_trans, [self.translation[i] for i in idx], window)
        return d_yaw + alpha * d_trans, d_yaw, d_trans


def _band(query_len: int, lengths: np.ndarray, window: int) -> int:
    """The widest |i - j| any exact DTW may pair: dtaidistance's band is the window plus the
    length difference (the window itself is widened to the batch's largest difference + 1);
    without a window, the longer series' last index."""
    if not window:
        return max(query_len, int(lengths.max())) - 1
    widest = int(np.abs(lengths - query_len).max())
    return widest + max(window, widest + 1) - 1


def _block_boxes(series: list) -> tuple:
    """Per motion, the bounding box of each pair of samples (rows 2b, 2b + 1), [N, blocks, D]
    upper and lower, each motion continued by its last sample to the longest."""
    rows = max(len(s) for s in series)
    rows += rows % 2
    padded = np.stack([np.pad(s, ((0, rows - len(s)), (0, 0)), mode="edge") for s in series]).astype(np.float32)
    pairs = padded.reshape(len(series), rows // 2, 2, -1)
    return pairs.max(axis=2), pairs.min(axis=2)


def _lb_keogh(query: np.ndarray, upper: np.ndarray, lower: np.ndarray, band: int) -> np.ndarray:
    """LB_Keogh over the query's even rows: row 2b is paired with samples within ``band`` of it,
    all inside blocks b - r .. b + r (r = ceil(band / 2)), so it is at least as far as their
    box. Leaving the odd rows out and widening the box keep it a lower bound, at half the cost."""
    q = query[::2].astype(np.float32)
    if len(q) > upper.shape[1]:
        extra = len(q) - upper.shape[1]
        upper = np.concatenate([upper, np.repeat(upper[:, -1:], extra, axis=1)], axis=1)
        lower = np.concatenate([lower, np.repeat(lower[:, -1:], extra, axis=1)], axis=1)
    size = 2 * ((band + 1) // 2) + 1
    hi = maximum_filter1d(upper, size, axis=1, mode="nearest")[:, :len(q)]
    lo = minimum_filter1d(lower, size, axis=1, mode="nearest")[:, :len(q)]
    outside = np.maximum(q - hi, 0) + np.maximum(lo - q, 0)
    return np.sqrt(np.einsum("nij,nij->n", outside, outside)).astype(np.float64)


def _dtw_row(query: np.ndarray, series: list, window: int) -> np.ndarray:
    """DTW from the query to each series, in C (OpenMP across series)."""
    data = [query] + series
    w = None
    if window:
        w = max(window, max(abs(len(s) - len(query)) for s in series) + 1)
    row = dtw_ndim.distance_matrix_fast(data, block=((0, 1), (1, len(data))), compact=True,
                                        parallel=True, window=w)
    return np.asarray(row, dtype=np.float64)


def dtw_retrieve(query: Trajectory, index: MotionIndex, k: int = 5, alpha: float = ALPHA,
                 window_fraction: float = 0.15, progress=None) -> list:
    """Top-k database motions for an IMU trajectory, best first."""
    if len(index) == 0:
        raise InputError("The motion database is empty.")
    if query.duration_s < 1.0:
        raise InputError(f"The query motion lasts {query.duration_s:.2f} s; at least 1 s is needed.")
    q_yaw, q_trans = _query_features(query, index.fps)
    window = int(window_fraction * len(q_yaw)) if window_fraction else 0
    k = min(k, len(index))
    bounds = index.lower_bounds(q_yaw, q_trans, window, alpha)
    order = np.argsort(bounds)
    best = []  # (distance, index, d_yaw, d_trans)
    for start in range(0, len(order), BATCH):
        idx = order[start:start + BATCH]
        if len(best) >= k and bounds[idx[0]] >= best[k - 1][0]:
            break  # no remaining candidate can enter the top-k
        total, d_yaw, d_trans = index.exact(idx, q_yaw, q_trans, window, alpha)
        best.extend(zip(total, idx, d_yaw, d_trans))
        best.sort(key=lambda m: m[0])
        best = best[:k]
        if progress is not None:
            progress.step()
    return [Match(int(i), index.names[i], float(d), float(dy), float(dt)) for d, i, dy, dt in best]
