"""MCDM in native ComfyUI: the official-layout weights load strictly as a core MODEL, bad files are explained,
and the guiders / editing mask compute the chapter-5 formulas inside core's sampling machinery."""
import importlib

import pytest
import torch

from pipelines.portrait_edit.adapter import load_adapter
from scripts.harness.inprocess import import_pack
from tests.fixtures.build_portrait import CHECKPOINT_DIR, build

LATENT = 8  # 64x64 images: the tiny UNet runs fast


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return build(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="module")
def native():
    import_pack()
    return importlib.import_module("recompose_pack.nodes._portrait_native")


@pytest.fixture(scope="module")
def mcdm(native, files):
    return native.load_mcdm_unet(str(files["unet"]))


def _file_state(path):
    return {k[len("module."):]: v for k, v in torch.load(path, weights_only=True).items()}


def test_official_layout_loads_strictly_as_core_instructpix2pix(mcdm, files):
    state = _file_state(files["unet"])
    assert type(mcdm.model).__name__ == "SD15_instructpix2pix"
    assert mcdm.model.model_config.unet_config["in_channels"] == 8
    model_state = mcdm.model.diffusion_model.state_dict()
    assert len(model_state) == len(state)  # every tensor of the file has a place and every weight a tensor
    torch.testing.assert_close(model_state["input_blocks.0.0.weight"], state["conv_in.weight"].float())
    torch.testing.assert_close(model_state["output_blocks.1.1.transformer_blocks.0.attn2.to_k.weight"],
                               state["up_blocks.0.attentions.1.transformer_blocks.0.attn2.to_k.weight"].float())
    torch.testing.assert_close(model_state["middle_block.2.in_layers.2.weight"],
                               state["mid_block.resnets.1.conv1.weight"].float())


