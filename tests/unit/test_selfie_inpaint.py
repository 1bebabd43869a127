"""Total Selfie selfie-conditioned inpainting on tiny folders in the official layouts."""
import json
import shutil
from types import SimpleNamespace

import pytest
import torch

from pipelines.common.errors import CheckpointFormatError, InputError
from pipelines.common.progress import Progress
from pipelines.selfie_inpaint import blending
from pipelines.selfie_inpaint.controlnet import ControlSpec, load_controlnet
from pipelines.selfie_inpaint.encoder import official_state_dict
from pipelines.selfie_inpaint.loader import load_selfie_image_encoder, load_selfie_pipeline
from pipelines.selfie_inpaint.pipeline import SelfieInpaintPipeline, make_scheduler
from tests.fixtures import build_selfie_inpaint as fixture

SIZE = 128  # 16x16 latents


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    torch.set_num_threads(1)
    return fixture.build(tmp_path_factory.mktemp("selfie_models"))


@pytest.fixture(scope="module")
def trained(folders):
    return load_selfie_pipeline(folders["selfie2full"])


@pytest.fixture(scope="module")
def plain(folders):
    return load_selfie_pipeline(folders["paint_by_example"])


@pytest.fixture(scope="module")
def controlnet(folders):
    return load_controlnet(folders["controlnet"])


def _selfies(seed=0, batch=1):
    g = torch.Generator().manual_seed(seed)
    return [torch.rand(batch, 48 + 8 * i, 40, 3, generator=g) for i in range(4)]


def _scene(batch=1):
    g = torch.Generator().manual_seed(5)
    background = torch.rand(batch, SIZE, SIZE, 3, generator=g)
    mask = torch.zeros(batch, SIZE, SIZE)
    mask[:, 24:104, 40:88] = 1.0
    person = torch.zeros(batch, SIZE, SIZE)
    person[:, 40:96, 56:72] = 1.0
    return background, mask, person


# --- encoder -------------------------------------------------------------------------------------------------------

def test_encoder_modes_give_one_fused_token_or_four_separate_ones(folders):
    fused = load_selfie_image_encoder(folders["selfie2full"] / "image_encoder")
    separate = load_selfie_image_encoder(folders["paint_by_example"] / "image_encoder")
    assert (fused.mode, separate.mode) == ("trained", "four_tokens")
    pixels = torch.randn(2, 4, 3, fixture.CLIP_SIZE, fixture.CLIP_SIZE)
    with torch.no_grad():
        one = fused(pixels)
        four = separate.encode_tokens(pixels)
        assert one.shape == (2, 1, fixture.CROSS) and four.shape == (2, 4, fixture.CROSS)
        # eq. 3.2: L over the concatenation [F(I_f), F(I_u), F(I_l), F(I_s)]
        feats = fused.selfie_features(pixels)
        assert torch.allclose(one[:, 0], fused.proj_out(torch.cat(list(feats.unbind(1)), dim=1)), atol=1e-5)
        # training-free tokens: token k only sees selfie k
        changed = pixels.clone()
        changed[:, 2] = torch.randn_like(changed[:, 2])
        four_changed = separate.encode_tokens(changed)
        assert torch.allclose(four_changed[:, [0, 1, 3]], four[:, [0, 1, 3]], atol=1e-5)
        assert not torch.allclose(four_changed[:, 2], four[:, 2], atol=1e-3)
        # the fused token depends on the order of the selfies
        assert not torch.allclose(fused(pixels[:, [1, 0, 2, 3]]), one, atol=1e-4)
    with pytest.raises(ValueError):
        separate(pixels)
    assert fused.uncond_tokens(3).shape == (3, 1, fixture.CROSS)
    assert separate.uncond_tokens(3).shape == (3, 4, fixture.CROSS)


