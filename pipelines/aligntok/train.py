"""Three-stage AlignTok training (thesis 7.2):

  stage 1  latent alignment: encoder frozen; adapter + decoder on L1 + w_p*perceptual
           + w_g*GAN (GAN after ``gan_start`` steps, adaptive weight at the decoder's last layer)
  stage 2  perceptual alignment: everything trains; + w_sp*L_sp against the frozen
           stage-1 model (adaptive weight at the encoder side's last layer); EMA
  stage 3  decoder refinement: decoder only, latent space frozen; EMA

One GPU for real; several through ``accelerate launch`` (the Accelerator also runs on
CPU, as the tests do).

    python -m pipelines.aligntok.train --data IMAGES --out tok.safetensors --stage 1 --steps 5000 [--init prev.safetensors]
"""
import argparse
import copy
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..common import InputError, Progress, no_progress
from .losses import (PatchDiscriminator, discriminator_loss, feature_perceptual_loss, generator_loss,
                     gradient_ratio, semantic_preservation_loss)
from .model import AlignTok, load_tokenizer, save_tokenizer

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")


@dataclass
class StageSettings:
    stage: int
    steps: int = 1000
    lr: float = 1e-4
    batch_size: int = 8
    w_perceptual: float = 1.0
    w_gan: float = 0.5
    gan_start: int = 5000
    w_sp: float = 1.0  # stage 2 only; 0 turns L_sp off (the ablation)
    ema_decay: float = 0.999
    seed: int = 0


def trainable_parts(model: AlignTok, stage: int) -> list:
    return {1: [model.adapter, model.decoder],
            2: [model.encoder, model.adapter, model.decoder],
            3: [model.decoder]}[stage]


def freeze_for_stage(model: AlignTok, stage: int) -> list:
    """requires_grad on exactly the stage's parts; returns their parameters."""
    model.requires_grad_(False)
    params = []
    for part in trainable_parts(model, stage):
        part.requires_grad_(True)
        params += list(part.parameters())
    return params


class EMA:
    def __init__(self, model: torch.nn.Module, decay: float):
        self.decay = decay
        self.shadow = {k: v.detach().clone() for k, v in model.state_dict().items() if v.is_floating_point()}

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        for k, v in model.state_dict().items():
            if k in self.shadow:
                self.shadow[k].lerp_(v.detach(), 1 - self.decay)

    def copy_to(self, model: torch.nn.Module) -> None:
        model.load_state_dict(self.shadow, strict=False)


def stage_loss(model, frozen, disc, images, settings: StageSettings, step: int) -> tuple:
    """Generator-side loss of one batch and a dict of its parts."""
    z = model.encode(images)
    recon = model.decode(z)
    rec = F.l1_loss(recon, images) + settings.w_perceptual * feature_perceptual_loss(frozen, recon, images)
    total, parts = rec, {"rec": rec.item()}
    last_decoder = model.decoder.conv_out.weight
    if settings.w_gan > 0 and step >= settings.gan_start:
        g = generator_loss(disc, recon)
        lam = gradient_ratio(rec, g, last_decoder) if last_decoder.requires_grad else torch.tensor(1.0)
        total = total + settings.w_gan * lam * g
        parts["gan"] = g.item()
    if settings.stage == 2 and settings.w_sp > 0:
        with torch.no_grad():
            z1 = frozen.encode(images)
        sp = semantic_preservation_loss(z, z1)
        last_encoder = model.adapter[-1].weight
        lam = gradient_ratio(rec, sp, last_encoder) if sp.item() > 0 else torch.tensor(1.0)
        total = total + settings.w_sp * lam * sp
        parts["sp"] = sp.item()
    return total, recon, parts


CHECKPOINT_VERSION = 1


def save_training_state(path, core, frozen, disc, opt, opt_d, ema, step: int, settings: StageSettings) -> None:
    """Everything a stage needs to go on from ``step``: model, frozen reference (stage-1
    model for L_sp / perceptual features), discriminator, both optimisers, EMA, settings.
    Plain tensors/numbers only, so it loads with ``torch.load(weights_only=True)``."""
    from dataclasses import asdict

    state = {"version": CHECKPOINT_VERSION, "step": int(step), "settings": asdict(settings),
             "model": core.state_dict(), "frozen": frozen.state_dict(), "disc": disc.state_dict(),
             "opt": opt.state_dict(), "opt_d": opt_d.state_dict(), "ema": ema.shadow if ema is not None else {}}
    tmp = Path(str(path) + ".tmp")
    torch.save(state, tmp)
    tmp.replace(path)  # never leave a half-written checkpoint behind


