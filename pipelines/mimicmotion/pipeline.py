"""Fit Check video sampling (thesis 4.2) on an SVD UNet with MimicMotion's PoseNet.

Frames 1-2 are the front and back references (frame generation strategy, 4.2.2); every
tile of the video holds them, so spatial self-attention can reach them (multi-reference
attention, 4.2.3) and progressive latent fusion blends the overlapping tiles. Feature
integration (4.2.1): VAE latents of the references are channel-concatenated with the noisy
latent, CLIP embeddings of front and back are added, PoseNet features are added to the
output of the UNet's first layer. Two modes, picked by the UNet's input width:

- Fit Check (16 channels): noise + front, back and background latents.
- MimicMotion (8 channels, the public weights): noise + front latent, as MimicMotion and SVD;
  the back image still enters as frame 2, through CLIP and attention; the background is unused.

Sampling follows MimicMotion's released settings: EDM/Euler (the SVD scheduler), a constant
guidance scale (its configs set min = max = 2), uncond = zero latents, embeddings and pose
features. The reference frames are dropped before decoding (they would only reproduce the
inputs), and decoding runs in chunks of frames.
"""
import torch

from ..common.errors import InputError
from ..common.progress import no_progress
from ..multiref.fusion import fuse_tiles, plan_tiles
from .pose_net import DOWNSCALE

REFERENCES = (0, 1)
MODES = {8: "MimicMotion", 16: "Fit Check"}


class ConvInAddition:
    """Adds features to the UNet's first layer output (where MimicMotion adds pose features)."""

    def __init__(self, conv_in):
        self.features = None
        self._handle = conv_in.register_forward_hook(self._add)

    def _add(self, _module, _inputs, output):
        return output if self.features is None else output + self.features.to(output.dtype)

    def remove(self) -> None:
        self._handle.remove()


def _image_batch(x, what: str) -> torch.Tensor:
    """[3,H,W] / [B,3,H,W] tensor or a list of [3,H,W] -> [B,3,H,W] float in 0..1."""
    if isinstance(x, (list, tuple)):
        if not x:
            raise InputError(f"{what}: no images were given.")
        x = torch.stack(list(x))
    if not torch.is_tensor(x) or x.ndim not in (3, 4) or x.shape[-3] != 3:
        shape = tuple(x.shape) if torch.is_tensor(x) else type(x).__name__
        raise InputError(f"{what} must be RGB images shaped [N,3,H,W]; got {shape}.")
    return (x if x.ndim == 4 else x.unsqueeze(0)).float()


def latent_preview(latent: torch.Tensor) -> torch.Tensor:
    """A false-colour look at a [4,h,w] latent as IMAGE [1,8h,8w,3] (no VAE decode per step)."""
    rgb = latent[:3].float()
    lo = rgb.amin(dim=(1, 2), keepdim=True)
    hi = rgb.amax(dim=(1, 2), keepdim=True)
    rgb = (rgb - lo) / (hi - lo).clamp_min(1e-6)
    return rgb.repeat_interleave(DOWNSCALE, 1).repeat_interleave(DOWNSCALE, 2).permute(1, 2, 0).unsqueeze(0).cpu()


def video_tiles(frames: int, tile_frames: int, overlap: int) -> list:
    """Frame indices per model call: one call when the video fits a tile, else overlapping
    tiles that all start with the two references."""
    if frames <= tile_frames:
        return [list(range(frames))]
    return plan_tiles(frames, tile_frames, overlap, REFERENCES)


