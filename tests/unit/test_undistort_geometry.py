"""Eq. 3.3 geometry and the dense warp, pinned to hand-computed pinhole cases (not to the module's output),
plus the tight-crop case of issue 10: a bounded distance and a warp without fold-overs."""
import math

import numpy as np
import pytest
import torch

from pipelines.undistort.geometry import (SELFIE_RANGE_M, NearCamera, focal_from_fov, near_camera, project_far,
                                          radial_scale)
from pipelines.undistort.warp import forward_points, identity_map, invert_map_at, jacobian_det
from tests.unit.undistort_helpers import backward_map_from_rho

# A pinhole camera 0.3 m from the eye plane, f0 = 500 px, principal point (256, 256). A point 3 cm behind
# the eye plane (Z = 0.33 m, rho = 0.1) at X = 5 cm, Y = 2 cm.
F0, C, NEAR, FAR = 500.0, (256.0, 256.0), 0.3, 3.0
X, Y, Z = 0.05, 0.02, 0.33


def _project(f, z):
    return np.array([C[0] + f * X / z, C[1] + f * Y / z])


def test_eq_3_3_moves_a_point_like_a_far_camera_with_f_scaled_by_distance():
    near_px = _project(F0, Z)  # (331.7576, 286.3030)
    # Far camera: 2.7 m further back along the axis, f scaled by far / near = 10 (eq. 3.3, f = d f0)
    far_px = _project(F0 * FAR / NEAR, Z + FAR - NEAR)  # (338.5083, 289.0033)
    assert far_px == pytest.approx([338.5083, 289.0033], abs=1e-3)
    camera = NearCamera(F0, C, NEAR)
    got = project_far(near_px[None], np.array([(Z - NEAR) / NEAR]), camera, FAR)[0]
    assert got == pytest.approx(far_px, abs=1e-6)
    # the eye plane (rho = 0) keeps its pixels exactly
    assert project_far(near_px[None], np.zeros(1), camera, FAR)[0] == pytest.approx(near_px, abs=1e-9)


def test_radial_scale_hand_values():
    assert radial_scale(0.1, 10.0) == pytest.approx(11.0 / 10.1)
    assert radial_scale(-0.1, 10.0) == pytest.approx(9.0 / 9.9)
    assert radial_scale(0.1, 1.0) == pytest.approx(1.0)


def test_far_camera_ratio_is_never_below_one():
    assert NearCamera(F0, C, 0.3).ratio_k(3.0) == pytest.approx(10.0)
    assert NearCamera(F0, C, 0.5).ratio_k(0.2) == 1.0


def test_focal_length_from_fov_across_the_long_side():
    assert focal_from_fov(90, 512, 256) == pytest.approx(256.0)
    assert focal_from_fov(60, 300, 640) == pytest.approx(320.0 / math.tan(math.radians(30)))
    assert focal_from_fov(200, 512, 512) == focal_from_fov(170, 512, 512)  # clamped to a real lens
    assert focal_from_fov(0.2, 512, 512) == pytest.approx(256.0 / math.tan(math.radians(0.5)))  # clamped at 1 deg


def test_near_camera_from_a_given_distance_and_from_the_fov():
    given = near_camera(63.0, 640, 480, distance_m=0.5)
    assert given.focal_px == pytest.approx(500.0)  # 63 px between the eyes, 63 mm prior, 0.5 m
    assert given.center == (319.5, 239.5) and given.distance_m == 0.5 and given.note == ""
    f = focal_from_fov(70, 1000, 800)
    fov = near_camera(100.0, 1000, 800, fov_deg=70)
    assert fov.focal_px == pytest.approx(f) and fov.distance_m == pytest.approx(f * 0.063 / 100.0)
    assert SELFIE_RANGE_M[0] <= fov.distance_m <= SELFIE_RANGE_M[1] and fov.note == ""
    with pytest.raises(ValueError):
        near_camera(0.0, 100, 100)


