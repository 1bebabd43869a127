"""Multi-reference attention: equals the thesis' width concatenation (Fig. 4.4), serves
both the diffusers processor and the ComfyUI patch, leaves unpatched models alone."""
import sys

import pytest
import torch

from pipelines.common import InputError
from pipelines.multiref.attention import multi_reference_attention, width_concat_reference
from scripts.harness.server import COMFY_DIR

torch.manual_seed(0)


def projections(c):
    return [torch.nn.Linear(c, c, bias=False) for _ in range(3)]


@pytest.mark.parametrize("frames,refs", [(5, (0, 1)), (3, (0, 1)), (6, (2, 4))])
def test_equals_width_concatenation(frames, refs):
    h, w, c, heads = 4, 6, 16, 2
    x = torch.randn(frames, h, w, c)
    to_q, to_k, to_v = projections(c)
    expected = width_concat_reference(x, to_q, to_k, to_v, heads, refs)
    t = x.reshape(frames, h * w, c)
    ours = multi_reference_attention(to_q(t), to_k(t), to_v(t), heads, frames, refs)
    assert torch.allclose(ours, expected, atol=1e-5)


def test_videos_and_cfg_halves_are_independent():
    frames, length, c, heads = 4, 10, 8, 2
    q, k, v = (torch.randn(3 * frames, length, c) for _ in range(3))
    whole = multi_reference_attention(q, k, v, heads, frames)
    for g in range(3):
        s = slice(g * frames, (g + 1) * frames)
        assert torch.allclose(whole[s], multi_reference_attention(q[s], k[s], v[s], heads, frames), atol=1e-6)


def test_strength_zero_is_plain_self_attention():
    frames, length, c, heads = 4, 10, 8, 2
    q, k, v = (torch.randn(frames, length, c) for _ in range(3))
    plain = torch.nn.functional.scaled_dot_product_attention(
        *(t.view(frames, length, heads, -1).transpose(1, 2) for t in (q, k, v))).transpose(1, 2).reshape(q.shape)
    assert torch.allclose(multi_reference_attention(q, k, v, heads, frames, strength=0.0), plain, atol=1e-6)
    assert not torch.allclose(multi_reference_attention(q, k, v, heads, frames), plain, atol=1e-3)


def test_bad_frame_layouts_are_explained():
    q = torch.randn(6, 4, 8)
    with pytest.raises(InputError, match="cannot be split"):
        multi_reference_attention(q, q, q, 2, frames=4)
    with pytest.raises(InputError, match="prepend the front and back"):
        multi_reference_attention(q, q, q, 2, frames=6, references=(0, 7))
    with pytest.raises(InputError, match="Every frame"):
        multi_reference_attention(q[:2], q[:2], q[:2], 2, frames=2)


def test_diffusers_processor_patches_only_spatial_self_attention():
    from diffusers import UNet2DConditionModel

    from pipelines.multiref.diffusers_processor import MultiReferenceAttnProcessor, enable_multi_reference

    unet = UNet2DConditionModel(sample_size=8, block_out_channels=(32, 64), layers_per_block=1,
                                down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                                up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=32,
                                attention_head_dim=8, norm_num_groups=8).eval()
    x, t, ctx = torch.randn(4, 4, 8, 8), torch.tensor(10), torch.randn(4, 3, 32)
    with torch.no_grad():
        before = unet(x, t, ctx).sample
        enable_multi_reference(unet, frames=4)
        after = unet(x, t, ctx).sample
    procs = unet.attn_processors
    assert all(isinstance(p, MultiReferenceAttnProcessor) == n.endswith("attn1.processor") for n, p in procs.items())
    assert torch.allclose(after[:2], before[:2], atol=1e-5)  # reference frames attend to themselves only
    assert not torch.allclose(after[2:], before[2:], atol=1e-4)  # other frames see the references


@pytest.fixture(scope="module")
def comfy_modules():
    sys.path.insert(0, str(COMFY_DIR))
    from comfy.cli_args import args

    args.cpu = True  # as the server's --cpu; model_management reads it on import
    import comfy.model_management  # noqa: F401
    from comfy.ldm.modules.attention import SpatialTransformer, optimized_attention
    from comfy.model_patcher import ModelPatcher

    return SpatialTransformer, ModelPatcher, optimized_attention


def test_comfy_patch_on_a_clone(comfy_modules):
    SpatialTransformer, ModelPatcher, optimized_attention = comfy_modules
    from pipelines.multiref.comfy_patch import patch_model, transformer_block_keys

    block = SpatialTransformer(32, n_heads=2, d_head=16, depth=2, context_dim=24).eval()
    for p in block.parameters():  # comfy layers skip initialisation (weights come from files)
        torch.nn.init.normal_(p, std=0.2)

    class Diffusion(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.input_blocks = torch.nn.ModuleList([torch.nn.ModuleList([block])])
            self.output_blocks = torch.nn.ModuleList()

    class Model(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.diffusion_model = Diffusion()

    base = ModelPatcher(Model(), torch.device("cpu"), torch.device("cpu"))
    assert transformer_block_keys(base.model.diffusion_model) == [("input", 0, 0), ("input", 0, 1)]
    patched = patch_model(base, optimized_attention, frames_per_video=4)
    assert "patches_replace" not in base.model_options.get("transformer_options", {})  # original untouched
    x, ctx = torch.randn(8, 32, 4, 4), torch.randn(8, 3, 24)

    def run(patcher):
        opts = dict(patcher.model_options.get("transformer_options", {}), block=("input", 0), cond_or_uncond=[1, 0])
        with torch.no_grad():
            return block(x, context=ctx, transformer_options=opts)

    plain, multi = run(base), run(patched)
    for half in (0, 4):  # each CFG half is one 4-frame video
        assert torch.allclose(multi[half:half + 2], plain[half:half + 2], atol=1e-5)
        assert not torch.allclose(multi[half + 2:half + 4], plain[half + 2:half + 4], atol=1e-4)

    # a temporal block under the same key sees [B*H*W, frames, C]: it must stay plain attention
    from pipelines.multiref.comfy_patch import make_replacement

    fn = make_replacement(optimized_attention, 4)
    q = torch.randn(16 * 2, 4, 32)
    temporal = fn(q, q, q, {"n_heads": 2, "activations_shape": [2, 32, 4, 4], "cond_or_uncond": [0]})
    assert torch.allclose(temporal, optimized_attention(q, q, q, 2), atol=1e-6)
