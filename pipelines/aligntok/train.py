"""Three-stage AlignTok training (thesis 7.2, settings of 7.5):

  stage 1  latent alignment: encoder frozen; adapter + decoder on L1 + w_p*perceptual
           + w_g*GAN (GAN after 5K steps, adaptive weight at the decoder's last layer); lr 1e-4
  stage 2  perceptual alignment: everything trains; + w_sp*L_sp against the frozen
           stage-1 model (adaptive weight at the encoder side's last layer); GAN throughout; EMA; lr 1e-5
  stage 3  decoder refinement: decoder only, latent space frozen; GAN throughout; EMA; lr 1e-4

The discriminator travels with the tokenizer from stage to stage (``discriminator_state``).
Training images: shorter side resized to 256, then a random 256x256 crop.

One GPU for real; several through ``accelerate launch`` (the Accelerator also runs on
CPU, as the tests do): every forward runs through the DDP wrapper, so gradients are
all-reduced and all processes train one model on the union of their batches.

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
from .losses import (
    PatchDiscriminator,
    discriminator_loss,
    feature_perceptual_loss,
    generator_loss,
    gradient_ratio,
    semantic_preservation_loss,
)
from .model import AlignTok, load_tokenizer, save_tokenizer

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")


STAGE_LR = {1: 1e-4, 2: 1e-5, 3: 1e-4}  # thesis 7.5 (ImageNet tokenizer)
STAGE_GAN_START = {1: 5000, 2: 0, 3: 0}  # "after 5K training steps in the first stage, active throughout 2-3"


@dataclass
class StageSettings:
    stage: int
    steps: int = 1000
    lr: float | None = None  # None: the stage's thesis value (STAGE_LR)
    batch_size: int = 8  # per process: the thesis' 64 over 8 GPUs
    w_perceptual: float = 1.0
    w_gan: float = 0.5
    gan_start: int | None = None  # None: the stage's thesis value (STAGE_GAN_START)
    w_sp: float = 1.0  # stage 2 only; 0 turns L_sp off (the ablation)
    ema_decay: float = 0.999
    seed: int = 0

    def __post_init__(self):
        if self.stage not in STAGE_LR:
            raise InputError(f"AlignTok has training stages 1, 2 and 3, not {self.stage}.")
        self.lr = STAGE_LR[self.stage] if self.lr is None else self.lr
        self.gan_start = STAGE_GAN_START[self.stage] if self.gan_start is None else self.gan_start

    def gan_active(self, step: int) -> bool:
        return self.w_gan > 0 and step >= self.gan_start


def trainable_parts(model: AlignTok, stage: int) -> list:
    return {1: [model.adapter, model.decoder],
            2: [model.encoder, model.adapter, model.decoder],
            3: [model.decoder]}[stage]


def freeze_for_stage(model: AlignTok, stage: int) -> list:
    """requires_grad on exactly the stage's parts; returns their parameters."""
    model.requires_grad_(False)
    for part in trainable_parts(model, stage):
        part.requires_grad_(True)
    # DINOv2's masked-image-modelling token never takes part in encoding (and DDP refuses
    # parameters that get no gradient)
    model.encoder.embeddings.mask_token.requires_grad_(False)
    return [p for part in trainable_parts(model, stage) for p in part.parameters() if p.requires_grad]


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


def stage_loss(model, frozen, disc, images, settings: StageSettings, step: int, forward=None, reduce=None) -> tuple:
    """Generator-side loss of one batch and a dict of its parts.

    ``forward``: what runs the model (its DDP wrapper under several processes, so that
    backward all-reduces the gradients); ``reduce``: the mean over processes, so that the
    adaptive weights are those of the whole batch rather than one process's share."""
    z, recon = (forward or model)(images, return_latent=True)
    rec = F.l1_loss(recon, images) + settings.w_perceptual * feature_perceptual_loss(frozen, recon, images)
    total, parts = rec, {"rec": rec.item()}
    if settings.gan_active(step):
        g = generator_loss(disc, recon)
        lam = gradient_ratio(rec, g, model.decoder.conv_out.weight, reduce=reduce)
        total = total + settings.w_gan * lam * g
        parts["gan"] = g.item()
    if settings.stage == 2 and settings.w_sp > 0:
        with torch.no_grad():
            z1 = frozen.encode(images)
        sp = semantic_preservation_loss(z, z1)
        # while z == z1 the weight is moot: L_sp's gradient is zero
        lam = gradient_ratio(rec, sp, model.adapter[-1].weight, reduce=reduce)
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


def _mean_over_processes(accelerator):
    if accelerator is None or accelerator.num_processes == 1:
        return None
    return lambda t: accelerator.reduce(t, reduction="mean")


