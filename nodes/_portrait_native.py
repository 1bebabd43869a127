"""ComfyUI side of portrait editing (thesis ch. 5): the MCDM UNet as a native MODEL, a CLIP ViT-B/32 as a native
CLIP_VISION, and the chapter's guidance as GUIDERs (comfy.samplers.CFGGuider subclasses that core's
SamplerCustomAdvanced runs). The maths is in pipelines/portrait_edit; this module only wires it to core."""
import json
import os
import tempfile

import comfy.clip_vision
import comfy.model_detection
import comfy.sample
import comfy.samplers
import comfy.sd
import comfy.utils
import torch

from ..pipelines.common.checkpoints import load_state_dict
from ..pipelines.common.errors import CheckpointFormatError
from ..pipelines.portrait_edit import guidance, pairs
from ..pipelines.portrait_edit import mask as mask_maths
from ..pipelines.portrait_edit.unet import ldm_block_structure, read_unet

LDM_PREFIX = "model.diffusion_model."
EXPECTED_MODEL = "SD15_instructpix2pix"  # core's model for an 8-channel SD1.5 UNet: c_concat = concat_latent_image
MASK_MODES = ("noise (thesis)", "latent (official)")


def load_mcdm_unet(path: str):
    """unet.pth (or a .safetensors with its keys) -> ModelPatcher, every weight from the file."""
    return mcdm_from_state_dict(read_unet(path), path)


def mcdm_from_state_dict(state: dict, path: str):
    """A diffusers-layout 8-channel UNet state dict -> ModelPatcher; ``path`` names the source in errors."""
    key_map = comfy.utils.unet_to_diffusers(ldm_block_structure(state))
    unknown = sorted(k for k in state if k not in key_map)
    if unknown:
        raise CheckpointFormatError(path, f"{len(unknown)} UNet keys have no place in an SD1.5 UNet "
                                          f"(e.g. {unknown[0]})", expected=sorted(key_map)[:12])
    ldm = {LDM_PREFIX + key_map[k]: v for k, v in state.items()}
    keys = {k[len(LDM_PREFIX):] for k in ldm}
    patcher = comfy.sd.load_diffusion_model_state_dict(ldm)
    kind = type(patcher.model).__name__ if patcher is not None else None
    if kind != EXPECTED_MODEL:
        raise CheckpointFormatError(path, f"ComfyUI reads this UNet as {kind or 'no known model'}, not as an "
                                          "8-channel SD1.5 UNet (context 768)", expected=sorted(state)[:12])
    missing = sorted(set(patcher.model.diffusion_model.state_dict()) - keys)
    if missing:
        raise CheckpointFormatError(path, f"{len(missing)} UNet weights are missing (e.g. {missing[0]})",
                                    expected=sorted(state)[:12])
    return patcher


