"""Loads MimicMotion as published: an SVD-XT-1.1 diffusers folder, component by component
(local files only), with ``MimicMotion_1.pth`` / ``MimicMotion_1-1.pth`` on top (``unet.*``
merged strict=False over the SVD UNet, ``pose_net.*`` into PoseNet). Also accepts Kijai's
merged ``MimicMotionMergedUnet_*.safetensors`` (plain UNet keys) with its PoseNet from
``pose_net.*`` keys in the same file or the ``mimic_motion_pose_net.safetensors`` beside it.

A checkpoint whose ``conv_in`` takes 16 channels (noise + front, back and background
latents, thesis 4.2.1) makes a Fit Check model: the UNet's ``conv_in`` is widened to fit."""
import json
import os

import torch

from ..common.checkpoints import load_into, load_state_dict, sub_dict
from ..common.errors import CheckpointFormatError
from .pose_net import PREFIX as POSE_PREFIX
from .pose_net import PoseNet

SVD_PARTS = ("unet", "vae", "image_encoder", "feature_extractor", "scheduler")
UNET_CLASS = "UNetSpatioTemporalConditionModel"
UNET_PREFIX = "unet."
SIDE_POSE_NET = "mimic_motion_pose_net.safetensors"
LATENT_CHANNELS = 4
SUPPORTED_IN_CHANNELS = (8, 16)


def is_svd_folder(folder: str) -> bool:
    """True for a diffusers folder whose unet/config.json names UNetSpatioTemporalConditionModel."""
    try:
        with open(os.path.join(folder, "unet", "config.json"), encoding="utf-8") as fh:
            return json.load(fh).get("_class_name") == UNET_CLASS
    except (OSError, ValueError):
        return False


def check_svd_folder(folder: str) -> None:
    missing = [p for p in SVD_PARTS if not os.path.isdir(os.path.join(folder, p))]
    if missing or not is_svd_folder(folder):
        problem = (f"The SVD folder lacks {', '.join(missing)}" if missing
                   else f"unet/config.json does not describe a {UNET_CLASS}")
        raise CheckpointFormatError(os.path.join(folder, "model_index.json"), problem,
                                    hint="Pick the stable-video-diffusion-img2vid-xt-1-1 diffusers folder "
                                         f"(with {', '.join(SVD_PARTS)}) in models/diffusers.")


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


def _widen_conv_in(unet, in_channels: int, path: str) -> None:
    """A Fit Check checkpoint feeds more latents than SVD: give conv_in the file's input width."""
    if in_channels not in SUPPORTED_IN_CHANNELS:
        raise CheckpointFormatError(path, f"unet.conv_in takes {in_channels} channels; supported are "
                                    f"{SUPPORTED_IN_CHANNELS} (MimicMotion: noise + front latent; Fit Check: "
                                    "noise + front, back and background latents)")
    old = unet.conv_in
    unet.conv_in = torch.nn.Conv2d(in_channels, old.out_channels, old.kernel_size, padding=old.padding,
                                   device=old.weight.device, dtype=old.weight.dtype)
    unet.register_to_config(in_channels=in_channels)


def merge_unet(unet, unet_sd: dict, path: str) -> int:
    """strict=False merge as the official loader does, but a key the UNet lacks or a tensor of
    another shape (a checkpoint for a different base model) is an error. Returns keys merged."""
    conv_in = unet_sd.get("conv_in.weight")
    if conv_in is not None and conv_in.shape[1] != unet.conv_in.in_channels:
        _widen_conv_in(unet, conv_in.shape[1], path)
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
    if unet.config.in_channels not in SUPPORTED_IN_CHANNELS:
        raise CheckpointFormatError(path, f"The UNet takes {unet.config.in_channels} input channels",
                                    hint="Supported: 8 (MimicMotion) or 16 (Fit Check).")
    unet.load_state_dict(unet_sd, strict=False)
    return len(unet_sd)


def load_pose_net(pose_sd: dict, width: int, path: str) -> PoseNet:
    net = PoseNet(width)
    load_into(net, pose_sd, path, f"MimicMotion PoseNet (final_proj to {width} channels, the UNet's first block)")
    return net


def load_fitcheck_pipeline(svd_dir: str, weights_path: str, device="cpu", dtype=torch.float32):
    """The FitCheckPipeline of an SVD-XT folder plus MimicMotion (or Fit Check) weights."""
    from diffusers import AutoencoderKLTemporalDecoder, EulerDiscreteScheduler, UNetSpatioTemporalConditionModel
    from transformers import CLIPImageProcessor, CLIPVisionModelWithProjection

    from .pipeline import FitCheckPipeline

    check_svd_folder(svd_dir)
    unet_sd, pose_sd = split_weights(load_state_dict(weights_path), weights_path)

    def part(cls, name):
        folder = os.path.join(svd_dir, name)
        try:
            return cls.from_pretrained(folder, local_files_only=True, torch_dtype=dtype, variant=_variant(folder))
        except (OSError, ValueError) as exc:  # missing or partial weight files
            raise CheckpointFormatError(os.path.join(folder, "config.json"), f"Could not load the SVD {name} "
                                        f"({str(exc)[:200]})", hint="Re-download that part of the SVD folder.") from exc

    unet = part(UNetSpatioTemporalConditionModel, "unet")
    merged = merge_unet(unet, unet_sd, weights_path)
    pose_net = load_pose_net(pose_sd, unet.config.block_out_channels[0], weights_path).to(dtype)
    vae = part(AutoencoderKLTemporalDecoder, "vae")
    if dtype == torch.float16 and vae.config.force_upcast:  # SVD encodes in fp32 (fp16 overflows there)
        vae.encoder.float()
        vae.quant_conv.float()
    image_encoder = part(CLIPVisionModelWithProjection, "image_encoder")
    processor = CLIPImageProcessor.from_pretrained(os.path.join(svd_dir, "feature_extractor"), local_files_only=True)
    scheduler = EulerDiscreteScheduler.from_pretrained(os.path.join(svd_dir, "scheduler"), local_files_only=True)
    models = [m.to(device).eval().requires_grad_(False) for m in (unet, vae, image_encoder, pose_net)]
    source = f"{os.path.basename(os.path.normpath(svd_dir))} + {os.path.basename(weights_path)} ({merged} UNet tensors)"
    return FitCheckPipeline(*models[:3], processor, scheduler, models[3], source=source)
