"""Loading the official Inverse Painting checkpoints (ArmastusChen/inverse_painting) and the
diffusers folders they sit on. Nothing here imports ComfyUI.

Official layout (Hugging Face ``boweiche/inverse_painting``)::

    checkpoints/renderer/config.yaml
    checkpoints/renderer/ckpt/checkpoint-global_step-200000.ckpt   # unet_state_dict, referencenet_state_dict,
                                                                   # cur_image_guider_state_dict,
                                                                   # image_adpater_state_dict (sic), PE_state_dict
    checkpoints/RP/checkpoint-global_step-80000.ckpt               # RP_state_dict, PE_state_dict
    base_ckpt/realisticVisionV51_v51VAE/   (diffusers SD1.5 folder: unet, vae, text_encoder, tokenizer)
    base_ckpt/clip-vit-base-patch32/       (transformers CLIP folder)
"""
import json
import os
from dataclasses import dataclass

import torch

from ..common.checkpoints import load_into, load_state_dict, require_keys
from ..common.errors import CheckpointFormatError

RENDERER_KEYS = ("unet_state_dict", "referencenet_state_dict", "cur_image_guider_state_dict",
                 "image_adpater_state_dict", "PE_state_dict")
RP_KEYS = ("RP_state_dict", "PE_state_dict")


@dataclass
class PaintingConfig:
    """The fields of the renderer's config.yaml that inference uses (official defaults)."""

    PE_type: str = "abs"
    PE_time_max: float = 100.0
    PE_time_interval: float = 5.0
    use_PE: bool = True
    use_TP: bool = True
    use_RP: bool = True
    binary_threshold: float = 0.2  # difference-mask threshold alpha (RP_threshold in training)


def find_config(checkpoint_path: str):
    """config.yaml as the official demo finds it (``<ckpt dir>/../config.yaml``), or beside the file."""
    here = os.path.dirname(os.path.abspath(checkpoint_path))
    for cand in (os.path.join(here, "..", "config.yaml"), os.path.join(here, "config.yaml")):
        if os.path.isfile(cand):
            return os.path.normpath(cand)
    return None


def load_config(path) -> PaintingConfig:
    import yaml

    cfg = PaintingConfig()
    if path is None:
        return cfg
    try:
        with open(path, "r", encoding="utf-8") as fh:
            data = yaml.safe_load(fh) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise CheckpointFormatError(path, f"config.yaml could not be read ({exc})") from exc
    if not isinstance(data, dict):
        raise CheckpointFormatError(path, "config.yaml is not a mapping of settings")
    for key in ("PE_type", "PE_time_max", "PE_time_interval", "use_PE", "use_TP", "use_RP"):
        if key in data and data[key] is not None:
            setattr(cfg, key, type(getattr(cfg, key))(data[key]))
    for key in ("binary_threshold", "RP_threshold"):
        if isinstance(data.get(key), (int, float)):
            cfg.binary_threshold = float(data[key])
            break
    if cfg.PE_type != "abs":
        raise CheckpointFormatError(path, f"PE_type '{cfg.PE_type}' is not supported (the released renderer uses 'abs')")
    if not (cfg.use_PE and cfg.use_TP and cfg.use_RP):
        raise CheckpointFormatError(path, "This renderer was trained without time, text or mask conditioning "
                                          "(use_PE/use_TP/use_RP false); only the released two-stage model is supported")
    return cfg


def _load_checkpoint_dict(path: str, keys, what: str) -> dict:
    sd = load_state_dict(path, mmap=True)  # mapped: each sub-dict is paged in only when its module takes it
    if not isinstance(sd, dict):
        raise CheckpointFormatError(path, "Not a checkpoint dictionary", expected=keys)
    require_keys(sd, keys, path, what)
    return sd


def load_renderer_checkpoint(path: str) -> dict:
    return _load_checkpoint_dict(path, RENDERER_KEYS, "Inverse Painting renderer (checkpoint-global_step-200000.ckpt)")


def load_rp_checkpoint(path: str) -> dict:
    return _load_checkpoint_dict(path, RP_KEYS,
                                 "Inverse Painting mask generator (RP, checkpoint-global_step-80000.ckpt)")


def stream_unet(ucfg: dict, sd: dict, key: str, path: str, what: str, dtype=None, allow_missing=None):
    """The UNet of ``sd[key]`` without a second copy of its weights: built on the meta device, it takes the
    checkpoint's tensors (converted to ``dtype``, float32 by default) and ``sd[key]`` is removed from ``sd``, so
    the checkpoint's own tensors of this part are freed once the module holds them. ``allow_missing(unet)``
    names key prefixes the file may lack; those stay zero (the official ReferenceNet's unused tail)."""
    from diffusers import UNet2DConditionModel

    with torch.device("meta"):
        unet = UNet2DConditionModel.from_config(ucfg)
    dtype = dtype or torch.float32
    part = sd.pop(key)
    tensors = {k: v.to(dtype) if torch.is_tensor(v) else v for k, v in part.items()}
    del part
    load_into(unet, tensors, path, what, allow_missing=allow_missing(unet) if allow_missing else (), assign=True)
    for name, param in list(unet.named_parameters()):
        if param.is_meta:
            owner, attr = unet.get_submodule(name.rpartition(".")[0]), name.rpartition(".")[2]
            setattr(owner, attr, torch.nn.Parameter(torch.zeros(param.shape, dtype=dtype), requires_grad=False))
    return unet


def check_base_dir(base_dir: str, parts=("unet", "vae", "text_encoder", "tokenizer")) -> None:
    """The base Stable Diffusion 1.5 diffusers folder (RealisticVision 5.1 in the official code)."""
    missing = [p for p in parts if not os.path.isdir(os.path.join(base_dir, p))]
    if missing:
        raise CheckpointFormatError(os.path.join(base_dir, "model_index.json"),
                                    f"The base model folder lacks {', '.join(missing)}",
                                    hint="Pick a Stable Diffusion 1.5 diffusers folder (unet/, vae/, text_encoder/, "
                                         "tokenizer/), e.g. realisticVisionV51_v51VAE.")


def unet_config(base_dir: str) -> dict:
    path = os.path.join(base_dir, "unet", "config.json")
    try:
        with open(path, "r", encoding="utf-8") as fh:
            return json.load(fh)
    except (OSError, ValueError) as exc:
        raise CheckpointFormatError(path, f"UNet config could not be read ({exc})") from exc


def check_clip_dir(clip_dir: str) -> None:
    if not os.path.isfile(os.path.join(clip_dir, "config.json")):
        raise CheckpointFormatError(os.path.join(clip_dir, "config.json"), "No CLIP model config in this folder",
                                    hint="Pick the transformers folder of openai/clip-vit-base-patch32.")
