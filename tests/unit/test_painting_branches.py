"""The renderer's six CFG branches against the official branch layout, written out by hand from
ArmastusChen/inverse_painting (pipelines/pipeline_stage_1.py, models/ReferenceNet_attention.py):

row  branch   cross-attention context              canvas encoder input       ReferenceNet bank
0    uncond   [0,        0,    text("")]           [0,      0   ]             no (plain self-attention)
1    clip     [CLIP-next, 0,    text("")]           [0,      0   ]             yes
2    canvas   [CLIP-next, 0,    text("")]           [canvas, 0   ]             yes
3    time     [CLIP-next, time, text("")]           [canvas, 0   ]             yes
4    mask     [CLIP-next, time, text("")]           [canvas, mask]             yes
5    text     [CLIP-next, time, text(instruction)] [canvas, mask]             yes

(canvas = image * 2 - 1, the official Normalize(0.5, 0.5); "0" = zeros of that part's shape; the bank is
ReferenceNet's attn1 inputs over the target latents at timestep 0 with CLIP(target) as its context.)
Also: the guidance combination per branch and the attention with the bank, both computed by hand."""
import math

import pytest
import torch

from pipelines.inverse_painting.reference import (FusionState, bank_key_values, install_readers, run_referencenet,
                                                  self_attention_names)
from pipelines.inverse_painting.renderer import GuidanceScales, combine_guidance
from tests.unit.painting_helpers import painting_models, tiny_renderer  # noqa: F401

OFFICIAL_CONTEXT = [("zero", "zero", "empty"), ("img", "zero", "empty"), ("img", "zero", "empty"),
                    ("img", "time", "empty"), ("img", "time", "empty"), ("img", "time", "text")]
OFFICIAL_CANVAS_INPUT = [("zero", "zero"), ("zero", "zero"), ("canvas", "zero"), ("canvas", "zero"),
                         ("canvas", "mask"), ("canvas", "mask")]
OFFICIAL_SEES_BANK = [False, True, True, True, True, True]
INSTRUCTION, SECONDS = "tree", 40.0


