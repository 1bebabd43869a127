"""Loads MimicMotion as published: an SVD-XT-1.1 diffusers folder, component by component
(local files only), with ``MimicMotion_1.pth`` / ``MimicMotion_1-1.pth`` on top (``unet.*``
over the SVD UNet, ``pose_net.*`` into PoseNet). Also accepts Kijai's merged
``MimicMotionMergedUnet_*.safetensors`` (plain UNet keys) with its PoseNet from ``pose_net.*``
keys in the same file or the ``mimic_motion_pose_net.safetensors`` beside it.

The UNet is built empty (meta device) from ``unet/config.json`` - or from the SVD-XT UNet config
shipped in ``configs/`` when the folder has no ``unet/`` (downloaders fetch SVD for MimicMotion
without it, since the MimicMotion file carries every UNet tensor) - and takes the file's tensors
directly; only tensors the file lacks are read from the SVD folder's UNet weights. So the SVD UNet
is never loaded just to be overwritten.

A checkpoint whose ``conv_in`` takes 16 channels (noise + front, back and background
latents, thesis 4.2.1) makes a Fit Check model: the UNet is built with that input width.

The MimicMotion version is read from the file name, as released (the weights of 1.0 and 1.1 have
the same layout): ``MimicMotion_1-1.pth`` / ``MimicMotionMergedUnet_1-1-fp16.safetensors`` are
1.1, made for 72-frame tiles (its configs/test.yaml); ``MimicMotion.pth`` / ``MimicMotion_1.pth`` /
``..._1-0...`` are 1.0, at most 16 frames (its first README)."""
import glob
import json
import os
import re

import torch

from ..common.checkpoints import drop_unsaved_buffers, load_into, load_state_dict, sub_dict
from ..common.errors import CheckpointFormatError
from .pose_net import PREFIX as POSE_PREFIX
from .pose_net import PoseNet

SVD_PARTS = ("vae", "image_encoder", "feature_extractor", "scheduler")  # unet/ is optional
UNET_CLASS = "UNetSpatioTemporalConditionModel"
SVD_PIPELINE_CLASS = "StableVideoDiffusionPipeline"
BUILTIN_UNET_CONFIG = os.path.join(os.path.dirname(__file__), "configs", "svd_xt_unet.json")
UNET_PREFIX = "unet."
SIDE_POSE_NET = "mimic_motion_pose_net.safetensors"
LATENT_CHANNELS = 4
SUPPORTED_IN_CHANNELS = (8, 16)
TILE_FRAMES = {"1.1": 72, "1.0": 16}  # what each MimicMotion release generates per model call
FIT_CHECK_TILE_FRAMES = 16  # thesis 4.2: 16 (or 24) frames per segment


def mimicmotion_version(weights_path: str):
    """'1.1', '1.0' or None (not a MimicMotion file name, e.g. a Fit Check checkpoint)."""
    name = os.path.basename(weights_path).lower()
    if "mimicmotion" not in name:
        return None
    return "1.1" if re.search(r"(^|[^0-9])1[-_.]1([^0-9]|$)", name) else "1.0"


