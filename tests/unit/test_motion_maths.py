"""Thesis eq. 4.1 and the retrieval's constants and pruning, against hand-computed values.

Features are set by hand (``_features`` patched) so that every DTW below has a closed form:
against a constant series the optimal path is the diagonal, so DTW = sqrt(sum_i |q_i - c|^2).
"""
import inspect
import math

import numpy as np
import pytest

import pipelines.motion.retrieval as retrieval
from pipelines.common import InputError
from pipelines.motion.retrieval import MotionIndex, dtw_retrieve
from pipelines.motion.trajectory import Trajectory


class HandFeatures:
    """Stands in for a Trajectory whose retrieval features are given directly."""

    def __init__(self, yaw, translation):
        self.yaw, self.translation = np.asarray(yaw, float), np.asarray(translation, float)
        self.duration_s = 10.0


@pytest.fixture
def hand_features(monkeypatch):
    given = lambda traj, fps, smooth_s=None: (traj.yaw, traj.translation)  # noqa: E731
    monkeypatch.setattr(retrieval, "_features", given)
    monkeypatch.setattr(retrieval, "_query_features", given)


def _const(value, n=20):
    return np.tile(np.asarray(value, float), (n, 1))


def test_thesis_constants():
    assert retrieval.ALPHA == 0.1  # thesis eq. 4.1
    assert retrieval.SMOOTH_S == 0.15
    assert retrieval.VELOCITY_S == 8.0
    assert retrieval.DRIFT_S == 1.0
    assert inspect.signature(dtw_retrieve).parameters["alpha"].default == 0.1
    assert inspect.signature(dtw_retrieve).parameters["window_fraction"].default == 0.15
    assert inspect.signature(MotionIndex).parameters["fps"].default == 10.0


def test_eq_4_1_ranking_flips_with_alpha(hand_features):
    # query: heading (1, 0), standing at the origin, 20 samples.
    # A: same heading, 5 m away:       DTW_yaw = 0,              DTW_trans = sqrt(20 * 25) = 22.3607
    # B: heading (0.6, 0.8), no move:  DTW_yaw = sqrt(20 * 0.8) = 4, DTW_trans = 0
    # D_A = 22.3607 alpha, D_B = 4: A wins below alpha = 0.1789, B above.
    query = HandFeatures(_const([1, 0]), _const([0, 0]))
    a = HandFeatures(_const([1, 0]), _const([3, 4]))
    b = HandFeatures(_const([0.6, 0.8]), _const([0, 0]))
    index = MotionIndex([a, b], ["A", "B"])
    low = dtw_retrieve(query, index, k=2)  # the thesis' alpha = 0.1
    assert [m.name for m in low] == ["A", "B"]
    assert low[0].distance == pytest.approx(2.23607, abs=1e-4)
    assert low[0].yaw_distance == pytest.approx(0.0, abs=1e-9)
    assert low[0].translation_distance == pytest.approx(22.3607, abs=1e-4)
    assert low[1].distance == pytest.approx(4.0, abs=1e-6) and low[1].yaw_distance == pytest.approx(4.0, abs=1e-6)
    high = dtw_retrieve(query, index, k=2, alpha=0.3)
    assert [m.name for m in high] == ["B", "A"]
    assert high[1].distance == pytest.approx(6.7082, abs=1e-4)


@pytest.mark.parametrize("shift,expected", [(0, 0.0), (2, 0.0), (3, np.sqrt(2.0)), (5, np.sqrt(6.0))])
def test_sakoe_chiba_band_is_15_percent_of_the_query(hand_features, shift, expected):
    # A heading step at sample 10 of 20; the candidate steps `shift` samples later. The band is
    # int(0.15 * 20) = 3, which dtaidistance applies as |i - j| <= 2: shifts up to 2 warp away,
    # each further sample leaves one pair on opposite sides, |(1,0) - (0,1)|^2 = 2 each.
    step = np.array([[1.0, 0.0]] * 10 + [[0.0, 1.0]] * 10)
    moved = np.array([[1.0, 0.0]] * (10 + shift) + [[0.0, 1.0]] * (10 - shift))
    index = MotionIndex([HandFeatures(moved, _const([0, 0]))], ["c"])
    (match,) = dtw_retrieve(HandFeatures(step, _const([0, 0])), index, k=1)
    assert match.yaw_distance == pytest.approx(expected, abs=1e-6)


