"""Learned canvas renderer: guidance formula, time encoding, shapes, and that the cached one-bank
formulation gives the official six-copy result."""
import pytest
import torch

from pipelines.inverse_painting.modules import nerf_encoding, normalise_time
from pipelines.inverse_painting.renderer import GuidanceScales, combine_guidance
from tests.unit.painting_helpers import painting_models, tiny_renderer  # noqa: F401


def _inputs(h=64, w=96):
    g = torch.Generator().manual_seed(0)
    target = torch.rand(1, 3, h, w, generator=g)
    canvas = torch.ones(1, 3, h, w)
    mask = torch.zeros(1, 1, h, w)
    mask[..., : h // 2, :] = 1
    return canvas, target, mask


def test_guidance_formula_matches_the_official_expression():
    preds = torch.randn(6, 4, 8, 8)
    s = GuidanceScales(clip=2, canvas=1, time=5, mask=5, text=5)
    u, c, cur, pe, rp, tp = preds
    expected = u + 2 * (c - u) + 1 * (cur - c) + 5 * (pe - cur) + 5 * (rp - pe) + 5 * (tp - rp)
    assert torch.allclose(combine_guidance(preds, s)[0], expected, atol=1e-5)
    # all scales 1: the sum telescopes to the fully conditioned branch
    ones = GuidanceScales(1, 1, 1, 1, 1)
    assert torch.allclose(combine_guidance(preds, ones)[0], tp, atol=1e-5)


def test_time_encoding_is_nerf_21_dims_and_official_normalisation():
    assert nerf_encoding(torch.zeros(1, 1)).shape == (1, 21)
    assert normalise_time(20) == pytest.approx(-0.6)   # 20 s on the 5 s grid, /100, to -1..1
    assert normalise_time(22) == pytest.approx(-0.6)
    assert normalise_time(500) == pytest.approx(1.0)


def test_update_shapes_and_range(tiny_renderer):
    canvas, target, mask = _inputs()
    out = tiny_renderer.settings().update(canvas, target, mask, "sky", 20.0)
    assert out.shape == (1, 3, 64, 96)
    assert 0.0 <= out.min() and out.max() <= 1.0 and torch.isfinite(out).all()


def test_cached_single_bank_equals_official_six_copies(tiny_renderer):
    canvas, target, mask = _inputs()
    ours = tiny_renderer.settings(reference_mode="cached", cfg_chunk=6).update(canvas, target, mask, "tree", 20.0)
    official = tiny_renderer.settings(reference_mode="official").update(canvas, target, mask, "tree", 20.0)
    chunked = tiny_renderer.settings(reference_mode="cached", cfg_chunk=1).update(canvas, target, mask, "tree", 20.0)
    assert (ours - official).abs().max() < 1e-4
    assert (ours - chunked).abs().max() < 1e-4


def test_referencenet_runs_once_per_painting(tiny_renderer):
    canvas, target, mask = _inputs()
    ours = tiny_renderer.settings()
    a = ours.update(canvas, target, mask, "sky", 20.0)
    ours.update(a, target, mask, "sky", 20.0)
    assert ours.stats["referencenet_runs"] == 1
    official = tiny_renderer.settings(reference_mode="official")
    b = official.update(canvas, target, mask, "sky", 20.0)
    official.update(b, target, mask, "sky", 20.0)
    assert official.stats["referencenet_runs"] == 12


def test_text_and_time_change_the_result(tiny_renderer):
    canvas, target, mask = _inputs()
    r = tiny_renderer.settings()
    base = r.update(canvas, target, mask, "sky", 20.0)
    assert (r.update(canvas, target, mask, "tree", 20.0) - base).abs().max() > 1e-6
    assert (r.update(canvas, target, mask, "sky", 80.0) - base).abs().max() > 1e-6


def test_cancel_inside_an_update_stops_it(tiny_renderer):
    from pipelines.common.progress import Progress

    canvas, target, mask = _inputs()
    seen = []

    def cb(done, total, preview):
        seen.append(done)
        if len(seen) == 2:
            raise KeyboardInterrupt("cancelled")

    with pytest.raises(KeyboardInterrupt):
        tiny_renderer.settings().update(canvas, target, mask, "sky", 20.0, progress=Progress(3, cb))
    assert len(seen) == 2
    assert not tiny_renderer.state.active  # the hooks are switched off again


def test_next_update_reuses_the_previous_latents_even_after_repadding(tiny_renderer):
    canvas, target, mask = _inputs()
    r = tiny_renderer.settings()
    first = r.update(canvas, target, mask, "sky", 20.0)
    repadded = first.clone()
    repadded[..., -16:, :] = 0  # what the loop does to the padding rows
    assert r._previous_latents(repadded) is not None
    assert r._previous_latents(torch.rand_like(first)) is None


def test_tiled_decode_only_when_the_image_exceeds_a_tile_and_leaves_the_vae_as_it_was(tiny_renderer):
    from pipelines.inverse_painting.renderer import decode_latents

    vae = tiny_renderer.vae
    z = torch.randn(1, 4, 16, 24)  # 128 x 192 pixels
    before = (vae.tile_sample_min_size, vae.tile_latent_min_size)
    with torch.no_grad():
        whole = decode_latents(vae, z, 0)
        assert torch.equal(decode_latents(vae, z, 256), whole)  # one tile covers it: the plain decode
        tiled = decode_latents(vae, z, 64)
    assert tiled.shape == whole.shape == (1, 3, 128, 192)
    assert not torch.equal(tiled, whole)  # 64 px tiles did run (per-tile GroupNorm statistics differ)
    assert (vae.tile_sample_min_size, vae.tile_latent_min_size) == before
    canvas, target, mask = _inputs()
    out = tiny_renderer.settings(vae_tile_size=64).update(canvas, target, mask, "sky", 20.0)
    assert out.shape == (1, 3, 64, 96) and torch.isfinite(out).all()
