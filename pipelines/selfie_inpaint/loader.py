"""Load a Paint-by-Example-layout diffusers folder as a selfie-conditioned inpainting pipeline.

Folder layout (both the official Total Selfie ``pbe_selfie2full`` and a plain
Paint-by-Example download)::

    model_index.json
    unet/        config.json + weights   (UNet2DConditionModel, 9 input channels)
    vae/         config.json + weights   (AutoencoderKL)
    scheduler/   scheduler_config.json
    image_encoder/ config.json (CLIPVisionConfig) + model.safetensors | pytorch_model.bin
    feature_extractor/ preprocessor_config.json   (optional: CLIP defaults otherwise)

The official folder's ``model_index.json`` names the stock encoder class, which cannot hold
its 4*hidden -> D ``proj_out``; the encoder is therefore always built here, and its mode is
read from the shape of ``proj_out.weight`` (see encoder.py). Only local files are read.
"""
import json
import os

import torch

from ..common.checkpoints import load_into, load_state_dict
from ..common.errors import CheckpointFormatError
from .encoder import NUM_SELFIES, SelfieImageEncoder, module_state_dict, to_official_keys
from ..common.clip import ClipPreprocess
from .pipeline import SelfieInpaintPipeline

ENCODER_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "diffusion_pytorch_model.safetensors",
                        "diffusion_pytorch_model.bin")
ENCODER_KEYS = ("model.vision_model.embeddings.patch_embedding.weight", "mapper.blocks.0.attn1.to_q.weight",
                "final_layer_norm.weight", "proj_out.weight", "proj_out.bias", "uncond_vector")
INPAINT_CHANNELS = 9  # noisy latent 4 + masked-image latent 4 + mask 1
LAYOUT_HINT = ("Expected a Paint-by-Example diffusers folder: model_index.json, unet/ (9 input channels), vae/, "
               "scheduler/, image_encoder/ and optionally feature_extractor/ (e.g. Total Selfie's pbe_selfie2full "
               "or Fantasy-Studio/Paint-by-Example) in ComfyUI's models/diffusers folder.")


def load_selfie_pipeline(folder, device="cpu", dtype=torch.float32) -> SelfieInpaintPipeline:
    """All parts of the folder on ``device``/``dtype`` (the image encoder included)."""
    folder = str(folder)
    _check_layout(folder)
    unet = _load_diffusers_part(folder, "unet", dtype)
    if unet.config.in_channels != INPAINT_CHANNELS:
        raise CheckpointFormatError(os.path.join(folder, "unet", "config.json"),
                                    f"The UNet takes {unet.config.in_channels} input channels, not the "
                                    f"{INPAINT_CHANNELS} of Paint-by-Example inpainting", hint=LAYOUT_HINT)
    vae = _load_diffusers_part(folder, "vae", dtype)
    encoder = load_selfie_image_encoder(os.path.join(folder, "image_encoder"))
    cross = unet.config.cross_attention_dim
    if encoder.proj_out.out_features != cross:
        raise CheckpointFormatError(os.path.join(folder, "image_encoder"),
                                    f"The image encoder projects to {encoder.proj_out.out_features} dims but the "
                                    f"UNet's cross-attention takes {cross}", hint=LAYOUT_HINT)
    preprocess = ClipPreprocess.from_folder(os.path.join(folder, "feature_extractor"),
                                            encoder.model.config.image_size)
    return SelfieInpaintPipeline(unet=unet.to(device).eval(), vae=vae.to(device).eval(),
                                 image_encoder=encoder.to(device=device, dtype=dtype).eval(),
                                 scheduler=_load_scheduler(folder), preprocess=preprocess,
                                 source=os.path.basename(os.path.normpath(str(folder))))