def test_a_face_too_big_for_the_fov_is_a_crop_and_the_distance_is_bounded():
    # 100 px between the eyes in a 200 px frame at 70 deg would be 0.09 m away: nearer than an arm.
    assert focal_from_fov(70, 200, 200) * 0.063 / 100.0 == pytest.approx(0.09, abs=0.001)
    cam = near_camera(100.0, 200, 200, fov_deg=70)
    assert cam.distance_m == SELFIE_RANGE_M[0] == 0.25 and cam.center == (99.5, 99.5)
    assert cam.focal_px == pytest.approx(100.0 * 0.25 / 0.063)  # the pinhole consistent with that distance
    assert "cropped" in cam.note and "0.09 m" in cam.note


def test_distances_outside_the_selfie_range_are_reported():
    assert "outside the usual selfie range" in near_camera(60.0, 512, 512, distance_m=0.9).note
    assert "outside the usual selfie range" in near_camera(60.0, 512, 512, distance_m=0.2).note
    assert "outside the usual selfie range" in near_camera(10.0, 4000, 3000, fov_deg=70).note  # ~4.7 m
    assert near_camera(60.0, 512, 512, distance_m=0.4).note == ""
    assert near_camera(60.0, 512, 512, distance_m=0.25).note == near_camera(60.0, 512, 512, distance_m=0.6).note == ""


def test_range_notes_name_where_the_distance_came_from():
    assert "(the given selfie_distance_m)" in near_camera(60.0, 512, 512, distance_m=0.9).note
    assert "(estimated from fov_degrees=70)" in near_camera(10.0, 4000, 3000, fov_deg=70).note
    with pytest.raises(ValueError, match="^interocular distance must be positive$"):
        near_camera(-1.0, 100, 100)
    assert near_camera(0.5, 100, 100, distance_m=0.3).focal_px == pytest.approx(0.5 * 0.3 / 0.063)  # tiny, > 0


def test_a_face_exactly_at_the_nearest_selfie_distance_is_not_bounded():
    focal = focal_from_fov(70, 640, 480)
    eyes = focal * 0.063 / 0.25
    for _ in range(64):  # step to the eye distance whose estimate is exactly 0.25 m
        if focal * 0.063 / eyes == 0.25:
            break
        eyes = math.nextafter(eyes, 0.0 if focal * 0.063 / eyes < 0.25 else math.inf)
    cam = near_camera(eyes, 640, 480, fov_deg=70)
    assert cam.distance_m == 0.25 and cam.focal_px == focal and cam.note == ""


def test_far_projection_runs_in_double_precision_for_float32_depths():
    camera = NearCamera(F0, C, NEAR)
    rho = np.array([0.1234567], dtype=np.float32)
    points = np.array([[331.75, 286.25]], dtype=np.float32)
    k = FAR / NEAR
    s = k * (1.0 + float(rho[0])) / (k + float(rho[0]))  # in Python floats (double)
    expected = np.array(C) + (points[0].astype(np.float64) - np.array(C)) * s
    got = project_far(points, rho, camera, FAR)
    assert got.dtype == np.float64 and np.abs(got[0] - expected).max() < 1e-9


# --- the dense warp -----------------------------------------------------------------------------

def test_constant_depth_ratio_warp_matches_the_pinhole_inverse():
    """rho = 0.1 everywhere, k = 10: output pixel q samples p = c + (q - c) / s, s = 11 / 10.1."""
    height, width = 201, 301
    center = ((width - 1) / 2, (height - 1) / 2)
    field = np.full((height, width), 0.1)
    s = 11.0 / 10.1
    for stride in (1, 2, 3):
        smap = backward_map_from_rho(field, center, 10.0, height, width, stride=stride)
        for qx, qy in [(250, 150), (40, 30), (150, 100), (200, 60)]:
            expected = (center[0] + (qx - center[0]) / s, center[1] + (qy - center[1]) / s)
            assert smap[qy, qx].tolist() == pytest.approx(expected, abs=0.12), (stride, qx, qy)
    with_depth = np.array([[10.0, 20.0, 5.0], [290.0, 180.0, -5.0]])  # a third column (depth) is ignored
    moved = forward_points(with_depth, field, center, 10.0, height, width)
    assert moved == pytest.approx(np.array(center) + (np.array([[10.0, 20.0], [290.0, 180.0]]) - center) * s,
                                  abs=1e-4)


