"""Multi-reference attention: equals the thesis' width concatenation (Fig. 4.4), serves
both the diffusers processor and the ComfyUI patch, leaves unpatched models alone."""
import math
import sys

import pytest
import torch

from pipelines.common import InputError
from pipelines.multiref.attention import multi_reference_attention, thesis_context, width_concat_reference
from scripts.harness.server import COMFY_DIR

torch.manual_seed(0)


def projections(c):
    return [torch.nn.Linear(c, c, bias=False) for _ in range(3)]


def sdpa(heads):
    """Plain attention on [B, L, heads*d] tensors, as an attn1 replacement's attention would run."""
    def attend(q, k, v):
        split = lambda t: t.view(t.shape[0], t.shape[1], heads, -1).transpose(1, 2)  # noqa: E731
        out = torch.nn.functional.scaled_dot_product_attention(split(q), split(k), split(v))
        return out.transpose(1, 2).reshape(q.shape)
    return attend


@pytest.mark.parametrize("chained", [False, True])
@pytest.mark.parametrize("frames,refs", [(5, (0, 1)), (3, (0, 1)), (6, (2, 4))])
def test_equals_width_concatenation(frames, refs, chained):
    h, w, c, heads = 4, 6, 16, 2
    x = torch.randn(frames, h, w, c)
    to_q, to_k, to_v = projections(c)
    expected = width_concat_reference(x, to_q, to_k, to_v, heads, refs)
    t = x.reshape(frames, h * w, c)
    ours = multi_reference_attention(to_q(t), to_k(t), to_v(t), heads, frames, refs,
                                     attend=sdpa(heads) if chained else None)
    assert torch.allclose(ours, expected, atol=1e-5)


@pytest.mark.parametrize("strength,expected", [(0.5, 1.5), (2.0, 2.4), (1.0, 2.0), (0.0, 0.0)])
def test_strength_in_closed_form_one_query_two_keys(strength, expected):
    """Frame 2 (one token, d = 1) attends to its own key 0 (value 0) and the reference's key ln 2
    (value 3): weights 1 and 2 * strength, so the output is 3 * 2s / (1 + 2s)."""
    q = torch.tensor([[[0.0]], [[1.0]]])  # frame 1 (the reference), frame 2
    k = torch.tensor([[[math.log(2.0)]], [[0.0]]])
    v = torch.tensor([[[3.0]], [[0.0]]])
    out = multi_reference_attention(q, k, v, heads=1, frames=2, references=(0,), strength=strength)
    assert out[1, 0, 0].item() == pytest.approx(expected, abs=1e-6)
    assert out[0, 0, 0].item() == pytest.approx(3.0, abs=1e-6)  # the reference only sees itself


def test_thesis_context_layout():
    k = torch.arange(2 * 3, dtype=torch.float32).view(6, 1, 1)  # 2 videos x 3 frames, one token each
    ctx = thesis_context(k, frames=3, refs=[0, 1]).flatten().tolist()
    assert ctx == [0, 0, 0, 1, 1, 1, 2, 0, 1, 3, 3, 3, 4, 4, 4, 5, 3, 4]


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
def comfy():
    sys.path.insert(0, str(COMFY_DIR))
    from comfy.cli_args import args

    args.cpu = True  # as the server's --cpu; model_management reads it on import
    import comfy.context_windows
    import comfy.model_management  # noqa: F401
    import comfy.model_patcher
    import comfy.patcher_extension
    from comfy.ldm.modules import attention

    return comfy, attention


def tiny_patcher(comfy):
    """A ModelPatcher over one SpatialTransformer (2 transformer blocks) at input block 0."""
    block = comfy[1].SpatialTransformer(32, n_heads=2, d_head=16, depth=2, context_dim=24).eval()
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

    return comfy[0].model_patcher.ModelPatcher(Model(), torch.device("cpu"), torch.device("cpu")), block


def run_block(block, model_options, x, ctx, **extra):
    opts = dict(model_options.get("transformer_options", {}), block=("input", 0), cond_or_uncond=[1, 0], **extra)
    with torch.no_grad():
        return block(x, context=ctx, transformer_options=opts)


