"""The learned canvas renderer (thesis 6.2.1 / 6.2.3 / 6.5.3-6.5.4), loading the official
renderer checkpoint over a base SD1.5 diffusers folder and CLIP ViT-B/32.

One update renders I_t from (I_{t-1}, I_T, text p_t, mask M_t, interval Δt):
- cross-attention context ``[CLIP-next token, time token, 77 text tokens]`` where the CLIP-next
  token is the next-CLIP predictor over [CLIP(I_{t-1}), CLIP(I_T)];
- the canvas encoder over ``[I_{t-1} (-1..1), M_t]`` is added to the UNet's ``conv_in`` output;
- ReferenceNet features of I_T are fused into every self-attention (see reference.py);
- six guidance branches as the official pipeline (uncond, CLIP, canvas, time, mask, text) with
  ``eps = u + s_clip (c - u) + s_cur (cur - c) + s_time (pe - cur) + s_mask (rp - pe) + s_text (tp - rp)``;
- Euler-Ancestral, 25 steps; the same seed every update (the official demo resets its generator);
  from the second update on, for the first 20 % of the steps the latents outside the mask are reset
  to the (re-noised) previous keyframe latents ("combine_init").

Performance by design (``reference_mode="cached"``): the target's VAE latents, CLIP(target) and the
ReferenceNet bank (with its key/value projections) are computed once per painting, one bank copy is
broadcast to the guidance branches, the canvas encoder runs on the three distinct inputs only, and
``cfg_chunk`` runs the six branches in smaller batches and ``vae_tile_size`` decodes the keyframe in overlapping
tiles (diffusers' tiled decode: GroupNorm statistics per tile, blended seams) to bound peak memory.
``reference_mode="official"`` reproduces the official formulation for comparisons.
"""
import os
from dataclasses import dataclass
from typing import Dict, Optional

import torch
import torch.nn.functional as F

from ..common.clip import ClipPreprocess
from ..common.checkpoints import load_into
from ..common.errors import InputError
from ..common.progress import Progress
from .modules import CanvasEncoder, NextClipPredictor, TimeEncoder
from .reference import (FusionState, bank_key_values, install_readers, install_writer,
                        pruned_reference_prefixes, run_referencenet)
from .sd_parts import SDParts
from .weights import (PaintingConfig, check_base_dir, check_clip_dir, find_config, load_config,
                      load_renderer_checkpoint, stream_unet, unet_config)

BRANCHES = ("uncond", "clip", "canvas", "time", "mask", "text")


@dataclass
class GuidanceScales:
    """Official demo defaults (demo.py): CLIP 2, canvas 1, time 5, mask 5, text 5."""

    clip: float = 2.0
    canvas: float = 1.0
    time: float = 5.0
    mask: float = 5.0
    text: float = 5.0


def combine_guidance(preds: torch.Tensor, s: GuidanceScales) -> torch.Tensor:
    """preds: [6, ...] in BRANCHES order -> the guided noise prediction [1, ...] (official formula)."""
    u, c, cur, pe, rp, tp = preds.chunk(6)
    return (u + s.clip * (c - u) + s.canvas * (cur - c) + s.time * (pe - cur) + s.mask * (rp - pe)
            + s.text * (tp - rp))


def make_scheduler():
    from diffusers import EulerAncestralDiscreteScheduler

    # configs/inference/inference.yaml of the official code (note: "linear", not "scaled_linear")
    return EulerAncestralDiscreteScheduler(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012,
                                           beta_schedule="linear", steps_offset=1)


class ClipImageEncoder(torch.nn.Module):
    """CLIPVisionModel pooler output of images in 0..1, preprocessed in torch."""

    def __init__(self, model, preprocess: ClipPreprocess = None):
        super().__init__()
        self.model = model
        self.preprocess = preprocess or ClipPreprocess(model.config.image_size, model.config.image_size)

    @torch.no_grad()
    def forward(self, image01: torch.Tensor) -> torch.Tensor:
        p = next(self.model.parameters())
        return self.model(pixel_values=self.preprocess(image01.float()).to(p.dtype)).pooler_output


def load_clip_image_encoder(clip_dir: str):
    from transformers import CLIPVisionModel

    check_clip_dir(clip_dir)
    model = CLIPVisionModel.from_pretrained(clip_dir, local_files_only=True)
    return ClipImageEncoder(model.eval(), ClipPreprocess.from_folder(clip_dir, model.config.image_size))


class TextEncoder:
    """SD's CLIP text encoder: 77 padded tokens, no attention mask (as the official encode_prompt)."""

    def __init__(self, tokenizer, model):
        self.tokenizer, self.model = tokenizer, model
        self._cache: Dict[str, torch.Tensor] = {}

    @torch.no_grad()
    def __call__(self, text: str) -> torch.Tensor:
        if text not in self._cache:
            if len(self._cache) > 64:
                self._cache.clear()
            ids = self.tokenizer(text, truncation=True, padding="max_length",
                                 max_length=self.tokenizer.model_max_length, return_tensors="pt").input_ids
            p = next(self.model.parameters())
            self._cache[text] = self.model(ids.to(p.device), return_dict=False)[0]
        return self._cache[text]


