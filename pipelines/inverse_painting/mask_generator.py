"""The learned mask instruction generator "RP" (thesis eq. 6.3, official RP_wrapper).

UNet in the SD layout without a timestep input: spatial input
``[E(I_{t-1}), E(I_T), M_d]`` (4 + 4 + 1 = 9 channels at 1/8 resolution; the official code puts
the current canvas first), cross-attention context ``[time token, 77 text tokens]``, one output
channel through a sigmoid. Thresholds as the official demo: 0.5, 0.4, ..., 0.1 until the mask covers
at least 5 % of the image and its IoU with the previous mask is below 0.8 (first update: 0.5).
"""
import os
from typing import Optional

import torch
import torch.nn.functional as F

from ..common.checkpoints import load_into
from ..common.errors import CheckpointFormatError, InputError
from .modules import TimeEncoder
from .sd_parts import SDParts
from .difference import default_distance, difference_mask
from .weights import PaintingConfig, check_base_dir, load_config, load_rp_checkpoint, stream_unet, unet_config

THRESHOLDS = (0.5, 0.4, 0.3, 0.2, 0.1)
MIN_COVERAGE = 0.05
MAX_IOU = 0.8


class _NoTime(torch.nn.Module):
    def forward(self, *args, **kwargs):
        return None


def strip_time_conditioning(unet) -> None:
    """The official RP UNet is called without a timestep: no time embedding reaches the resnets."""
    from diffusers.models.resnet import ResnetBlock2D

    unet.time_embedding = _NoTime()
    for m in unet.modules():
        if isinstance(m, ResnetBlock2D):
            m.time_emb_proj = None


def choose_threshold(prob: torch.Tensor, prev_mask: Optional[torch.Tensor]):
    """prob [B,1,H,W] -> (binary mask, threshold) by the official schedule."""
    total = prob.shape[-1] * prob.shape[-2]
    mask, thr = None, THRESHOLDS[0]
    for thr in THRESHOLDS:
        mask = (prob > thr).to(prob.dtype)
        if prev_mask is None:
            break
        if mask.sum() < int(total * MIN_COVERAGE):
            continue
        prev = (prev_mask > 0.5).to(prob.dtype)
        union = ((mask + prev) > 0).sum()
        iou = (mask * prev).sum() / union if union > 0 else torch.tensor(0.0)
        if iou < MAX_IOU:
            break
    return mask, thr


class RPMaskGenerator(SDParts):
    """Implements ``interfaces.MaskGenerator`` with the official RP weights."""

    name = "learned mask generator (Inverse Painting RP)"

    def __init__(self, unet, time_encoder, vae, text_encoder, config: PaintingConfig, distance=None, source=""):
        self.unet, self.time_encoder, self.vae, self.text_encoder = unet.eval(), time_encoder.eval(), vae, text_encoder
        self.config = config
        self.distance = distance or default_distance()
        self.name = f"{RPMaskGenerator.name}, M_d from {self.distance.name}"
        self.source = source
        self.last_threshold = None
        self._target_cache = None

    def torch_modules(self) -> list:
        return [self.unet, self.time_encoder, self.vae, self.text_encoder.model]

    def _drop_caches(self) -> None:
        self._target_cache = None

    def begin(self, target):
        self._target_cache = None

    def end(self):
        self._target_cache = None

    @torch.no_grad()
    def probability(self, canvas, target, instruction: str, time_s: float) -> torch.Tensor:
        """Sigmoid output at full resolution (nearest upsampling), [B,1,H,W]."""
        if canvas.shape[-2:] != target.shape[-2:]:
            raise InputError("Canvas and target must have the same size.")
        key = (target.data_ptr(), tuple(target.shape), float(target.float().sum()))
        if self._target_cache is None or self._target_cache[0] != key:
            self._target_cache = (key, self._encode(target))
        lat_t = self._target_cache[1].to(self.dtype)
        lat_c = self._encode(canvas).to(self.dtype)
        diff = difference_mask(target.float(), canvas.float(), alpha=self.config.binary_threshold,
                               distance=self.distance).to(self.device, self.dtype)
        diff = F.interpolate(diff, size=lat_t.shape[-2:], mode="nearest")
        x = torch.cat([lat_c, lat_t, diff], 1)
        txt = self.text_encoder(instruction or "").to(self.device, self.dtype)
        pe = self.time_encoder.embed_seconds(time_s, self.config.PE_time_max, self.config.PE_time_interval)
        ctx = torch.cat([pe.to(self.dtype), txt], 1)
        t = torch.zeros((), device=self.device)  # ignored: time conditioning is stripped
        out = self.unet(x, t, encoder_hidden_states=ctx, return_dict=False)[0]
        prob = torch.sigmoid(out.float())
        return F.interpolate(prob, size=target.shape[-2:], mode="nearest").cpu()

    def generate(self, canvas, target, instruction, time_s, prev_mask=None):
        prob = self.probability(canvas, target, instruction, time_s)
        if prev_mask is not None:
            prev_mask = prev_mask.float().cpu()
        mask, self.last_threshold = choose_threshold(prob, prev_mask)
        return mask


def load_mask_generator(checkpoint_path: str, base_dir: str, config_path: Optional[str] = None,
                        device=None, dtype=None, distance=None) -> RPMaskGenerator:
    """Load ``checkpoint-global_step-80000.ckpt`` (RP_state_dict, PE_state_dict) over a base SD1.5 folder.
    Time normalisation and α come from ``config_path`` (the renderer's config.yaml) or the official defaults;
    ``distance`` computes the M_d input (LPIPS as trained; the stand-in when None)."""
    from .renderer import load_sd_parts

    sd = load_rp_checkpoint(checkpoint_path)
    if config_path is None:
        cand = os.path.join(os.path.dirname(os.path.abspath(checkpoint_path)), "config.yaml")
        config_path = cand if os.path.isfile(cand) else None
    cfg = load_config(config_path)
    check_base_dir(base_dir, parts=("unet", "vae", "text_encoder", "tokenizer"))
    ucfg = dict(unet_config(base_dir))
    ucfg.update(in_channels=9, out_channels=1)
    unet = stream_unet(ucfg, sd, "RP_state_dict", checkpoint_path, "mask generator UNet (RP_state_dict)", dtype)
    strip_time_conditioning(unet)
    try:
        pe = TimeEncoder.from_state_dict_shapes(sd["PE_state_dict"])
    except KeyError as exc:
        raise CheckpointFormatError(checkpoint_path, f"PE_state_dict has an unexpected layout (no {exc})",
                                    expected=list(TimeEncoder().state_dict())) from exc
    load_into(pe, sd["PE_state_dict"], checkpoint_path, "time encoder (PE_state_dict)")
    vae, text = load_sd_parts(base_dir)
    g = RPMaskGenerator(unet, pe, vae, text, cfg, distance=distance, source=checkpoint_path)
    if device is not None or dtype is not None:
        g.to(device, dtype)
    return g
