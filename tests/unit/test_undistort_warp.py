"""Face Undistort's warp helpers on maps whose result is known by hand: integer shifts, border replication,
nearest sampling, per-image maps, dtypes, and the numerical inverse of a flow; upsampling only the moving
blocks against the whole map."""
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


@pytest.mark.parametrize("fold", [False, True])
def test_upsampling_only_the_moving_blocks_equals_the_whole_map(fold):
    from pipelines.undistort.warp import coarse_sources, smooth_folds, upsample_moved, upsample_sources

    def dome(cx, cy, sigma, depth):  # on the 150 x 130 working grid
        ys, xs = np.mgrid[0:150, 0:130]
        return depth * np.exp(-(((xs - cx) ** 2 + (ys - cy) ** 2) / (2 * sigma ** 2)))

    height, width, stride = 300, 260, 4  # not multiples of the stride
    center = ((width - 1) / 2, (height - 1) / 2)
    # a steep bump off-centre folds at full resolution when its blocks are not smoothed first
    rho = dome(110, 40, 3.0, -0.3) if fold else dome(70, 80, 12, -0.12)
    coarse = coarse_sources(rho, center, 10.0, height, width, stride)
    whole, changed = smooth_folds(upsample_sources(coarse, stride, height, width), 0.05, 6.0)
    fast, fast_changed = upsample_moved(coarse, stride, height, width, 0.05, 6.0)
    assert (changed > 0) == fold and fast_changed == changed
    assert torch.allclose(fast, whole, atol=1e-4)


def test_a_working_grid_field_is_read_at_its_cell_centres():
    from pipelines.undistort.warp import _sample_field

    # 10 x 8 cells over 40 x 32 pixels (4 px a cell): cell (i, j) has its centre at pixel (4 j + 1.5, 4 i + 1.5)
    rows = torch.arange(10, dtype=torch.float32)[:, None].expand(10, 8) + 1.0  # value = row + 1
    cols = torch.arange(8, dtype=torch.float32)[None].expand(10, 8) + 1.0  # value = column + 1
    xy = torch.tensor([[5.5, 13.5], [7.5, 20.0], [0.0, 0.0], [31.0, 39.0]])
    # pixel y -> cell (y - 1.5) / 4: 3, 4.625; past the first/last centre the border value holds
    assert _sample_field(rows, xy[None], 40, 32)[0].tolist() == pytest.approx([4.0, 5.625, 1.0, 10.0])
    assert _sample_field(cols, xy[None], 40, 32)[0].tolist() == pytest.approx([2.0, 2.5, 1.0, 8.0])


def test_block_centres_by_hand():
    from pipelines.undistort.warp import block_centers

    centres = block_centers(5, 4, 2)  # blocks of 2 x 2 px, the last row of blocks cut by the image
    assert centres.shape == (3, 2, 2)
    assert centres[..., 0].tolist() == [[0.5, 2.5]] * 3 and centres[:, 0, 1].tolist() == [0.5, 2.5, 4.5]


def test_solving_only_the_support_box_equals_solving_every_block():
    from pipelines.undistort.warp import _solve_sources, block_centers, coarse_sources

    # a face low on the left: its box starts further down than across, so x and y bounds cannot be swapped
    ys, xs = np.mgrid[0:60, 0:80]
    field = np.where(np.hypot(xs - 12.0, ys - 42.0) < 10, -0.08, 0.0)
    center, k, stride = (40.0, 30.0), 10.0, 2
    boxed = coarse_sources(field, center, k, 120, 160, stride)
    everywhere = _solve_sources(torch.from_numpy(field).float(), block_centers(120, 160, stride), center, k, 120, 160)
    assert (boxed - block_centers(120, 160, stride)).norm(dim=-1).max() > 1.0  # the face moves
    assert torch.allclose(boxed, everywhere, atol=1e-3)
