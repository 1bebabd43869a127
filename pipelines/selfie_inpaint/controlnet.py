"""Total Selfie's modified ControlNet (thesis 3.2.2): any text-to-image ControlNet guides the
selfie-conditioned UNet by receiving the selfie embedding where it would receive text.

Loads diffusers ``ControlNetModel`` folders and single SD1.5 files (``.safetensors``/``.pth``,
original or diffusers key layout) through ``from_single_file`` with the SD1.5 config shipped
in ``configs/controlnet_sd15`` (local files only).
"""
import os
from dataclasses import dataclass, replace
from typing import Optional

import torch
import torch.nn.functional as F

from ..common.errors import CheckpointFormatError, InputError
from ..common.images import image_to_bchw, match_batch

SD15_CONFIG_DIR = os.path.join(os.path.dirname(__file__), "configs", "controlnet_sd15")
SINGLE_FILE_SUFFIXES = (".safetensors", ".pth", ".pt", ".ckpt", ".bin")


def load_controlnet(path, device="cpu", dtype=torch.float32, config_dir: Optional[str] = None):
    """A diffusers folder (config.json + weights) or a single file read with ``config_dir`` (SD1.5 by default)."""
    from diffusers import ControlNetModel

    path = str(path)
    try:
        if os.path.isdir(path):
            if not os.path.isfile(os.path.join(path, "config.json")):
                raise CheckpointFormatError(os.path.join(path, "config.json"), "ControlNet config not found",
                                            hint="A diffusers ControlNet folder holds config.json and "
                                                 "diffusion_pytorch_model.safetensors.")
            model = ControlNetModel.from_pretrained(path, torch_dtype=dtype, local_files_only=True)
        elif os.path.isfile(path) and path.endswith(SINGLE_FILE_SUFFIXES):
            model = ControlNetModel.from_single_file(path, config=config_dir or SD15_CONFIG_DIR, torch_dtype=dtype,
                                                     local_files_only=True)
        else:
            raise CheckpointFormatError(path, "ControlNet not found",
                                        hint="Pick a diffusers ControlNet folder or an SD1.5 .safetensors/.pth file "
                                             "in the 'controlnet' model folder.")
    except CheckpointFormatError:
        raise
    except Exception as exc:  # diffusers raises OSError/ValueError/RuntimeError for foreign files
        raise CheckpointFormatError(path, f"Could not load the ControlNet ({type(exc).__name__}: {str(exc)[:300]})",
                                    hint="Only SD1.5 ControlNets fit Paint-by-Example / Total Selfie models.") from exc
    return model.to(device).eval()


@dataclass(frozen=True)
class ControlSpec:
    """A ControlNet with its control picture (IMAGE), strength and active fraction of the steps."""
    model: torch.nn.Module
    image: torch.Tensor
    scale: float = 1.0
    start: float = 0.0
    end: float = 1.0

    def prepared(self, hw, batch: int, guided: bool, device, dtype) -> "ControlSpec":
        """The control picture at the generation size, batched like the UNet input (0..1, [N,3,H,W])."""
        if not 0.0 <= self.start < self.end <= 1.0:
            raise InputError(f"ControlNet start ({self.start}) must be below end ({self.end}), both within 0..1.")
        cond = image_to_bchw(self.image).float()
        cond = match_batch(F.interpolate(cond, size=tuple(hw), mode="bilinear", align_corners=False), batch,
                           "The control image").clamp(0, 1)
        cond = torch.cat([cond] * 2) if guided else cond
        return replace(self, image=cond.to(device, dtype))

    def active(self, step: int, num_steps: int) -> bool:
        return not (step / num_steps < self.start or (step + 1) / num_steps > self.end)

    def residuals(self, model_input, t, embeddings, step: int, num_steps: int):
        """(down residuals, mid residual) for the UNet, or (None, None) when off at this step."""
        if self.scale == 0.0 or not self.active(step, num_steps):
            return None, None
        down, mid = self.model(model_input, t, encoder_hidden_states=embeddings, controlnet_cond=self.image,
                               conditioning_scale=float(self.scale), return_dict=False)
        return down, mid


def check_fits(controlnet, unet) -> None:
    """A ControlNet must mirror the UNet's encoder (SD1.5 for SD1.5-based Paint-by-Example)."""
    c, u = controlnet.config, unet.config
    pairs = {"cross_attention_dim": (c.cross_attention_dim, u.cross_attention_dim),
             "block_out_channels": (tuple(c.block_out_channels), tuple(u.block_out_channels))}
    wrong = [f"{k} {a} vs the UNet's {b}" for k, (a, b) in pairs.items() if a != b]
    if wrong:
        raise InputError(f"This ControlNet does not fit the inpainting model ({'; '.join(wrong)}). "
                         "Use a ControlNet trained for the same base (SD1.5 for Paint-by-Example / Total Selfie).")