def clip_vision_config(state: dict, path: str) -> dict:
    """A CLIP vision config read off the weights' shapes (core ships none for ViT-B/32)."""
    prefix = "vision_model."
    needed = [f"{prefix}embeddings.patch_embedding.weight", f"{prefix}embeddings.position_embedding.weight",
              f"{prefix}encoder.layers.0.mlp.fc1.weight"]
    missing = [k for k in needed if k not in state]
    if missing:
        raise CheckpointFormatError(path, "Not a CLIP vision model in transformers or OpenAI layout",
                                    expected=needed, hint="Use CLIP ViT-B/32 (openai/clip-vit-base-patch32).")
    width, _, patch, _ = state[needed[0]].shape
    positions = state[needed[1]].shape[0]
    layers = len({k.split(".")[3] for k in state if k.startswith(f"{prefix}encoder.layers.")})
    config = {"hidden_size": width, "intermediate_size": state[needed[2]].shape[0], "num_hidden_layers": layers,
              "num_attention_heads": max(width // 64, 1), "patch_size": patch, "num_channels": 3,
              "image_size": patch * round((positions - 1) ** 0.5), "hidden_act": "quick_gelu",
              "layer_norm_eps": 1e-5, "model_type": "clip_vision_model"}
    if "visual_projection.weight" in state:
        config["projection_dim"] = state["visual_projection.weight"].shape[0]
    return config


def load_clip_vision(path: str):
    """A CLIP vision file -> core's ClipVisionModel (the CLIP_VISION type), configured from its shapes."""
    state = load_state_dict(path)
    if "visual.transformer.resblocks.0.attn.in_proj_weight" in state:  # OpenAI layout
        state = comfy.clip_vision.convert_to_transformers(state, "visual.")
    config = clip_vision_config(state, path)
    with tempfile.TemporaryDirectory() as folder:  # core's class reads its config from a JSON file
        config_path = os.path.join(folder, "config.json")
        with open(config_path, "w") as f:
            json.dump(config, f)
        model = comfy.clip_vision.ClipVisionModel(config_path)
    missing, _ = model.load_sd(state)
    if missing:
        raise CheckpointFormatError(path, f"{len(missing)} CLIP vision weights are missing (e.g. {missing[0]})",
                                    expected=sorted(model.get_sd())[:12])
    return model


class BranchGuider(comfy.samplers.CFGGuider):
    """A guider over named conditioning branches, all evaluated in one batched model call (as memory allows;
    ``batch_branches = False`` evaluates them one by one, for comparison). Optional editing mask: 'noise'
    mode combines target and reconstruction predictions per step (thesis 5.2.4); 'latent' mode is the
    official code's latents * M + rec_latents * (1 - M), run through core's inpainting blend with the
    sampler's input latent (the source latent E(x_A)) re-noised to each step as rec_latents."""

    branches: tuple = ()
    batch_branches = True
    mask = None
    mask_mode = MASK_MODES[0]

    def set_branches(self, **conds):
        self.inner_set_conds({k: v for k, v in conds.items() if v is not None})

    def set_mask(self, mask, mode):
        self.mask, self.mask_mode = mask, mode

    def predictions(self, x, timestep, model_options) -> dict:
        names = [n for n in self.branches if n in self.conds]
        conds = [self.conds[n] for n in names]
        if self.batch_branches:
            outs = comfy.samplers.calc_cond_batch(self.inner_model, conds, x, timestep, model_options)
        else:
            outs = [comfy.samplers.calc_cond_batch(self.inner_model, [c], x, timestep, model_options)[0]
                    for c in conds]
        return dict(zip(names, outs))

    def predict_noise(self, x, timestep, model_options={}, seed=None):
        preds = self.predictions(x, timestep, model_options)
        target = self.combine(preds, "positive")
        if self.mask is None or self.mask_mode != MASK_MODES[0]:
            return target
        reconstruction = self.combine(preds, "reconstruction")
        return guidance.mask_guided(target, reconstruction, guidance.fit_mask(self.mask, x))

    def combine(self, preds: dict, text_branch: str):
        raise NotImplementedError

    def sample(self, noise, latent_image, sampler, sigmas, denoise_mask=None, callback=None, disable_pbar=False,
               seed=None):
        if self.mask is not None and self.mask_mode == MASK_MODES[1]:
            edit = self.mask.reshape(-1, 1, *self.mask.shape[-2:]).float()
            denoise_mask = edit if denoise_mask is None else denoise_mask * edit.to(denoise_mask)
        return super().sample(noise, latent_image, sampler, sigmas, denoise_mask=denoise_mask, callback=callback,
                              disable_pbar=disable_pbar, seed=seed)


class MultiConditionGuider(BranchGuider):
    """MCDM guidance, eq. 5.1 over image embedding (s1), spatial input (s2) and text (s3)."""

    branches = ("negative", "embedding", "image", "positive", "reconstruction")
    scales = guidance.DEMO_SCALES

    def combine(self, preds, text_branch):
        return guidance.multi_condition_cfg(preds["negative"], preds["embedding"], preds["image"],
                                            preds[text_branch], *self.scales)


class MaskGuidedGuider(BranchGuider):
    """Any model: CFG per prompt, target and reconstruction combined under the editing mask."""

    branches = ("negative", "positive", "reconstruction")

    def combine(self, preds, text_branch):
        return guidance.cfg(preds["negative"], preds[text_branch], self.cfg)


class _OneStepProbe(BranchGuider):
    """Keeps the target and reconstruction predictions of one model call (the editing mask's one step)."""

    branches = ("positive", "reconstruction")
    seen = None

    def predict_noise(self, x, timestep, model_options={}, seed=None):
        self.seen = self.predictions(x, timestep, model_options)
        return self.seen["positive"]


def _single_model_call(model, x, sigmas, extra_args=None, callback=None, disable=None):
    model(x, sigmas[0] * x.new_ones([x.shape[0]]), **(extra_args or {}))
    return x


def mask_sigma(model, steps: int, noise_steps: int) -> float:
    """The noise level after ``noise_steps`` of a ``steps``-step schedule (thesis: 10 of 20 UniPC steps)."""
    sigmas = comfy.samplers.calculate_sigmas(model.get_model_object("model_sampling"), "simple", steps)
    return float(sigmas[steps - noise_steps])


def one_step_predictions(model, target, reconstruction, latent, sigma: float, seeds):
    """Denoised predictions with each conditioning for the latent noised to ``sigma`` once per seed, all
    seeds in one batch (draw-major): returns (target [S*B, C, h, w], reconstruction [S*B, C, h, w])."""
    probe = _OneStepProbe(model)
    probe.set_branches(positive=target, reconstruction=reconstruction)
    noise = torch.cat([comfy.sample.prepare_noise(latent, seed) for seed in seeds])
    probe.sample(noise, latent.repeat(len(seeds), 1, 1, 1), comfy.samplers.KSAMPLER(_single_model_call),
                 torch.tensor([sigma, 0.0]), disable_pbar=True, seed=seeds[0])
    return probe.seen["positive"], probe.seen["reconstruction"]


def editing_mask(model, target, reconstruction, latent, sigma: float, seeds, threshold: float, batched=True):
    """(soft, binary) [B, h, w] latent-resolution masks; ``batched=False`` runs one seed per model call."""
    if batched:
        t, r = one_step_predictions(model, target, reconstruction, latent, sigma, seeds)
    else:
        pairs = [one_step_predictions(model, target, reconstruction, latent, sigma, [s]) for s in seeds]
        t, r = torch.cat([p[0] for p in pairs]), torch.cat([p[1] for p in pairs])
    return mask_maths.editing_mask(t, r, threshold, draws=len(seeds))


class PairGuider(BranchGuider):
    """Paired-data generation, eq. 5.2: CFG with the shared, the source and the target prompt over a side-by-side
    canvas, combined as s'_d eps~(p) + s'_a M'_a eps~(p_a) + s'_b M'_b eps~(p_b)."""

    branches = ("negative", "shared", "source", "target")
    side_scales = (pairs.SHARED_SCALE, pairs.SIDE_SCALE, pairs.SIDE_SCALE)

    def predict_noise(self, x, timestep, model_options={}, seed=None):
        p = self.predictions(x, timestep, model_options)
        return pairs.guided_pair_prediction(p["negative"], p["shared"], p["source"], p["target"], self.cfg,
                                            *self.side_scales)