def load_sd_parts(base_dir: str):
    from diffusers import AutoencoderKL
    from transformers import CLIPTextModel, CLIPTokenizer

    check_base_dir(base_dir)
    vae = AutoencoderKL.from_pretrained(os.path.join(base_dir, "vae"), local_files_only=True).eval()
    tok = CLIPTokenizer.from_pretrained(os.path.join(base_dir, "tokenizer"), local_files_only=True)
    te = CLIPTextModel.from_pretrained(os.path.join(base_dir, "text_encoder"), local_files_only=True).eval()
    return vae, TextEncoder(tok, te)


def _canvas_hook(state):
    """Adds the canvas encoder's features to the UNet's conv_in output (official Hack_UNet2DConditionModel)."""
    def hook(module, inputs, output):
        lc = getattr(state, "latent_cur", None)
        return output if lc is None else output + lc.to(output.dtype)
    return hook


class _PaintingCache:
    def __init__(self, key, clip_target, bank, kv):
        self.key = key
        self.clip_target = clip_target
        self.bank = bank
        self.kv = kv


class CanvasRenderer(SDParts):
    """Implements ``interfaces.Painter`` with the official renderer weights."""

    name = "learned renderer (Inverse Painting, official weights)"

    def __init__(self, unet, referencenet, canvas_encoder, next_clip, time_encoder, vae, text_encoder,
                 clip_encoder, config: PaintingConfig, steps: int = 25, scales: Optional[GuidanceScales] = None,
                 seed: int = 1, cfg_chunk: int = 6, reference_mode: str = "cached", combine_init_ratio: float = 0.2,
                 vae_tile_size: int = 0, source: str = ""):
        self.unet, self.referencenet = unet.eval(), referencenet.eval()
        self.canvas_encoder, self.next_clip, self.time_encoder = canvas_encoder.eval(), next_clip.eval(), time_encoder.eval()
        self.vae, self.text_encoder, self.clip_encoder = vae, text_encoder, clip_encoder
        self.config = config
        self.steps = int(steps)
        self.scales = scales or GuidanceScales()
        self.seed = int(seed)
        self.cfg_chunk = int(cfg_chunk)
        self.vae_tile_size = int(vae_tile_size)
        self.reference_mode = reference_mode
        self.combine_init_ratio = float(combine_init_ratio)
        self.source = source
        self.state = FusionState()
        install_readers(self.unet, self.state)
        install_writer(self.referencenet, {})
        self.unet.conv_in.register_forward_hook(_canvas_hook(self.state))
        self._cache: Optional[_PaintingCache] = None
        self._official_writer_bank = None
        self._last = None  # (canvas tensor returned, its latents)
        self.stats = {"referencenet_runs": 0}

    # -- devices -------------------------------------------------------------------------
    def torch_modules(self) -> list:
        return [self.unet, self.referencenet, self.canvas_encoder, self.next_clip, self.time_encoder, self.vae,
                self.text_encoder.model, self.clip_encoder]

    def _drop_caches(self) -> None:
        self.end()

    def settings(self, **kw) -> "CanvasRenderer":
        """A shallow copy with other sampling settings (steps, scales, seed, cfg_chunk, vae_tile_size, reference_mode)."""
        import copy

        other = copy.copy(self)
        for k, v in kw.items():
            if v is not None:
                setattr(other, k, v)
        other._cache, other._last = None, None
        other.stats = {"referencenet_runs": 0}
        return other

    # -- per painting ----------------------------------------------------------------------
    @torch.no_grad()
    def begin(self, target: torch.Tensor) -> None:
        """Compute what depends only on the target: VAE latents, CLIP(target), ReferenceNet bank (+K/V)."""
        self.end()
        self._cache = self._prepare_target(target, copies=1)

    def end(self) -> None:
        self._cache, self._last = None, None
        self.state.kv, self.state.bank = {}, {}
        self._official_writer_bank = None

    def _prepare_target(self, target, copies: int) -> _PaintingCache:
        lat = self._encode(target)
        clip_t = self.clip_encoder(target.to(self.device)).to(self.dtype)
        token = clip_t[:, None, :]
        bank = run_referencenet(self.referencenet, lat.repeat(copies, 1, 1, 1).to(self.dtype),
                                token.repeat(copies, 1, 1))
        # rebound, not updated in place: copies made by settings() or per run share this dict
        self.stats = {**self.stats, "referencenet_runs": self.stats["referencenet_runs"] + copies}
        if self.reference_mode == "cached":  # keep only the projected keys/values of one copy
            kv, bank = bank_key_values(self.unet, bank), {}
        else:
            kv = {}
        return _PaintingCache(self._target_key(target), clip_t, bank, kv)

    def _target_key(self, target):
        return (target.data_ptr(), tuple(target.shape), float(target.float().sum()))

    def _previous_latents(self, canvas):
        """The previous keyframe's latents when ``canvas`` is that keyframe (the loop re-pads it with black,
        as the official pad_to_16, so pixels may differ only where the canvas is 0)."""
        if self._last is None or self._last[0].shape != canvas.shape:
            return None
        last = self._last[0].to(canvas.device, canvas.dtype)
        differ = (last - canvas).abs() > 1e-3
        if differ.float().mean() > 0.5 or (canvas[differ] != 0).any():
            return None
        return self._last[1]

    # -- one update --------------------------------------------------------------------------
    @torch.no_grad()
    def update(self, canvas: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, instruction: str,
               time_s: float, progress: Optional[Progress] = None) -> torch.Tensor:
        if canvas.shape[-2:] != target.shape[-2:] or mask.shape[-2:] != target.shape[-2:]:
            raise InputError("Canvas, target and mask must have the same size.")
        if target.shape[-1] % 8 or target.shape[-2] % 8:
            raise InputError(f"The renderer needs sizes divisible by 8 (got {target.shape[-1]}x{target.shape[-2]}).")
        dev, dt = self.device, self.dtype
        if self.reference_mode == "official":
            # the official pipeline: ReferenceNet on six copies at the first step of every update; the
            # reader clones the writer's six-copy bank and both stay on the modules until the next call
            self.state.bank, self._official_writer_bank = {}, None
            cache = self._prepare_target(target, copies=6)
            self._official_writer_bank = cache.bank
            self.state.bank = {k: v.clone() for k, v in cache.bank.items()}
        else:
            if self._cache is None or self._cache.key != self._target_key(target):
                self.begin(target)
            cache = self._cache
            self.state.kv = cache.kv
        canvas = canvas.to(dev, dt)
        mask01 = (mask.to(dev, dt) > 0.5).to(dt)

        # cross-attention contexts of the six branches
        clip_cur = self.clip_encoder(canvas).to(dt)
        img_tok = self.next_clip(clip_cur, cache.clip_target)
        pe_tok = self.time_encoder.embed_seconds(time_s, self.config.PE_time_max, self.config.PE_time_interval).to(dt)
        txt = self.text_encoder(instruction or "").to(dev, dt)
        neg_txt = self.text_encoder("").to(dev, dt)
        z_img, z_pe = torch.zeros_like(img_tok), torch.zeros_like(pe_tok)
        ctx0 = torch.cat([z_img, z_pe, neg_txt], 1)
        ctx1 = torch.cat([img_tok, z_pe, neg_txt], 1)
        ctx2 = torch.cat([img_tok, pe_tok, neg_txt], 1)
        ctx3 = torch.cat([img_tok, pe_tok, txt], 1)
        contexts = torch.cat([ctx0, ctx1, ctx1, ctx2, ctx2, ctx3], 0)

        # canvas encoder over [canvas, mask]: three distinct inputs (zero canvas/mask = dropped)
        cur = canvas * 2 - 1
        zc, zm = torch.zeros_like(cur), torch.zeros_like(mask01)
        cond = [torch.cat([zc, zm], 1), torch.cat([cur, zm], 1), torch.cat([cur, mask01], 1)]
        if self.reference_mode == "official":
            rows = torch.cat([cond[0], cond[0], cond[1], cond[1], cond[2], cond[2]], 0)
            latent_cur = self.canvas_encoder(rows)
        else:
            enc = self.canvas_encoder(torch.cat(cond, 0))
            latent_cur = enc[[0, 0, 1, 1, 2, 2]]
        use_ref = torch.tensor([False, True, True, True, True, True], device=dev)

        sched = make_scheduler()
        sched.set_timesteps(self.steps, device=dev)
        if hasattr(sched, "set_begin_index"):
            sched.set_begin_index(0)
        timesteps = sched.timesteps
        h, w = target.shape[-2] // 8, target.shape[-1] // 8
        ch = self.unet.config.in_channels
        gen = torch.Generator(device="cpu").manual_seed(self.seed)
        noise = torch.randn((1, ch, h, w), generator=gen, dtype=torch.float32).to(dev, dt)
        latents = noise * sched.init_noise_sigma

        prev = self._previous_latents(canvas)
        combine_steps = int(self.steps * self.combine_init_ratio) if prev is not None else 0
        m_lat = (F.interpolate(mask01, size=(h, w), mode="nearest") > 0.1).to(dt) if combine_steps else None

        chunk = 6 if self.reference_mode == "official" else max(1, min(6, self.cfg_chunk))
        self.state.mode = self.reference_mode
        self.state.active = True
        try:
            for i, t in enumerate(timesteps):
                inp = sched.scale_model_input(latents, t)
                preds = []
                for a in range(0, 6, chunk):
                    b = min(6, a + chunk)
                    self.state.use_ref = use_ref[a:b]
                    self.state.latent_cur = latent_cur[a:b]
                    preds.append(self.unet(inp.expand(b - a, -1, -1, -1), t, encoder_hidden_states=contexts[a:b],
                                           return_dict=False)[0])
                eps = combine_guidance(torch.cat(preds, 0), self.scales)
                latents = sched.step(eps, t, latents, generator=gen, return_dict=False)[0]
                if i < combine_steps:
                    init = prev
                    if i < len(timesteps) - 1:
                        init = sched.add_noise(prev, noise, timesteps[i + 1:i + 2])
                    latents = m_lat * latents + (1 - m_lat) * init
                if progress is not None:
                    progress.step()
        finally:
            self.state.active = False
            self.state.latent_cur = None
            self.state.use_ref = None
        image = decode_latents(self.vae, latents.to(self.vae.dtype) / self.vae.config.scaling_factor,
                               self.vae_tile_size if self.reference_mode != "official" else 0)
        out = ((image.float() / 2 + 0.5).clamp(0, 1)).cpu()
        self._last = (out, latents)
        return out