def test_features_smooth_with_a_0_15_s_gaussian_at_10_fps():
    # A 10 fps trajectory keeps its samples; a yaw impulse of v at sample 20 becomes v * w0 with
    # w0 the centre weight of a Gaussian of sigma 0.15 s * 10 fps = 1.5 samples (scipy truncates at 4 sigma).
    v, sigma = 0.02, 1.5
    yaw = np.zeros(41)
    yaw[20] = v
    trans = np.zeros((41, 2))
    trans[20, 0] = 1.0
    feats_yaw, feats_trans = retrieval._features(Trajectory(yaw, trans, 10.0), 10.0)
    k = np.arange(-6, 7)
    w0 = 1.0 / np.exp(-k**2 / (2 * sigma**2)).sum()
    assert feats_yaw[20] == pytest.approx([np.cos(v * w0), np.sin(v * w0)], abs=1e-9)
    # translation becomes velocity less its 1 s Gaussian mean, x 8 s. The smoothed impulse is
    # g[n] = w(n - 20), its central-difference velocity V[n] = (g[n + 1] - g[n - 1]) / 2 * 10 m/s
    # (non-zero at samples 13..27, odd about 20); the 1 s mean at 19 weighs V[j] by
    # u(19 - j), a Gaussian of sigma 10 samples (4 sigma: 81 taps, the zero edges repeated).
    w = np.where(np.abs(np.arange(-8, 9)) <= 6, w0 * np.exp(-np.arange(-8, 9) ** 2 / (2 * sigma**2)), 0.0)
    j = np.arange(13, 28)
    velocity = (w[j + 1 - 20 + 8] - w[j - 1 - 20 + 8]) / 2 * 10.0
    u = np.exp(-np.arange(-40, 41) ** 2 / 200.0)
    u /= u.sum()
    expected = velocity[19 - 13] - np.sum(u[19 - j + 40] * velocity)
    assert feats_trans[19, 0] == pytest.approx(expected * 8.0, abs=1e-9)
    assert abs(expected) < abs(velocity[19 - 13])  # the mean of the opposite lobe (sample 21) is taken off
    assert feats_trans[20, 0] == pytest.approx(0.0, abs=1e-12)  # the peak: no velocity, nor a mean (odd lobes)
    assert len(retrieval._features(Trajectory(np.zeros(91), np.zeros((91, 2)), 30.0), 10.0)[0]) == 31


def test_a_clip_turning_from_its_first_frame_keeps_its_whole_turn():
    # 10 fps: yaw 0 -> -pi over samples 0..9, then -pi. Relative to the recorded first sample
    # (0), the plateau, more than the smoothing's 6-sample reach after the turn, is -pi: (-1, 0).
    # Taken from the smoothed first sample (which holds -0.2 rad of the turn) it would be -2.9.
    yaw = np.concatenate([np.linspace(0, -np.pi, 10), np.full(31, -np.pi)])
    feats_yaw, _ = retrieval._features(Trajectory(yaw, np.zeros((41, 2)), 10.0), 10.0)
    # the first sample itself is smoothed: sum_j w_j yaw[j], the samples before it repeat yaw 0
    w = np.exp(-np.arange(-6, 7) ** 2 / (2 * 1.5**2))
    first = np.sum(w[7:] / w.sum() * -np.pi * np.arange(1, 7) / 9)  # -0.200 rad
    assert feats_yaw[0] == pytest.approx([np.cos(first), np.sin(first)], abs=1e-9)
    assert feats_yaw[16:] == pytest.approx(np.tile([-1.0, 0.0], (25, 1)), abs=1e-9)


