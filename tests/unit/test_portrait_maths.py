"""Portrait editing maths (thesis ch. 5) against formulas written out by hand: the adapter's layers and token
order, eq. 5.1, mask-guided combinations and the editing-mask statistics."""
import math

import pytest
import torch

from pipelines.common import InputError
from pipelines.portrait_edit import guidance, mask
from pipelines.portrait_edit.adapter import EmbeddingAdapter


def test_adapter_layers_and_identity_initialisation():
    adapter = EmbeddingAdapter()
    assert tuple(adapter.vae2clip.weight.shape) == (768, 1024)
    assert tuple(adapter.linear1.weight.shape) == (50, 54)
    assert torch.equal(adapter.linear1.weight, torch.eye(50, 54))
    assert isinstance(adapter.pool, torch.nn.MaxPool2d) and adapter.pool.kernel_size == 2
    assert sorted(adapter.state_dict()) == ["linear1.bias", "linear1.weight", "vae2clip.bias", "vae2clip.weight"]


def test_adapter_forward_by_hand():
    torch.manual_seed(0)
    adapter = EmbeddingAdapter()
    with torch.no_grad():
        adapter.linear1.weight.normal_()
    clip = torch.randn(2, 50, 768)
    latent = torch.randn(2, 4, 64, 64)
    out = adapter(clip, latent)
    # by hand: 2x2 max pooling, flatten 32*32 per channel, project to 768 -> 4 tokens after the 50 CLIP tokens,
    # then each output token n = sum_k W[n, k] * token_k + b[n]
    pooled = latent.view(2, 4, 32, 2, 32, 2).amax(dim=(3, 5)).reshape(2, 4, 1024)
    latent_tokens = pooled @ adapter.vae2clip.weight.T + adapter.vae2clip.bias
    tokens = torch.cat([clip, latent_tokens], dim=1)
    expected = torch.einsum("nk,bkd->bnd", adapter.linear1.weight, tokens) + adapter.linear1.bias.view(1, 50, 1)
    assert out.shape == (2, 50, 768)
    torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-4)


def test_untrained_adapter_passes_the_clip_tokens_through_plus_bias():
    adapter = EmbeddingAdapter()
    clip = torch.randn(1, 50, 768)
    out = adapter(clip, torch.randn(1, 4, 64, 64))
    torch.testing.assert_close(out, clip + adapter.linear1.bias.view(1, 50, 1))


def test_adapter_refuses_wrong_token_counts_and_latent_sizes():
    adapter = EmbeddingAdapter()
    with pytest.raises(InputError, match="50 CLIP tokens of 768"):
        adapter(torch.randn(1, 257, 768), torch.randn(1, 4, 64, 64))
    with pytest.raises(InputError, match="4x64x64"):
        adapter(torch.randn(1, 50, 768), torch.randn(1, 4, 32, 32))


def test_multi_condition_cfg_is_eq_5_1_with_three_signals():
    u, e, es, f = (torch.full((1, 4, 2, 2), v) for v in (1.0, 2.0, 4.0, 8.0))
    out = guidance.multi_condition_cfg(u, e, es, f, 3.0, 2.0, 4.0)
    # 1 + 3*(2-1) + 2*(4-2) + 4*(8-4) = 1 + 3 + 4 + 16
    assert torch.equal(out, torch.full((1, 4, 2, 2), 24.0))
    a, b, c, d = torch.randn(4, 3, 5)
    s1, s2, s3 = 1.7, 0.3, 5.5
    torch.testing.assert_close(guidance.multi_condition_cfg(a, b, c, d, s1, s2, s3),
                               a + s1 * (b - a) + s2 * (c - b) + s3 * (d - c))


def test_multi_condition_cfg_weights_sum_to_one():
    """Affine: the same x shifts every branch equally, so eps and x0 predictions combine alike."""
    a, b, c, d = torch.randn(4, 6)
    shift = torch.randn(6)
    torch.testing.assert_close(guidance.multi_condition_cfg(a + shift, b + shift, c + shift, d + shift, 3, 2, 4),
                               guidance.multi_condition_cfg(a, b, c, d, 3, 2, 4) + shift)


