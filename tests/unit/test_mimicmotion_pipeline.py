"""The Fit Check sampling pipeline on the tiny SVD + MimicMotion fixture: frames out with the
references dropped, tiles fused, multi-reference attention on spatial attn1 only (and only
during the call), pose features reaching the UNet, both modes, cancel, bad inputs."""
import pytest
import torch

from pipelines.common.checkpoints import load_state_dict
from pipelines.common.errors import InputError
from pipelines.common.progress import Progress
from pipelines.mimicmotion import pipeline as fitcheck
from pipelines.mimicmotion.loader import load_fitcheck_pipeline
from pipelines.multiref.diffusers_processor import MultiReferenceAttnProcessor
from tests.fixtures import build_fitcheck

SIZE = 64
FAST = dict(steps=2, seed=3)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    torch.set_num_threads(1)
    return build_fitcheck.build(tmp_path_factory.mktemp("fitcheck_models"))


@pytest.fixture(scope="module")
def pipe(models):
    return load_fitcheck_pipeline(str(models["svd"]), str(models["weights"]))


@pytest.fixture(scope="module")
def fit_check_pipe(models, tmp_path_factory):
    """A 16-channel (Fit Check) checkpoint: no such weights are public, so one is made here."""
    state = load_state_dict(str(models["weights"]))
    state["unet.conv_in.weight"] = (torch.randn(32, 16, 3, 3, generator=torch.Generator().manual_seed(5)) * 0.1).half()
    path = tmp_path_factory.mktemp("fitcheck_16") / "FitCheck_tiny.pth"
    torch.save(state, path)
    return load_fitcheck_pipeline(str(models["svd"]), str(path))


def images(n, seed):
    return torch.rand(n, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(seed))


def inputs(n=3):
    return dict(front=images(1, 1)[0], back=images(1, 2)[0], poses=images(n, 3))


def test_frames_come_out_for_every_pose_with_the_references_dropped(pipe):
    calls = []
    out = pipe(**inputs(3), **FAST, progress=Progress(fitcheck.progress_total(3, 2, 16, 4, 8),
                                                      lambda d, t, p: calls.append((d, t, p))))
    assert out.shape == (3, SIZE, SIZE, 3)
    assert torch.isfinite(out).all() and out.min() >= 0 and out.max() <= 1
    assert [d for d, _, _ in calls] == [1, 2, 3]  # 2 steps x 1 tile + 1 decode chunk
    assert calls[1][2].shape == (1, SIZE, SIZE, 3)  # a preview of the denoised latent
    again = pipe(**inputs(3), **FAST)
    assert torch.equal(out, again), "same seed, same frames"
    assert not torch.equal(out, pipe(**inputs(3), steps=2, seed=4))


def test_long_videos_run_in_fused_tiles_that_hold_the_references(pipe, monkeypatch):
    seen = []

    def spy(outputs, tiles, frames, n_refs):
        seen.append((tiles, frames))
        return fused(outputs, tiles, frames, n_refs)

    fused = fitcheck.fuse_tiles
    monkeypatch.setattr(fitcheck, "fuse_tiles", spy)
    calls = []
    total = fitcheck.progress_total(9, 2, 6, 2, 4)
    out = pipe(**inputs(9), **FAST, tile_frames=6, overlap=2, decode_chunk=4,
               progress=Progress(total, lambda d, t, p: calls.append(d)))
    assert out.shape == (9, SIZE, SIZE, 3) and torch.isfinite(out).all()
    assert len(seen) == 2  # one fusion per denoising step
    tiles, frames = seen[0]
    assert frames == 11 and len(tiles) == 4  # windows of 4 of the 9 frames, starting at 0, 2, 4 and 5
    assert all(tile[:2] == [0, 1] and len(tile) == 6 for tile in tiles)
    assert sorted({f for tile in tiles for f in tile}) == list(range(11))
    assert calls == list(range(1, 2 * 4 + 3 + 1)) == list(range(1, total + 1))  # step x tile, then chunks


def test_multi_reference_runs_on_spatial_self_attention_only_during_the_call(pipe):
    before = {k: type(v) for k, v in pipe.unet.attn_processors.items()}
    during = {}

    def record(_module, _args):
        during.update({k: type(v) for k, v in pipe.unet.attn_processors.items()})

    handle = pipe.unet.register_forward_pre_hook(record)
    try:
        with_refs = pipe(**inputs(3), **FAST)
    finally:
        handle.remove()
    patched = {k for k, v in during.items() if v is MultiReferenceAttnProcessor}
    assert patched and all(k.endswith("attn1.processor") and "temporal" not in k for k in patched)
    assert all(during[k] == before[k] for k in during if k not in patched)  # temporal + cross attention kept
    spatial = {k for k in before if k.endswith("attn1.processor") and "temporal" not in k}
    assert patched == spatial
    assert {k: type(v) for k, v in pipe.unet.attn_processors.items()} == before  # restored
    plain = pipe(**inputs(3), **FAST, multi_reference=False)
    assert (with_refs - plain).abs().max() > 1e-4