def _read_json(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return {}


def is_svd_folder(folder: str) -> bool:
    """True for an SVD diffusers folder: unet/config.json names UNetSpatioTemporalConditionModel, or
    there is no unet/config.json and model_index.json names the SVD pipeline or that UNet."""
    unet_config = os.path.join(folder, "unet", "config.json")
    if os.path.isfile(unet_config):
        return _read_json(unet_config).get("_class_name") == UNET_CLASS
    index = _read_json(os.path.join(folder, "model_index.json"))
    unet_entry = index.get("unet")
    return index.get("_class_name") == SVD_PIPELINE_CLASS or (isinstance(unet_entry, list) and UNET_CLASS in unet_entry)


def check_svd_folder(folder: str) -> None:
    missing = [p for p in SVD_PARTS if not os.path.isdir(os.path.join(folder, p))]
    if missing or not is_svd_folder(folder):
        problem = (f"The SVD folder lacks {', '.join(missing)}" if missing
                   else f"Neither unet/config.json nor model_index.json describes a {UNET_CLASS}")
        raise CheckpointFormatError(os.path.join(folder, "model_index.json"), problem,
                                    hint="Pick the stable-video-diffusion-img2vid-xt-1-1 diffusers folder "
                                         f"(with {', '.join(SVD_PARTS)}; unet/ optional) in models/diffusers.")


def unet_config(folder: str) -> dict:
    """The SVD folder's unet/config.json, else the shipped SVD-XT UNet config."""
    path = os.path.join(folder, "unet", "config.json")
    return _read_json(path if os.path.isfile(path) else BUILTIN_UNET_CONFIG)


def _variant(folder: str):
    """'fp16' when a component folder holds only fp16 variant files (a common partial download)."""
    weights = [n for n in os.listdir(folder) if n.endswith((".safetensors", ".bin"))]
    return "fp16" if weights and all(".fp16." in n for n in weights) else None


EXPECTED_KEYS = ["unet.conv_in.weight", "unet.down_blocks.*", "unet.up_blocks.*",
                 "pose_net.conv_layers.{0,2,...,14}.weight/bias", "pose_net.final_proj.weight",
                 "pose_net.final_proj.bias", "pose_net.scale"]


def split_weights(state: dict, path: str) -> tuple:
    """(UNet tensors, PoseNet tensors) of a MimicMotion file, in either published layout."""
    if any(k.startswith(UNET_PREFIX) for k in state):
        unet_sd = sub_dict(state, UNET_PREFIX)
    elif "conv_in.weight" in state and any(k.startswith("down_blocks.") for k in state):
        unet_sd = {k: v for k, v in state.items() if not k.startswith(POSE_PREFIX)}
    else:
        unet_sd = {}
    pose_sd = sub_dict(state, POSE_PREFIX)
    side = os.path.join(os.path.dirname(path), SIDE_POSE_NET)
    if not pose_sd and unet_sd and os.path.isfile(side):
        pose_sd = load_state_dict(side)
    if not unet_sd or not pose_sd:
        lacking = "UNet (unet.*)" if not unet_sd else f"PoseNet (pose_net.*, or {SIDE_POSE_NET} beside it)"
        raise CheckpointFormatError(path, f"This is not a MimicMotion checkpoint: no {lacking} weights",
                                    expected=EXPECTED_KEYS,
                                    hint="Use MimicMotion_1.pth / MimicMotion_1-1.pth from the official release.")
    return unet_sd, pose_sd


def _input_width(config: dict, unet_sd: dict, path: str) -> int:
    """The UNet's input channels: the file's conv_in width when it has one (a Fit Check
    checkpoint feeds more latents than SVD), else the config's."""
    conv_in = unet_sd.get("conv_in.weight")
    width = int(conv_in.shape[1]) if conv_in is not None else int(config.get("in_channels", 8))
    if width not in SUPPORTED_IN_CHANNELS:
        raise CheckpointFormatError(path, f"unet.conv_in takes {width} channels; supported are "
                                    f"{SUPPORTED_IN_CHANNELS} (MimicMotion: noise + front latent; Fit Check: "
                                    "noise + front, back and background latents)")
    return width


def _svd_unet_files(svd_dir: str) -> list:
    """The SVD folder's UNet weight files (full precision preferred over the fp16 variant; shards included)."""
    folder = os.path.join(svd_dir, "unet")
    for pattern in ("diffusion_pytorch_model*.safetensors", "diffusion_pytorch_model*.bin"):
        found = sorted(glob.glob(os.path.join(folder, pattern)))
        full = [f for f in found if ".fp16." not in os.path.basename(f)]
        if found:
            return full or found
    return []


def _read_svd_tensors(svd_dir: str, keys: list, path: str) -> dict:
    """The named UNet tensors from the SVD folder's weights, reading only those (safetensors)."""
    files = _svd_unet_files(svd_dir)
    if not files:
        raise CheckpointFormatError(path, f"The file holds only part of the UNet ({len(keys)} tensors missing, e.g. "
                                    f"{keys[0]}) and the SVD folder has no UNet weights to take them from",
                                    hint="Use the full MimicMotion_1-1.pth, or put SVD-XT's unet/ weights "
                                         "(diffusion_pytorch_model.safetensors) into the SVD folder.")
    wanted, found = set(keys), {}
    for file in files:
        if file.endswith(".safetensors"):
            from safetensors import safe_open

            with safe_open(file, framework="pt") as fh:
                found.update({k: fh.get_tensor(k) for k in fh.keys() if k in wanted})
        else:
            found.update({k: v for k, v in load_state_dict(file).items() if k in wanted})
    return found


def build_unet(svd_dir: str, unet_sd: dict, path: str, dtype=torch.float32):
    """The UNet from its config (built empty on the meta device) holding the file's tensors, the
    SVD folder's for any the file lacks. ``unet_sd`` is emptied as its tensors move in, so the
    file's copy and the model's never coexist in full. A key the UNet lacks or a tensor of another
    shape (a checkpoint for a different base model) is an error."""
    from diffusers import UNetSpatioTemporalConditionModel

    config = unet_config(svd_dir)
    config["in_channels"] = _input_width(config, unet_sd, path)
    with torch.device("meta"):
        unet = UNetSpatioTemporalConditionModel.from_config(config)
    for key in set(unet_sd) - set(drop_unsaved_buffers(unet_sd, unet)):
        del unet_sd[key]
    own = unet.state_dict()
    unexpected = [k for k in unet_sd if k not in own]
    wrong = [k for k in unet_sd if k in own and tuple(unet_sd[k].shape) != tuple(own[k].shape)]
    if unexpected or wrong:
        k = (unexpected or wrong)[0]
        detail = (f"{len(unexpected)} UNet key(s) the SVD UNet lacks (e.g. {k})" if unexpected else
                  f"{len(wrong)} UNet tensor(s) of another shape (e.g. {k}: {tuple(unet_sd[k].shape)} vs "
                  f"{tuple(own[k].shape)})")
        raise CheckpointFormatError(path, f"The weights do not fit this SVD UNet: {detail}",
                                    expected=[UNET_PREFIX + k for k in own],
                                    hint="MimicMotion weights go over stable-video-diffusion-img2vid-xt-1-1.")
    lacking = [k for k in own if k not in unet_sd]
    merged = len(unet_sd)
    if lacking:
        unet_sd.update(_read_svd_tensors(svd_dir, lacking, path))
    tensors = {k: unet_sd.pop(k).to(dtype) for k in list(own) if k in unet_sd}
    load_into(unet, tensors, path, "SVD UNet (MimicMotion unet.* over the SVD folder's unet/)", assign=True)
    return unet.eval(), merged


def load_pose_net(pose_sd: dict, width: int, path: str) -> PoseNet:
    net = PoseNet(width)
    load_into(net, pose_sd, path, f"MimicMotion PoseNet (final_proj to {width} channels, the UNet's first block)")
    return net


def load_fitcheck_pipeline(svd_dir: str, weights_path: str, device="cpu", dtype=torch.float32):
    """The FitCheckPipeline of an SVD-XT folder plus MimicMotion (or Fit Check) weights."""
    from diffusers import AutoencoderKLTemporalDecoder, EulerDiscreteScheduler
    from transformers import CLIPImageProcessor, CLIPVisionModelWithProjection

    from .pipeline import FitCheckPipeline

    check_svd_folder(svd_dir)
    unet_sd, pose_sd = split_weights(load_state_dict(weights_path), weights_path)  # the file's dict is dropped here

    def part(cls, name):
        folder = os.path.join(svd_dir, name)
        try:
            return cls.from_pretrained(folder, local_files_only=True, torch_dtype=dtype, variant=_variant(folder))
        except (OSError, ValueError) as exc:  # missing or partial weight files
            raise CheckpointFormatError(os.path.join(folder, "config.json"), f"Could not load the SVD {name} "
                                        f"({str(exc)[:200]})", hint="Re-download that part of the SVD folder.") from exc

    unet, merged = build_unet(svd_dir, unet_sd, weights_path, dtype)
    pose_net = load_pose_net(pose_sd, unet.config.block_out_channels[0], weights_path).to(dtype)
    vae = part(AutoencoderKLTemporalDecoder, "vae")
    if dtype == torch.float16 and vae.config.force_upcast:  # SVD encodes in fp32 (fp16 overflows there)
        vae.encoder.float()
        vae.quant_conv.float()
    image_encoder = part(CLIPVisionModelWithProjection, "image_encoder")
    processor = CLIPImageProcessor.from_pretrained(os.path.join(svd_dir, "feature_extractor"), local_files_only=True)
    scheduler = EulerDiscreteScheduler.from_pretrained(os.path.join(svd_dir, "scheduler"), local_files_only=True)
    models = [m.to(device).eval().requires_grad_(False) for m in (unet, vae, image_encoder, pose_net)]
    version = mimicmotion_version(weights_path)
    tile_frames = TILE_FRAMES[version] if version and unet.config.in_channels == 8 else FIT_CHECK_TILE_FRAMES
    named = os.path.basename(weights_path) + (f" (MimicMotion {version})" if version else "")
    source = (f"{os.path.basename(os.path.normpath(svd_dir))} + {named}, {merged} UNet tensors from the file, "
              f"{tile_frames}-frame tiles by default")
    return FitCheckPipeline(*models[:3], processor, scheduler, models[3], source=source,
                            default_tile_frames=tile_frames)