def test_query_start_heading_is_a_line_through_its_first_0_3_s():
    # A least-squares line through samples 0..n-1 weighs sample i in its value at 0 by
    # (2 (2n - 1) - 6 i) / (n (n + 1)); 0.3 s at 30 fps is n = 10: the first sample by 38 / 110.
    # A steady turn keeps its start exactly (a mean of the same samples would lag by 0.5 * 0.15 = 0.075).
    assert retrieval.START_FIT_S == 0.3
    t = np.arange(91) / 30.0
    assert retrieval._start_heading(Trajectory(1.0 + 0.5 * t, np.zeros((91, 2)), 30.0)) == pytest.approx(1.0, abs=1e-12)
    jitter = np.zeros(91)
    jitter[0] = 0.1
    assert retrieval._start_heading(Trajectory(jitter, np.zeros((91, 2)), 30.0)) == pytest.approx(0.1 * 38 / 110, abs=1e-12)
    # Only the first 10 samples count: a turn from sample 10 on leaves the start at 0.
    late_turn = np.where(np.arange(91) >= 10, 0.3 * (np.arange(91) - 9), 0.0)
    assert retrieval._start_heading(Trajectory(late_turn, np.zeros((91, 2)), 30.0)) == pytest.approx(0.0, abs=1e-12)


def test_a_standing_start_gives_the_mean_heading_while_standing():
    # Standing for 1 s (30 samples at 30 fps) swaying +-0.05 rad about 0.3, then turning: the body's
    # heading is the mean over the standing, 0.3 exactly. Standing only 0.2 s (< START_FIT_S) falls back
    # to the line through samples 0..9, weights (38 - 6 i) / 110: 0.3 + 0.05 * (70 - 40) / 110.
    k = np.arange(91)
    yaw = np.where(k < 30, 0.3 + 0.05 * (-1.0) ** k, 0.3 + 0.1 * (k - 29))
    standing = Trajectory(yaw, np.zeros((91, 2)), 30.0, still_s=1.0)
    assert retrieval._start_heading(standing) == pytest.approx(0.3, abs=1e-12)
    short = Trajectory(yaw, np.zeros((91, 2)), 30.0, still_s=0.2)
    assert retrieval._start_heading(short) == pytest.approx(0.3 + 0.05 * 30 / 110, abs=1e-12)
    # at 1 fps 0.3 s holds one sample: no line, the first sample
    assert retrieval._start_heading(Trajectory([0.2, 0.5, 0.9], np.zeros((3, 2)), 1.0)) == pytest.approx(0.2)


def test_a_query_whose_first_heading_sample_jitters_is_compared_from_the_fitted_start():
    # Database: standing still at heading 0 for 3 s (31 samples at 10 fps, all (1, 0)). Query: the
    # same, its first 30 fps sample jittered by 0.1 rad. Relative to the fitted start y0 = 0.1 * 38 / 110
    # the query is r = [0.1 - y0, -y0, -y0, ...]; the 0.15 s Gaussian (sigma 4.5 samples, 18 taps each
    # side, the samples before the first repeat it) gives s[k] = -y0 + 0.1 * sum_{j >= k} w_j, resampled
    # at samples 0, 3, ..., 90. Against a constant series DTW is the diagonal:
    # sqrt(sum_m |(cos s, sin s) - (1, 0)|^2) = sqrt(sum_m 4 sin^2(s_m / 2)). From the first sample
    # (y0 = 0.1) every later sample would be 0.1 rad off: 0.542 instead of 0.185.
    still = Trajectory(np.zeros(91), np.zeros((91, 2)), 30.0)
    jitter = np.zeros(91)
    jitter[0] = 0.1
    y0 = 0.1 * 38 / 110
    w = np.exp(-np.arange(-18, 19) ** 2 / (2 * 4.5**2))
    w /= w.sum()
    tail = np.array([w[18 + k:].sum() if k <= 18 else 0.0 for k in range(91)])
    s = (-y0 + 0.1 * tail)[::3]
    expected = np.sqrt(np.sum(4 * np.sin(s / 2) ** 2))
    (match,) = dtw_retrieve(Trajectory(jitter, np.zeros((91, 2)), 30.0), MotionIndex([still], ["still"]), k=1)
    assert match.yaw_distance == pytest.approx(expected, rel=1e-6)
    assert expected == pytest.approx(0.185, abs=0.001)
    assert match.translation_distance == pytest.approx(0.0, abs=1e-12)