def _inputs(h=64, w=96):
    g = torch.Generator().manual_seed(3)
    target = torch.rand(1, 3, h, w, generator=g)
    canvas = torch.rand(1, 3, h, w, generator=g)
    mask = torch.zeros(1, 1, h, w)
    mask[..., :, : w // 3] = 1
    return canvas, target, mask


def _record_first_step(r, canvas, target, mask):
    """Per UNet row of the first denoising step: (context, canvas features, sees the bank)."""
    rows = []

    def hook(module, args, kwargs):
        if len(rows) < 6:
            ctx = kwargs["encoder_hidden_states"]
            for i in range(ctx.shape[0]):
                rows.append((ctx[i].clone(), r.state.latent_cur[i].clone(), bool(r.state.use_ref[i])))

    handle = r.unet.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        r.update(canvas, target, mask, INSTRUCTION, SECONDS)
    finally:
        handle.remove()
    return rows


def _expected_rows(r, canvas, target, mask):
    """The official per-row inputs built from the components, by the table above."""
    with torch.no_grad():
        img = r.next_clip(r.clip_encoder(canvas), r.clip_encoder(target))[0]
        time = r.time_encoder.embed_seconds(SECONDS, r.config.PE_time_max, r.config.PE_time_interval)[0]
        parts = {"img": img, "time": time, "text": r.text_encoder(INSTRUCTION)[0], "empty": r.text_encoder("")[0]}
        pix = {"canvas": canvas * 2 - 1, "mask": mask}
        contexts, features = [], []
        for (a, b, c), (p, q) in zip(OFFICIAL_CONTEXT, OFFICIAL_CANVAS_INPUT):
            contexts.append(torch.cat([parts[a] if a != "zero" else torch.zeros_like(img),
                                       parts[b] if b != "zero" else torch.zeros_like(time), parts[c]], 0))
            x = torch.cat([pix[p] if p != "zero" else torch.zeros_like(canvas),
                           pix[q] if q != "zero" else torch.zeros_like(mask)], 1)
            features.append(r.canvas_encoder(x)[0])
    return contexts, features


@pytest.mark.parametrize("settings", [dict(reference_mode="cached", cfg_chunk=6), dict(reference_mode="cached", cfg_chunk=4),
                                      dict(reference_mode="cached", cfg_chunk=1), dict(reference_mode="official")])
def test_every_branch_gets_the_official_inputs(tiny_renderer, settings):
    canvas, target, mask = _inputs()
    r = tiny_renderer.settings(steps=1, **settings)
    rows = _record_first_step(r, canvas, target, mask)
    contexts, features = _expected_rows(r, canvas, target, mask)
    assert len(rows) == 6
    for i, (ctx, feat, sees_bank) in enumerate(rows):
        assert torch.allclose(ctx, contexts[i], atol=1e-6), f"row {i}: context"
        assert torch.allclose(feat, features[i], atol=1e-6), f"row {i}: canvas encoder input"
        assert sees_bank == OFFICIAL_SEES_BANK[i], f"row {i}: bank"


def test_referencenet_sees_the_target_at_timestep_zero_with_clip_target(tiny_renderer):
    canvas, target, mask = _inputs()
    r = tiny_renderer.settings(steps=1)
    seen = []
    handle = r.referencenet.register_forward_pre_hook(
        lambda m, args, kwargs: seen.append((args[0].clone(), float(args[1]), kwargs["encoder_hidden_states"].clone())),
        with_kwargs=True)
    try:
        r.update(canvas, target, mask, INSTRUCTION, SECONDS)
    finally:
        handle.remove()
    (latents, t, ctx), = seen
    with torch.no_grad():
        expected = r.vae.encode(target * 2 - 1).latent_dist.mean * r.vae.config.scaling_factor
        clip_target = r.clip_encoder(target)
    assert t == 0.0
    assert torch.allclose(latents, expected, atol=1e-6)
    assert torch.allclose(ctx, clip_target[:, None, :], atol=1e-6)


def test_guidance_coefficients_by_hand():
    # branch i's prediction = unit vector e_i: the result lists each branch's coefficient
    preds = torch.eye(6).view(6, 6, 1, 1)
    s = GuidanceScales(clip=2, canvas=3, time=5, mask=7, text=11)
    # u + 2(c-u) + 3(cur-c) + 5(pe-cur) + 7(rp-pe) + 11(tp-rp): u: 1-2, c: 2-3, cur: 3-5, pe: 5-7, rp: 7-11, tp: 11
    assert combine_guidance(preds, s).flatten().tolist() == [-1, -1, -2, -2, -4, 11]
    # the official demo defaults (demo.py): clip 2, cur 1, PE 5, RP 5, TP 5
    d = GuidanceScales()
    assert (d.clip, d.canvas, d.time, d.mask, d.text) == (2.0, 1.0, 5.0, 5.0, 5.0)
    assert combine_guidance(preds, d).flatten().tolist() == [-1, 1, -4, 0, 0, 5]


# ------------------------------------------------------------------ the attention with the bank, by hand

def _attention(q, k, v, heads):
    """softmax(q k^T / sqrt(d)) v per head, written out."""
    b, n, c = q.shape
    d = c // heads
    split = lambda x: x.view(x.shape[0], x.shape[1], heads, d).transpose(1, 2)  # noqa: E731
    w = torch.softmax(split(q) @ split(k).transpose(-1, -2) / math.sqrt(d), dim=-1)
    return (w @ split(v)).transpose(1, 2).reshape(b, n, c)


class _Block(torch.nn.Module):
    def __init__(self):
        super().__init__()
        from diffusers.models.attention_processor import Attention

        torch.manual_seed(0)
        self.attn1 = Attention(query_dim=8, heads=2, dim_head=4)


class _Net(torch.nn.Module):
    """The smallest module tree whose attn1 the readers patch (names end in attn1.processor)."""

    def __init__(self):
        super().__init__()
        self.down_blocks = torch.nn.ModuleList([_Block()])

    @property
    def attn_processors(self):
        return {"down_blocks.0.attn1.processor": self.down_blocks[0].attn1.processor}

    def set_attn_processor(self, procs):
        self.down_blocks[0].attn1.set_processor(procs["down_blocks.0.attn1.processor"])


@pytest.mark.parametrize("mode", ["cached", "official"])
def test_bank_attention_by_hand(mode):
    net = _Net()
    attn = net.down_blocks[0].attn1
    state = FusionState()
    install_readers(net, state)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(3, 5, 8, generator=g)
    bank = torch.randn(1, 7, 8, generator=g)
    state.mode, state.active = mode, True
    state.use_ref = torch.tensor([False, True, True])
    if mode == "cached":
        state.kv = bank_key_values(net, {"down_blocks.0.attn1": bank})
    else:
        state.bank = {"down_blocks.0.attn1": bank.repeat(3, 1, 1)}
    with torch.no_grad():
        out = attn(x)
        q, k, v = attn.to_q(x), attn.to_k(x), attn.to_v(x)
        kb, vb = attn.to_k(bank).expand(3, -1, -1), attn.to_v(bank).expand(3, -1, -1)
        with_bank = _attention(q, torch.cat([k, kb], 1), torch.cat([v, vb], 1), 2)
        plain = _attention(q, k, v, 2)
        expected = torch.cat([plain[:1], with_bank[1:]], 0)
        expected = attn.to_out[0](expected)
    assert torch.allclose(out, expected, atol=1e-5)
    state.active = False  # outside the renderer's UNet calls: plain self-attention everywhere
    with torch.no_grad():
        assert torch.allclose(attn(x), attn.to_out[0](plain), atol=1e-5)


def test_bank_attention_by_hand_ignores_extra_bank_copies():
    """The official bank holds one copy per branch (six): the cached key/values project one copy, and the
    official hook reads as many copies as the UNet batch has rows."""
    net = _Net()
    attn = net.down_blocks[0].attn1
    g = torch.Generator().manual_seed(4)
    x, bank = torch.randn(3, 5, 8, generator=g), torch.randn(1, 7, 8, generator=g)
    with torch.no_grad():
        k, v = bank_key_values(net, {"down_blocks.0.attn1": bank.repeat(6, 1, 1)})["down_blocks.0.attn1"]
        assert k.shape == v.shape == (1, 2, 7, 4)
        assert torch.allclose(k, attn.to_k(bank).view(1, 7, 2, 4).transpose(1, 2))
        state = FusionState()
        install_readers(net, state)
        state.mode, state.active, state.use_ref = "official", True, torch.tensor([True, True, True])
        state.bank = {"down_blocks.0.attn1": bank.repeat(6, 1, 1)}
        q, kx, vx = attn.to_q(x), attn.to_k(x), attn.to_v(x)
        kb, vb = attn.to_k(bank).expand(3, -1, -1), attn.to_v(bank).expand(3, -1, -1)
        expected = attn.to_out[0](_attention(q, torch.cat([kx, kb], 1), torch.cat([vx, vb], 1), 2))
        assert torch.allclose(attn(x), expected, atol=1e-5)


def test_a_fresh_state_is_inactive_and_rows_group_into_runs_of_equal_flags():
    state = FusionState()
    assert (state.active, state.mode, state.use_ref, state.runs, state.kv, state.bank) == (
        False, "cached", None, [], {}, {})
    net = _Net()
    attn = net.down_blocks[0].attn1
    install_readers(net, state)
    x = torch.randn(2, 5, 8, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():  # nothing set yet: plain self-attention, as outside the renderer's UNet calls
        q, k, v = attn.to_q(x), attn.to_k(x), attn.to_v(x)
        assert torch.allclose(attn(x), attn.to_out[0](_attention(q, k, v, 2)), atol=1e-5)
    state.use_ref = torch.tensor([True, True, False, True])
    assert state.runs == [(0, 2, True), (2, 3, False), (3, 4, True)]
    state.use_ref = torch.tensor([False])
    assert state.runs == [(0, 1, False)]
    state.use_ref = None
    assert state.runs == []


def test_bank_is_written_in_run_order_and_the_rest_of_referencenet_is_skipped(tiny_renderer):
    r = tiny_renderer
    order = []
    handles = [m.register_forward_pre_hook(lambda mod, a, n=name: order.append(n))
               for name, m in r.unet.named_modules() if name.endswith("attn1")]
    try:
        with torch.no_grad():
            x = torch.randn(1, 4, 8, 8)
            ctx = torch.randn(1, 3, r.unet.config.cross_attention_dim)
            r.unet(x, torch.tensor(1.0), encoder_hidden_states=ctx)
    finally:
        for h in handles:
            h.remove()
    names = [n.rsplit(".processor", 1)[0] for n in self_attention_names(r.unet)]
    assert names == order  # down, mid, up: the order a forward pass runs them
    ref_out = []
    hook = r.referencenet.conv_out.register_forward_hook(lambda *a: ref_out.append(1))
    try:
        bank = run_referencenet(r.referencenet, torch.randn(1, 4, 8, 8), torch.randn(1, 1, r.unet.config.cross_attention_dim))
    finally:
        hook.remove()
    assert list(bank) == names and not ref_out  # every attn1 input recorded; the head never runs


def test_combine_init_keeps_the_previous_keyframe_outside_the_mask(tiny_renderer):
    """Official combine_init: for the first ratio * steps steps, latents outside the mask are reset to the previous
    keyframe's latents noised to the next timestep (the previous latents themselves after the last step). With
    ratio 1 and an empty mask the whole update therefore returns the previous keyframe."""
    canvas, target, _ = _inputs()
    empty = torch.zeros(1, 1, *canvas.shape[-2:])
    for ratio in (1.0, 0.0):
        r = tiny_renderer.settings(steps=3, combine_init_ratio=ratio, seed=5)
        first = r.update(canvas, target, empty, INSTRUCTION, SECONDS)
        r.seed = 6  # other noise for the second update: only combine_init can bring the first keyframe back
        again = r.update(first, target, empty, INSTRUCTION, SECONDS)
        if ratio:
            with torch.no_grad():
                redecoded = r.vae.decode(r._last[1] / r.vae.config.scaling_factor).sample
            assert torch.allclose(again, first, atol=1e-6)
            assert torch.allclose(((redecoded / 2 + 0.5).clamp(0, 1)), first, atol=1e-6)
        else:
            assert (again - first).abs().max() > 1e-3
