"""Selfie-conditioned inpainting (Total Selfie, thesis 3.2.1 and 3.5.4) on diffusers parts.

Paint-by-Example's sampler with the four-selfie embedding as cross-attention context, an
optional ControlNet that receives the same embedding in place of text, and the
background-preserving blending of eq. 3.4. IMAGE tensors are [B,H,W,3] in 0..1 and MASK
tensors [B,H,W] (1 = inpaint), as in ComfyUI.
"""
import copy
from typing import Optional, Sequence

import torch
import torch.nn.functional as F

from ..common.errors import InputError
from ..common.images import bchw_to_image, image_to_bchw, mask_to_b1hw, match_batch, to_signed, to_unsigned
from ..common.clip import ClipPreprocess
from ..common.progress import Progress, no_progress
from .controlnet import check_fits
from .blending import background_latent_at, blend, blends_at, dilate, latent_foreground
from .encoder import NUM_SELFIES, SELFIE_NAMES

SCHEDULERS = ("default", "pndm", "ddim", "euler", "dpmpp_2m")


class SelfieInpaintPipeline:
    """Holds the diffusers parts; ``inpaint`` runs one generation (parts are never modified)."""

    def __init__(self, unet, vae, image_encoder, scheduler, preprocess: ClipPreprocess, source: str = ""):
        self.unet = unet
        self.vae = vae
        self.image_encoder = image_encoder
        self.scheduler = scheduler
        self.preprocess = preprocess
        self.source = source  # the folder it was loaded from, recorded in fine-tune files

    def torch_modules(self) -> list:
        return [self.unet, self.vae, self.image_encoder]

    @property
    def mode(self) -> str:
        return self.image_encoder.mode

    @property
    def device(self) -> torch.device:
        return next(self.unet.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.unet.parameters()).dtype

    @property
    def vae_scale_factor(self) -> int:
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    def describe(self) -> str:
        if self.mode == "trained":
            return "trained Total Selfie encoder: the four selfies fused into 1 token (proj_out over 4 x CLIP)"
        return ("training-free: plain Paint-by-Example encoder, the four selfies as 4 cross-attention tokens "
                "(each through the stock projection)")

    @torch.no_grad()
    def encode_selfies(self, selfies: Sequence[torch.Tensor]) -> torch.Tensor:
        """Four IMAGEs (face, upper body, lower body, shoes; batch 1 or B each) -> [B, T, D] tokens."""
        if len(selfies) != NUM_SELFIES:
            raise InputError(f"Total Selfie needs {NUM_SELFIES} selfies ({', '.join(SELFIE_NAMES)}); got {len(selfies)}.")
        batch = max(s.shape[0] if s.ndim == 4 else 1 for s in selfies)
        enc_dtype = next(self.image_encoder.parameters()).dtype
        pixels = [match_batch(self.preprocess(image_to_bchw(s).float().to(self.device)), batch, f"The {name} selfie")
                  for s, name in zip(selfies, SELFIE_NAMES)]
        tokens = self.image_encoder.embed(torch.stack(pixels, dim=1).to(enc_dtype))
        return tokens.to(self.dtype)

    @torch.no_grad()
    def model_calls(self, steps: int, scheduler: str = "default") -> int:
        """Denoising iterations of one run (PNDM repeats one timestep: steps + 1), for progress bars."""
        sampler = make_scheduler(self.scheduler, scheduler)
        sampler.set_timesteps(steps)
        return len(sampler.timesteps)

    def inpaint(self, background: torch.Tensor, mask: torch.Tensor, selfies: Sequence[torch.Tensor], **kwargs):
        """Generate, then decode: IMAGE [B,H,W,3]. Keyword arguments as ``generate_latents``."""
        latents = self.generate_latents(background, mask, selfies, **kwargs)
        return self.decode(latents)

    @torch.no_grad()
    def generate_latents(self, background: torch.Tensor, mask: torch.Tensor, selfies: Sequence[torch.Tensor], *,
                         foreground_mask: Optional[torch.Tensor] = None, control=None, steps: int = 50,
                         cfg: float = 5.0, seed: int = 0, blend_s: float = 0.4, dilation: int = 21,
                         scheduler: str = "default", progress: Optional[Progress] = None) -> torch.Tensor:
        """The denoising loop; returns the final latents [B,4,h,w].

        ``mask`` (1 = inpaint) is Paint-by-Example's inpainting region (the x1.1 person box);
        ``foreground_mask`` is the finer person mask dilated by ``dilation`` px for eq. 3.4
        (the inpainting mask when absent); ``blend_s`` is s: blending runs while t > sT, so 0
        blends every step and 1 never. ``control`` is a ``controlnet.ControlSpec`` or None.
        """
        image, keep = self._prepare_inputs(background, mask)
        b, device, dtype = image.shape[0], self.device, self.dtype
        latent_hw = (image.shape[-2] // self.vae_scale_factor, image.shape[-1] // self.vae_scale_factor)
        embeds = match_batch(self.encode_selfies(selfies), b, "The selfie batch")
        guided = cfg > 1.0
        if guided:
            embeds = torch.cat([self.image_encoder.uncond_tokens(b).to(dtype), embeds])

        masked_latents = self._encode(image * keep)
        background_latents = self._encode(image)
        keep_latent = F.interpolate(keep, size=latent_hw)  # Paint-by-Example's mask channel: 1 = keep
        fg_mask = 1.0 - keep if foreground_mask is None else self._pixel_mask(foreground_mask, b, image)
        generated = latent_foreground(dilate(fg_mask, dilation), latent_hw).to(dtype)  # M̄ of eq. 3.4
        unet_extra = torch.cat([masked_latents, keep_latent.to(dtype)], dim=1)
        if guided:
            unet_extra = torch.cat([unet_extra] * 2)

        sampler = make_scheduler(self.scheduler, scheduler)
        sampler.set_timesteps(steps, device=device)
        timesteps = sampler.timesteps
        generator = torch.Generator("cpu").manual_seed(int(seed))
        noise = torch.randn((b, self.vae.config.latent_channels, *latent_hw), generator=generator).to(device, dtype)
        latents = noise * sampler.init_noise_sigma
        if control is not None:
            check_fits(control.model, self.unet)
            control = control.prepared(image.shape[-2:], b, guided, device, dtype)
        preview = LatentPreview.fit(background_latents, image)
        progress = progress or no_progress(len(timesteps))
        n = len(timesteps)
        for i, t in enumerate(timesteps):
            model_in = sampler.scale_model_input(torch.cat([latents] * 2) if guided else latents, t)
            down, mid = (None, None) if control is None else control.residuals(model_in, t, embeds, i, n)
            noise_pred = self.unet(torch.cat([model_in, unet_extra], dim=1), t, encoder_hidden_states=embeds,
                                   down_block_additional_residuals=down, mid_block_additional_residual=mid).sample
            if guided:
                uncond, cond = noise_pred.chunk(2)
                noise_pred = uncond + cfg * (cond - uncond)
            latents = sampler.step(noise_pred, t, latents).prev_sample
            if blends_at(i, n, blend_s):
                next_t = timesteps[i + 1] if i + 1 < n else None
                background_t = background_latent_at(sampler, background_latents, noise, next_t)
                latents = blend(latents, background_t, generated).to(dtype)
            progress.step(preview=preview(latents))
        return latents

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        pixels = self.vae.decode(latents / self.vae.config.scaling_factor).sample
        return bchw_to_image(to_unsigned(pixels.float())).cpu()

    def _prepare_inputs(self, background, mask):
        image = image_to_bchw(background).float().to(self.device)
        multiple = self.vae_scale_factor * 2 ** (len(self.unet.config.block_out_channels) - 1)
        h, w = image.shape[-2:]
        if h % multiple or w % multiple:
            raise InputError(f"The background is {w}x{h}; this model needs sides that are multiples of {multiple} "
                             f"(e.g. {max(multiple, w // multiple * multiple)}x{max(multiple, h // multiple * multiple)}). "
                             "Resize or crop it first (core 'Upscale Image' node).")
        inpaint = self._pixel_mask(mask, image.shape[0], image)
        if inpaint.sum() == 0:
            raise InputError("The inpainting mask is empty: nothing to inpaint. Connect the person box mask.")
        keep = (inpaint < 0.5).to(image.dtype)
        return to_signed(image), keep

    def _pixel_mask(self, mask, batch, image) -> torch.Tensor:
        m = mask_to_b1hw(mask).float().to(self.device)
        if m.shape[-2:] != image.shape[-2:]:
            raise InputError(f"The mask is {m.shape[-1]}x{m.shape[-2]} but the background is "
                             f"{image.shape[-1]}x{image.shape[-2]}; give them the same size.")
        return (match_batch(m, batch, "The mask") >= 0.5).to(image.dtype)

    def _encode(self, pixels: torch.Tensor) -> torch.Tensor:
        latents = self.vae.encode(pixels.to(self.dtype)).latent_dist.mode()
        return latents * self.vae.config.scaling_factor


def make_scheduler(base, name: str):
    """A fresh scheduler for one run (``default`` = the folder's own class), sharing its noise schedule."""
    import diffusers

    if name not in SCHEDULERS:
        raise InputError(f"Unknown scheduler {name!r}; choose one of {', '.join(SCHEDULERS)}.")
    if name == "default":
        return copy.deepcopy(base)
    classes = {"pndm": (diffusers.PNDMScheduler, {"skip_prk_steps": True}),
               "ddim": (diffusers.DDIMScheduler, {}),
               "euler": (diffusers.EulerDiscreteScheduler, {}),
               "dpmpp_2m": (diffusers.DPMSolverMultistepScheduler, {})}
    cls, extra = classes[name]
    return cls.from_config(base.config, **extra)


class LatentPreview:
    """Cheap per-step previews: a linear latent -> RGB map least-squares fitted on the background."""

    def __init__(self, weight: torch.Tensor):
        self.weight = weight  # [C+1, 3]

    @classmethod
    def fit(cls, latents: torch.Tensor, image: torch.Tensor) -> "LatentPreview":
        small = F.adaptive_avg_pool2d(to_unsigned(image.float()), latents.shape[-2:])
        x = torch.cat([latents.float(), torch.ones_like(latents[:, :1].float())], 1).permute(0, 2, 3, 1).reshape(-1, latents.shape[1] + 1)
        y = small.permute(0, 2, 3, 1).reshape(-1, 3)
        return cls(torch.linalg.lstsq(x.cpu(), y.cpu()).solution)

    def __call__(self, latents: torch.Tensor) -> torch.Tensor:
        x = torch.cat([latents[:1].float(), torch.ones_like(latents[:1, :1].float())], 1).permute(0, 2, 3, 1).cpu()
        return (x @ self.weight).clamp(0, 1)