def load_training_state(path) -> dict:
    state = torch.load(str(path), map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or state.get("version") != CHECKPOINT_VERSION:
        raise InputError(f"{path} is not an AlignTok training checkpoint of version {CHECKPOINT_VERSION} "
                         f"(found {state.get('version') if isinstance(state, dict) else type(state).__name__}); "
                         "delete it or point --resume elsewhere to start the stage afresh.")
    return state


def train_stage(model: AlignTok, batches, settings: StageSettings, progress=None, accelerator=None,
                checkpoint=None, checkpoint_every: int = 0) -> AlignTok:
    """Run one stage over an iterator of image batches [B,3,H,W] 0..1; returns the EMA model
    for stages 2-3 and the trained model for stage 1.

    ``checkpoint``: a file path; if it exists the stage resumes from it (its stage must
    match), and it is rewritten every ``checkpoint_every`` steps and at the end."""
    torch.manual_seed(settings.seed)
    progress = progress or no_progress(settings.steps)
    frozen = copy.deepcopy(model).eval().requires_grad_(False)  # stage-1 reference / perceptual features
    params = freeze_for_stage(model, settings.stage)
    disc = PatchDiscriminator().to(next(model.parameters()).device)
    opt = torch.optim.AdamW(params, lr=settings.lr, betas=(0.5, 0.9))
    opt_d = torch.optim.AdamW(disc.parameters(), lr=settings.lr, betas=(0.5, 0.9))
    ema = EMA(model, settings.ema_decay) if settings.stage in (2, 3) else None
    start = 0
    if checkpoint is not None and Path(checkpoint).exists():
        state = load_training_state(checkpoint)
        if state["settings"]["stage"] != settings.stage:
            raise InputError(f"{checkpoint} holds stage {state['settings']['stage']}, not stage {settings.stage}.")
        model.load_state_dict(state["model"])
        frozen.load_state_dict(state["frozen"])
        disc.load_state_dict(state["disc"])
        opt.load_state_dict(state["opt"])
        opt_d.load_state_dict(state["opt_d"])
        if ema is not None:
            ema.shadow = state["ema"]
        start = state["step"]
        progress.step(start)
    if accelerator is not None:
        model, disc, opt, opt_d = accelerator.prepare(model, disc, opt, opt_d)
    core = accelerator.unwrap_model(model) if accelerator is not None else model
    main_process = accelerator is None or accelerator.is_main_process
    model.train()
    for step in range(start, settings.steps):
        images = next(batches)
        loss, recon, _parts = stage_loss(core, frozen, disc, images, settings, step)
        opt.zero_grad(set_to_none=True)
        (accelerator.backward(loss) if accelerator is not None else loss.backward())
        opt.step()
        if settings.w_gan > 0 and step >= settings.gan_start:
            d_loss = discriminator_loss(disc, images, recon)
            opt_d.zero_grad(set_to_none=True)
            (accelerator.backward(d_loss) if accelerator is not None else d_loss.backward())
            opt_d.step()
        if ema is not None:
            ema.update(core)
        done = step + 1
        if checkpoint is not None and main_process and (
                (checkpoint_every and done % checkpoint_every == 0) or done == settings.steps):
            save_training_state(checkpoint, core, frozen, accelerator.unwrap_model(disc) if accelerator else disc,
                                opt, opt_d, ema, done, settings)
        progress.step()
    core.eval().requires_grad_(False)
    if ema is not None:
        ema.copy_to(core)
    return core


def image_folder_batches(folder, size: int, batch_size: int, seed: int = 0):
    """Endless random batches of center-cropped, resized images from a folder."""
    from PIL import Image

    files = sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise InputError(f"No images ({', '.join(IMAGE_SUFFIXES)}) in {folder}.")
    gen = torch.Generator().manual_seed(seed)

    def load(path):
        img = Image.open(path).convert("RGB")
        side = min(img.size)
        left, top = (img.width - side) // 2, (img.height - side) // 2
        img = img.crop((left, top, left + side, top + side)).resize((size, size), Image.BICUBIC)
        return torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0).permute(2, 0, 1)

    while True:
        idx = torch.randint(len(files), (batch_size,), generator=gen)
        yield torch.stack([load(files[i]) for i in idx])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="folder of training images")
    parser.add_argument("--init", required=True, help="tokenizer to start from (.safetensors)")
    parser.add_argument("--out", required=True, help="where to write the trained tokenizer")
    parser.add_argument("--stage", type=int, choices=(1, 2, 3), required=True)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--gan-start", type=int, default=5000)
    parser.add_argument("--w-sp", type=float, default=1.0)
    parser.add_argument("--ema-decay", type=float, default=0.999)
    parser.add_argument("--resume", default=None,
                        help="training-state file: resumed from if it exists, rewritten every --checkpoint-every steps")
    parser.add_argument("--checkpoint-every", type=int, default=500)
    args = parser.parse_args(argv)
    from accelerate import Accelerator

    accelerator = Accelerator()
    model = load_tokenizer(args.init, device=accelerator.device)
    settings = StageSettings(args.stage, args.steps, args.lr, args.batch_size, gan_start=args.gan_start, w_sp=args.w_sp,
                             ema_decay=args.ema_decay)
    seed = accelerator.process_index  # each process draws its own batches
    batches = (b.to(accelerator.device) for b in image_folder_batches(args.data, args.size, args.batch_size, seed))

    def report(done, total, _preview):
        if accelerator.is_main_process and (done % 50 == 0 or done == total):
            print(f"stage {args.stage}: step {done}/{total}", flush=True)

    trained = train_stage(model, batches, settings, progress=Progress(args.steps, report), accelerator=accelerator,
                          checkpoint=args.resume, checkpoint_every=args.checkpoint_every)
    if accelerator.is_main_process:
        save_tokenizer(trained, args.out)


if __name__ == "__main__":
    main()
