"""MCDM training (thesis 5.2.3, 5.5.2) on paired data in the official dataset layout:

    DATA/train/prompt.json   one JSON object a line: {"source": "condition/1.png", "target": "gt/1.png",
                             "prompt": "a man, santa claus costume", "source_prompt": "a man"}
    DATA/train/condition/    x_A        DATA/train/gt/    x_B

The UNet starts from an SD1.5 base with conv_in widened to 8 channels (the new 4, for c_s = E(x_A), zero), the
adapter from its identity initialisation. Per sample: 5% identity pairs (c_pa, x_A replace c_pb, x_B), and with
20% probability a random non-empty subset of {c_s, c_im, c_p} is dropped (null text, black image, zero latent:
the null inputs of eq. 5.1 at inference). Checkpoints are written as OUT/checkpoint-N/{unet.pth, adapter.pth}
with DDP 'module.' keys (what the MCDM loader reads) plus the optimiser state to resume from.

One GPU; several with ``accelerate launch`` (UNet and adapter are one wrapped module, so DDP syncs both):

    python -m pipelines.portrait_edit.train --base SD15_DIFFUSERS_DIR --clip CLIP_B32_DIR --data DATA --out OUT
"""
import argparse
import itertools
import json
import os
import random
import re
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from ..common.errors import InputError
from ..common.progress import Progress, no_progress
from .adapter import ADAPTER_IMAGE_SIDE, DDP_PREFIX, EmbeddingAdapter

LEARNING_RATE = 5e-6
BATCH_SIZE = 4
IDENTITY_PAIR_PROBABILITY = 0.05
CONDITION_DROPOUT = 0.2
CONDITIONS = ("spatial", "image", "text")  # c_s, c_im, c_p
DROPPABLE_SUBSETS = [frozenset(s) for r in range(1, 4) for s in itertools.combinations(CONDITIONS, r)]
CHECKPOINT = re.compile(r"checkpoint-(\d+)$")


def widen_conv_in(unet, extra: int = 4):
    """conv_in with ``extra`` more input channels, zero-initialised, the pretrained ones kept."""
    old = unet.conv_in
    new = torch.nn.Conv2d(old.in_channels + extra, old.out_channels, old.kernel_size, old.stride, old.padding)
    with torch.no_grad():
        new.weight.zero_()
        new.weight[:, : old.in_channels] = old.weight
        new.bias.copy_(old.bias)
    unet.conv_in = new
    unet.register_to_config(in_channels=new.in_channels)
    return unet


def condition_drops(rng: random.Random, probability: float = CONDITION_DROPOUT) -> frozenset:
    """The conditions to drop for one sample: none, or (with ``probability``) any non-empty subset, uniformly."""
    return rng.choice(DROPPABLE_SUBSETS) if rng.random() < probability else frozenset()


def training_pair(record: dict, rng: random.Random, identity_probability: float = IDENTITY_PAIR_PROBABILITY):
    """(source file, target file, prompt): an identity pair (x_A -> x_A with p_a) with ``identity_probability``."""
    if rng.random() < identity_probability:
        return record["source"], record["source"], record["source_prompt"]
    return record["source"], record["target"], record["prompt"]


def prompt_file(data_dir: str) -> str:
    return os.path.join(data_dir, "train", "prompt.json")


def read_records(data_dir: str) -> list:
    path = prompt_file(data_dir)
    if not os.path.isfile(path):
        raise InputError(f"No train/prompt.json in {data_dir}: the data folder needs the official layout "
                         "(train/prompt.json, train/condition/, train/gt/).")
    with open(path, encoding="utf-8") as f:
        records = [json.loads(line) for line in f if line.strip()]
    for r in records:
        missing = [k for k in ("source", "target", "prompt", "source_prompt") if k not in r]
        if missing:
            raise InputError(f"{path}: a line lacks {', '.join(missing)}.")
    return records


def load_image(data_dir: str, name: str) -> torch.Tensor:
    """[3, 512, 512] in 0..1 (the official code trains at 512x512)."""
    import numpy as np
    from PIL import Image

    root = os.path.realpath(os.path.join(data_dir, "train"))
    path = os.path.realpath(os.path.join(root, name))
    if os.path.commonpath([root, path]) != root:
        raise InputError(f"prompt.json names a file outside the data folder: {name}")
    image = Image.open(path).convert("RGB").resize((ADAPTER_IMAGE_SIDE, ADAPTER_IMAGE_SIDE), Image.BILINEAR)
    return torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1)