def test_relative_turns_the_translation_into_a_given_start_heading():
    # 1 m east of the start, seen from a start heading of 90 deg (facing west, yaw grows to the
    # left): rotated by -90 deg, (1, 0) -> (0, -1); the yaw counts from that heading.
    traj = Trajectory([np.pi / 2 + 0.2, np.pi / 2 + 0.3], [[2.0, 3.0], [3.0, 3.0]], 10.0)
    rel = traj.relative(yaw0=np.pi / 2)
    assert rel.translation == pytest.approx(np.array([[0.0, 0.0], [0.0, -1.0]]), abs=1e-12)
    assert rel.yaw == pytest.approx([0.2, 0.3], abs=1e-12)
    assert traj.relative().yaw == pytest.approx([0.0, 0.1], abs=1e-12)  # default: the first sample's heading


def test_velocity_drift_of_an_accelerometer_bias_is_not_compared():
    # A constant acceleration error b (bias, a steady gravity leak) integrates into x = b t^2 / 2:
    # velocity b t, a ramp. Gaussians (the 0.15 s smoothing, the 1 s mean) keep a ramp, so
    # velocity less its 1 s mean is 0 wherever the 1 s mean's 40-sample reach (4 sigma), the
    # central difference's 1 and the smoothing's 6 stay inside the clip: samples 47..103 of 151.
    # A steady walk (x = v t) is 0 too.
    t = np.arange(151) / 10.0
    for x in (0.5 * 0.05 * t**2, 1.2 * t):
        _yaw, feats_trans = retrieval._features(Trajectory(np.zeros(151), np.stack([x, np.zeros(151)], 1), 10.0), 10.0)
        assert feats_trans[47:104] == pytest.approx(np.zeros((57, 2)), abs=1e-9)
    # a walk that stops is kept: 1 m/s until 7.5 s (sample 75), then standing. The stop is
    # symmetric about sample 75 (0.5 m/s there, its 1 s mean 0.5): 0. 1.5 s before it the mean
    # (two Gaussians, sigma sqrt(10^2 + 1.5^2) samples) is Phi(15 / 10.112) of 1 m/s; the rest
    # remains. 1.5 s after the stop, the opposite.
    x = np.minimum(t, 7.5)
    _yaw, feats_trans = retrieval._features(Trajectory(np.zeros(151), np.stack([x, np.zeros(151)], 1), 10.0), 10.0)
    left = 1 - 0.5 * (1 + math.erf(15 / np.hypot(10, 1.5) / np.sqrt(2)))  # 0.0690
    assert feats_trans[75, 0] == pytest.approx(0.0, abs=1e-9)
    assert feats_trans[60, 0] == pytest.approx(left * 8.0, abs=0.005)
    assert feats_trans[90, 0] == pytest.approx(-left * 8.0, abs=0.005)


def test_lower_bound_of_a_constant_motion(hand_features):
    # The box of a constant series is a point, so LB_Keogh over the query's 10 even rows is
    # sqrt(10 * 0.8) for yaw and sqrt(10 * 9) for translation (the last samples give less).
    index = MotionIndex([HandFeatures(_const([0.6, 0.8]), _const([0, 3]))], ["c"])
    bound = index.lower_bounds(_const([1, 0]), _const([0, 0]), window=3, alpha=0.5)
    assert bound[0] == pytest.approx(np.sqrt(8.0) + 0.5 * np.sqrt(90.0), abs=1e-5)