def discriminator_for(model: AlignTok, device) -> PatchDiscriminator:
    """The discriminator the previous stage left in ``model``, else a fresh one."""
    disc = PatchDiscriminator()
    if model.discriminator_state:
        disc.load_state_dict(model.discriminator_state)
    return disc.to(device)


def train_stage(model: AlignTok, batches, settings: StageSettings, progress=None, accelerator=None,
                checkpoint=None, checkpoint_every: int = 0) -> AlignTok:
    """Run one stage over an iterator of image batches [B,3,H,W] 0..1; returns the EMA model
    for stages 2-3 and the trained model for stage 1, its ``discriminator_state`` updated.

    ``checkpoint``: a file path; if it exists the stage resumes from it (its stage must
    match), and it is rewritten every ``checkpoint_every`` steps and at the end."""
    torch.manual_seed(settings.seed)
    progress = progress or no_progress(settings.steps)
    frozen = copy.deepcopy(model).eval().requires_grad_(False)  # stage-1 reference / perceptual features
    params = freeze_for_stage(model, settings.stage)
    disc = discriminator_for(model, next(model.parameters()).device)
    opt = torch.optim.AdamW(params, lr=settings.lr, betas=(0.5, 0.9))
    opt_d = torch.optim.AdamW(disc.parameters(), lr=settings.lr, betas=(0.5, 0.9))
    ema = EMA(model, settings.ema_decay) if settings.stage in (2, 3) else None
    start = _resume(checkpoint, settings, model, frozen, disc, opt, opt_d, ema)
    if start:
        progress.step(start)
    core, core_disc = model, disc
    if accelerator is not None:
        model, disc, opt, opt_d = accelerator.prepare(model, disc, opt, opt_d)
    reduce = _mean_over_processes(accelerator)
    main_process = accelerator is None or accelerator.is_main_process
    model.train()
    for step in range(start, settings.steps):
        images = next(batches)
        core_disc.requires_grad_(False)  # the generator step only needs the gradient into recon
        loss, recon, _parts = stage_loss(core, frozen, core_disc, images, settings, step, forward=model, reduce=reduce)
        opt.zero_grad(set_to_none=True)
        (accelerator.backward(loss) if accelerator is not None else loss.backward())
        opt.step()
        core_disc.requires_grad_(True)
        if settings.gan_active(step):
            d_loss = discriminator_loss(disc, images, recon)
            opt_d.zero_grad(set_to_none=True)
            (accelerator.backward(d_loss) if accelerator is not None else d_loss.backward())
            opt_d.step()
        if ema is not None:
            ema.update(core)
        done = step + 1
        if checkpoint is not None and main_process and (
                (checkpoint_every and done % checkpoint_every == 0) or done == settings.steps):
            save_training_state(checkpoint, core, frozen, core_disc, opt, opt_d, ema, done, settings)
        progress.step()
    core.eval().requires_grad_(False)
    if ema is not None:
        ema.copy_to(core)
    core.discriminator_state = {k: v.detach().cpu().clone() for k, v in core_disc.state_dict().items()}
    return core


def _resume(checkpoint, settings, model, frozen, disc, opt, opt_d, ema) -> int:
    """Load a stage's training state if ``checkpoint`` exists; the step to go on from."""
    if checkpoint is None or not Path(checkpoint).exists():
        return 0
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
    return state["step"]


def random_crop(img, size: int, gen: torch.Generator):
    """Thesis 7.5: shorter side resized to ``size`` (aspect ratio kept), then a random
    ``size`` x ``size`` window."""
    from PIL import Image

    scale = size / min(img.size)
    resized = img.resize((max(size, round(img.width * scale)), max(size, round(img.height * scale))), Image.BICUBIC)
    left = int(torch.randint(resized.width - size + 1, (1,), generator=gen))
    top = int(torch.randint(resized.height - size + 1, (1,), generator=gen))
    return resized.crop((left, top, left + size, top + size))


def image_folder_batches(folder, size: int, batch_size: int, seed: int = 0):
    """Endless batches of random crops (``random_crop``) of randomly drawn images from a folder."""
    from PIL import Image

    files = sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise InputError(f"No images ({', '.join(IMAGE_SUFFIXES)}) in {folder}.")
    gen = torch.Generator().manual_seed(seed)

    def load(path):
        with Image.open(path) as img:
            crop = random_crop(img.convert("RGB"), size, gen)
        return torch.from_numpy(np.asarray(crop, dtype=np.float32) / 255.0).permute(2, 0, 1)

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
    parser.add_argument("--lr", type=float, default=None, help="default: 1e-4 in stages 1 and 3, 1e-5 in stage 2")
    parser.add_argument("--gan-start", type=int, default=None,
                        help="step the GAN term starts at; default: 5000 in stage 1, 0 in stages 2-3")
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