def test_encoder_reads_the_released_clip_key_names(folders):
    from safetensors.torch import load_file

    path = folders["selfie2full"] / "image_encoder" / "model.safetensors"
    saved = load_file(str(path))
    assert any(k.startswith("model.vision_model.") for k in saved)  # transformers-4 naming on disk
    encoder = load_selfie_image_encoder(path.parent)
    reloaded = official_state_dict(encoder)
    assert reloaded.keys() == saved.keys()
    assert all(torch.equal(reloaded[k], saved[k]) for k in saved)
    assert torch.equal(encoder.proj_out.weight, saved["proj_out.weight"])
    assert encoder.proj_out.in_features == 4 * fixture.CLIP_CONFIG["hidden_size"]
    assert torch.equal(encoder.uncond_vector, saved["uncond_vector"])


# --- loader --------------------------------------------------------------------------------------------------------

def test_loader_builds_both_folder_kinds(trained, plain):
    for pipe, mode, tokens in ((trained, "trained", 1), (plain, "four_tokens", 4)):
        assert pipe.mode == mode
        assert pipe.unet.config.in_channels == 9
        assert type(pipe.scheduler).__name__ == "PNDMScheduler"
        assert pipe.preprocess.crop == fixture.CLIP_SIZE
        assert pipe.encode_selfies(_selfies(batch=2)).shape == (2, tokens, fixture.CROSS)
        expected = "fused into 1 token" if mode == "trained" else "4 cross-attention tokens"
        assert expected in pipe.describe()


def test_loader_errors_name_the_folder_and_what_is_expected(folders, tmp_path):
    with pytest.raises(CheckpointFormatError, match="Model folder not found") as err:
        load_selfie_pipeline(tmp_path / "no_such_model")
    assert "no_such_model" in str(err.value) and "model_index.json" in str(err.value)

    broken = tmp_path / "no_proj"
    shutil.copytree(folders["selfie2full"], broken)
    from safetensors.torch import load_file, save_file

    weights = broken / "image_encoder" / "model.safetensors"
    state = {k: v for k, v in load_file(str(weights)).items() if not k.startswith("proj_out.")}
    save_file(state, str(weights))
    with pytest.raises(CheckpointFormatError, match="proj_out.weight") as err:
        load_selfie_pipeline(broken)
    assert "image_encoder" in str(err.value)

    state["proj_out.weight"] = torch.zeros(fixture.CROSS, 3 * fixture.CLIP_CONFIG["hidden_size"])
    state["proj_out.bias"] = torch.zeros(fixture.CROSS)
    save_file(state, str(weights))
    with pytest.raises(CheckpointFormatError, match="takes 96 features; expected 128"):
        load_selfie_pipeline(broken)

    (broken / "unet" / "config.json").unlink()
    with pytest.raises(CheckpointFormatError, match="missing unet/config.json"):
        load_selfie_pipeline(broken)


def test_loader_rejects_a_text_to_image_unet(folders, tmp_path):
    folder = tmp_path / "sd"
    shutil.copytree(folders["paint_by_example"], folder)
    from diffusers import UNet2DConditionModel

    UNet2DConditionModel(**{**fixture.UNET_CONFIG, "in_channels": 4}).save_pretrained(folder / "unet")
    with pytest.raises(CheckpointFormatError, match="4 input channels, not the 9"):
        load_selfie_pipeline(folder)


# --- eq. 3.4 -------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["pndm", "ddim"])
def test_blending_equals_eq_3_4_at_every_step(trained, name):
    scheduler = make_scheduler(trained.scheduler, name)
    scheduler.set_timesteps(10)
    timesteps = scheduler.timesteps
    n, s = len(timesteps), 0.4
    g = torch.Generator().manual_seed(1)
    background, noise = torch.randn(1, 4, 8, 8, generator=g), torch.randn(1, 4, 8, 8, generator=g)
    keep = (torch.rand(1, 1, 8, 8, generator=g) > 0.5).float()
    acp = scheduler.alphas_cumprod
    blended_steps = 0
    for i in range(n):
        z_f = torch.randn(1, 4, 8, 8, generator=g)
        next_t = timesteps[i + 1] if i + 1 < n else None
        z_b = background if next_t is None else acp[next_t].sqrt() * background + (1 - acp[next_t]).sqrt() * noise
        t_index = n - i  # t of eq. 3.4 counts down from T
        expected = z_f * keep + z_b * (1 - keep) if t_index > s * n else z_f
        got = blending.blend(z_f, blending.background_latent_at(scheduler, background, noise, next_t), keep) \
            if blending.blends_at(i, n, s) else z_f
        assert torch.allclose(got, expected, atol=1e-6), f"step {i}"
        blended_steps += blending.blends_at(i, n, s)
    assert blended_steps == n - int(s * n)
    # the official run: 50 steps, s = 0.4 -> the first 30 steps blend (blending_step=30)
    assert sum(blending.blends_at(i, 50, 0.4) for i in range(50)) == 30


