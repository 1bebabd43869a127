"""The fast undistortion path pinned to the exact formulation it replaced: the warp solved and checked on
blocks vs solved per pixel, the depth fade on a crop vs on the whole grid, grid_sample remap vs kornia's."""
import numpy as np
import pytest
import torch

from pipelines.undistort.depth import _fade_box, _fade_outside
from pipelines.undistort.undistort import MAX_JACOBIAN_DET, MIN_JACOBIAN_DET, fold_free_map
from pipelines.undistort.warp import backward_map_from_rho, jacobian_det, remap


def _dome(height, width, cx, cy, sigma, depth):
    ys, xs = np.mgrid[0:height, 0:width]
    return depth * np.exp(-(((xs - cx) ** 2 + (ys - cy) ** 2) / (2 * sigma ** 2)))


def test_block_solved_warp_matches_the_per_pixel_solve():
    height = width = 256  # fold_free_map solves on 2 x 2 blocks here
    # a face-sized dome: nose 12 % nearer than the eyes, off the principal point
    rho = _dome(128, 128, 80, 50, 14, -0.12)  # on the 128 x 128 working grid
    center = ((width - 1) / 2, (height - 1) / 2)
    fast, used, note = fold_free_map(rho, center, 10.0, height, width)
    exact = backward_map_from_rho(rho, center, 10.0, height, width, stride=1)
    assert note == "" and np.array_equal(used, rho)
    moved = (exact - backward_map_from_rho(np.zeros_like(rho), center, 10.0, height, width)).norm(dim=-1)
    assert float(moved.max()) > 3.0  # a real correction, not a near-identity
    gap = (fast - exact).norm(dim=-1)
    assert float(gap.max()) < 0.1 and float(gap.mean()) < 0.01


def test_block_smoothed_folds_stay_fold_free_and_local():
    height = width = 512  # 4 x 4 blocks
    rho = _dome(256, 256, 200, 128, 1.5, -0.3)  # a steep bump far from the centre folds over
    center = ((width - 1) / 2, (height - 1) / 2)
    assert float(jacobian_det(backward_map_from_rho(rho, center, 10.0, height, width)).min()) < 0
    fast, used, note = fold_free_map(rho, center, 10.0, height, width)
    det = jacobian_det(fast)
    assert MIN_JACOBIAN_DET <= float(det.min()) and float(det.max()) <= MAX_JACOBIAN_DET
    assert "fold-overs" in note
    exact = backward_map_from_rho(used, center, 10.0, height, width, stride=1)
    ys, xs = np.mgrid[0:height, 0:width]
    far = torch.from_numpy(np.hypot(xs - 400.0, ys - 256.0) > 40)
    assert float((fast - exact).norm(dim=-1)[far].max()) < 0.1


@pytest.mark.parametrize("margin", [2.0, 6.5])
def test_fade_on_the_crop_equals_the_fade_on_the_whole_grid(margin):
    field = np.full((120, 140), np.nan)
    field[40:60, 30:55] = _dome(120, 140, 42, 50, 8, -0.1)[40:60, 30:55]  # the face's inside
    whole = _fade_box(field, ~np.isnan(field), margin)
    cropped = _fade_outside(field, margin)
    assert np.allclose(cropped, whole, atol=1e-7)
    assert np.abs(whole[:, 30 + 25 + int(4 * margin) + 3:]).max() == 0  # beyond the crop it was 0 anyway


def test_remap_matches_kornia():
    from kornia.geometry.transform import remap as kornia_remap

    gen = torch.Generator().manual_seed(0)
    image = torch.rand(2, 3, 17, 23, generator=gen)
    ys, xs = torch.meshgrid(torch.arange(17.0), torch.arange(23.0), indexing="ij")
    smap = torch.stack([xs, ys], dim=-1) + 3 * torch.rand(17, 23, 2, generator=gen) - 1.5
    ref = kornia_remap(image, smap[None, ..., 0].expand(2, -1, -1), smap[None, ..., 1].expand(2, -1, -1),
                       mode="bilinear", padding_mode="border", align_corners=True)
    assert torch.allclose(remap(image, smap), ref, atol=1e-5)
