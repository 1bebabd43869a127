"""The fast undistortion path pinned to the exact formulation it replaced: the warp solved and checked on
blocks vs solved per pixel, the depth fade on a crop vs on the whole grid, grid_sample remap vs kornia's, the
face oval drawn on its box vs the whole canvas, the remap of the moving box vs of the whole image."""
import numpy as np
import pytest
import torch

from pipelines.undistort.depth import _fade_box, _fade_outside
from pipelines.undistort.undistort import MAX_JACOBIAN_DET, MIN_JACOBIAN_DET, fold_free_map
from pipelines.undistort.warp import jacobian_det, remap
from tests.unit.undistort_helpers import backward_map_from_rho


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


def test_face_oval_mask_drawn_on_its_box_equals_the_whole_canvas():
    from PIL import Image, ImageDraw

    from pipelines.undistort.depth import POLYGON_SUPERSAMPLING as ss, face_polygon_mask
    from pipelines.undistort.landmarks import FACE_OVAL

    rng = np.random.default_rng(0)
    angles = np.linspace(0, 2 * np.pi, len(FACE_OVAL), endpoint=False)
    for cx, cy, radius in [(30.3, 25.7, 12.0), (-4.2, 40.1, 15.0), (70.6, 3.3, 20.0)]:  # inside, off two borders
        points = np.zeros((468, 3))
        points[FACE_OVAL, 0] = cx + radius * np.cos(angles) * rng.uniform(0.6, 1.2, len(angles))
        points[FACE_OVAL, 1] = cy + radius * np.sin(angles)
        canvas = Image.new("L", (80 * ss, 60 * ss), 0)
        ImageDraw.Draw(canvas).polygon([tuple(c) for c in (points[FACE_OVAL, :2] + 0.5) * ss - 0.5], fill=255)
        whole = np.asarray(canvas.reduce(ss), dtype=np.float32) / 255.0
        assert whole.sum() > 10 and np.array_equal(face_polygon_mask(points, 60, 80), whole)


def test_remap_of_the_moving_box_equals_remapping_everything():
    from pipelines.undistort.undistort import _remap_moved
    from pipelines.undistort.warp import identity_map

    gen = torch.Generator().manual_seed(0)
    image = torch.rand(1, 4, 40, 50, generator=gen)
    smap = identity_map(40, 50)
    smap[10:25, 5:30] += 2 * torch.rand(15, 25, 2, generator=gen) - 1  # sources also outside the box
    untouched = (smap == identity_map(40, 50)).all(dim=-1)
    whole = torch.where(untouched, image, remap(image, smap))
    assert torch.equal(_remap_moved(image, smap), whole)
    assert torch.equal(_remap_moved(image, identity_map(40, 50)), image)


def test_fade_interpolation_weights_by_hand():
    from pipelines.undistort.depth import _interpolation_matrix

    # samples at 1, 4, 7 of 8 cells; constant before the first and after the last
    expected = np.array([[1, 0, 0], [1, 0, 0], [2 / 3, 1 / 3, 0], [1 / 3, 2 / 3, 0], [0, 1, 0], [0, 2 / 3, 1 / 3],
                         [0, 1 / 3, 2 / 3], [0, 0, 1]])
    assert np.allclose(_interpolation_matrix(8, 3, 1, 3), expected)


def test_fade_on_coarse_cells_is_close_to_the_fade_on_every_cell(monkeypatch):
    import pipelines.undistort.depth as depth

    field = np.full((200, 220), np.nan)
    field[60:130, 70:150] = _dome(200, 220, 110, 95, 25, -0.2)[60:130, 70:150]  # the face's inside
    margin = 40.0
    assert depth._fade_step(margin) == 2
    coarse = depth._fade_box(field, ~np.isnan(field), margin)
    monkeypatch.setattr(depth, "FADE_CELLS_PER_MARGIN", 1e9)  # step 1: the fade on every cell
    exact = depth._fade_box(field, ~np.isnan(field), margin)
    assert np.array_equal(coarse[60:130, 70:150], exact[60:130, 70:150])  # the inside keeps its values
    # off by up to a coarse cell at the face's border (the nearest inside cell is a sampled one)
    gap, amplitude = np.abs(coarse - exact), np.abs(exact).max()
    assert amplitude > 0.1 and gap.max() < 0.02 * amplitude and gap.mean() < 0.003 * amplitude