@dataclass
class Encoders:
    """Frozen encoders: prompts -> [B, 77, 768]; images [B, 3, 512, 512] 0..1 -> CLIP tokens [B, 50, 768] and
    scaled VAE latents [B, 4, 64, 64]."""
    text: Callable
    clip: Callable
    vae: Callable


class MCDMTrainable(torch.nn.Module):
    """UNet + adapter as one module, so accelerate/DDP wraps (and syncs) both."""

    def __init__(self, unet, adapter):
        super().__init__()
        self.unet, self.adapter = unet, adapter

    def forward(self, noisy, spatial, timesteps, text, clip_tokens, latent):
        image_tokens = self.adapter(clip_tokens, latent)
        hidden = torch.cat([text, image_tokens], dim=1)  # combine_type 'concat'
        return self.unet(torch.cat([noisy, spatial], dim=1), timesteps, encoder_hidden_states=hidden).sample


@torch.no_grad()
def conditions(encoders: Encoders, sources, targets, prompts, drops):
    """Target latents and (possibly dropped) conditions for one batch."""
    z_b = encoders.vae(targets)
    z_a = encoders.vae(sources)
    black = torch.zeros_like(sources)
    image_in = torch.stack([black[i] if "image" in d else sources[i] for i, d in enumerate(drops)])
    clip_tokens = encoders.clip(image_in)
    latent = encoders.vae(image_in)
    spatial = torch.stack([torch.zeros_like(z_a[i]) if "spatial" in d else z_a[i] for i, d in enumerate(drops)])
    text = encoders.text(["" if "text" in d else p for p, d in zip(prompts, drops)])
    return z_b, spatial, text, clip_tokens, latent


def mcdm_loss(model, scheduler, z_b, spatial, text, clip_tokens, latent, generator=None):
    """Noise-prediction MSE (the Stable Diffusion objective) with MCDM's conditions."""
    noise = torch.randn(z_b.shape, generator=generator, device=z_b.device, dtype=z_b.dtype)
    timesteps = torch.randint(0, scheduler.config.num_train_timesteps, (z_b.shape[0],), generator=generator,
                              device=z_b.device)
    noisy = scheduler.add_noise(z_b, noise, timesteps)
    return F.mse_loss(model(noisy, spatial, timesteps, text, clip_tokens, latent).float(), noise.float())


def latest_checkpoint(out_dir: str):
    found = [(int(m.group(1)), os.path.join(out_dir, d)) for d in (os.listdir(out_dir) if os.path.isdir(out_dir)
                                                                   else []) if (m := CHECKPOINT.match(d))]
    return max(found) if found else (0, None)


def save_checkpoint(out_dir: str, step: int, model: MCDMTrainable, optimizer) -> str:
    folder = os.path.join(out_dir, f"checkpoint-{step}")
    os.makedirs(folder, exist_ok=True)
    for name, module in (("unet", model.unet), ("adapter", model.adapter)):
        state = {DDP_PREFIX + k: v.detach().cpu() for k, v in module.state_dict().items()}
        torch.save(state, os.path.join(folder, f"{name}.pth"))
    torch.save({"optimizer": optimizer.state_dict(), "step": step},
               os.path.join(folder, "training_state.pt"))
    return folder


def resume(out_dir: str, model: MCDMTrainable, optimizer) -> int:
    """Loads the newest OUT/checkpoint-N; returns N (0 when there is none)."""
    from ..common.checkpoints import load_into, load_state_dict, strip_prefix

    step, folder = latest_checkpoint(out_dir)
    if folder is None:
        return 0
    for name, module in (("unet", model.unet), ("adapter", model.adapter)):
        path = os.path.join(folder, f"{name}.pth")
        load_into(module, strip_prefix(load_state_dict(path), DDP_PREFIX), path, f"MCDM {name}")
    state = torch.load(os.path.join(folder, "training_state.pt"), map_location="cpu", weights_only=True)
    optimizer.load_state_dict(state["optimizer"])
    return step


def rank_streams(seed: int, start: int, rank: int, device) -> tuple:
    """(batch rng, noise generator) of one process: each process, and each resumed run, draws its own batches."""
    return random.Random(f"{seed}-{start}-{rank}"), torch.Generator(device=device).manual_seed(
        seed + start + 1000 * rank)