def test_pose_features_are_added_after_the_first_layer(pipe):
    seen = []
    handle = pipe.unet.conv_in.register_forward_hook(lambda m, i, o: seen.append(o.shape))
    try:
        a = pipe(**inputs(3), **FAST)
    finally:
        handle.remove()
    assert seen and seen[0][1] == pipe.pose_net.final_proj.out_channels
    other = dict(inputs(3), poses=images(3, 9))
    b = pipe(**other, **FAST)
    assert (a - b).abs().max() > 1e-4, "the poses must steer the frames"
    refs = pipe(**inputs(3), **FAST, reference_poses=images(2, 7))
    # reference poses steer frames 1-2 (dropped); the others feel them only through attention
    assert (a - refs).abs().max() > 1e-6, "the reference frames' poses enter too"
    assert not pipe.unet.conv_in._forward_hooks, "the pose hook is removed after the call"


def test_mimicmotion_mode_ignores_the_background_and_says_so(pipe):
    a = pipe(**inputs(3), **FAST)
    b = pipe(**inputs(3), **FAST, background=images(1, 8)[0])
    assert torch.equal(a, b)
    assert "MimicMotion mode" in pipe.describe(True, True) and "background unused" in pipe.describe(True, True)


def test_fit_check_mode_uses_front_back_and_background_latents(fit_check_pipe):
    with pytest.raises(InputError, match="needs a background"):
        fit_check_pipe(**inputs(3), **FAST)
    a = fit_check_pipe(**inputs(3), **FAST, background=images(1, 8)[0])
    b = fit_check_pipe(**inputs(3), **FAST, background=images(1, 9)[0])
    c = fit_check_pipe(**dict(inputs(3), back=images(1, 10)[0]), **FAST, background=images(1, 8)[0])
    assert a.shape == (3, SIZE, SIZE, 3) and torch.isfinite(a).all()
    assert (a - b).abs().max() > 1e-4 and (a - c).abs().max() > 1e-4
    assert "Fit Check mode" in fit_check_pipe.describe(True, True)


def test_cancel_stops_sampling_and_restores_the_unet(pipe):
    class Cancelled(Exception):
        pass

    before = {k: type(v) for k, v in pipe.unet.attn_processors.items()}
    steps = []

    def cancel(done, _total, _preview):
        steps.append(done)
        if done == 2:
            raise Cancelled()

    with pytest.raises(Cancelled):
        pipe(**inputs(9), steps=5, tile_frames=6, overlap=2, progress=Progress(100, cancel))
    assert steps == [1, 2]
    assert {k: type(v) for k, v in pipe.unet.attn_processors.items()} == before
    assert not pipe.unet.conv_in._forward_hooks


def test_bad_inputs_are_explained(pipe):
    base = inputs(3)
    with pytest.raises(InputError, match="back image is 32x64"):
        pipe(**dict(base, back=torch.rand(3, 64, 32)), **FAST)
    with pytest.raises(InputError, match="pose images is 32x32"):
        pipe(**dict(base, poses=torch.rand(2, 3, 32, 32)), **FAST)
    with pytest.raises(InputError, match="no images"):
        pipe(**dict(base, poses=[]), **FAST)
    with pytest.raises(InputError, match="multiples of 8"):
        pipe(front=torch.rand(3, 60, 60), back=torch.rand(3, 60, 60), poses=torch.rand(2, 3, 60, 60), **FAST)
    with pytest.raises(InputError, match="2 reference poses"):
        pipe(**base, **FAST, reference_poses=images(3, 1))
    with pytest.raises(InputError, match="overlap"):
        pipe(**inputs(9), **FAST, tile_frames=6, overlap=4)


def test_clip_embeddings_are_summed_for_fit_check_and_averaged_for_mimicmotion(pipe, fit_check_pipe):
    pair = torch.cat([images(1, 11), images(1, 12)])
    for p, combine in ((fit_check_pipe, torch.sum), (pipe, torch.mean)):
        each = torch.cat([p.encode_clip(pair[:1]), p.encode_clip(pair[1:])])  # one image: its own embedding
        assert torch.allclose(p.encode_clip(pair)[0, 0], combine(each[:, 0], dim=0), atol=1e-5)