def _radial_source(r_out, slope, k, cap):
    """|p - c| for an output radius, for rho = clip(slope * t, -cap, cap) along the ray (numpy bisection)."""
    lo, hi = r_out / radial_scale(cap, k), r_out / radial_scale(-cap, k)
    for _ in range(80):
        mid = (lo + hi) / 2
        rho = min(max(slope * mid, -cap), cap)
        lo, hi = (lo, mid) if mid * radial_scale(rho, k) > r_out else (mid, hi)
    return (lo + hi) / 2


def test_a_depth_ramp_is_solved_along_the_rays_from_the_principal_point():
    """rho grows 0.004 per pixel to the right of the centre: the field is looked up at the right place."""
    height, width = 129, 321
    center = ((width - 1) / 2, (height - 1) / 2)  # (160, 64): a pixel centre
    slope, cap, k = 0.004, 0.4, 10.0
    xs = np.arange(width) - center[0]
    field = np.clip(slope * np.tile(xs, (height, 1)), -cap, cap)
    smap = backward_map_from_rho(field, center, k, height, width)
    for qx in (190, 230, 260, 300):
        expected = center[0] + _radial_source(qx - center[0], slope, k, cap)
        assert float(smap[64, qx, 0]) == pytest.approx(expected, abs=0.06)
        assert float(smap[64, qx, 1]) == pytest.approx(64.0, abs=1e-4)
    # the forward model of the same field sends the source back to the output pixel
    src = smap[64, [190, 260]].numpy()
    assert forward_points(src, field, center, k, height, width)[:, 0] == pytest.approx([190, 260], abs=0.08)


def test_pixels_whose_source_lies_on_the_reference_plane_do_not_move():
    height, width = 120, 160
    field = np.zeros((height, width))
    field[40:70, 60:100] = 0.2
    smap = backward_map_from_rho(field, ((width - 1) / 2, (height - 1) / 2), 10.0, height, width)
    ident = identity_map(height, width)
    assert torch.equal(smap[:20], ident[:20]) and torch.equal(smap[:, :30], ident[:, :30])
    assert (smap[55, 90] - ident[55, 90]).norm() > 0.5
    assert torch.equal(backward_map_from_rho(np.zeros((60, 80)), (40, 30), 10.0, 60, 80), identity_map(60, 80))


def test_invert_map_at_undoes_a_known_shift():
    smap = identity_map(50, 60) + torch.tensor([2.5, -1.5])
    assert invert_map_at(smap, np.array([[30.0, 20.0]])) == pytest.approx(np.array([[27.5, 21.5]]), abs=1e-3)


def test_smoothing_removes_a_fold_and_touches_only_its_neighbourhood():
    from pipelines.undistort.warp import smooth_folds

    ident = identity_map(40, 60)
    folded = ident.clone()
    folded[:, 28:32, 0] = folded[:, 28:32, 0].flip(1)  # a 4-px strip sampled backwards: a fold-over
    assert float(jacobian_det(folded).min()) < 0
    fixed, changed = smooth_folds(folded, 0.05, 6.0)
    assert float(jacobian_det(fixed).min()) >= 0.05 and 0 < changed < 40 * 20
    wide = ident.clone()
    wide[:, 26:34, 0] = wide[:, 26:34, 0].flip(1)  # 8 px: more than one blur round
    fixed, changed = smooth_folds(wide, 0.05, 6.0)
    assert changed >= int((fixed != wide).any(dim=-1).sum())  # every round's pixels are counted
    assert torch.equal(fixed[:, :15], ident[:, :15]) and torch.equal(fixed[:, 45:], ident[:, 45:])
    same, none_changed = smooth_folds(ident, 0.05, 6.0)
    assert torch.equal(same, ident) and none_changed == 0


