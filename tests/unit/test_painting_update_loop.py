"""CanvasRenderer.update driven with small stand-in modules (milliseconds, so it runs per mutant), against
the official pipeline written out by hand (ArmastusChen/inverse_painting, pipelines/pipeline_stage_1.py):

- the six rows' context / canvas-encoder input / bank flag follow the table of test_painting_branches.py;
- every step: the latents go through scale_model_input, the six predictions are combined as
  u + s_clip (c - u) + s_cur (cur - c) + s_time (pe - cur) + s_mask (rp - pe) + s_text (tp - rp),
  and scheduler.step(eps, t, latents, generator) takes the run's generator (seeded anew every update);
- combine_init (from the second update, for int(steps * ratio) steps): latents outside the mask, taken at
  latent size by nearest sampling, are reset to the previous keyframe's latents noised to the next
  timestep with the run's initial noise (un-noised after the last step);
- the output is the VAE decode of latents / scaling_factor, mapped by x / 2 + 0.5 and clamped to 0..1.

The stand-ins are simple closed forms, so the expected numbers are computed here independently of the
renderer; the scheduler stand-in (a deterministic step plus generator noise) makes every step visible."""
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from pipelines.common import InputError
from pipelines.common.progress import Progress
from pipelines.inverse_painting import renderer as renderer_module
from pipelines.inverse_painting.renderer import CanvasRenderer, GuidanceScales

H, W, CH, D = 16, 32, 2, 4  # pixels, latent channels, token width
BANK = "down_blocks.0.attentions.0.transformer_blocks.0.attn1"
SCALES = GuidanceScales(clip=2, canvas=3, time=5, mask=7, text=11)
TOKEN_WEIGHTS = torch.tensor([1.0, 2.0, 3.0, 4.0])  # how much each context token moves the stand-in UNet
SCALING = 0.5
STEP_NOISE = 0.01


def _text(text):
    """[1, 2, D]: a stand-in text embedding that tells prompts apart."""
    code = sum(map(ord, text)) % 97 / 97.0
    return torch.tensor([[[len(text) * 0.1] * D, [code, -code, code, 1.0]]])


def _clip(image01):
    """[B, 4] in float32 whatever the input's dtype (a CLIP model kept in its own dtype)."""
    image01 = image01.float()
    return torch.cat([image01.mean((2, 3)), image01.amax((1, 2, 3))[:, None]], 1)


def _next_clip(current, target):
    return (current.reshape(-1, D) - 2 * target.reshape(-1, D))[:, None, :]


def _time(seconds, time_max, interval):
    return torch.tensor([[[seconds / 100.0, time_max / 1000.0, interval / 10.0, 1.0]]])


def _canvas_features(x):
    """[B, 4, H, W] (canvas -1..1, mask) -> [B, CH, H/8, W/8]."""
    return F.avg_pool2d(torch.stack([x[:, :3].mean(1) + 0.5 * x[:, 1], x[:, 3]], 1), 8)


def _encode(image):
    return F.avg_pool2d(image[:, :CH] - 0.25 * image[:, 2:3], 8)


def _decode(z):
    """[B, CH, h, w] -> [B, 3, 8h, 8w], about -3..6 for the latents below: partly inside -1..1, partly clamped."""
    up = z.repeat_interleave(8, -1).repeat_interleave(8, -2)
    d = up[:, :1] - up[:, 1:2]
    return torch.cat([d, d / 4, -d], 1)