def test_dilation_and_latent_foreground():
    mask = torch.zeros(1, 1, 64, 64)
    mask[..., 30, 30] = 1
    grown = blending.dilate(mask, 3)
    assert grown.sum() == 49 and grown[0, 0, 27, 27] == 1 and grown[0, 0, 26, 30] == 0
    assert blending.latent_foreground(grown, (8, 8)).sum() == 4  # rows/cols 27..33 touch cells 3 and 4
    assert blending.latent_foreground(blending.dilate(mask, 1), (8, 8)).sum() == 1  # 29..31: cell 3 only
    assert blending.dilate(mask, 1).sum() == 9 and torch.equal(blending.dilate(mask, 0), mask)


def test_loop_keeps_background_latent_outside_the_dilated_person(trained):
    background, mask, person = _scene()
    run = dict(steps=6, cfg=3.0, seed=2, dilation=8, foreground_mask=person)
    always = trained.generate_latents(background, mask, _selfies(), blend_s=0.0, **run)
    never = trained.generate_latents(background, mask, _selfies(), blend_s=1.0, **run)
    bg_latent = trained._encode(background.permute(0, 3, 1, 2) * 2 - 1)
    outside = 1 - blending.latent_foreground(blending.dilate(person[:, None], 8), always.shape[-2:])
    assert 0 < outside.mean() < 1
    assert torch.allclose(always * outside, bg_latent * outside, atol=1e-5)
    assert not torch.allclose(never * outside, bg_latent * outside, atol=1e-2)
    # inside the dilated person the model generates freely
    assert not torch.allclose(always * (1 - outside), bg_latent * (1 - outside), atol=1e-2)