def test_scale_defaults_are_the_demo_and_thesis_values():
    assert guidance.DEMO_SCALES == (3.0, 2.0, 4.0)
    assert guidance.THESIS_SCALES == (3.0, 3.0, 5.0)


def test_mask_guided_and_latent_blend_by_hand():
    target = torch.tensor([10.0, 20.0, 30.0])
    rec = torch.tensor([1.0, 2.0, 3.0])
    m = torch.tensor([1.0, 0.0, 0.25])
    expected = torch.tensor([10.0, 2.0, 0.25 * 30 + 0.75 * 3])
    torch.testing.assert_close(guidance.mask_guided(target, rec, m), expected)
    torch.testing.assert_close(guidance.latent_blend(target, rec, m), expected)


def test_fit_mask_resizes_nearest_and_broadcasts_over_channels():
    m = torch.zeros(1, 16, 16)
    m[:, :8] = 1
    fitted = guidance.fit_mask(m, torch.zeros(2, 4, 4, 4))
    assert fitted.shape == (1, 1, 4, 4)
    assert torch.equal(fitted[0, 0], torch.tensor([[1.0] * 4] * 2 + [[0.0] * 4] * 2))


def test_fit_mask_takes_the_latent_dtype_keeps_a_matching_batch_and_cuts_any_other_to_the_first():
    like = torch.zeros(2, 4, 3, 3, dtype=torch.float64)
    per_image = torch.tensor([[[[1.0, 0, 1], [0, 1, 0], [1, 1, 0]]], [[[0.0, 0, 1], [1, 0, 0], [0, 1, 1]]]])
    fitted = guidance.fit_mask(per_image, like)  # already at latent size: passed through
    assert fitted.dtype == torch.float64 and torch.equal(fitted, per_image.double())
    three = torch.stack([per_image[0, 0], per_image[1, 0], per_image[0, 0]])  # [3, h, w] for a batch of 2
    assert torch.equal(guidance.fit_mask(three, like), per_image[:1].double())
    like3 = torch.zeros(3, 4, 3, 3)
    assert torch.equal(guidance.fit_mask(per_image, like3), per_image[:1])  # 2 masks for 3 latents: the first


def test_blur_constants_and_kernel():
    assert mask.BLUR_KERNEL == 5
    assert mask.BLUR_SIGMA == pytest.approx(1.1)
    assert mask.DEFAULT_SEEDS == 10
    assert (mask.THRESHOLD_COSTUME, mask.THRESHOLD_CARTOON) == (0.2, 0.35)
    k = mask.gaussian_kernel()
    raw = [math.exp(-(x * x) / (2 * 1.1 ** 2)) for x in (-2, -1, 0, 1, 2)]
    torch.testing.assert_close(k, torch.tensor([r / sum(raw) for r in raw]))


def test_blur_of_an_impulse_is_the_outer_product_of_the_kernel():
    impulse = torch.zeros(1, 9, 9)
    impulse[0, 4, 4] = 1
    k = mask.gaussian_kernel()
    torch.testing.assert_close(mask.blur(impulse)[0, 2:7, 2:7], torch.outer(k, k))


def test_blur_takes_its_size_sigma_and_dtype_from_the_arguments():
    impulse = torch.zeros(1, 11, 11, dtype=torch.float64)
    impulse[0, 5, 5] = 1
    raw = [math.exp(-(x * x) / (2 * 2.0 ** 2)) for x in range(-3, 4)]
    k = torch.tensor([r / sum(raw) for r in raw], dtype=torch.float64)
    out = mask.blur(impulse, size=7, sigma=2.0)
    assert out.dtype == torch.float64
    torch.testing.assert_close(out[0, 2:9, 2:9], torch.outer(k, k))


def test_blur_reflects_at_the_border():
    """Reflect padding (OpenCV's default) keeps a constant map constant and mirrors an edge impulse."""
    torch.testing.assert_close(mask.blur(torch.full((1, 6, 6), 0.7)), torch.full((1, 6, 6), 0.7))
    edge = torch.zeros(1, 1, 7)
    edge[0, 0, 0] = 1
    k = mask.gaussian_kernel()
    # reflect pads with x[2], x[1] (replicate would pad with x[0] and count the impulse three times at column 0)
    row = mask.blur(edge.expand(1, 5, 7).contiguous())[0, 2]
    torch.testing.assert_close(row[:3], torch.stack([k[2], k[3], k[4]]))