class _Fn(torch.nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn
        self.inputs, self.dtypes = [], []

    def forward(self, *args):
        self.inputs.append(args[0].shape[0])
        self.dtypes += [a.dtype for a in args]
        return self.fn(*args)


class _TimeEncoder(torch.nn.Module):
    def embed_seconds(self, seconds, time_max, interval):
        return _time(seconds, time_max, interval)


class _Vae:
    dtype = torch.float32
    config = SimpleNamespace(scaling_factor=SCALING, block_out_channels=(1, 1, 1, 1))
    tile_sample_min_size, tile_latent_min_size = 512, 64

    def __init__(self):
        self.tiled_sizes, self.decoded_dtypes = [], []

    def encode(self, x):
        return SimpleNamespace(latent_dist=SimpleNamespace(mean=_encode(x)))

    def decode(self, z):
        self.decoded_dtypes.append(z.dtype)
        return SimpleNamespace(sample=_decode(z))

    def tiled_decode(self, z):
        self.tiled_sizes.append((self.tile_sample_min_size, self.tile_latent_min_size))
        return SimpleNamespace(sample=_decode(z))


class _Attn1(torch.nn.Module):
    """What bank_key_values reads of the UNet's self-attention: to_k, to_v, heads."""

    def __init__(self):
        super().__init__()
        self.heads = 1
        self.to_k, self.to_v = torch.nn.Linear(D, D, bias=False), torch.nn.Linear(D, D, bias=False)
        with torch.no_grad():
            self.to_k.weight.copy_(2 * torch.eye(D))
            self.to_v.weight.copy_(3 * torch.eye(D))


class _Unet(torch.nn.Module):
    """Prediction per row = conv_in(sample) (the renderer's hook adds the canvas features) + weighted tokens + t."""

    config = SimpleNamespace(in_channels=CH)

    def __init__(self):
        super().__init__()
        self.conv_in = torch.nn.Identity()
        block = torch.nn.Module()  # the bank's module name as in a diffusers UNet
        block.attn1 = _Attn1()
        attentions = torch.nn.Module()
        attentions.transformer_blocks = torch.nn.ModuleList([block])
        down = torch.nn.Module()
        down.attentions = torch.nn.ModuleList([attentions])
        self.down_blocks = torch.nn.ModuleList([down])
        self.calls = []
        self.state = None

    @property
    def attn_processors(self):
        return {}

    def set_attn_processor(self, procs):
        pass

    def forward(self, sample, t, encoder_hidden_states=None, return_dict=True):
        st = self.state
        h = self.conv_in(sample)
        self.calls.append(SimpleNamespace(
            sample=sample.clone(), t=float(t), context=encoder_hidden_states.clone(), features=h - sample,
            dtypes=(sample.dtype, encoder_hidden_states.dtype, st.latent_cur.dtype),
            use_ref=st.use_ref.tolist(), active=st.active, mode=st.mode, kv=st.kv, bank=dict(st.bank)))
        tokens = (encoder_hidden_states * TOKEN_WEIGHTS[:, None].to(sample.dtype)).sum((1, 2))
        return (h + tokens[:, None, None, None] + float(t) / 1000,)


class _ReferenceNet(torch.nn.Module):
    """Writes its input latents (as tokens, plus the context token) into the bank through the writer."""

    def __init__(self):
        super().__init__()
        self.procs = {BANK + ".processor": None}
        self.calls = []

    @property
    def attn_processors(self):
        return dict(self.procs)

    def set_attn_processor(self, procs):
        self.procs = dict(procs)

    def forward(self, latents, t, encoder_hidden_states=None, return_dict=True):
        self.calls.append((latents.clone(), float(t), encoder_hidden_states.clone()))
        tokens = torch.cat([latents.flatten(2).transpose(1, 2), latents.flatten(2).transpose(1, 2)], -1)
        self.procs[BANK + ".processor"](None, tokens + encoder_hidden_states)  # the writer stops the pass


class _Scheduler:
    """x_{i+1} = x_i - 0.1 eps + 0.01 n_i with n_i drawn from the generator passed to step."""

    init_noise_sigma = 2.0

    def __init__(self, log):
        self.log = log

    def set_timesteps(self, n, device=None):
        self.log.append(("set_timesteps", n, device))
        self.timesteps = torch.arange(n, 0, -1).float() * 200

    def set_begin_index(self, index):
        self.log.append(("set_begin_index", index))

    def scale_model_input(self, x, t):
        assert x.shape[0] == 1
        return x / (1 + float(t) / 1000)

    def step(self, eps, t, x, generator=None, return_dict=True):
        assert not return_dict and eps.shape == x.shape
        self.log.append(("step", float(t)))
        return (x - 0.1 * eps + STEP_NOISE * torch.randn(x.shape, generator=generator).to(x.dtype),)

    def add_noise(self, x, noise, t):
        assert t.shape == (1,)
        self.log.append(("add_noise", float(t)))
        return x + noise * float(t) / 1000


@pytest.fixture
def schedulers(monkeypatch):
    log = []
    monkeypatch.setattr(renderer_module, "make_scheduler", lambda: _Scheduler(log))
    return log


def _renderer(**settings):
    unet, refnet = _Unet(), _ReferenceNet()
    config = SimpleNamespace(PE_time_max=100.0, PE_time_interval=5.0)
    r = CanvasRenderer(unet, refnet, _Fn(_canvas_features), _Fn(_next_clip), _TimeEncoder(), _Vae(), _text,
                       _Fn(_clip), config, **{"steps": 4, "scales": SCALES, "seed": 3, **settings})
    unet.state = r.state
    return r


def _inputs():
    g = torch.Generator().manual_seed(11)
    target, canvas = torch.rand(1, 3, H, W, generator=g), torch.rand(1, 3, H, W, generator=g)
    mask = torch.zeros(1, 1, H, W)
    # nearest sampling to latent size takes pixel 8i: latent column 1 (pixel 8) is covered, 0 and 2 are not
    mask[..., :, 3:13] = 1
    mask[..., 8:, 20:] = 1  # latent row 1 (pixel 8), columns 3 (pixel 24) but not 2 (pixel 16)
    return canvas, target, mask


def _official_rows(canvas, target, mask, instruction, seconds):
    """Per row: (context, canvas features, sees the bank) by the official branch table."""
    img = _next_clip(_clip(canvas), _clip(target))
    time, text, empty = _time(seconds, 100.0, 5.0), _text(instruction), _text("")
    zi, zt = torch.zeros_like(img), torch.zeros_like(time)
    contexts = [(zi, zt, empty), (img, zt, empty), (img, zt, empty), (img, time, empty), (img, time, empty),
                (img, time, text)]
    pix, zc, zm = canvas * 2 - 1, torch.zeros_like(canvas), torch.zeros_like(mask)
    inputs = [(zc, zm), (zc, zm), (pix, zm), (pix, zm), (pix, mask), (pix, mask)]
    return ([torch.cat(c, 1)[0] for c in contexts], [_canvas_features(torch.cat(x, 1))[0] for x in inputs],
            [False, True, True, True, True, True])


def _official_update(canvas, target, mask, instruction, seconds, seed, steps=4, previous=None, ratio=0.0):
    """The official loop over the stand-ins: the final latents."""
    contexts, features, _ = _official_rows(canvas, target, mask, instruction, seconds)
    g = torch.Generator().manual_seed(seed)
    noise = torch.randn(1, CH, H // 8, W // 8, generator=g)
    latents = noise * 2.0
    timesteps = [200.0 * (steps - i) for i in range(steps)]
    keep_new = mask[..., ::8, ::8]  # nearest: each latent cell takes its top-left pixel
    for i, t in enumerate(timesteps):
        x = latents / (1 + t / 1000)
        u, c, cur, pe, rp, tp = [x + f + (ctx * TOKEN_WEIGHTS[:, None]).sum() + t / 1000
                                 for ctx, f in zip(contexts, features)]
        eps = u + 2 * (c - u) + 3 * (cur - c) + 5 * (pe - cur) + 7 * (rp - pe) + 11 * (tp - rp)
        latents = latents - 0.1 * eps + STEP_NOISE * torch.randn(latents.shape, generator=g)
        if previous is not None and i < int(steps * ratio):
            init = previous + noise * timesteps[i + 1] / 1000 if i + 1 < steps else previous
            latents = keep_new * latents + (1 - keep_new) * init
    return latents


def _image(latents):
    return (_decode(latents / SCALING) / 2 + 0.5).clamp(0, 1)


SETTINGS = [dict(reference_mode="cached", cfg_chunk=6), dict(reference_mode="cached", cfg_chunk=4),
            dict(reference_mode="cached", cfg_chunk=0), dict(reference_mode="official", cfg_chunk=1)]
ROWS_PER_CALL = [[6], [4, 2], [1] * 6, [6]]


@pytest.mark.parametrize("settings,rows_per_call", list(zip(SETTINGS, ROWS_PER_CALL)))
def test_update_loop_rows_get_the_official_inputs(schedulers, settings, rows_per_call):
    canvas, target, mask = _inputs()
    r = _renderer(steps=1, **settings)
    r.update(canvas, target, mask, "tree", 40.0)
    calls = r.unet.calls
    assert [c.sample.shape[0] for c in calls] == rows_per_call
    contexts, features, sees_bank = _official_rows(canvas, target, mask, "tree", 40.0)
    rows = [(c.context[i], c.features[i], c.use_ref[i]) for c in calls for i in range(c.sample.shape[0])]
    for i, (context, feature, bank) in enumerate(rows):
        assert torch.allclose(context, contexts[i], atol=1e-6), f"row {i}: context"
        assert torch.allclose(feature, features[i], atol=1e-6), f"row {i}: canvas features"
        assert bank == sees_bank[i], f"row {i}: bank"
    assert all(c.active and c.mode == settings["reference_mode"] for c in calls)
    assert (r.state.active, r.state.latent_cur, r.state.use_ref) == (False, None, None)
    # the canvas encoder runs on the three distinct inputs, the official pipeline on all six rows
    assert r.canvas_encoder.inputs == [6 if settings["reference_mode"] == "official" else 3]


@pytest.mark.parametrize("instruction", ["", None])
def test_update_loop_without_an_instruction_the_text_row_gets_the_empty_prompt(schedulers, instruction):
    canvas, target, mask = _inputs()
    r = _renderer(steps=1)
    r.update(canvas, target, mask, instruction, 40.0)
    contexts, _, _ = _official_rows(canvas, target, mask, "", 40.0)
    assert torch.allclose(r.unet.calls[0].context[5], contexts[5], atol=1e-6)


@pytest.mark.parametrize("mode", ["cached", "official"])
def test_update_loop_bank_is_the_target_at_timestep_zero(schedulers, mode):
    canvas, target, mask = _inputs()
    r = _renderer(steps=2, reference_mode=mode)
    r.update(canvas, target, mask, "tree", 40.0)
    copies = 6 if mode == "official" else 1
    (latents, t, context), = r.referencenet.calls
    assert t == 0.0
    assert torch.allclose(latents, (_encode(target * 2 - 1) * SCALING).repeat(copies, 1, 1, 1))
    assert torch.allclose(context, _clip(target)[:, None, :].repeat(copies, 1, 1))
    tokens = torch.cat([latents.flatten(2).transpose(1, 2)] * 2, -1) + context
    for call in r.unet.calls:
        if mode == "cached":  # one copy, projected by the UNet's to_k / to_v, kept for the painting
            k, v = call.kv[BANK]
            assert torch.allclose(k, 2 * tokens[:1, None]) and torch.allclose(v, 3 * tokens[:1, None])
            assert call.bank == {}
        else:
            assert torch.allclose(call.bank[BANK], tokens) and call.kv == {}
    assert r.stats["referencenet_runs"] == copies


@pytest.mark.parametrize("settings,rows_per_call", list(zip(SETTINGS, ROWS_PER_CALL)))
def test_update_loop_guided_steps_and_output_match_the_official_loop(schedulers, settings, rows_per_call):
    canvas, target, mask = _inputs()
    r = _renderer(**settings)
    seen = []
    out = r.update(canvas, target, mask, "tree", 40.0, progress=Progress(4, lambda d, t, p: seen.append(d)))
    expected = _official_update(canvas, target, mask, "tree", 40.0, seed=3)
    assert torch.allclose(r._last[1], expected, atol=1e-5)
    assert torch.allclose(out, _image(expected), atol=1e-5) and out is r._last[0]
    assert 0 < (out == 0).sum() and 0 < (out == 1).sum()  # the range map was clamped on both sides
    assert ((0 < out) & (out < 1)).float().mean() > 0.3  # ... and most of it is inside
    timesteps = (800.0, 600.0, 400.0, 200.0)
    assert schedulers == [("set_timesteps", 4, torch.device("cpu")), ("set_begin_index", 0)] + [
        ("step", t) for t in timesteps]
    assert [c.t for c in r.unet.calls] == [t for t in timesteps for _ in rows_per_call]
    assert seen == [1, 2, 3, 4]


@pytest.mark.parametrize("ratio,combined", [(0.5, 2), (1.0, 4), (0.2, 0)])
def test_update_loop_second_update_keeps_the_previous_keyframe_outside_the_mask(schedulers, ratio, combined):
    canvas, target, mask = _inputs()
    r = _renderer(combine_init_ratio=ratio)
    first = r.update(canvas, target, mask, "tree", 40.0)
    previous = r._last[1]
    schedulers.clear()
    r.seed = 8  # each update seeds its own generator
    second = r.update(first, target, mask, "sky", 20.0)
    expected = _official_update(first, target, mask, "sky", 20.0, seed=8, previous=previous, ratio=ratio)
    assert torch.allclose(r._last[1], expected, atol=1e-5)
    assert torch.allclose(second, _image(expected), atol=1e-5)
    assert [e for e in schedulers if e[0] == "add_noise"] == [("add_noise", t) for t in (600.0, 400.0, 200.0)][
        :min(combined, 3)]
    # without a previous keyframe nothing is reset: the plain loop
    fresh = _renderer(combine_init_ratio=ratio, seed=8).update(first, target, mask, "sky", 20.0)
    assert torch.allclose(fresh, _image(_official_update(first, target, mask, "sky", 20.0, seed=8)), atol=1e-5)


def test_update_loop_ratio_one_and_an_empty_mask_return_the_previous_keyframe(schedulers):
    canvas, target, _ = _inputs()
    empty = torch.zeros(1, 1, H, W)
    r = _renderer(combine_init_ratio=1.0)
    first = r.update(canvas, target, empty, "tree", 40.0)
    latents = r._last[1]
    r.seed = 9
    again = r.update(first, target, empty, "tree", 40.0)
    assert torch.equal(r._last[1], latents) and torch.equal(again, first)


def test_update_loop_the_same_seed_gives_the_same_keyframe(schedulers):
    canvas, target, mask = _inputs()
    a = _renderer().update(canvas, target, mask, "tree", 40.0)
    b = _renderer().update(canvas, target, mask, "tree", 40.0)
    c = _renderer(seed=4).update(canvas, target, mask, "tree", 40.0)
    assert torch.equal(a, b) and not torch.allclose(a, c)


def test_update_loop_previous_latents_only_for_the_previous_keyframe(schedulers):
    canvas, target, mask = _inputs()
    r = _renderer()
    assert r._previous_latents(canvas) is None  # no keyframe yet
    first = r.update(canvas, target, mask, "tree", 40.0)
    latents = r._last[1]
    assert r._previous_latents(first.clone()) is latents
    assert r._previous_latents(first[..., :8, :]) is None  # another size
    # a keyframe without black pixels, to place the differences
    r._last = (torch.full((1, 3, H, W), 0.5), latents)
    near = torch.full((1, 3, H, W), 0.5 + 5e-4)  # float16 round-trip noise
    assert r._previous_latents(near) is latents
    repadded = torch.full((1, 3, H, W), 0.5)
    repadded[..., -7:, :] = 0  # 7 of 16 rows re-padded with black (the loop's pad_to_16): under half differ
    assert r._previous_latents(repadded) is latents
    mostly_black = torch.full((1, 3, H, W), 0.5)
    mostly_black[..., -9:, :] = 0  # over half of the pixels differ
    assert r._previous_latents(mostly_black) is None
    painted = torch.full((1, 3, H, W), 0.5)
    painted[..., 0, 0, 0] = 0.9  # one pixel differs and is not black
    assert r._previous_latents(painted) is None
    r.end()
    assert r._previous_latents(torch.full((1, 3, H, W), 0.5)) is None


def test_update_loop_the_target_cache_follows_the_target(schedulers):
    canvas, target, mask = _inputs()
    r = _renderer()
    r.update(canvas, target, mask, "tree", 40.0)
    r.update(canvas, target, mask, "sky", 20.0)
    assert r.stats["referencenet_runs"] == 1  # once per painting
    target[..., 0, 0, 0] += 0.5  # edited in place: same storage and shape, other pixels
    r.update(canvas, target, mask, "sky", 20.0)
    assert r.stats["referencenet_runs"] == 2
    (_, _, first), (_, _, second) = r.referencenet.calls
    assert torch.allclose(second, _clip(target)[:, None, :]) and not torch.allclose(first, second)
    official = _renderer(reference_mode="official")
    official.update(canvas, target, mask, "tree", 40.0)
    official.update(canvas, target, mask, "tree", 40.0)
    assert official.stats["referencenet_runs"] == 12  # six copies at every update


def test_update_loop_tiles_the_decode_except_in_official_mode(schedulers):
    canvas, target, mask = _inputs()
    r = _renderer(vae_tile_size=20)  # 20 px tiles of a 16 x 32 keyframe, 20 // 8 latent cells
    out = r.update(canvas, target, mask, "tree", 40.0)
    assert r.vae.tiled_sizes == [(20, 2)]
    assert (r.vae.tile_sample_min_size, r.vae.tile_latent_min_size) == (512, 64)
    assert torch.allclose(out, _image(_official_update(canvas, target, mask, "tree", 40.0, seed=3)), atol=1e-5)
    official = _renderer(vae_tile_size=20, reference_mode="official")
    official.update(canvas, target, mask, "tree", 40.0)
    assert official.vae.tiled_sizes == []
    whole = _renderer(vae_tile_size=32)  # one tile covers the 16 x 32 keyframe: the plain decode
    whole.update(canvas, target, mask, "tree", 40.0)
    assert whole.vae.tiled_sizes == []
    vae = _Vae()
    z = torch.randn(1, 16, 2, 2)
    assert torch.equal(renderer_module.decode_latents(vae, z), _decode(z))  # no tile size: the plain decode
    renderer_module.decode_latents(vae, z, 16)  # 16 latent channels do not make the 16 x 16 keyframe larger
    assert vae.tiled_sizes == []


def test_update_loop_canvas_features_reach_the_unet_only_inside_an_update(schedulers):
    canvas, target, mask = _inputs()
    r = _renderer()
    r.update(canvas, target, mask, "tree", 40.0)
    x = torch.randn(2, CH, 2, 4)
    assert torch.equal(r.unet.conv_in(x), x)  # outside update(): the UNet's own conv_in output
    state = SimpleNamespace(latent_cur=torch.ones(2, CH, 2, 4))
    half = x.to(torch.bfloat16)
    added = renderer_module._canvas_hook(state)(None, (half,), half)  # added in the UNet's dtype
    assert added.dtype == torch.bfloat16 and torch.equal(added, half + torch.ones_like(half))


def test_update_loop_casts_everything_to_the_unet_dtype(schedulers):
    """A bf16 UNet next to float32 CLIP, text, time and VAE parts: the UNet, the canvas encoder, the
    next-CLIP predictor and ReferenceNet get bf16 inputs; the VAE decodes in its own dtype."""
    canvas, target, mask = _inputs()
    r = _renderer()
    r.unet.to(torch.bfloat16)
    out = r.update(canvas, target, mask, "tree", 40.0)
    bf16 = torch.bfloat16
    assert {d for c in r.unet.calls for d in c.dtypes} == {bf16}
    assert set(r.canvas_encoder.dtypes) == set(r.next_clip.dtypes) == {bf16}
    (latents, _, context), = r.referencenet.calls
    assert (latents.dtype, context.dtype) == (bf16, bf16)
    assert r._last[1].dtype == bf16 and r.vae.decoded_dtypes == [torch.float32]
    assert out.dtype == torch.float32
    expected = _official_update(canvas, target, mask, "tree", 40.0, seed=3)
    assert torch.allclose(r._last[1].float(), expected, rtol=0.02, atol=0)  # the same latents up to bf16 rounding


@pytest.mark.parametrize("canvas_hw,mask_hw,target_hw,message", [
    ((H, W + 8), (H, W), (H, W), "Canvas, target and mask must have the same size."),
    ((H, W), (H + 8, W), (H, W), "Canvas, target and mask must have the same size."),
    ((H + 4, W), (H + 4, W), (H + 4, W), "The renderer needs sizes divisible by 8 (got 32x20)."),
    ((H, W + 4), (H, W + 4), (H, W + 4), "The renderer needs sizes divisible by 8 (got 36x16)."),
])
def test_update_loop_refuses_other_sizes(schedulers, canvas_hw, mask_hw, target_hw, message):
    r = _renderer()
    with pytest.raises(InputError) as err:
        r.update(torch.rand(1, 3, *canvas_hw), torch.rand(1, 3, *target_hw), torch.ones(1, 1, *mask_hw), "x", 1.0)
    assert str(err.value) == message
    assert r.unet.calls == []
