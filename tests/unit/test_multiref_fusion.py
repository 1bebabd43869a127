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


# --- values worked out by hand (thesis 4.2 / MimicMotion's triangular blending) ----------------------------------

def test_triangular_weights_are_literal_ramps():
    assert triangular_weights(1).tolist() == [1.0]
    assert triangular_weights(4).tolist() == [1.0, 2.0, 2.0, 1.0]
    assert triangular_weights(5).tolist() == [1.0, 2.0, 3.0, 2.0, 1.0]
    assert triangular_weights(6).tolist() == [1.0, 2.0, 3.0, 3.0, 2.0, 1.0]
    assert triangular_weights(6).dtype == torch.float32  # weights, not frame counts


def test_tile_plans_by_hand():
    # 10 non-reference frames (2..11), windows of 4 moving by 4 - 1 = 3: starts 0, 3, 6
    assert plan_tiles(12, 6, 1) == [[0, 1, 2, 3, 4, 5], [0, 1, 5, 6, 7, 8], [0, 1, 8, 9, 10, 11]]
    # 9 non-reference frames: starts 0, 3 leave frames 9-10 out, so a last window is pinned to the end
    assert plan_tiles(11, 6, 1) == [[0, 1, 2, 3, 4, 5], [0, 1, 5, 6, 7, 8], [0, 1, 7, 8, 9, 10]]
    assert plan_tiles(7, 6, 0) == [[0, 1, 2, 3, 4, 5], [0, 1, 3, 4, 5, 6]]
    assert plan_tiles(6, 6, 3) == [[0, 1, 2, 3, 4, 5]]  # exactly one window
    assert plan_tiles(7, 5, 0, references=(3, 0)) == [[0, 3, 1, 2, 4], [0, 3, 4, 5, 6]]
    assert plan_tiles(5, 3, 0) == [[0, 1, 2], [0, 1, 3], [0, 1, 4]]  # a window of 1, overlap 0
    with pytest.raises(InputError, match="overlap"):
        plan_tiles(12, 6, 4)  # window 4 <= overlap 4
    with pytest.raises(InputError, match="overlap"):
        plan_tiles(12, 6, -1)


def test_fusion_by_hand():
    # tiles [0,1,2,3,4] and [0,1,3,4,5]: window weights 1,2,1 each
    tiles = [[0, 1, 2, 3, 4], [0, 1, 3, 4, 5]]
    a = torch.tensor([10.0, 20.0, 1.0, 2.0, 3.0])
    b = torch.tensor([30.0, 40.0, 5.0, 6.0, 7.0])
    fused = fuse_tiles([a, b], tiles, 6)
    # frame 3: 2*2 (tile a, weight 2) and 5*1 (tile b, weight 1) -> 9/3; frame 4: (3*1 + 6*2)/3
    assert fused.tolist() == pytest.approx([20.0, 30.0, 1.0, 3.0, 5.0, 7.0])
    with pytest.raises(InputError, match="2 tile outputs for 1 tiles"):
        fuse_tiles([a, b], tiles[:1], 6)
    with pytest.raises(InputError, match="has 4 frames but its tile lists 5"):
        fuse_tiles([a[:4], b], tiles, 6)
    with pytest.raises(InputError, match="in no tile"):
        fuse_tiles([a, b], tiles, 7)


def test_fusion_with_one_reference_and_multichannel_frames():
    tiles = [[0, 1, 2], [0, 2, 3]]
    a = torch.tensor([[2.0, 0.0], [4.0, 4.0], [6.0, 6.0]])
    b = torch.tensor([[4.0, 2.0], [8.0, 8.0], [1.0, 1.0]])
    fused = fuse_tiles([a, b], tiles, 4, n_refs=1)
    # window weights [1, 1]: frame 2 averages 6 and 8; reference frame 0 averages [2,0] and [4,2]
    assert fused.tolist() == [[3.0, 1.0], [4.0, 4.0], [7.0, 7.0], [1.0, 1.0]]


def test_fusion_keeps_the_outputs_dtype():
    tiles = [[0, 1, 2, 3], [0, 1, 3, 4]]
    outs = [torch.arange(4, dtype=torch.float64) + i for i in range(2)]
    fused = fuse_tiles(outs, tiles, 5)
    assert fused.dtype == torch.float64
    assert fused.tolist() == pytest.approx([0.5, 1.5, 2.0, 3.0, 4.0])  # window weights 1, 1 in both tiles


def test_fusion_and_plan_messages_in_full():
    with pytest.raises(InputError, match=r"^The video has only reference frames; add frames to generate\.$"):
        plan_tiles(2, 16, 4)
    with pytest.raises(InputError, match=r"^Some frames are in no tile; plan the tiles with plan_tiles\.$"):
        fuse_tiles([torch.zeros(3)], [[0, 1, 2]], 4)
    with pytest.raises(InputError, match=r"^A tile of 6 frames holds 2 references and 4 others; the overlap \(4\) "
                                         r"must be smaller than that\.$"):
        plan_tiles(12, 6, 4)
