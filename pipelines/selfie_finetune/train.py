"""Per-capture fine-tuning of the selfie-conditioned inpainting UNet (thesis 3.2.2, 3.5.5).

The UNet alone trains (VAE and selfie encoder frozen) on resize-and-paste augmentations of
one capture, with Paint-by-Example's inputs (noisy latent + masked-image latent + keep-mask,
9 channels) and the noise-prediction loss of eq. 3.1 counted only inside the inpainting
region. Thesis settings: 200 augmentations, AdamW lr 5e-6, batch 4, 400 steps.
Optionally a LoRA (peft) instead of the full UNet.

One GPU for real; several through ``accelerate launch`` (the Accelerator also runs on CPU):

    python -m pipelines.selfie_finetune.train --pipeline DIR --background bg.png \\
        --person person.png [--person-mask mask.png] --selfies face.png upper.png lower.png shoes.png \\
        --out capture.safetensors --steps 400
"""
import argparse
import copy
import os
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from ..common.errors import InputError
from ..common.progress import Progress, no_progress
from .weights import add_lora, save_finetuned_unet, with_unet


@dataclass
class EncodedSamples:
    """VAE encodings of the augmentations, all [N,...] float32 on one device."""
    latent_mean: torch.Tensor  # target latent distribution (scaled), sampled every step
    latent_std: torch.Tensor
    masked_latents: torch.Tensor  # latent of the target with the inpainting region blanked
    keep_mask: torch.Tensor  # [N,1,h,w] 1 = keep (Paint-by-Example's mask channel)
    loss_mask: torch.Tensor  # [N,1,h,w] 1 = latent cells touching the inpainting region

    def __len__(self) -> int:
        return self.latent_mean.shape[0]


@dataclass
class FineTuneResult:
    unet: torch.nn.Module
    losses: list = field(default_factory=list)


def size_multiple(unet, vae) -> int:
    """Image sides must divide by the VAE's and the UNet's downsampling."""
    return 2 ** (len(vae.config.block_out_channels) - 1) * 2 ** (len(unet.config.block_out_channels) - 1)


@torch.no_grad()
def encode_samples(vae, samples, batch_size: int, device, progress: Progress) -> EncodedSamples:
    """Encode every (image [3,H,W] 0..1, inpaint mask [1,H,W]) pair once, in chunks."""
    dtype = next(vae.parameters()).dtype
    scale = vae.config.scaling_factor
    means, stds, masked, keeps, losses = [], [], [], [], []
    for start in range(0, len(samples), batch_size):
        pairs = [samples[i] for i in range(start, min(start + batch_size, len(samples)))]
        images = torch.stack([p[0] for p in pairs]).to(device)
        masks = torch.stack([p[1] for p in pairs]).to(device)
        signed = images * 2 - 1
        dist = vae.encode(signed.to(dtype)).latent_dist
        means.append(dist.mean.float() * scale)
        stds.append(dist.std.float() * scale)
        masked.append(vae.encode((signed * (masks < 0.5)).to(dtype)).latent_dist.mode().float() * scale)
        size = means[-1].shape[-2:]
        keeps.append(F.interpolate(1 - masks, size=size, mode="nearest"))  # as the inference pipeline does
        losses.append(F.adaptive_max_pool2d(masks, size))
        progress.step(0)  # a cancel point; the bar counts training steps
    return EncodedSamples(*(torch.cat(x) for x in (means, stds, masked, keeps, losses)))