def decode_latents(vae, z: torch.Tensor, tile_size: int = 0) -> torch.Tensor:
    """VAE decode, whole or in ``tile_size``-pixel tiles overlapping by a quarter (the vae's own tiled decode,
    its tile sizes set only for this call: the vae is shared with other renderer settings)."""
    factor = 2 ** (len(vae.config.block_out_channels) - 1)
    if not tile_size or max(z.shape[-2:]) * factor <= tile_size:
        return vae.decode(z).sample
    saved = vae.tile_sample_min_size, vae.tile_latent_min_size
    vae.tile_sample_min_size, vae.tile_latent_min_size = tile_size, tile_size // factor
    try:
        return vae.tiled_decode(z).sample
    finally:
        vae.tile_sample_min_size, vae.tile_latent_min_size = saved


def load_renderer(checkpoint_path: str, base_dir: str, clip_dir: str, config_path: Optional[str] = None,
                  device=None, dtype=None, **settings) -> CanvasRenderer:
    """Load ``checkpoint-global_step-200000.ckpt`` (+ config.yaml) over a base SD1.5 folder and CLIP.
    Streams: the file is mapped, each UNet is built on the meta device and takes its sub-dict's tensors in
    ``dtype``, and every sub-dict is dropped once its module holds it (never the whole file plus two copies)."""
    cfg = load_config(config_path or find_config(checkpoint_path))
    check_base_dir(base_dir)
    check_clip_dir(clip_dir)
    ucfg = unet_config(base_dir)
    sd = load_renderer_checkpoint(checkpoint_path)
    unet = stream_unet(ucfg, sd, "unet_state_dict", checkpoint_path, "renderer UNet (unet_state_dict)", dtype)
    # a fresh mapping for the rest: once the first is dropped, the UNet's file pages leave the process (when
    # the UNet took converted copies; in the file's dtype it holds those pages as its weights)
    del sd
    sd = load_renderer_checkpoint(checkpoint_path)
    refnet = stream_unet(ucfg, sd, "referencenet_state_dict", checkpoint_path,
                         "ReferenceNet (referencenet_state_dict)", dtype, allow_missing=pruned_reference_prefixes)
    guider = _small(CanvasEncoder, sd.pop("cur_image_guider_state_dict"), checkpoint_path,
                    "canvas encoder (cur_image_guider_state_dict)")
    adapter = _small(NextClipPredictor, sd.pop("image_adpater_state_dict"), checkpoint_path,
                     "next-CLIP predictor (image_adpater_state_dict)")
    pe = _small(TimeEncoder, sd.pop("PE_state_dict"), checkpoint_path, "time encoder (PE_state_dict)")
    del sd
    vae, text = load_sd_parts(base_dir)
    clip = load_clip_image_encoder(clip_dir)
    r = CanvasRenderer(unet, refnet, guider, adapter, pe, vae, text, clip, cfg, source=checkpoint_path, **settings)
    if device is not None or dtype is not None:
        r.to(device, dtype)
    return r


def _small(cls, sd, path, what):
    from ..common.errors import CheckpointFormatError

    try:
        m = cls.from_state_dict_shapes(sd)
    except (KeyError, IndexError, AttributeError) as exc:
        raise CheckpointFormatError(path, f"The {what} has an unexpected layout (no {exc})",
                                    expected=list(cls().state_dict())) from exc
    load_into(m, sd, path, what)
    return m