def test_normalise_is_min_max_per_map_and_zero_for_constant_maps():
    maps = torch.tensor([[[2.0, 4.0], [6.0, 10.0]], [[3.0, 3.0], [3.0, 3.0]]])
    out = mask.normalise(maps)
    torch.testing.assert_close(out[0], torch.tensor([[0.0, 0.25], [0.5, 1.0]]))
    assert torch.equal(out[1], torch.zeros(2, 2))


def test_difference_map_is_the_mean_absolute_difference_over_channels():
    a = torch.zeros(1, 4, 1, 1)
    b = torch.tensor([1.0, -2.0, 3.0, -6.0]).view(1, 4, 1, 1)
    assert mask.difference_map(a, b).item() == pytest.approx(3.0)


def test_editing_mask_averages_normalised_blurred_draws_then_thresholds():
    torch.manual_seed(1)
    draws = 3
    target, rec = torch.randn(draws * 2, 4, 12, 12), torch.randn(draws * 2, 4, 12, 12)
    soft, binary = mask.editing_mask(target, rec, threshold=0.4, draws=draws)
    per_draw = []
    for i in range(draws * 2):
        d = (target[i] - rec[i]).abs().mean(0)
        d = (d - d.min()) / (d.max() - d.min())
        per_draw.append(mask.blur(d[None])[0])
    expected = torch.stack([(per_draw[b] + per_draw[2 + b] + per_draw[4 + b]) / 3 for b in range(2)])
    torch.testing.assert_close(soft, expected)
    assert torch.equal(binary, (expected > 0.4).float())


def test_editing_mask_finds_a_region_where_only_it_differs():
    torch.manual_seed(2)
    # a costume-sized region of a 64x64 latent; the kernel-5 blur widens it by one latent pixel at 0.2
    region = torch.zeros(64, 64, dtype=torch.bool)
    region[12:52, 8:56] = True
    rec = torch.randn(10, 4, 64, 64)
    target = rec + 0.02 * torch.randn_like(rec)
    target[:, :, region] += 1.0 + torch.rand(10, 4, int(region.sum()))
    _, binary = mask.editing_mask(target, rec, threshold=0.2, draws=10)
    found = binary[0].bool()
    iou = (found & region).sum() / (found | region).sum()
    assert iou >= 0.9


def test_editing_mask_refuses_mismatched_inputs():
    with pytest.raises(InputError, match="differ in shape"):
        mask.editing_mask(torch.zeros(2, 4, 8, 8), torch.zeros(2, 4, 4, 4))
    with pytest.raises(InputError, match="^3 predictions cannot be split into 2 noise draws"):
        mask.editing_mask(torch.zeros(3, 4, 8, 8), torch.zeros(3, 4, 8, 8), draws=2)


def test_editing_mask_binary_is_strictly_above_the_threshold_in_the_soft_dtype():
    target = torch.zeros(1, 4, 12, 12)
    target[:, :, 0, 0] = 1.0  # the blur reaches 2 pixels: far pixels stay exactly 0
    soft, binary = mask.editing_mask(target, torch.zeros_like(target), threshold=0.0)
    assert binary.dtype == soft.dtype == torch.float32
    assert soft[0, 6, 6] == 0 and binary[0, 6, 6] == 0
    assert torch.equal(binary[0, :3, :3], torch.ones(3, 3))


def test_editing_mask_defaults_to_one_draw_per_image():
    target = torch.zeros(3, 4, 6, 6)
    target[:, :, 2:4, 2:4] = 1.0  # a 2x2 block differs: normalised to 1 there, 0 elsewhere
    soft, _ = mask.editing_mask(target, torch.zeros_like(target))
    assert soft.shape == (3, 6, 6)
    torch.testing.assert_close(soft[1], mask.blur(target[1:2, 0])[0])