def test_comfy_patch_on_a_clone(comfy):
    from pipelines.multiref.comfy_patch import make_replacement, patch_model, transformer_block_keys

    optimized_attention = comfy[1].optimized_attention
    base, block = tiny_patcher(comfy)
    assert transformer_block_keys(base.model.diffusion_model) == [("input", 0, 0), ("input", 0, 1)]
    patched = patch_model(base, optimized_attention, frames_per_video=4)
    assert "patches_replace" not in base.model_options.get("transformer_options", {})  # original untouched
    x, ctx = torch.randn(8, 32, 4, 4), torch.randn(8, 3, 24)
    plain, multi = run_block(block, base.model_options, x, ctx), run_block(block, patched.model_options, x, ctx)
    for half in (0, 4):  # each CFG half is one 4-frame video
        assert torch.allclose(multi[half:half + 2], plain[half:half + 2], atol=1e-5)
        assert not torch.allclose(multi[half + 2:half + 4], plain[half + 2:half + 4], atol=1e-4)

    # a temporal block under the same key sees [B*H*W, frames, C]: it must stay plain attention
    fn = make_replacement(optimized_attention, 4)
    q = torch.randn(16 * 2, 4, 32)
    temporal = fn(q, q, q, {"n_heads": 2, "activations_shape": [2, 32, 4, 4], "cond_or_uncond": [0]})
    assert torch.allclose(temporal, optimized_attention(q, q, q, 2), atol=1e-6)


def test_comfy_replacement_with_two_cfg_halves_equals_width_concatenation(comfy):
    from pipelines.multiref.comfy_patch import make_replacement

    frames, h, w, c, heads = 4, 3, 4, 16, 2
    x = torch.randn(2 * frames, h, w, c)  # [cond video, uncond video]
    to_q, to_k, to_v = projections(c)
    t = x.reshape(2 * frames, h * w, c)
    fn = make_replacement(comfy[1].optimized_attention, frames_per_video=0)
    out = fn(to_q(t), to_k(t), to_v(t), {"n_heads": heads, "cond_or_uncond": [0, 1]})
    expected = torch.cat([width_concat_reference(x[:frames], to_q, to_k, to_v, heads),
                          width_concat_reference(x[frames:], to_q, to_k, to_v, heads)])
    assert torch.allclose(out, expected, atol=1e-5)


def test_chains_to_an_attn1_replacement_already_present(comfy):
    """A replacement another pack set before (SAG-style, per transformer) runs with the extended
    keys/values, and its output is what the block uses."""
    from pipelines.multiref.comfy_patch import patch_model

    base, block = tiny_patcher(comfy)
    seen = []

    def other(q, k, v, extra_options):
        seen.append((q, k, v))
        return torch.zeros_like(q)

    base.set_model_attn1_replace(other, "input", 0, 0)
    patched = patch_model(base, comfy[1].optimized_attention, frames_per_video=4)
    x, ctx = torch.randn(8, 32, 4, 4), torch.randn(8, 3, 24)
    out = run_block(block, patched.model_options, x, ctx)
    assert len(seen) == 1  # one call over the whole batch (both CFG halves), as the other pack expects
    q, k, v = seen[0]
    length = q.shape[1]
    assert k.shape == (8, 3 * length, q.shape[2]) and v.shape == k.shape
    keys = k.view(8, 3, length, -1)  # [frame, own / reference 1 / reference 2, token, channel]
    assert torch.equal(keys[2, 1], keys[0, 0]) and torch.equal(keys[2, 2], keys[1, 0])  # frame 3 sees frames 1, 2
    assert torch.equal(keys[4, 1], keys[4, 0]) and torch.equal(keys[4, 2], keys[4, 0])  # a reference sees itself
    ours = patched.model_options["transformer_options"]["patches_replace"]["attn1"][("input", 0)]
    zeros_then_ours = {"transformer_options": {"patches_replace": {"attn1": {("input", 0, 0): other,
                                                                             ("input", 0): ours}}}}
    assert torch.allclose(out, run_block(block, zeros_then_ours, x, ctx), atol=1e-6)  # its zeros were used


