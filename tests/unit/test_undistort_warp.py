"""Face Undistort's warp helpers on maps whose result is known by hand: integer shifts, border replication,
nearest sampling, per-image maps, dtypes, and the numerical inverse of a flow."""
import numpy as np
import pytest
import torch

from pipelines.undistort.warp import identity_map, invert_map_at, remap


def _ramp(batch=1, height=4, width=6, dtype=torch.float32):
    """Image whose value is 10 * image index + column: every shift is readable from the pixels."""
    cols = torch.arange(width, dtype=dtype).expand(height, width)
    return torch.stack([10.0 * b + cols for b in range(batch)])[:, None]


def test_a_shift_past_the_edge_replicates_the_border_column():
    shifted = identity_map(4, 6) + torch.tensor([2.0, 0.0])  # output x samples source x + 2
    out = remap(_ramp(), shifted)
    assert out[0, 0, 0].tolist() == pytest.approx([2, 3, 4, 5, 5, 5], abs=1e-5)  # not zeros past x = 5


def test_nearest_mode_picks_the_nearest_source_pixel():
    out = remap(_ramp(), identity_map(4, 6) + torch.tensor([0.3, 0.0]), mode="nearest")
    assert out[0, 0, 0].tolist() == pytest.approx([0, 1, 2, 3, 4, 5], abs=1e-6)
    bilinear = remap(_ramp(), identity_map(4, 6) + torch.tensor([0.3, 0.0]))
    assert bilinear[0, 0, 0, :3].tolist() == pytest.approx([0.3, 1.3, 2.3], abs=1e-5)


def test_one_map_warps_every_image_and_a_batch_of_maps_warps_image_by_image():
    images = _ramp(batch=3)
    one = remap(images, identity_map(4, 6) + torch.tensor([1.0, 0.0]))
    assert one[:, 0, 0, 0].tolist() == pytest.approx([1, 11, 21], abs=1e-5)
    per_image = torch.stack([identity_map(4, 6) + torch.tensor([float(b), 0.0]) for b in range(3)])
    out = remap(images, per_image)
    assert out[:, 0, 0, 0].tolist() == pytest.approx([0, 11, 22], abs=1e-5)  # image b shifted by b


def test_the_map_follows_the_image_dtype():
    images = _ramp(dtype=torch.float64) + 1e-9  # a difference float32 cannot hold
    out = remap(images, identity_map(4, 6) + torch.tensor([1.0, 0.0]))
    assert out.dtype == torch.float64
    assert out[0, 0, 0, 0].item() == pytest.approx(1.0 + 1e-9, abs=1e-12)


def test_invert_map_at_reads_only_x_y_and_finds_a_scaled_maps_preimage():
    # map(q) = c + 0.5 (q - c) about c = (20, 10): source p comes from output q = c + 2 (p - c)
    height, width, c = 21, 41, torch.tensor([20.0, 10.0])
    sampling = c + 0.5 * (identity_map(height, width) - c)
    points = np.array([[22.0, 11.0, 7.0], [18.5, 9.0, -3.0]])  # a third column (e.g. depth) is ignored
    got = invert_map_at(sampling, points)
    assert got.shape == (2, 2) and got.dtype == np.float64
    assert got == pytest.approx(np.array([[24.0, 12.0], [17.0, 8.0]]), abs=1e-3)


def test_corner_dets_of_one_bilinear_cell():
    from pipelines.undistort.warp import corner_dets, jacobian_det

    # corners (0,0) (1,0) / (0,1) (2,2): the bilinear patch m(u, v) = (u + uv, v + uv) has
    # d/du = (1 + v, v), d/dv = (u, 1 + u) and det J = 1 + u + v: 1, 2, 2, 3 at its corners
    cell = torch.tensor([[[0.0, 0.0], [1.0, 0.0]], [[0.0, 1.0], [2.0, 2.0]]])
    assert corner_dets(cell)[0, 0].tolist() == [1.0, 2.0, 2.0, 3.0]  # (u, v) = (0,0), (1,0), (0,1), (1,1)
    assert jacobian_det(cell)[0, 0] == 1.0


def test_corner_checked_smoothing_catches_a_fold_only_the_far_corner_sees():
    from pipelines.undistort.warp import corner_dets, jacobian_det, smooth_folds

    smap = identity_map(6, 6)
    smap[3, 3] -= 0.8  # (2.2, 2.2): cell (2, 2) has corners (2,2) (3,2) / (2,3) (2.2,2.2), i.e. relative to its
    # origin (0,0) (1,0) / (0,1) (x,y) = (0.2, 0.2), whose corner dets are 1, y, x and x + y - 1 = -0.6;
    # node (3, 3)'s own forward det is 1.8 * 1.8 - 0.8 * 0.8 = 2.6, so jacobian_det never goes below 0.2
    assert float(jacobian_det(smap).min()) == pytest.approx(0.2)
    assert corner_dets(smap)[2, 2].tolist() == pytest.approx([1.0, 0.2, 0.2, -0.6])
    assert smooth_folds(smap, 0.05, 6.0)[1] == 0
    fixed, changed = smooth_folds(smap, 0.05, 6.0, radius=1, corners=True)
    assert changed > 0 and float(corner_dets(fixed).min()) >= 0.05