def test_jacobian_determinant_of_known_maps():
    ident = identity_map(20, 30)
    assert torch.allclose(jacobian_det(ident), torch.ones(19, 29))
    zoom = ident * 0.5  # sampling at half speed: each source pixel spread over 4 output pixels
    assert torch.allclose(jacobian_det(zoom), torch.full((19, 29), 0.25))
    flipped = ident.clone()
    flipped[..., 0] = 29 - flipped[..., 0]  # a mirror folds orientation
    assert (jacobian_det(flipped) < 0).all()


# --- issue 10: tightly cropped faces ----------------------------------------------------------

@pytest.fixture(scope="module")
def tight_crop():
    from skimage import data

    from pipelines.undistort import detect_landmarks

    pytest.importorskip("mediapipe")
    image = torch.from_numpy(data.astronaut().astype(np.float32) / 255)[None]
    face = detect_landmarks(image)[0][0]
    (x0, y0), (x1, y1) = face[:, :2].min(0).astype(int), face[:, :2].max(0).astype(int)
    return image[:, y0 - 5:y1 + 5, x0 - 5:x1 + 5].contiguous()


def test_a_tight_crop_gets_a_bounded_distance_and_a_fold_free_warp(tight_crop):
    from pipelines.undistort import UndistortSettings, undistort_faces
    from pipelines.undistort.undistort import MAX_JACOBIAN_DET, MIN_JACOBIAN_DET

    result = undistort_faces(tight_crop, UndistortSettings())  # defaults: 70 deg FOV, distance estimated
    face = result.faces[0]
    assert face.found and SELFIE_RANGE_M[0] <= face.distance_m <= SELFIE_RANGE_M[1]
    assert "cropped" in result.summary()
    det = jacobian_det(result.sampling_maps[0])
    assert float(det.min()) >= MIN_JACOBIAN_DET > 0 and float(det.max()) <= MAX_JACOBIAN_DET
    assert (result.images - tight_crop).abs().mean() > 0.005  # still corrected, not passed through


def test_a_folding_warp_is_damped_until_it_is_fold_free():
    from pipelines.undistort.undistort import MAX_JACOBIAN_DET, MIN_JACOBIAN_DET, fold_free_map

    height, width = 96, 128
    ys, xs = np.mgrid[0:height, 0:width]
    # a steep nose-like bump (rho -0.3 within 3 px) far from the principal point folds over
    field = -0.3 * np.exp(-((xs - 100.0) / 3) ** 2 - ((ys - 48.0) / 3) ** 2)
    center = ((width - 1) / 2, (height - 1) / 2)
    raw = jacobian_det(backward_map_from_rho(field, center, 10.0, height, width))
    assert float(raw.min()) < 0 and float(raw.max()) > MAX_JACOBIAN_DET
    smap, used, note = fold_free_map(field, center, 10.0, height, width)
    det = jacobian_det(smap)
    assert MIN_JACOBIAN_DET <= float(det.min()) and float(det.max()) <= MAX_JACOBIAN_DET
    assert "fold-overs" in note
    # only the neighbourhood of the bump changed; the rest of the warp is the exact one
    raw_map = backward_map_from_rho(used, center, 10.0, height, width)
    far = (np.hypot(xs - 100.0, ys - 48.0) > 20)
    assert torch.equal(smap[torch.from_numpy(far)], raw_map[torch.from_numpy(far)])
    # a gentle field is left at full strength
    gentle = 0.1 * np.exp(-((xs - 100.0) / 20) ** 2 - ((ys - 48.0) / 20) ** 2)
    smap, used, note = fold_free_map(gentle, center, 10.0, height, width)
    assert np.array_equal(used, gentle) and note == ""