def test_a_per_call_replacement_like_core_pag_still_takes_over(comfy):
    from pipelines.multiref.comfy_patch import patch_model

    base, block = tiny_patcher(comfy)
    patched = patch_model(base, comfy[1].optimized_attention, frames_per_video=4)
    identity = lambda q, k, v, extra_options, mask=None: v  # noqa: E731  (core PAG's perturbed attention)
    options = comfy[0].model_patcher.set_model_options_patch_replace(
        {"transformer_options": patched.model_options["transformer_options"]}, identity, "attn1", "input", 0)
    alone = comfy[0].model_patcher.set_model_options_patch_replace({"transformer_options": {}}, identity, "attn1",
                                                                    "input", 0)
    x, ctx = torch.randn(8, 32, 4, 4), torch.randn(8, 3, 24)
    assert torch.allclose(run_block(block, options, x, ctx), run_block(block, alone, x, ctx), atol=1e-6)


def test_strength_cannot_pass_to_another_replacement(comfy):
    from pipelines.multiref.comfy_patch import patch_model

    base, _ = tiny_patcher(comfy)
    base.set_model_attn1_replace(lambda q, k, v, eo: q, "input", 0, 1)
    with pytest.raises(InputError, match="use strength 1"):
        patch_model(base, comfy[1].optimized_attention, strength=0.5)


def _context_handler(comfy, length=4, overlap=1):
    cw = comfy[0].context_windows  # what core's "Context Windows (Manual)" node builds
    return cw.IndexListContextHandler(cw.get_matching_context_schedule(cw.ContextSchedules.STATIC_STANDARD),
                                      cw.get_matching_fuse_method(cw.ContextFuseMethods.PYRAMID),
                                      context_length=length, context_overlap=overlap, dim=0)


class Guider:
    """Stands for CFGGuider under core's OUTER_SAMPLE wrapper executor (class_obj.model_options)."""

    def __init__(self, model_options):
        self.model_options = model_options


def _wrapped_run_options(comfy, patched, handler):
    """The model options one sampling run sees after the patch's OUTER_SAMPLE wrapper ran."""
    pe = comfy[0].patcher_extension
    options = comfy[0].model_patcher.create_model_options_clone(dict(patched.model_options, context_handler=handler))
    wrappers = [w for ws in patched.wrappers[pe.WrappersMP.OUTER_SAMPLE].values() for w in ws]
    guider = Guider(options)
    executor = pe.WrapperExecutor.new_class_executor(lambda: guider.model_options, guider, wrappers)
    return executor.execute()


def test_context_windows_all_hold_the_references(comfy):
    from pipelines.multiref.comfy_patch import OUTER_SAMPLE, patch_model

    assert OUTER_SAMPLE == comfy[0].patcher_extension.WrappersMP.OUTER_SAMPLE
    base, _ = tiny_patcher(comfy)
    patched = patch_model(base, comfy[1].optimized_attention)
    handler = _context_handler(comfy)
    options = _wrapped_run_options(comfy, patched, handler)
    windows = [w.index_list for w in options["context_handler"].get_context_windows(None, torch.zeros(10), options)]
    assert windows == [[0, 1, 2, 3], [0, 1, 3, 4, 5, 6], [0, 1, 6, 7, 8, 9]]
    assert [w.index_list for w in handler.get_context_windows(None, torch.zeros(10), {})][1] == [3, 4, 5, 6]


def test_context_window_frames_attend_to_the_references(comfy):
    """Core's handler runs each window through the replacement; frame 9 (only in the last window,
    which core alone would build as frames 7-10) attends to frames 1-2 as width concatenation says."""
    from pipelines.multiref.comfy_patch import make_replacement, patch_model

    base, _ = tiny_patcher(comfy)
    patched = patch_model(base, comfy[1].optimized_attention)
    frames, h, w, c, heads = 10, 2, 3, 8, 2
    x = torch.randn(frames, h, w, c)
    to_q, to_k, to_v = projections(c)
    fn = make_replacement(comfy[1].optimized_attention, frames_per_video=0)
    options = _wrapped_run_options(comfy, patched, _context_handler(comfy))
    options["transformer_options"]["sample_sigmas"] = torch.tensor([1.0])

    def calc_cond_batch(model, conds, sub_x, timestep, model_options):
        extra = dict(model_options["transformer_options"], n_heads=heads, cond_or_uncond=[0])
        t = sub_x.reshape(sub_x.shape[0], h * w, c)
        return [fn(to_q(t), to_k(t), to_v(t), extra).reshape(sub_x.shape)]

    with torch.no_grad():
        fused = options["context_handler"].execute(calc_cond_batch, None, [[{}]], x, torch.ones(frames), options)[0]
        expected = width_concat_reference(x[[0, 1, 8]], to_q, to_k, to_v, heads)
    fused = fused.reshape(frames, h * w, c)
    assert torch.allclose(fused[8], expected[2], atol=1e-5)
    assert torch.allclose(fused[:2], expected[:2], atol=1e-5)  # references: their own self-attention