def test_lower_bound_box_reaches_the_band_edge(hand_features):
    # Window 4 on 20 samples: dtaidistance pairs |i - j| <= 3, so the bound widens each even
    # row 2b's box to the sample pairs b - 2 .. b + 2 (samples 2b - 4 .. 2b + 5). A (1, 0) spike
    # at sample 12 of a (0, 1) series enters the boxes of rows 8, 10, 12, 14, 16; the other five
    # even rows are sqrt(2) from their box: bound sqrt(5 * 2).
    spike = _const([0, 1])
    spike[12] = [1, 0]
    index = MotionIndex([HandFeatures(spike, _const([0, 0]))], ["c"])
    bound = index.lower_bounds(_const([1, 0]), _const([0, 0]), window=4, alpha=0.1)
    assert bound[0] == pytest.approx(np.sqrt(10.0), abs=1e-6)


@pytest.mark.parametrize("query_len, lengths, window", [
    (20, [20], 3), (20, [24], 1), (20, [17, 23], 2), (20, [24], 6), (30, [30, 26], 0), (12, [15], 0)])
def test_band_is_the_widest_pairing_dtaidistance_allows(query_len, lengths, window):
    """The band the lower bound assumes against dtaidistance's own cost matrix, run with the window the
    exact DTW passes it: the widest |i - j| among its finite cells, over the batch's series."""
    from dtaidistance import dtw_ndim

    rng = np.random.default_rng(0)
    q = rng.normal(size=(query_len, 2))
    w = max(window, max(abs(m - query_len) for m in lengths) + 1) if window else None
    widest = 0
    for m in lengths:
        _, cells = dtw_ndim.warping_paths(q, rng.normal(size=(m, 2)), window=w)
        i, j = np.nonzero(np.isfinite(cells[1:, 1:]))
        widest = max(widest, int(np.abs(i - j).max()))
    assert retrieval._band(query_len, np.array(lengths), window) == widest


def test_lower_bounds_never_exceed_the_distance():
    from pipelines.motion.synthetic import motion_trajectory, noisy_query

    rng = np.random.default_rng(1)
    trajs = [motion_trajectory(rng.uniform(2, 8), 30.0, rng)[0] for _ in range(80)]
    index = MotionIndex(trajs, [str(i) for i in range(80)])
    for i in range(4):
        q_yaw, q_trans = retrieval._features(noisy_query(trajs[i], rng), index.fps)
        window = int(0.15 * len(q_yaw))
        exact = index.exact(np.arange(80), q_yaw, q_trans, window, 0.1)[0]
        bounds = index.lower_bounds(q_yaw, q_trans, window, 0.1)
        assert np.all(bounds <= exact + 1e-9) and bounds.max() > 0


class CountingIndex(MotionIndex):
    def exact(self, idx, *args):
        self.computed = getattr(self, "computed", 0) + len(idx)
        return super().exact(idx, *args)


def _ramp(offset=0.0, zigzag=0.0, n=40):
    angle = 0.05 * np.arange(n) + offset + zigzag * (-1.0) ** np.arange(n) * (np.arange(n) < n - 1)
    return HandFeatures(np.stack([np.cos(angle), np.sin(angle)], 1), _const([0, 0], n))


def _brute_force(index, query, k):
    total = index.exact(np.arange(len(index)), query.yaw, query.translation, int(0.15 * len(query.yaw)), 0.1)[0]
    return list(np.argsort(total, kind="stable")[:k])


def test_pruning_visits_later_batches_when_their_bounds_are_low(hand_features):
    # More decoys than one batch have bound 0 (a zigzag around the query's ramp, same last sample)
    # but a large DTW; the true match (0.01 rad off) has bound 0.01 and is sorted after all of
    # them: retrieval must go past the first batch to find it.
    n_decoys = retrieval.BATCH + 20
    clips = [_ramp(zigzag=0.3) for _ in range(n_decoys)] + [_ramp(offset=0.01)]
    index = CountingIndex(clips, [str(i) for i in range(len(clips))])
    query = _ramp()
    best = dtw_retrieve(query, index, k=5)
    assert best[0].index == n_decoys
    assert best[0].distance == pytest.approx(np.sqrt(40) * 2 * np.sin(0.005), rel=1e-6)
    assert [m.index for m in best] == _brute_force(index, query, 5)