def draw_batch(encoders: Encoders, records: list, data_dir: str, rng: random.Random, batch_size: int, device):
    """One batch's target latents and conditions: pairs (5% identity pairs) and condition drops drawn from rng."""
    picks = [training_pair(rng.choice(records), rng) for _ in range(batch_size)]
    sources = torch.stack([load_image(data_dir, s) for s, _, _ in picks]).to(device)
    targets = torch.stack([load_image(data_dir, t) for _, t, _ in picks]).to(device)
    drops = [condition_drops(rng) for _ in picks]
    return conditions(encoders, sources, targets, [p for _, _, p in picks], drops)


def train(model: MCDMTrainable, encoders: Encoders, scheduler, data_dir: str, out_dir: str, steps: int,
          lr: float = LEARNING_RATE, batch_size: int = BATCH_SIZE, save_every: int = 1000, seed: int = 0,
          accelerator=None, progress: Progress = None) -> list:
    """Trains up to ``steps`` (resuming from OUT's newest checkpoint); returns this run's losses."""
    records = read_records(data_dir)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    start = resume(out_dir, model, optimizer)
    progress = progress or no_progress(max(steps - start, 1))
    wrapped = model
    if accelerator is not None:
        wrapped, optimizer = accelerator.prepare(model, optimizer)  # DDP: the wrapped module all-reduces gradients
    device = next(model.parameters()).device
    rng, generator = rank_streams(seed, start, accelerator.process_index if accelerator is not None else 0, device)
    losses = []
    main = accelerator is None or accelerator.is_main_process
    for step in range(start + 1, steps + 1):
        batch = draw_batch(encoders, records, data_dir, rng, batch_size, device)
        loss = mcdm_loss(wrapped, scheduler, *batch, generator=generator)
        optimizer.zero_grad(set_to_none=True)
        accelerator.backward(loss) if accelerator is not None else loss.backward()
        optimizer.step()
        losses.append(loss.detach().item())
        progress.step()
        if main and (step % save_every == 0 or step == steps):
            save_checkpoint(out_dir, step, model, optimizer)
        if accelerator is not None:
            accelerator.wait_for_everyone()
    return losses


def load_parts(base_dir: str, clip_dir: str, device, dtype=torch.float32):
    """From a diffusers SD1.5 folder and a transformers CLIP ViT-B/32 folder: (trainable model, encoders,
    training noise scheduler)."""
    from diffusers import DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPVisionModel

    from ..common.clip import ClipPreprocess
    from .base import load_text_encoder, load_vae

    unet = widen_conv_in(UNet2DConditionModel.from_pretrained(base_dir, subfolder="unet")).to(device)
    vae = load_vae(base_dir, device, dtype)
    text = load_text_encoder(base_dir, device, dtype)
    vision = CLIPVisionModel.from_pretrained(clip_dir).to(device, dtype).eval().requires_grad_(False)
    preprocess = ClipPreprocess.from_folder(clip_dir, vision.config.image_size)

    def clip(images):
        return vision(pixel_values=preprocess(images).to(dtype)).last_hidden_state.float()

    def encode(images):
        return (vae.encode((images * 2 - 1).to(dtype)).latent_dist.sample() * vae.config.scaling_factor).float()

    scheduler = DDPMScheduler.from_pretrained(base_dir, subfolder="scheduler")
    return MCDMTrainable(unet, EmbeddingAdapter().to(device)), Encoders(text, clip, encode), scheduler


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="Train MCDM (thesis ch. 5) on paired data.")
    parser.add_argument("--base", required=True, help="diffusers SD1.5 folder (realistic-vision-v13 officially)")
    parser.add_argument("--clip", required=True, help="transformers CLIP ViT-B/32 folder")
    parser.add_argument("--data", required=True, help="folder with train/prompt.json, train/condition, train/gt")
    parser.add_argument("--out", required=True, help="writes checkpoint-N/{unet.pth,adapter.pth}; resumes from it")
    parser.add_argument("--steps", type=int, default=200000)
    parser.add_argument("--lr", type=float, default=LEARNING_RATE)
    parser.add_argument("--batch-size", type=int, default=BATCH_SIZE)
    parser.add_argument("--save-every", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    from accelerate import Accelerator

    accelerator = Accelerator()
    model, encoders, scheduler = load_parts(args.base, args.clip, accelerator.device)

    def report(done, total, _preview):
        if accelerator.is_main_process and (done % 50 == 0 or done == total):
            print(f"step {done}/{total}", flush=True)

    start, _ = latest_checkpoint(args.out)
    train(model, encoders, scheduler, args.data, args.out, args.steps, args.lr, args.batch_size, args.save_every,
          args.seed, accelerator, Progress(max(args.steps - start, 1), report))


if __name__ == "__main__":
    main()