@pytest.mark.parametrize("name,s", [("pndm", 0.5), ("ddim", 0.5), ("ddim", 0.0)])
def test_the_pipeline_loop_follows_eq_3_4_step_by_step(trained, monkeypatch, name, s):
    """The sampling loop itself, step by step: while t > sT the latent after a step is
    z^f * M + (sqrt(acp[t_next]) z^b + sqrt(1 - acp[t_next]) eps) * (1 - M), with z^f the scheduler's
    own update, eps the run's initial noise and t_next the *next* timestep; afterwards it is z^f.
    s = 0 blends at every step, the last two included (z^b noised to the last timestep, then z^b itself)."""
    import pipelines.selfie_inpaint.pipeline as pipeline

    steps, seed, dilation = 6, 3, 8
    updates, inputs = [], []

    def spying_scheduler(base, scheduler_name):
        sampler = make_scheduler(base, scheduler_name)
        step, scale = sampler.step, sampler.scale_model_input
        sampler.step = lambda *a, **k: updates.append(step(*a, **k)) or updates[-1]
        sampler.scale_model_input = lambda sample, t: inputs.append(sample.chunk(2)[0].clone()) or scale(sample, t)
        return sampler

    monkeypatch.setattr(pipeline, "make_scheduler", spying_scheduler)
    background, mask, person = _scene()
    final = trained.generate_latents(background, mask, _selfies(), steps=steps, cfg=3.0, seed=seed, blend_s=s,
                                     dilation=dilation, foreground_mask=person, scheduler=name)
    after = inputs[1:] + [final]  # the latent each step hands on: the next step's input, the last one returned
    sampler = make_scheduler(trained.scheduler, name)
    sampler.set_timesteps(steps)
    timesteps, n = sampler.timesteps, len(sampler.timesteps)
    assert len(updates) == len(after) == n
    acp = sampler.alphas_cumprod
    z_b = trained._encode(background.permute(0, 3, 1, 2) * 2 - 1)
    eps = torch.randn(z_b.shape, generator=torch.Generator().manual_seed(seed))
    # M: the person mask grown by 8 px, a latent cell being foreground if any of its 8x8 pixels is
    grown = torch.zeros(1, 1, SIZE, SIZE)
    grown[..., 40 - 8:96 + 8, 56 - 8:72 + 8] = 1
    keep = grown.reshape(1, 1, SIZE // 8, 8, SIZE // 8, 8).amax(dim=(3, 5))
    blended = 0
    for i in range(n):
        z_f = updates[i].prev_sample
        if n - i > s * n:  # t = T - i counts down; blend while t > sT
            blended += 1
            t_next = timesteps[i + 1] if i + 1 < n else None
            noised = z_b if t_next is None else acp[t_next].sqrt() * z_b + (1 - acp[t_next]).sqrt() * eps
            expected = z_f * keep + noised * (1 - keep)
        else:
            expected = z_f
        assert torch.allclose(after[i], expected, atol=1e-5), f"step {i} of {n}"
    assert blended == n - int(s * n) and (0 < blended < n if s else blended == n)

def test_the_pipeline_loop_starts_euler_at_its_largest_sigma(trained, monkeypatch):
    """Euler (init_noise_sigma > 1, unlike DDIM's 1): the first latent is the run's noise times the scheduler's
    initial sigma, and every step scales its input at that step's own timestep."""
    import pipelines.selfie_inpaint.pipeline as pipeline

    seed, seen, samplers = 4, [], []

    def spying_scheduler(base, scheduler_name):
        sampler = make_scheduler(base, scheduler_name)
        scale = sampler.scale_model_input
        sampler.scale_model_input = lambda sample, t: seen.append((sample.chunk(2)[0].clone(), t)) or scale(sample, t)
        samplers.append(sampler)
        return sampler

    monkeypatch.setattr(pipeline, "make_scheduler", spying_scheduler)
    background, mask, person = _scene()
    trained.generate_latents(background, mask, _selfies(), steps=3, cfg=3.0, seed=seed, blend_s=1.0, dilation=8,
                             foreground_mask=person, scheduler="euler")
    sampler = samplers[0]
    eps = torch.randn(seen[0][0].shape, generator=torch.Generator().manual_seed(seed))
    assert float(sampler.init_noise_sigma) > 2.0
    assert torch.allclose(seen[0][0], eps * sampler.init_noise_sigma, atol=1e-4)
    assert [float(t) for _, t in seen] == sampler.timesteps.tolist()


def test_a_mask_at_half_counts_as_inside_the_half_threshold(trained):
    image = torch.zeros(1, 3, 4, 4)
    mask = torch.tensor([[0.0, 0.49, 0.5, 1.0]]).expand(4, 4)[None]
    assert trained._pixel_mask(mask, 1, image)[0, 0, 0].tolist() == [0.0, 0.0, 1.0, 1.0]


class _FixedPredictions(torch.nn.Module):
    """Stands in for the UNet: predicts 1 for the unconditional half of a guided batch and 3 for the
    conditional one (3 for an unguided batch), and records the batch sizes it was called with."""

    def __init__(self, unet):
        super().__init__()
        self.inner, self.config, self.batches = unet, unet.config, []

    def forward(self, x, t, encoder_hidden_states=None, **kwargs):
        self.batches.append(x.shape[0])
        out = torch.full((x.shape[0], 4, *x.shape[-2:]), 3.0)
        if encoder_hidden_states.shape[0] == 2:  # guided, batch 1: [uncond; cond] embeddings
            out[:1] = 1.0
        return type("Out", (), {"sample": out})()


@pytest.mark.parametrize("cfg", [2.5, 1.5, 1.0])  # Paint-by-Example guides whenever cfg > 1
def test_blending_outside_the_inpainting_region_by_default_and_cfg_in_the_loop(trained, monkeypatch, cfg):
    import pipelines.selfie_inpaint.pipeline as pipeline

    predictions = []

    def spying_scheduler(base, scheduler_name):
        sampler = make_scheduler(base, scheduler_name)
        step = sampler.step
        sampler.step = lambda noise_pred, *a, **k: predictions.append(noise_pred) or step(noise_pred, *a, **k)
        return sampler

    monkeypatch.setattr(pipeline, "make_scheduler", spying_scheduler)
    fake = _FixedPredictions(trained.unet)
    monkeypatch.setattr(trained, "unet", fake)
    background, mask, _ = _scene()
    final = trained.generate_latents(background, mask, _selfies(), steps=4, cfg=cfg, seed=1, blend_s=0.0,
                                     dilation=8, scheduler="ddim")
    guided = 1.0 + cfg * (3.0 - 1.0) if cfg > 1 else 3.0  # uncond + cfg (cond - uncond); cfg 1 runs unguided
    assert len(predictions) == 4 and all(torch.all(p == guided) for p in predictions)
    assert fake.batches == [2 if cfg > 1 else 1] * 4
    # no foreground mask: M is the inpainting box (rows 24-103, cols 40-87) grown by 8 px, i.e. latent
    # rows 2-13 and cols 4-11; everywhere else the last step hands on the clean background latent
    outside = torch.ones(1, 1, SIZE // 8, SIZE // 8)
    outside[..., 2:14, 4:12] = 0
    z_b = trained._encode(background.permute(0, 3, 1, 2) * 2 - 1)
    assert torch.allclose(final * outside, z_b * outside, atol=1e-5)
    assert not torch.allclose(final * (1 - outside), z_b * (1 - outside), atol=1e-2)


class _RecordingControlNet(torch.nn.Module):
    """Stands in for a ControlNet that fits the UNet: returns residuals numbered by its call."""

    def __init__(self, config):
        super().__init__()
        self.config, self.calls = config, []

    def forward(self, x, t, encoder_hidden_states=None, controlnet_cond=None, conditioning_scale=1.0, return_dict=True):
        self.calls.append((x.clone(), float(t), encoder_hidden_states))
        k = float(len(self.calls))
        return [torch.full((1,), k)], torch.full((1,), 100 + k)


class _RecordingUnet(_FixedPredictions):
    def __init__(self, unet):
        super().__init__(unet)
        self.calls = []

    def forward(self, x, t, encoder_hidden_states=None, **kwargs):
        self.calls.append((x.clone(), float(t), encoder_hidden_states, kwargs))
        return super().forward(x, t, encoder_hidden_states)


def test_step_by_step_controlnet_residuals_reach_the_unet_at_their_steps(trained, monkeypatch):
    unet = _RecordingUnet(trained.unet)
    monkeypatch.setattr(trained, "unet", unet)
    control = _RecordingControlNet(trained.unet.inner.config)
    background, mask, _ = _scene()
    trained.generate_latents(background, mask, _selfies(), steps=4, cfg=2.0, seed=1, blend_s=1.0, scheduler="ddim",
                             control=ControlSpec(control, torch.rand(1, 32, 32, 3), 1.0, 0.25, 1.0))
    calls = unet.calls
    assert len(calls) == 4 and len(control.calls) == 3  # active from a quarter of the steps on: steps 1-3
    assert calls[0][3]["down_block_additional_residuals"] is None
    assert calls[0][3]["mid_block_additional_residual"] is None
    for k, ((x, t, embeds, kwargs), (seen_x, seen_t, seen_embeds)) in enumerate(zip(calls[1:], control.calls), 1):
        assert torch.equal(seen_x, x[:, :4]) and seen_t == t and seen_embeds is embeds  # the UNet's own inputs
        assert kwargs["down_block_additional_residuals"][0].item() == k
        assert kwargs["mid_block_additional_residual"].item() == 100 + k


def test_loop_keeps_the_background_of_a_non_square_image(trained, monkeypatch):
    monkeypatch.setattr(trained, "unet", _FixedPredictions(trained.unet))
    background, mask, _ = _scene()
    background, mask = background[:, :, :64].contiguous(), mask[:, :, :64].contiguous()  # 128 high, 64 wide
    final = trained.generate_latents(background, mask, _selfies(), steps=3, cfg=2.0, seed=1, blend_s=0.0,
                                     dilation=8, scheduler="ddim")
    assert final.shape == (1, 4, SIZE // 8, 64 // 8)
    # the box (rows 24-103, cols 40-63) grown by 8 px covers latent rows 2-13 and cols 4-7
    outside = torch.ones(1, 1, SIZE // 8, 64 // 8)
    outside[..., 2:14, 4:] = 0
    z_b = trained._encode(background.permute(0, 3, 1, 2) * 2 - 1)
    assert torch.allclose(final * outside, z_b * outside, atol=1e-5)


def test_blending_and_loop_defaults_are_the_thesis_s_and_dilation_and_paint_by_example_steps_cfg(trained, monkeypatch):
    """s = 0.4 and a 21 px dilation (thesis 3.5.4); 50 steps and guidance 5 (diffusers' Paint-by-Example)."""
    monkeypatch.setattr(trained, "unet", _FixedPredictions(trained.unet))
    background, mask, _ = _scene()
    person = torch.zeros_like(mask)
    person[:, 40:96, 45:72] = 1.0  # left edge at 45: grown by 21 px it starts in latent column 3, by 22 in 2
    run = dict(foreground_mask=person, scheduler="ddim")
    defaults = trained.generate_latents(background, mask, _selfies(), **run)
    explicit = dict(steps=50, cfg=5.0, blend_s=0.4, dilation=21)
    assert torch.equal(defaults, trained.generate_latents(background, mask, _selfies(), **explicit, **run))
    wider = trained.generate_latents(background, mask, _selfies(), **{**explicit, "dilation": 22}, **run)
    assert not torch.equal(defaults, wider)


# --- ControlNet ----------------------------------------------------------------------------------------------------

def test_controlnet_residuals_reach_the_unet(trained, controlnet):
    background, mask, _ = _scene()
    control_image = torch.rand(1, 64, 64, 3, generator=torch.Generator().manual_seed(9))
    run = dict(steps=4, cfg=3.0, seed=4, blend_s=1.0)
    plain_run = trained.generate_latents(background, mask, _selfies(), **run)
    off = trained.generate_latents(background, mask, _selfies(), control=ControlSpec(controlnet, control_image, 0.0),
                                   **run)
    on = trained.generate_latents(background, mask, _selfies(), control=ControlSpec(controlnet, control_image, 1.0),
                                  **run)
    half = trained.generate_latents(background, mask, _selfies(),
                                    control=ControlSpec(controlnet, control_image, 1.0, 0.5, 1.0), **run)
    assert torch.equal(off, plain_run)
    assert (on - plain_run).abs().max() > 1e-3
    assert (half - plain_run).abs().max() > 1e-4 and (half - on).abs().max() > 1e-4


def test_controlnet_receives_the_selfie_embedding(trained, controlnet):
    seen = {}
    hook = controlnet.register_forward_hook(lambda m, a, kw, out: seen.update(ctx=kw["encoder_hidden_states"]),
                                            with_kwargs=True)
    try:
        background, mask, _ = _scene()
        trained.generate_latents(background, mask, _selfies(), steps=2, cfg=3.0, blend_s=1.0,
                                 control=ControlSpec(controlnet, torch.rand(1, 32, 32, 3)))
    finally:
        hook.remove()
    expected = torch.cat([trained.image_encoder.uncond_tokens(1), trained.encode_selfies(_selfies())])
    assert torch.allclose(seen["ctx"], expected, atol=1e-5)


def test_control_window_follows_start_and_end(controlnet):
    spec = ControlSpec(controlnet, torch.rand(1, 8, 8, 3), 1.0, 0.2, 0.6)
    assert [i for i in range(10) if spec.active(i, 10)] == [2, 3, 4, 5]
    with pytest.raises(InputError, match="start"):
        ControlSpec(controlnet, torch.rand(1, 8, 8, 3), 1.0, 0.7, 0.3).prepared((64, 64), 1, True, "cpu",
                                                                                torch.float32)


def test_single_file_controlnet_loads_offline(controlnet, folders, tmp_path):
    from safetensors.torch import save_file

    single = tmp_path / "tiny_canny.safetensors"
    save_file({k: v.contiguous() for k, v in controlnet.state_dict().items()}, str(single))
    loaded = load_controlnet(single, config_dir=str(folders["controlnet"]))
    for (k, a), b in zip(controlnet.state_dict().items(), loaded.state_dict().values()):
        assert torch.equal(a, b), k
    # default = the shipped SD1.5 config: a tiny file does not fit it, and the error says so
    with pytest.raises(CheckpointFormatError, match="tiny_canny.safetensors"):
        load_controlnet(single)
    assert json.loads((fixture.ROOT / "pipelines/selfie_inpaint/configs/controlnet_sd15/config.json").read_text())[
        "cross_attention_dim"] == 768


# --- whole pipeline ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("which", ["trained", "plain"])
def test_inpaint_produces_finite_images_with_progress(request, which):
    pipe = request.getfixturevalue(which)
    background, mask, person = _scene(batch=2)
    steps_seen = []
    progress = Progress(5, lambda done, total, preview: steps_seen.append((done, total, preview.shape)))
    out = pipe.inpaint(background, mask, _selfies(), foreground_mask=person, steps=5, cfg=5.0, seed=1,
                       scheduler="ddim", progress=progress)
    assert out.shape == (2, SIZE, SIZE, 3) and torch.isfinite(out).all()
    assert 0 <= out.min() and out.max() <= 1
    assert [d for d, _, _ in steps_seen] == [1, 2, 3, 4, 5]
    assert steps_seen[0][2] == (1, SIZE // 8, SIZE // 8, 3)
    again = pipe.inpaint(background, mask, _selfies(), foreground_mask=person, steps=5, cfg=5.0, seed=1,
                         scheduler="ddim")
    assert torch.equal(out, again)  # seeded
    other = pipe.inpaint(background, mask, _selfies(seed=3), foreground_mask=person, steps=5, cfg=5.0, seed=1,
                         scheduler="ddim")
    assert (other - out).abs().max() > 1e-4  # the selfies condition the result


def test_inpaint_input_errors(trained):
    background, mask, _ = _scene()
    with pytest.raises(InputError, match=r"^The inpainting mask is empty: nothing to inpaint\. Connect the person"):
        trained.inpaint(background, torch.zeros_like(mask), _selfies(), steps=1)
    with pytest.raises(InputError, match=r"The mask is 128x64 but the background is 128x128; give them the same size"):
        trained.inpaint(background, mask[:, :64], _selfies(), steps=1)
    with pytest.raises(InputError) as err:
        trained.inpaint(background[:, :120], mask[:, :120], _selfies(), steps=1)
    assert str(err.value) == ("The background is 128x120; this model needs sides that are multiples of 16 "
                              "(e.g. 128x112). Resize or crop it first (core 'Upscale Image' node).")
    with pytest.raises(InputError) as err:
        trained.inpaint(background.expand(3, -1, -1, -1), mask.expand(2, -1, -1), _selfies(), steps=1)
    assert str(err.value) == "The mask has a batch of 2 but 3 was expected (or 1 to share)."
    with pytest.raises(InputError, match="4 selfies"):
        trained.inpaint(background, mask, _selfies()[:3], steps=1)
    with pytest.raises(InputError, match="Unknown scheduler"):
        trained.inpaint(background, mask, _selfies(), steps=1, scheduler="lms")
    with pytest.raises(InputError) as err:
        trained.inpaint(background.expand(3, -1, -1, -1), mask, _selfies(batch=2), steps=1)
    assert str(err.value) == "The selfie batch has a batch of 2 but 3 was expected (or 1 to share)."


def test_pndm_progress_counts_every_model_call(trained):
    background, mask, person = _scene()
    calls = trained.model_calls(4, "pndm")
    assert calls == 5  # PNDM's PLMS repeats its second timestep
    seen = []
    trained.inpaint(background, mask, _selfies(), foreground_mask=person, steps=4, cfg=1.0, seed=0,
                    scheduler="pndm", progress=Progress(calls, lambda done, total, _p: seen.append((done, total))))
    assert seen == [(i, calls) for i in range(1, calls + 1)]


def test_half_precision_run_keeps_the_latents_in_the_model_dtype(folders):
    """On a GPU the parts run in fp16/bf16; blending with the float32 mask must not upcast the latents
    (the next UNet call would then mix dtypes). bf16 runs on CPU too."""
    pipe = load_selfie_pipeline(folders["selfie2full"], dtype=torch.bfloat16)
    background, mask, person = _scene()
    latents = pipe.generate_latents(background, mask, _selfies(), foreground_mask=person, steps=3, cfg=3.0,
                                    blend_s=0.0, scheduler="ddim")
    assert latents.dtype == torch.bfloat16 and torch.isfinite(latents.float()).all()


def test_original_layout_single_file_controlnet_is_converted(tmp_path):
    """Released SD1.5 ControlNets (control_v11p_sd15_canny.pth...) use the original layout
    (``control_model.input_blocks...``). A tiny one is built with ComfyUI's own ControlNet class
    (which keeps that layout) and read through the same loader with a tiny config."""
    import sys

    from safetensors.torch import save_file

    from scripts.harness.server import COMFY_DIR

    sys.path.insert(0, str(COMFY_DIR))
    from comfy.cli_args import args

    args.cpu = True
    import comfy.ops
    from comfy.cldm.cldm import ControlNet

    torch.manual_seed(0)
    original = ControlNet(image_size=32, in_channels=4, model_channels=32, hint_channels=3, num_res_blocks=1,
                          attention_resolutions=[1, 2], channel_mult=(1, 2), num_heads=2,
                          use_spatial_transformer=True, transformer_depth=[1, 1], transformer_depth_middle=1,
                          context_dim=32, use_linear_in_transformer=False, operations=comfy.ops.disable_weight_init)
    state = {f"control_model.{k}": torch.randn_like(v) * 0.02 for k, v in original.state_dict().items()}
    save_file(state, str(tmp_path / "control_tiny_canny.safetensors"))
    config = json.loads((fixture.ROOT / "pipelines/selfie_inpaint/configs/controlnet_sd15/config.json").read_text())
    config.update(block_out_channels=[32, 64], down_block_types=["CrossAttnDownBlock2D"] * 2, layers_per_block=1,
                  cross_attention_dim=32, attention_head_dim=2)
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "config.json").write_text(json.dumps(config))

    loaded = load_controlnet(tmp_path / "control_tiny_canny.safetensors", config_dir=str(tmp_path / "config"))
    assert sum(p.numel() for p in loaded.parameters()) == sum(v.numel() for v in state.values())
    pairs = {"input_hint_block.0.weight": loaded.controlnet_cond_embedding.conv_in.weight,
             "zero_convs.0.0.weight": loaded.controlnet_down_blocks[0].weight,
             "middle_block_out.0.weight": loaded.controlnet_mid_block.weight,
             "time_embed.0.weight": loaded.time_embedding.linear_1.weight}
    for key, weight in pairs.items():
        assert torch.equal(state[f"control_model.{key}"], weight), key


def test_inpaint_input_errors_size_multiple_follows_the_unet_depth():
    """SD1.5's UNet has 4 levels: 3 downsamplings of 2 after the VAE's 8, so sides must be multiples of 64."""
    sd15_like = SimpleNamespace(vae_scale_factor=8, device=torch.device("cpu"),
                                unet=SimpleNamespace(config=SimpleNamespace(block_out_channels=[320, 640, 1280, 1280])))
    background = torch.zeros(1, 96, 96, 3)
    with pytest.raises(InputError, match=r"^The background is 96x96; this model needs sides that are multiples of 64 "
                                         r"\(e\.g\. 64x64\)"):
        SelfieInpaintPipeline._prepare_inputs(sd15_like, background, torch.ones(1, 96, 96))