def masked_mse(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the latent cells where mask [B,1,h,w] is 1 (eq. 3.1 inside M)."""
    weight = mask.expand_as(pred)
    return ((pred.float() - target.float()) ** 2 * weight).sum() / weight.sum().clamp_min(1.0)


def diffusion_loss(unet, scheduler, encoded: EncodedSamples, index: torch.Tensor, condition: torch.Tensor,
                   gen: torch.Generator) -> torch.Tensor:
    """Masked noise-prediction loss of one batch of augmentations."""
    device = encoded.latent_mean.device
    mean, std = encoded.latent_mean[index], encoded.latent_std[index]
    z0 = mean + std * torch.randn(mean.shape, generator=gen).to(device)
    noise = torch.randn(z0.shape, generator=gen).to(device)
    t = torch.randint(0, scheduler.config.num_train_timesteps, (z0.shape[0],), generator=gen).to(device)
    zt = scheduler.add_noise(z0, noise, t)
    target = scheduler.get_velocity(z0, noise, t) if scheduler.config.prediction_type == "v_prediction" else noise
    inputs = torch.cat([zt, encoded.masked_latents[index], encoded.keep_mask[index]], dim=1)
    cond = condition.expand(z0.shape[0], -1, -1)
    pred = unet(inputs, t, encoder_hidden_states=cond).sample
    return masked_mse(pred, target, encoded.loss_mask[index])


def training_scheduler(scheduler):
    """A DDPM scheduler with the base model's noise schedule (inference ones like PNDM differ)."""
    from diffusers import DDPMScheduler

    return DDPMScheduler.from_config(scheduler.config)


def finetune_unet(unet, vae, scheduler, encode_condition, samples, steps: int = 400, lr: float = 5e-6,
                  batch_size: int = 4, lora_rank: int = 0, progress: Progress = None, seed: int = 0,
                  accelerator=None, autocast_dtype: torch.dtype = None) -> FineTuneResult:
    """Fine-tune ``unet`` in place on ``samples`` (a sequence of (image, inpaint mask) pairs with
    a ``selfie_images`` attribute, e.g. an AugmentedCapture). ``encode_condition(selfie_images)``
    (four IMAGEs [1,h,w,3]) gives the cross-attention tokens [1,T,D]; vae and encoder are only
    run, never changed.

    ``progress`` steps once per optimisation step; a callback that raises stops training.
    ``accelerator``: an accelerate.Accelerator (DDP, mixed precision); otherwise
    ``autocast_dtype`` (e.g. torch.bfloat16 on a GPU) runs the UNet under autocast."""
    progress = progress or no_progress(steps)
    device = next(unet.parameters()).device
    multiple = size_multiple(unet, vae)
    height, width = samples[0][0].shape[-2:]
    if height % multiple or width % multiple:
        raise InputError(f"Fine-tuning images are {width}x{height}; both sides must be multiples of {multiple} "
                         "for this model (resize the background, person and mask, e.g. to 512x512).")
    encoded = encode_samples(vae, samples, batch_size, device, progress)
    with torch.no_grad():
        condition = encode_condition(samples.selfie_images).to(device=device, dtype=torch.float32)
    if lora_rank > 0:
        add_lora(unet, lora_rank)
    else:
        unet.requires_grad_(True)
    params = [p for p in unet.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr)
    noise_schedule = training_scheduler(scheduler)
    rank = accelerator.process_index if accelerator is not None else 0
    gen = torch.Generator().manual_seed(int(seed) + rank)  # each process draws its own batches
    model = unet
    if accelerator is not None:
        model, optimizer = accelerator.prepare(unet, optimizer)
    result = FineTuneResult(unet)
    model.train()
    for _ in range(steps):
        index = torch.randint(len(encoded), (batch_size,), generator=gen).to(device)
        with _autocast(accelerator, device, autocast_dtype):
            loss = diffusion_loss(model, noise_schedule, encoded, index, condition, gen)
        optimizer.zero_grad(set_to_none=True)
        (accelerator.backward(loss) if accelerator is not None else loss.backward())
        optimizer.step()
        result.losses.append(loss.item())
        progress.step()
    unet.eval().requires_grad_(False)
    return result


def _autocast(accelerator, device, dtype):
    if accelerator is not None:
        return accelerator.autocast()
    return torch.autocast(device.type, dtype=dtype, enabled=dtype is not None)


def as_float32(module):
    """diffusers warns on every dtype cast, so cast only when needed."""
    return module if next(module.parameters()).dtype == torch.float32 else module.to(torch.float32)


def trainable_copy(unet):
    """A float32 copy of ``unet`` made outside inference mode (ComfyUI loads models inside it,
    and inference tensors cannot take part in autograd); the original is untouched."""
    with torch.inference_mode(False):
        return as_float32(copy.deepcopy(unet))


def finetune_pipeline(pipe, samples, out_path, steps: int = 400, lr: float = 5e-6, batch_size: int = 4,
                      lora_rank: int = 0, seed: int = 0, progress: Progress = None):
    """Fine-tune a copy of ``pipe``'s UNet on ``samples``, save it to ``out_path`` and return a
    new pipe with it (in the pipe's dtype). The input pipe is left as it was, also on cancel."""
    device = next(pipe.unet.parameters()).device
    dtype = next(pipe.unet.parameters()).dtype
    bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
    with torch.inference_mode(False), torch.enable_grad():
        unet = trainable_copy(pipe.unet)
        finetune_unet(unet, pipe.vae, pipe.scheduler, pipe.encode_selfies, samples, steps=steps, lr=lr,
                      batch_size=batch_size, lora_rank=lora_rank, progress=progress, seed=seed,
                      autocast_dtype=torch.bfloat16 if bf16 else None)
    save_finetuned_unet(unet, out_path, lora_rank=lora_rank,
                        info={"base": getattr(pipe, "source", ""), "steps": steps, "lr": lr, "batch_size": batch_size,
                              "augmentations": len(samples), "seed": seed, "mode": getattr(pipe, "mode", "")})
    return with_unet(pipe, unet.to(dtype))


def _load_image(path: str, mode: str = "RGB") -> torch.Tensor:
    """[C,H,W] (or [H,W] for one channel) in 0..1; RGBA and L kept (common.images is RGB only)."""
    import numpy as np
    from PIL import Image

    with Image.open(path) as img:
        x = torch.from_numpy(np.asarray(img.convert(mode), dtype=np.float32) / 255.0)
    return x.permute(2, 0, 1) if x.ndim == 3 else x


def load_capture_files(background: str, people: list, person_masks: list, selfies: list, count: int, seed: int,
                       inpaint_mask: str = None):
    """An AugmentedCapture from image files; a person's mask is its own file or its alpha channel."""
    from .augment import AugmentedCapture

    if person_masks and len(person_masks) != len(people):
        raise InputError(f"Give one --person-mask per --person ({len(people)}), or none to use their alpha channels.")
    masks = []
    for i, path in enumerate(people):
        alpha = _load_image(path, "RGBA")[3]
        masks.append(_load_image(person_masks[i], "L") if person_masks else alpha)
        if not person_masks and bool((alpha > 0.5).all()):
            raise InputError(f"{path} has no transparent pixels to mark the person; give --person-mask.")
    return AugmentedCapture(_load_image(background), torch.stack(masks), [_load_image(p) for p in selfies],
                            count=count, seed=seed,
                            inpaint_mask=None if inpaint_mask is None else _load_image(inpaint_mask, "L"))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pipeline", required=True, help="selfie inpainting diffusers folder (pbe_selfie2full)")
    parser.add_argument("--background", required=True, help="background photo I_b")
    parser.add_argument("--person", nargs="+", required=True,
                        help="full-body person image(s) the size of the background (generated I_n or a composite)")
    parser.add_argument("--person-mask", nargs="*", default=[], help="their masks (else their alpha channels)")
    parser.add_argument("--inpaint-mask", help="the inpainting mask M (default: the person box x1.1)")
    parser.add_argument("--selfies", nargs=4, required=True, metavar=("FACE", "UPPER", "LOWER", "SHOES"))
    parser.add_argument("--out", required=True, help="where to write the fine-tuned UNet (.safetensors)")
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--lr", type=float, default=5e-6)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--augmentations", type=int, default=200)
    parser.add_argument("--lora-rank", type=int, default=0, help="0 = full UNet")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--mixed-precision", choices=("no", "fp16", "bf16"), default="no")
    args = parser.parse_args(argv)
    if not args.out.endswith(".safetensors"):
        parser.error("--out must end in .safetensors")
    from accelerate import Accelerator

    from ..selfie_inpaint.loader import load_selfie_pipeline

    accelerator = Accelerator(mixed_precision=args.mixed_precision)
    frozen_dtype = {"no": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[args.mixed_precision]
    pipe = load_selfie_pipeline(args.pipeline, accelerator.device, frozen_dtype)
    unet = as_float32(pipe.unet)  # trained weights stay float32; autocast handles the rest
    samples = load_capture_files(args.background, args.person, args.person_mask, args.selfies,
                                 args.augmentations, args.seed, args.inpaint_mask)

    def report(done, total, _preview):
        if accelerator.is_main_process and done and (done % 50 == 0 or done == total):
            print(f"fine-tune: step {done}/{total}", flush=True)

    result = finetune_unet(unet, pipe.vae, pipe.scheduler, pipe.encode_selfies, samples, steps=args.steps,
                           lr=args.lr, batch_size=args.batch_size, lora_rank=args.lora_rank,
                           progress=Progress(args.steps, report), seed=args.seed, accelerator=accelerator)
    if accelerator.is_main_process:
        save_finetuned_unet(result.unet, args.out, lora_rank=args.lora_rank,
                            info={"base": os.path.basename(os.path.normpath(args.pipeline)), "steps": args.steps,
                                  "lr": args.lr, "batch_size": args.batch_size,
                                  "augmentations": args.augmentations, "seed": args.seed,
                                  "mode": getattr(pipe, "mode", "")})
        last = result.losses[-min(len(result.losses), 50):]
        print(f"saved {args.out} (mean masked loss of the last {len(last)} steps: {sum(last) / len(last):.4f})")


if __name__ == "__main__":
    main()