def load_selfie_image_encoder(folder) -> SelfieImageEncoder:
    """The ``image_encoder/`` sub-folder in either projection layout (float32, CPU)."""
    from transformers import CLIPVisionConfig

    folder = str(folder)
    config_path = os.path.join(folder, "config.json")
    if not os.path.isfile(config_path):
        raise CheckpointFormatError(config_path, "Image encoder config not found", hint=LAYOUT_HINT)
    weights = next((os.path.join(folder, n) for n in ENCODER_WEIGHT_FILES if os.path.isfile(os.path.join(folder, n))),
                   None)
    if weights is None:
        raise CheckpointFormatError(os.path.join(folder, ENCODER_WEIGHT_FILES[0]), "Image encoder weights not found",
                                    hint=f"Expected one of {', '.join(ENCODER_WEIGHT_FILES)} in that folder.")
    config = CLIPVisionConfig.from_pretrained(folder, local_files_only=True)
    state = load_state_dict(weights)
    official = to_official_keys(state)
    missing = [k for k in ENCODER_KEYS if k not in official and k != "uncond_vector"]
    if missing:
        raise CheckpointFormatError(weights, f"Not a Paint-by-Example / Total Selfie image encoder (missing "
                                             f"{', '.join(missing)})", expected=ENCODER_KEYS)
    hidden = config.hidden_size
    in_features = official["proj_out.weight"].shape[1]
    modes = {hidden * NUM_SELFIES: "trained", hidden: "four_tokens"}
    if in_features not in modes:
        raise CheckpointFormatError(weights, f"proj_out.weight takes {in_features} features; expected "
                                             f"{hidden * NUM_SELFIES} (Total Selfie, four selfies concatenated) or "
                                             f"{hidden} (plain Paint-by-Example)", expected=ENCODER_KEYS)
    encoder = SelfieImageEncoder(config, official["proj_out.weight"].shape[0], modes[in_features])
    # uncond_vector is Paint-by-Example's learned "no example" token; zeros if a re-save dropped it.
    load_into(encoder, module_state_dict(official, encoder), weights, "selfie image encoder", allow_missing=("uncond_vector",))
    return encoder.eval()


def _check_layout(folder: str) -> None:
    if not os.path.isdir(folder):
        raise CheckpointFormatError(folder, "Model folder not found", hint=LAYOUT_HINT)
    needed = ["model_index.json", "unet/config.json", "vae/config.json", "scheduler/scheduler_config.json",
              "image_encoder/config.json"]
    missing = [n for n in needed if not os.path.isfile(os.path.join(folder, n))]
    if missing:
        raise CheckpointFormatError(os.path.join(folder, missing[0]),
                                    f"Incomplete Paint-by-Example folder (missing {', '.join(missing)})",
                                    hint=LAYOUT_HINT)


def _load_diffusers_part(folder: str, sub: str, dtype):
    import diffusers

    with open(os.path.join(folder, sub, "config.json"), encoding="utf-8") as f:
        class_name = json.load(f).get("_class_name", "")
    expected = {"unet": "UNet2DConditionModel", "vae": "AutoencoderKL"}[sub]
    if class_name != expected:
        raise CheckpointFormatError(os.path.join(folder, sub, "config.json"),
                                    f"'{sub}' is a {class_name or 'unknown model'}, not a {expected}", hint=LAYOUT_HINT)
    try:
        return getattr(diffusers, expected).from_pretrained(folder, subfolder=sub, torch_dtype=dtype,
                                                            local_files_only=True)
    except (OSError, EnvironmentError, ValueError) as exc:
        raise CheckpointFormatError(os.path.join(folder, sub), f"Could not load the {sub} ({str(exc)[:300]})",
                                    hint=LAYOUT_HINT) from exc


def _load_scheduler(folder: str):
    import diffusers

    path = os.path.join(folder, "scheduler", "scheduler_config.json")
    with open(path, encoding="utf-8") as f:
        config = json.load(f)
    scheduler_class = getattr(diffusers, config.get("_class_name", "PNDMScheduler"), None)
    if scheduler_class is None:
        raise CheckpointFormatError(path, f"Unknown scheduler class {config.get('_class_name')!r}", hint=LAYOUT_HINT)
    return scheduler_class.from_config(config)