def test_pruning_stops_once_no_bound_can_enter_the_top_k(hand_features):
    # Constant headings against a constant query (no warping helps): 300 near motions at
    # 0.02..0.05 rad (DTW = sqrt(40) * 2 sin(o / 2) <= 0.32) and 300 far ones at 1 rad (bound over
    # the 20 even rows: sqrt(20) * 2 sin(0.5) = 4.29): the far ones are never computed.
    def heading(angle):
        return HandFeatures(_const([np.cos(angle), np.sin(angle)], 40), _const([0, 0], 40))

    near = [heading(o) for o in np.linspace(0.02, 0.05, 300)]
    index = CountingIndex(near + [heading(1.0)] * 300, [str(i) for i in range(600)])
    query = heading(0.0)
    best = dtw_retrieve(query, index, k=5)
    assert 0 < index.computed <= 300  # not one far motion computed
    assert [m.index for m in best] == _brute_force(index, query, 5) == [0, 1, 2, 3, 4]
    assert best[0].distance == pytest.approx(np.sqrt(40) * 2 * np.sin(0.01), rel=1e-6)


def test_pruning_compares_a_batch_with_the_kth_best_not_a_better_one(hand_features):
    # The first batch holds BATCH - 4 decoys (bound 0.001, DTW 1.87) and 4 near ramps (0.001..0.004 rad
    # off, DTW <= 0.03); the second batch's only clip is 0.1 rad off (bound 0.10, DTW 0.16). After the
    # first batch the 5th best is a decoy, above 0.10, so the second batch must be computed, though its
    # bound is above the 4th best.
    near = [_ramp(offset=o) for o in (1e-3, 2e-3, 3e-3, 4e-3)]
    clips = [_ramp(zigzag=0.3) for _ in range(retrieval.BATCH - 4)] + near + [_ramp(offset=0.1)]
    index = MotionIndex(clips, [str(i) for i in range(len(clips))])
    best = dtw_retrieve(_ramp(), index, k=5)
    assert [m.index for m in best] == _brute_force(index, _ramp(), 5) == list(range(retrieval.BATCH - 4, len(clips)))


def test_no_window_is_unconstrained_dtw(hand_features):
    # window_fraction 0: dtaidistance's DTW without a window, which may pair a 10-sample delay that
    # the 15 % window (6 of 40 samples) cannot
    from dtaidistance import dtw_ndim

    angle = np.concatenate([np.zeros(15), np.linspace(0, 1.5, 10), np.full(15, 1.5)])
    late = np.concatenate([np.zeros(25), np.linspace(0, 1.5, 10), np.full(5, 1.5)])
    yaw = lambda a: np.stack([np.cos(a), np.sin(a)], 1)  # noqa: E731
    index = MotionIndex([HandFeatures(yaw(late), _const([0, 0], 40))], ["late"])
    query = HandFeatures(yaw(angle), _const([0, 0], 40))
    free = dtw_retrieve(query, index, k=1, window_fraction=0)[0]
    assert free.distance == pytest.approx(dtw_ndim.distance(yaw(angle), yaw(late)), rel=1e-9)
    banded = dtw_retrieve(query, index, k=1)[0]
    assert banded.distance == pytest.approx(dtw_ndim.distance(yaw(angle), yaw(late), window=6), rel=1e-9)
    assert free.distance < banded.distance


def test_a_query_of_one_second_is_enough():
    trajs = [Trajectory(np.zeros(30), np.zeros((30, 2)), 10.0)]
    index = MotionIndex(trajs, ["still"])
    assert dtw_retrieve(Trajectory(np.zeros(10), np.zeros((10, 2)), 10.0), index)[0].name == "still"  # 1.0 s
    assert dtw_retrieve(Trajectory(np.zeros(15), np.zeros((15, 2)), 10.0), index)[0].name == "still"  # 1.5 s
    with pytest.raises(InputError, match="lasts 0.90 s; at least 1 s"):
        dtw_retrieve(Trajectory(np.zeros(9), np.zeros((9, 2)), 10.0), index)