def test_a_window_without_the_references_is_explained(comfy):
    from pipelines.multiref.comfy_patch import make_replacement

    fn = make_replacement(comfy[1].optimized_attention, frames_per_video=0)
    window = comfy[0].context_windows.IndexListContextWindow([3, 4, 5, 6])
    q = torch.randn(4, 6, 8)
    message = r"context window \(frames \[4, 5, 6, 7\]\) lacks reference frame\(s\) \[1, 2\]"  # 1-based frames
    with pytest.raises(InputError, match=message):
        fn(q, q, q, {"n_heads": 2, "cond_or_uncond": [0], "context_window": window})


def test_negative_or_duplicate_references():
    q = torch.randn(4, 3, 8)
    with pytest.raises(InputError, match="do not exist"):
        multi_reference_attention(q, q, q, 2, frames=4, references=(-1, 0))
    with pytest.raises(InputError, match="do not exist"):
        multi_reference_attention(q, q, q, 2, frames=4, references=())
    # a duplicated reference is one reference
    assert torch.allclose(multi_reference_attention(q, q, q, 2, 4, references=(1, 1)),
                          multi_reference_attention(q, q, q, 2, 4, references=(1,)), atol=1e-6)


@pytest.mark.parametrize("spatial_input", [False, True])
def test_diffusers_processor_keeps_residual_and_rescale_of_the_attention(spatial_input):
    """Against diffusers' own AttnProcessor2_0: at strength 0 both are plain attention; at strength 1
    ours is to_out(width concatenation), with the same residual and output rescaling."""
    from diffusers.models.attention_processor import Attention, AttnProcessor2_0

    from pipelines.multiref.diffusers_processor import MultiReferenceAttnProcessor

    frames, h, w, c, heads = 3, 2, 3, 16, 2
    attn = Attention(c, heads=heads, dim_head=c // heads, residual_connection=True, rescale_output_factor=2.0).eval()
    x = torch.randn(frames, h, w, c)
    tokens = x.reshape(frames, h * w, c)
    hidden = tokens.transpose(1, 2).reshape(frames, c, h, w) if spatial_input else tokens
    with torch.no_grad():
        reference = AttnProcessor2_0()(attn, hidden)
        off = MultiReferenceAttnProcessor(frames, strength=0.0)(attn, hidden)
        on = MultiReferenceAttnProcessor(frames)(attn, hidden)
        wide = width_concat_reference(x, attn.to_q, attn.to_k, attn.to_v, heads)
        expected = (attn.to_out[0](wide) + tokens) / 2.0
    assert off.shape == hidden.shape and torch.allclose(off, reference, atol=1e-5)
    if spatial_input:
        on = on.reshape(frames, c, h * w).transpose(1, 2)
    assert torch.allclose(on, expected, atol=1e-5)


def test_spatial_names_skip_temporal_attention():
    from pipelines.multiref.diffusers_processor import spatial_self_attention_names

    class Fake:
        attn_processors = {"down.attn1.processor": 0, "down.attn2.processor": 0,
                           "down.temporal_transformer_blocks.0.attn1.processor": 0,
                           "mid.time_stack.0.attn1.processor": 0, "up.attn1.processor": 0}

    assert spatial_self_attention_names(Fake()) == ["down.attn1.processor", "up.attn1.processor"]


def test_comfy_patch_runs_only_inside_its_sigma_range(comfy):
    from pipelines.multiref.comfy_patch import make_replacement

    plain = comfy[1].optimized_attention
    fn = make_replacement(plain, frames_per_video=4, sigma_start=5.0, sigma_end=1.0)
    q, k, v = (torch.randn(4, 6, 8) for _ in range(3))
    multi = multi_reference_attention(q, k, v, 2, 4)
    for sigma, expect_multi in ((6.0, False), (5.0, True), (3.0, True), (1.0, True), (0.5, False)):
        out = fn(q, k, v, {"n_heads": 2, "cond_or_uncond": [0], "sigmas": torch.tensor([sigma])})
        assert torch.allclose(out, multi if expect_multi else plain(q, k, v, 2), atol=1e-6), sigma


def test_spatial_check_compares_with_the_activations_shape(comfy):
    from pipelines.multiref.comfy_patch import _is_spatial

    assert _is_spatial(torch.zeros(2, 12, 8), {"activations_shape": [2, 8, 3, 4]})
    assert not _is_spatial(torch.zeros(24, 2, 8), {"activations_shape": [2, 8, 3, 4]})  # temporal: [B*H*W, F, C]
    assert not _is_spatial(torch.zeros(2, 11, 8), {"activations_shape": [2, 8, 3, 4]})
    assert _is_spatial(torch.zeros(5, 7, 8), {})


def test_block_keys_cover_input_middle_and_output_blocks(comfy):
    from pipelines.multiref.comfy_patch import transformer_block_keys

    def spatial(depth):
        return comfy[1].SpatialTransformer(32, n_heads=2, d_head=16, depth=depth, context_dim=8)

    class Diffusion(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.input_blocks = torch.nn.ModuleList([torch.nn.ModuleList([torch.nn.Conv2d(1, 1, 1)]),
                                                     torch.nn.ModuleList([spatial(2)])])
            self.middle_block = torch.nn.ModuleList([spatial(1)])
            self.output_blocks = torch.nn.ModuleList([torch.nn.ModuleList([spatial(1)])])

    assert transformer_block_keys(Diffusion()) == [("input", 1, 0), ("input", 1, 1), ("middle", 0, 0),
                                                   ("output", 0, 0)]


def test_windows_with_references_by_hand():
    from pipelines.multiref.comfy_patch import windows_with_references

    assert windows_with_references([[3, 4, 5], [1, 5, 6], [0, 1, 2]], (1, 0)) == [[0, 1, 3, 4, 5], [0, 1, 5, 6],
                                                                                   [0, 1, 2]]


def test_window_with_references_inside_maps_their_positions(comfy):
    from pipelines.multiref.comfy_patch import make_replacement

    h, w, c, heads = 2, 3, 8, 2
    x = torch.randn(5, h, w, c)  # the window's frames 7, 8, 1, 2, 9 (0-based 6, 7, 0, 1, 8)
    to_q, to_k, to_v = projections(c)
    t = x.reshape(5, h * w, c)
    window = comfy[0].context_windows.IndexListContextWindow([6, 7, 0, 1, 8])
    fn = make_replacement(comfy[1].optimized_attention, frames_per_video=3)  # a window is one video regardless
    out = fn(to_q(t), to_k(t), to_v(t), {"n_heads": heads, "context_window": window})
    assert torch.allclose(out, width_concat_reference(x, to_q, to_k, to_v, heads, references=(2, 3)), atol=1e-5)


def test_without_cfg_information_the_batch_is_one_video(comfy):
    from pipelines.multiref.comfy_patch import make_replacement

    q, k, v = (torch.randn(6, 4, 8) for _ in range(3))
    out = make_replacement(comfy[1].optimized_attention, frames_per_video=0)(q, k, v, {"n_heads": 2})
    assert torch.allclose(out, multi_reference_attention(q, k, v, 2, 6), atol=1e-6)


def test_outside_its_sigma_range_a_chained_replacement_gets_the_plain_call(comfy):
    from pipelines.multiref.comfy_patch import make_replacement

    seen = []
    fn = make_replacement(comfy[1].optimized_attention, 4, sigma_start=2.0,
                          previous=lambda q, k, v, eo: seen.append(k.shape) or q * 3)
    q = torch.randn(4, 5, 8)
    out = fn(q, q, q, {"n_heads": 2, "sigmas": torch.tensor([9.0])})
    assert seen == [(4, 5, 8)] and torch.equal(out, q * 3)


def test_strength_without_another_replacement_is_fine(comfy):
    from pipelines.multiref.comfy_patch import patch_model

    base, block = tiny_patcher(comfy)
    patched = patch_model(base, comfy[1].optimized_attention, frames_per_video=4, strength=0.5)
    x, ctx = torch.randn(4, 32, 4, 4), torch.randn(4, 3, 24)
    half, full = run_block(block, patched.model_options, x, ctx), run_block(block, base.model_options, x, ctx)
    assert not torch.allclose(half[2:], full[2:], atol=1e-4)


@pytest.mark.parametrize("handler", [None, "other_dim"])
def test_the_window_wrapper_leaves_other_handlers_alone(comfy, handler):
    from pipelines.multiref.comfy_patch import keep_references_in_context_windows

    if handler == "other_dim":  # e.g. core's WAN context windows run over dim 2, not the batch
        cw = comfy[0].context_windows
        handler = cw.IndexListContextHandler(cw.get_matching_context_schedule(cw.ContextSchedules.STATIC_STANDARD),
                                             cw.get_matching_fuse_method(cw.ContextFuseMethods.PYRAMID),
                                             context_length=4, context_overlap=1, dim=2)
    options = {"context_handler": handler}

    class Executor:
        class_obj = Guider(options)

        def __call__(self, *args):
            return args

    assert keep_references_in_context_windows((0, 1))(Executor(), 7) == (7,)
    assert options["context_handler"] is handler


def test_frame_counts_at_the_limits_are_explained():
    q = torch.randn(6, 4, 8)
    with pytest.raises(InputError, match="do not exist in a video of 6 frames"):
        multi_reference_attention(q, q, q, 2, frames=6, references=(0, 6))  # frame indices are 0..5
    with pytest.raises(InputError, match="^Every frame is a reference frame; add frames"):
        multi_reference_attention(q[:2], q[:2], q[:2], 2, frames=1, references=(0,))  # two one-frame videos


@pytest.mark.parametrize("strength,expected", [(1.0, 2.0), (0.5, 1.5)])
def test_double_precision_in_double_precision_out(strength, expected):
    """The closed form of test_strength_in_closed_form_one_query_two_keys, in float64."""
    q = torch.tensor([[[0.0]], [[1.0]]], dtype=torch.float64)
    k = torch.tensor([[[math.log(2.0)]], [[0.0]]], dtype=torch.float64)
    v = torch.tensor([[[3.0]], [[0.0]]], dtype=torch.float64)
    out = multi_reference_attention(q, k, v, heads=1, frames=2, references=(0,), strength=strength)
    assert out.dtype == torch.float64
    assert out[1, 0, 0].item() == pytest.approx(expected, abs=1e-12)


def test_the_replacement_passes_strength_and_by_default_runs_down_to_sigma_zero(comfy):
    from pipelines.multiref.comfy_patch import make_replacement

    q, k, v = (torch.randn(4, 6, 8) for _ in range(3))
    fn = make_replacement(comfy[1].optimized_attention, frames_per_video=4, strength=0.5)
    out = fn(q, k, v, {"n_heads": 2, "cond_or_uncond": [0], "sigmas": torch.tensor([0.01])})
    assert torch.allclose(out, multi_reference_attention(q, k, v, 2, 4, strength=0.5), atol=1e-6)
    assert not torch.allclose(out, multi_reference_attention(q, k, v, 2, 4), atol=1e-4)


@pytest.mark.parametrize("sigma", [9.0, 1.0])
def test_a_chained_replacement_gets_the_values_and_the_options(comfy, sigma):
    """Outside the sigma range it gets the call as it came; inside, the extended keys and values."""
    from pipelines.multiref.comfy_patch import make_replacement

    seen = []
    fn = make_replacement(comfy[1].optimized_attention, 4, sigma_start=2.0,
                          previous=lambda q, k, v, eo: seen.append((v, eo)) or q)
    q, k, v = (torch.randn(4, 5, 8) for _ in range(3))
    options = {"n_heads": 2, "cond_or_uncond": [0], "sigmas": torch.tensor([sigma])}
    fn(q, k, v, options)
    (got_v, got_options), = seen
    assert got_options is options
    assert torch.equal(got_v, v if sigma > 2.0 else thesis_context(v, 4, [0, 1]))