def progress_total(num_poses: int, steps: int, tile_frames: int, overlap: int, decode_chunk: int) -> int:
    """Progress steps of one call: a step per (denoising step x tile), then one per decoded chunk."""
    tiles = video_tiles(len(REFERENCES) + num_poses, tile_frames, overlap)
    return steps * len(tiles) + -(-num_poses // max(decode_chunk, 1))


class FitCheckPipeline:
    def __init__(self, unet, vae, image_encoder, image_processor, scheduler, pose_net, source: str = "",
                 default_tile_frames: int = 16):
        self.unet, self.vae, self.image_encoder = unet, vae, image_encoder
        self.image_processor, self.scheduler, self.pose_net = image_processor, scheduler, pose_net
        self.source = source
        self.default_tile_frames = default_tile_frames  # what the checkpoint was made for (see loader.py)

    def tile_frames(self, requested: int = 0) -> int:
        """Frames per model call: ``requested``, or the checkpoint's own when it is 0 (auto)."""
        return int(requested) or self.default_tile_frames

    def torch_modules(self) -> list:
        return [self.unet, self.vae, self.image_encoder, self.pose_net]

    @property
    def device(self):
        return self.unet.device

    @property
    def dtype(self):
        return self.unet.dtype

    @property
    def conditioning_images(self) -> int:
        """How many VAE latents the UNet takes beside the noise (1: front; 3: front, back, background)."""
        return (self.unet.config.in_channels - self.unet.config.out_channels) // self.unet.config.out_channels

    @property
    def mode(self) -> str:
        return MODES.get(self.unet.config.in_channels, f"{self.unet.config.in_channels}-channel")

    def describe(self, background_given: bool, multi_reference: bool) -> str:
        """The user-facing line saying which mode runs and what each input does in it."""
        if self.conditioning_images >= 3:
            inputs = "front, back and background latents concatenated with the noise; CLIP of front + back"
        else:
            inputs = "front latent concatenated with the noise (back as frame 2 and in the mean of the CLIP embeddings)"
            if background_given:
                inputs += "; background unused: this checkpoint has no background input (8-channel conv_in)"
        attention = "multi-reference attention on" if multi_reference else "plain self-attention"
        return f"{self.mode} mode ({self.unet.config.in_channels}-channel UNet): {inputs}; {attention}; {self.source}"

    # -- conditioning --------------------------------------------------------------------------

    @torch.no_grad()
    def encode_latents(self, images: torch.Tensor, noise_aug_strength: float, generator) -> torch.Tensor:
        """VAE latents (distribution mode, unscaled as SVD takes them) of [B,3,H,W] images in 0..1,
        after SVD's noise augmentation of the conditioning images."""
        signed = images * 2.0 - 1.0
        if noise_aug_strength:
            signed = signed + noise_aug_strength * torch.randn(signed.shape, generator=generator).to(signed)
        encoder_dtype = self.vae.encoder.conv_in.weight.dtype
        return self.vae.encode(signed.to(self.device, encoder_dtype)).latent_dist.mode().float()

    @torch.no_grad()
    def encode_clip(self, images: torch.Tensor) -> torch.Tensor:
        """The CLIP image embeddings of [B,3,H,W] images combined -> [1,1,D]: their sum in Fit Check mode
        (thesis: f_im = E(front) + E(back)); their mean for the public MimicMotion weights, which were
        trained on one image's embedding (a sum would double its norm)."""
        from diffusers.pipelines.stable_video_diffusion.pipeline_stable_video_diffusion import (
            _resize_with_antialiasing,
        )

        size = self.image_encoder.config.image_size
        x = (_resize_with_antialiasing(images.to(self.device) * 2.0 - 1.0, (size, size)) + 1.0) / 2.0
        mean = torch.tensor(self.image_processor.image_mean, device=x.device).view(1, 3, 1, 1)
        std = torch.tensor(self.image_processor.image_std, device=x.device).view(1, 3, 1, 1)
        x = ((x - mean) / std).to(self.image_encoder.dtype)
        embeds = self.image_encoder(x).image_embeds.float()
        combined = embeds.sum(0) if self.conditioning_images >= 3 else embeds.mean(0)
        return combined.view(1, 1, -1)

    @torch.no_grad()
    def encode_poses(self, poses: torch.Tensor, chunk: int = 16) -> torch.Tensor:
        """PoseNet features [F, C, h, w] of pose images [F,3,H,W] in 0..1 (PoseNet takes -1..1)."""
        dtype = next(self.pose_net.parameters()).dtype
        out = [self.pose_net((poses[i:i + chunk].to(self.device) * 2.0 - 1.0).to(dtype)).float()
               for i in range(0, poses.shape[0], chunk)]
        return torch.cat(out)

    def _time_ids(self, fps: int, motion_bucket_id: int, noise_aug_strength: float) -> torch.Tensor:
        # SVD was micro-conditioned on fps - 1
        return torch.tensor([[fps - 1, motion_bucket_id, noise_aug_strength]] * 2, device=self.device,
                            dtype=self.dtype)

    # -- checks --------------------------------------------------------------------------------

    def _inputs(self, front, back, poses, background, reference_poses):
        front, back = _image_batch(front, "The front image")[:1], _image_batch(back, "The back image")[:1]
        poses = _image_batch(poses, "The pose images")
        height, width = front.shape[-2:]
        named = [("The back image", back), ("The pose images", poses)]
        if background is not None:
            background = _image_batch(background, "The background")[:1]
            named.append(("The background", background))
        if reference_poses is not None:
            reference_poses = _image_batch(reference_poses, "The reference poses")
            if reference_poses.shape[0] != len(REFERENCES):
                raise InputError(f"Give 2 reference poses (front, back); got {reference_poses.shape[0]}.")
            named.append(("The reference poses", reference_poses))
        for what, x in named:
            if tuple(x.shape[-2:]) != (height, width):
                raise InputError(f"{what} is {x.shape[-1]}x{x.shape[-2]} but the front image is {width}x{height}; "
                                 "resize them to one size.")
        if height % DOWNSCALE or width % DOWNSCALE:
            raise InputError(f"Width and height must be multiples of {DOWNSCALE} (got {width}x{height}).")
        if self.conditioning_images >= 3 and background is None:
            raise InputError("This Fit Check checkpoint (16-channel UNet) needs a background image; connect one "
                             "(e.g. the best of 'Rank Backgrounds').")
        if reference_poses is None:  # an empty pose canvas, as a pose detector draws for no person
            reference_poses = torch.zeros(len(REFERENCES), 3, height, width)
        return front, back, poses, background, reference_poses

    # -- sampling ------------------------------------------------------------------------------

    @torch.no_grad()
    def __call__(self, front, back, poses, background=None, reference_poses=None, steps: int = 25, cfg: float = 2.0,
                 tile_frames: int = 0, overlap: int = 4, seed: int = 0, fps: int = 7, motion_bucket_id: int = 127,
                 noise_aug_strength: float = 0.0, decode_chunk: int = 8, multi_reference: bool = True,
                 progress=None) -> torch.Tensor:
        """front/back/background [3,H,W] or [1,3,H,W], poses [N,3,H,W] (or a list), all 0..1;
        reference_poses: the front's and back's pose images [2,3,H,W] (an empty canvas if None);
        tile_frames 0 = the checkpoint's own tile length (``default_tile_frames``).
        Returns the N generated frames [N,H,W,3] in 0..1 (the two reference frames dropped)."""
        from diffusers import EulerDiscreteScheduler

        from ..multiref.diffusers_processor import enable_multi_reference

        if steps < 1 or decode_chunk < 1:
            raise InputError("steps and decode_chunk must be at least 1.")
        front, back, poses, background, reference_poses = self._inputs(front, back, poses, background,
                                                                       reference_poses)
        frames = len(REFERENCES) + poses.shape[0]
        tiles = video_tiles(frames, self.tile_frames(tile_frames), overlap)
        progress = progress or no_progress()

        generator = torch.Generator().manual_seed(int(seed))
        images = [front, back, background][:self.conditioning_images]
        cond_latents = self.encode_latents(torch.cat(images), noise_aug_strength, generator)
        cond_latents = cond_latents.flatten(0, 1).unsqueeze(0)  # [1, 4 * images, h, w]
        embeds = self.encode_clip(torch.cat([front, back]))
        pose_features = self.encode_poses(torch.cat([reference_poses, poses]))

        scheduler = EulerDiscreteScheduler.from_config(self.scheduler.config)
        scheduler.set_timesteps(steps, device=self.device)
        shape = (frames, self.unet.config.out_channels, *cond_latents.shape[-2:])
        latents = torch.randn(shape, generator=generator).to(self.device) * scheduler.init_noise_sigma

        embeds = torch.cat([torch.zeros_like(embeds), embeds]).to(self.dtype)
        time_ids = self._time_ids(fps, motion_bucket_id, noise_aug_strength)
        saved_processors = dict(self.unet.attn_processors)
        pose_hook = ConvInAddition(self.unet.conv_in)
        try:
            if multi_reference:
                enable_multi_reference(self.unet, frames=len(tiles[0]), references=REFERENCES)
            preview = None
            for t in scheduler.timesteps:
                scaled = scheduler.scale_model_input(latents, t)
                guided = []
                for tile in tiles:
                    guided.append(self._guided_prediction(scaled[tile], t, cond_latents, embeds, time_ids,
                                                          pose_features[tile], cfg, pose_hook))
                    progress.step(preview=preview)
                step = scheduler.step(fuse_tiles(guided, tiles, frames, len(REFERENCES)), t, latents)
                latents = step.prev_sample
                preview = latent_preview(step.pred_original_sample[len(REFERENCES)])
        finally:
            pose_hook.remove()
            self.unet.set_attn_processor(saved_processors)
        return self.decode(latents[len(REFERENCES):], decode_chunk, progress)

    def _guided_prediction(self, scaled, t, cond_latents, embeds, time_ids, pose_features, cfg, pose_hook):
        """One tile's classifier-free-guided prediction; the unconditional half gets zero latents,
        zero embeddings and zero pose features (as trained with condition dropout)."""
        length = scaled.shape[0]
        cond = cond_latents.expand(length, -1, -1, -1)
        sample = torch.stack([torch.cat([scaled, torch.zeros_like(cond)], 1), torch.cat([scaled, cond], 1)])
        pose_hook.features = torch.cat([torch.zeros_like(pose_features), pose_features])
        out = self.unet(sample.to(self.dtype), t, encoder_hidden_states=embeds, added_time_ids=time_ids,
                        return_dict=False)[0].float()
        uncond, cond_out = out[0], out[1]
        return uncond + cfg * (cond_out - uncond)

    @torch.no_grad()
    def decode(self, latents: torch.Tensor, chunk: int, progress=None) -> torch.Tensor:
        """[F,4,h,w] latents -> IMAGE [F,H,W,3], ``chunk`` frames per temporal-decoder call."""
        progress = progress or no_progress()
        decoder_dtype = self.vae.decoder.conv_in.weight.dtype
        out = []
        for i in range(0, latents.shape[0], chunk):
            z = latents[i:i + chunk] / self.vae.config.scaling_factor
            x = self.vae.decode(z.to(decoder_dtype), num_frames=z.shape[0]).sample
            out.append(((x.float() + 1.0) / 2.0).clamp(0, 1).permute(0, 2, 3, 1).cpu())
            progress.step(preview=out[-1][:1])
        return torch.cat(out)
