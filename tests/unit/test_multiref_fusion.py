"""Progressive latent fusion: tiles always hold the references, cover every frame, and
blending is a weighted average that keeps agreeing tiles exact."""
import pytest
import torch

from pipelines.common import InputError
from pipelines.multiref.fusion import fuse_tiles, plan_tiles, triangular_weights


def test_tiles_include_references_and_cover_every_frame_with_overlap():
    tiles = plan_tiles(num_frames=40, tile_length=16, overlap=4)
    assert all(t[:2] == [0, 1] and len(t) == 16 for t in tiles)
    covered = sorted({f for t in tiles for f in t})
    assert covered == list(range(40))
    for a, b in zip(tiles, tiles[1:]):
        assert len(set(a[2:]) & set(b[2:])) >= 4


def test_short_video_is_one_tile_and_bad_plans_are_explained():
    assert plan_tiles(8, 16, 4) == [list(range(8))]
    with pytest.raises(InputError, match="overlap"):
        plan_tiles(40, 6, 4)
    with pytest.raises(InputError, match="only reference"):
        plan_tiles(2, 16, 4)


def test_fusion_is_exact_when_tiles_agree_and_weighted_where_they_do_not():
    video = torch.randn(30, 4, 8, 8)
    tiles = plan_tiles(30, 12, 4)
    fused = fuse_tiles([video[t] for t in tiles], tiles, 30)
    assert torch.allclose(fused, video, atol=1e-6)
    # two tiles disagreeing by a constant on their shared frames blend by triangular weight
    outs = [torch.zeros(len(t), 1) + i for i, t in enumerate(tiles)]
    fused = fuse_tiles(outs, tiles, 30)
    shared = sorted(set(tiles[0][2:]) & set(tiles[1][2:]))
    w = triangular_weights(10)
    for f in shared:
        w0, w1 = w[tiles[0].index(f) - 2], w[tiles[1].index(f) - 2]
        assert torch.isclose(fused[f, 0], w1 / (w0 + w1))
    assert torch.isclose(fused[0, 0], torch.tensor(sum(range(len(tiles))) / len(tiles)))  # reference: mean