def test_a_safetensors_with_the_same_keys_loads_too(native, files, tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "mcdm_outfit.safetensors"
    save_file(_file_state(files["unet"]), str(path))
    model = native.load_mcdm_unet(str(path))
    assert type(model.model).__name__ == "SD15_instructpix2pix"


def _save_unet(files, tmp_path, edit):
    state = torch.load(files["unet"], weights_only=True)
    edit(state)
    path = tmp_path / "unet.pth"
    torch.save(state, path)
    return path


def test_missing_key_error_names_file_folder_and_expected_keys(native, files, tmp_path):
    path = _save_unet(files, tmp_path, lambda s: s.pop("module.conv_out.weight"))
    with pytest.raises(Exception, match="conv_out.weight") as err:
        native.load_mcdm_unet(str(path))
    message = str(err.value)
    assert "'unet.pth'" in message and str(tmp_path) in message and "Expected keys like" in message
    assert type(err.value).__name__ == "CheckpointFormatError"


def test_unknown_key_and_wrong_channel_count_are_refused(native, files, tmp_path):
    def rename(state):
        key = "module.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.weight"
        state[key.replace("to_q", "to_query")] = state.pop(key)

    with pytest.raises(Exception, match="no place in an SD1.5 UNet.*to_query"):
        native.load_mcdm_unet(str(_save_unet(files, tmp_path, rename)))

    def four_channels(state):
        state["module.conv_in.weight"] = state["module.conv_in.weight"][:, :4]

    with pytest.raises(Exception, match="takes 4 input channels; MCDM has 8"):
        native.load_mcdm_unet(str(_save_unet(files, tmp_path, four_channels)))


def test_adapter_loads_strictly_and_a_wrong_file_is_explained(files, tmp_path):
    adapter = load_adapter(str(files["adapter"]))
    state = _file_state(files["adapter"])
    torch.testing.assert_close(adapter.linear1.weight, state["linear1.weight"].float())
    state["extra.weight"] = torch.zeros(1)
    state.pop("vae2clip.bias")
    bad = tmp_path / "adapter.pth"
    torch.save(state, bad)
    with pytest.raises(Exception) as err:
        load_adapter(str(bad))
    message = str(err.value)
    assert "'adapter.pth'" in message and str(tmp_path) in message
    assert "missing (e.g. vae2clip.bias)" in message and "unexpected (e.g. extra.weight)" in message
    assert "linear1.weight" in message  # the expected keys are listed


def test_clip_vision_b32_gives_50_tokens_of_768(native, files):
    model = native.load_clip_vision(str(files["clip_vision"]))
    with torch.no_grad():
        tokens = model.encode_image(torch.rand(2, 100, 80, 3))["last_hidden_state"]
    assert tokens.shape == (2, 50, 768)


def _cond(value, tokens=127, concat=None):
    extras = {} if concat is None else {"concat_latent_image": concat}
    return [[torch.full((1, tokens, 768), float(value)) + torch.linspace(-1, 1, 768), extras]]


def _branches():
    torch.manual_seed(0)
    source = torch.randn(1, 4, LATENT, LATENT)
    return {"positive": _cond(0.3, concat=source), "reconstruction": _cond(-0.2, concat=source),
            "image": _cond(0.0, concat=source), "embedding": _cond(0.0), "negative": _cond(0.1)}


def _record(native, guider_class):
    """A guider class that keeps each call's branch predictions and output."""

    class Recording(guider_class):
        calls = None

        def predict_noise(self, x, timestep, model_options={}, seed=None):
            out = super().predict_noise(x, timestep, model_options, seed)
            self.calls.append((x.clone(), self.last, out))
            self.sigmas_seen.append(float(timestep.flatten()[0]))
            return out

        def predictions(self, x, timestep, model_options):
            self.last = super().predictions(x, timestep, model_options)
            return self.last

    return Recording


def _sample(guider, steps=3, seed=1):
    import comfy.samplers

    model_sampling = guider.model_patcher.get_model_object("model_sampling")
    sigmas = comfy.samplers.calculate_sigmas(model_sampling, "simple", steps)
    latent = torch.randn(1, 4, LATENT, LATENT, generator=torch.Generator().manual_seed(seed))
    noise = torch.randn(1, 4, LATENT, LATENT, generator=torch.Generator().manual_seed(seed + 1))
    guider.calls, guider.sigmas_seen, guider.noise = [], [], noise
    return guider.sample(noise, latent, comfy.samplers.sampler_object("uni_pc"), sigmas, disable_pbar=True, seed=seed), latent


def test_multi_condition_guider_is_eq_5_1_at_every_step(native, mcdm):
    guider = _record(native, native.MultiConditionGuider)(mcdm)
    b = _branches()
    guider.set_branches(positive=b["positive"], image=b["image"], embedding=b["embedding"], negative=b["negative"])
    guider.scales = (3.0, 2.0, 4.0)
    _sample(guider)
    assert len(guider.calls) == 3
    for _, p, out in guider.calls:
        expected = (p["negative"] + 3.0 * (p["embedding"] - p["negative"]) + 2.0 * (p["image"] - p["embedding"])
                    + 4.0 * (p["positive"] - p["image"]))
        torch.testing.assert_close(out, expected)
    # branches differ (c_s, c_im and text each matter), and the batched call equals one call per branch
    p = guider.calls[0][1]
    assert all((p[a] - p[c]).abs().mean() > 1e-4 for a, c in (("embedding", "negative"), ("image", "embedding"),
                                                               ("positive", "image")))


def test_branches_batched_equal_branches_one_by_one(native, mcdm):
    b = _branches()
    outs = {}
    for batched in (True, False):
        guider = _record(native, native.MultiConditionGuider)(mcdm)
        guider.batch_branches = batched
        guider.set_branches(positive=b["positive"], image=b["image"], embedding=b["embedding"],
                            negative=b["negative"])
        outs[batched], _ = _sample(guider, steps=2)
    # batching changes float summation order; guidance scales up to 4 amplify it
    torch.testing.assert_close(outs[True], outs[False], rtol=1e-3, atol=2e-3)


def _half_mask():
    mask = torch.zeros(1, LATENT * 8, LATENT * 8)
    mask[:, :, : LATENT * 4] = 1.0
    return mask


def test_mask_guided_mcdm_guider_equals_the_formula_at_every_step(native, mcdm):
    guider = _record(native, native.MultiConditionGuider)(mcdm)
    guider.set_branches(**_branches())
    guider.scales = (3.0, 3.0, 5.0)
    guider.set_mask(_half_mask(), "noise (thesis)")
    _sample(guider)
    m = torch.zeros(1, 1, LATENT, LATENT)
    m[..., : LATENT // 2] = 1.0
    for _, p, out in guider.calls:
        base = p["negative"] + 3 * (p["embedding"] - p["negative"])
        target = base + 3 * (p["image"] - p["embedding"]) + 5 * (p["positive"] - p["image"])
        rec = base + 3 * (p["image"] - p["embedding"]) + 5 * (p["reconstruction"] - p["image"])
        torch.testing.assert_close(out, target * m + rec * (1 - m))
        assert (target - rec)[..., LATENT // 2:].abs().mean() > 1e-4  # the two prompts do differ there


def test_mask_guided_guider_for_any_model_equals_the_formula_at_every_step(native, mcdm):
    guider = _record(native, native.MaskGuidedGuider)(mcdm)
    b = _branches()
    guider.set_branches(positive=b["positive"], reconstruction=b["reconstruction"], negative=b["negative"])
    guider.set_cfg(7.5)
    guider.set_mask(_half_mask(), "noise (thesis)")
    _sample(guider)
    for _, p, out in guider.calls:
        target = p["negative"] + 7.5 * (p["positive"] - p["negative"])
        rec = p["negative"] + 7.5 * (p["reconstruction"] - p["negative"])
        torch.testing.assert_close(out[..., : LATENT // 2], target[..., : LATENT // 2])
        torch.testing.assert_close(out[..., LATENT // 2:], rec[..., LATENT // 2:])


def test_latent_mode_resets_the_latent_outside_the_mask_to_the_renoised_source(native, mcdm):
    guider = _record(native, native.MultiConditionGuider)(mcdm)
    b = _branches()
    guider.set_branches(positive=b["positive"], image=b["image"], embedding=b["embedding"], negative=b["negative"])
    guider.set_mask(_half_mask(), "latent (official)")
    samples, source = _sample(guider)
    scaled = source * 0.18215  # core hands the model SD1.5-scaled latents
    outside = (..., slice(LATENT // 2, None))
    # latents * M + rec_latents * (1 - M) before every model call, rec_latents = the source at that noise level
    for (x, _, _), sigma in zip(guider.calls[1:], guider.sigmas_seen[1:]):
        torch.testing.assert_close(x[outside], (scaled + sigma * guider.noise)[outside], rtol=1e-4, atol=1e-4)
    inside = (..., slice(None, LATENT // 2))
    assert (samples[outside] - source[outside]).abs().max() < 0.1  # multistep UniPC blends the last few outputs
    assert (samples[inside] - source[inside]).abs().mean() > 0.1


class _RegionModel(torch.nn.Module):
    """A diffusion model whose prediction depends on the text only inside ``region``."""

    def __init__(self, region):
        super().__init__()
        self.register_buffer("region", region.float())
        self.scale = torch.nn.Parameter(torch.ones(()))
        self.dtype = torch.float32

    def forward(self, x, timesteps, context=None, **kwargs):
        text = context.mean(dim=(1, 2)).view(-1, 1, 1, 1)
        latent = x[:, :4]
        return self.scale * (0.5 * latent + self.region * text * (1 + 0.5 * torch.tanh(latent)))


def test_editing_mask_of_a_model_whose_conditionings_differ_in_a_region(native, files):
    model = native.load_mcdm_unet(str(files["unet"]))
    region = torch.zeros(64, 64, dtype=torch.bool)
    region[12:52, 8:56] = True
    model.model.diffusion_model = _RegionModel(region)
    source = torch.randn(1, 4, 64, 64)
    target, rec = _cond(1.0, concat=source), _cond(-1.0, concat=source)
    sigma = native.mask_sigma(model, 20, 10)
    soft, binary = native.editing_mask(model, target, rec, source, sigma, list(range(10)), 0.2)
    assert binary.shape == (1, 64, 64)
    found = binary[0].bool()
    assert ((found & region).sum() / (found | region).sum()) >= 0.9
    soft1, _ = native.editing_mask(model, target, rec, source, sigma, list(range(10)), 0.2, batched=False)
    torch.testing.assert_close(soft, soft1, rtol=1e-4, atol=1e-4)


def test_mask_sigma_is_the_schedule_point_after_noise_steps(native, mcdm):
    import comfy.samplers

    sigmas = comfy.samplers.calculate_sigmas(mcdm.get_model_object("model_sampling"), "simple", 20)
    assert native.mask_sigma(mcdm, 20, 10) == pytest.approx(float(sigmas[10]))
    assert native.mask_sigma(mcdm, 20, 20) == pytest.approx(float(sigmas[0]))


def test_fixture_paths_are_the_official_layout(files):
    assert str(files["unet"]).endswith(f"{CHECKPOINT_DIR}/unet.pth")
    assert str(files["adapter"]).endswith(f"{CHECKPOINT_DIR}/adapter.pth")
    keys = torch.load(files["unet"], weights_only=True)
    assert all(k.startswith("module.") for k in keys)


class _PoolVAE:
    """Stands in for core's VAE: [B, H, W, 3] pixels -> [B, 4, H/8, W/8] (mean colour + its sum per cell)."""

    def encode(self, pixels):
        x = torch.nn.functional.avg_pool2d(pixels.movedim(-1, 1), 8)
        return torch.cat([x, x.sum(1, keepdim=True)], dim=1)


def test_conditioning_node_builds_the_eq_5_1_branches(native, files):
    portrait = importlib.import_module("recompose_pack.nodes.portrait")
    clip_vision = native.load_clip_vision(str(files["clip_vision"]))
    adapter = load_adapter(str(files["adapter"]))
    image = torch.rand(1, 96, 64, 3)
    texts = {name: [[torch.full((1, 77, 768), value), {"pooled_output": torch.zeros(1, 768)}]]
             for name, value in (("positive", 1.0), ("reconstruction", 2.0), ("negative", 3.0))}
    out = portrait.RecomposePortraitConditioning.execute(texts["positive"], texts["reconstruction"],
                                                         texts["negative"], image, _PoolVAE(), clip_vision, adapter)
    positive, reconstruction, image_cond, embedding_cond, negative, latent = out.result

    def embedding(pixels):
        square = torch.nn.functional.interpolate(pixels.movedim(-1, 1), size=(512, 512), mode="bicubic",
                                                 antialias=False).movedim(1, -1).clamp(0, 1)
        tokens = clip_vision.encode_image(square, crop=True)["last_hidden_state"]
        return adapter(tokens, _PoolVAE().encode(square) * 0.18215)

    with torch.no_grad():
        c_im, c_null = embedding(image), embedding(torch.zeros_like(image))
    source = _PoolVAE().encode(image)
    torch.testing.assert_close(latent["samples"], source)
    for cond, text_value, tokens, spatial in ((positive, 1.0, c_im, True), (reconstruction, 2.0, c_im, True),
                                              (image_cond, 3.0, c_im, True), (embedding_cond, 3.0, c_im, False),
                                              (negative, 3.0, c_null, False)):
        tensor, extras = cond[0]
        assert tensor.shape == (1, 127, 768)  # 77 text tokens, then 50 image tokens
        assert torch.equal(tensor[:, :77], torch.full((1, 77, 768), text_value))
        torch.testing.assert_close(tensor[:, 77:], tokens, rtol=1e-4, atol=1e-4)
        assert ("concat_latent_image" in extras) == spatial
        if spatial:
            torch.testing.assert_close(extras["concat_latent_image"], source * 0.18215)
    assert (c_im - c_null).abs().mean() > 1e-3


def test_pair_guider_is_eq_5_2_at_every_step(native, mcdm):
    guider = _record(native, native.PairGuider)(mcdm)
    b = _branches()
    guider.set_branches(shared=b["image"], source=b["reconstruction"], target=b["positive"], negative=b["negative"])
    guider.set_cfg(7.5)
    _sample(guider)
    half = LATENT // 2
    for _, p, out in guider.calls:
        g = {k: p["negative"] + 7.5 * (p[k] - p["negative"]) for k in ("shared", "source", "target")}
        torch.testing.assert_close(out[..., :half], 0.1 * g["shared"][..., :half] + 0.9 * g["source"][..., :half])
        torch.testing.assert_close(out[..., half:], 0.1 * g["shared"][..., half:] + 0.9 * g["target"][..., half:])


def test_nodes_explain_unusable_inputs(native, mcdm):
    portrait = importlib.import_module("recompose_pack.nodes.portrait")
    b = _branches()
    with pytest.raises(Exception, match="Multi-Condition Guider: mask mode 'noise \\(thesis\\)' needs the "
                                        "'reconstruction'"):
        portrait.RecomposePortraitGuider.execute(mcdm, b["positive"], b["image"], b["embedding"], b["negative"],
                                                 3.0, 2.0, 4.0, reconstruction=None, mask=_half_mask())
    with pytest.raises(Exception, match="noise_steps \\(21\\) must not exceed steps \\(20\\)"):
        portrait.RecomposeEditingMask.execute(mcdm, b["positive"], b["reconstruction"],
                                              {"samples": torch.zeros(1, 4, 8, 8)}, 10, 0, 20, 21, 0.2)
    with pytest.raises(Exception, match="No MCDM UNet file in models/recompose/portrait"):
        portrait.RecomposePortraitMCDMLoader.execute(portrait.NO_MODEL, portrait.NO_MODEL)
