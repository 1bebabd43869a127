"""Per-capture fine-tuning cost (Total Selfie 3.5.5): SD1.5-size 9-channel UNet (random init), CPU.

full   the whole UNet trains (the thesis), AdamW
lora   a rank-8 LoRA on the attention projections trains instead (peft), AdamW
Each run of a variant is its own process (peak RSS growth and step time do not mix), in >= 7 rounds of
one run each, the order alternating; a run's step time is its fastest interval between optimisation
steps after the first. The step ratio is the fastest LoRA step over the fastest full step, printed with
each round's ratio and their spread; the memory ratio takes each variant's smallest peak growth.
`augment_ms_per_image` is the cost of one resize-and-paste augmentation at 512x512. Prints
`lora_step_ratio` and `lora_mem_ratio` (LoRA / full) last.

    .venv/bin/python bench/selfie_finetune.py [--latent 32] [--steps 4] [--batch 2] [--rounds 7]   (~12 min on 2 cores)
"""
import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.rounds import alternating, fastest_ratio  # noqa: E402
VARIANTS = {"full": 0, "lora": 8}


def _capture(size: int, count: int):
    from pipelines.selfie_finetune.augment import AugmentedCapture

    masks = torch.zeros(1, size, size)
    masks[0, size // 8:size - size // 16, size * 3 // 8:size * 5 // 8] = 1
    selfies = [torch.rand(3, 96 + 16 * i, 80) for i in range(4)]
    return AugmentedCapture(torch.rand(3, size, size), masks, selfies, count=count, seed=0)


def one_variant(name: str, latent: int, steps: int, batch: int) -> dict:
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel

    from pipelines.common.progress import Progress
    from pipelines.selfie_finetune.train import finetune_unet
    from tests.fixtures.build_selfie_inpaint import VAE_CONFIG

    torch.manual_seed(0)
    unet = UNet2DConditionModel(in_channels=9, out_channels=4, cross_attention_dim=768, sample_size=latent)
    vae = AutoencoderKL(**VAE_CONFIG).eval()
    scale = 2 ** (len(vae.config.block_out_channels) - 1)
    samples = _capture(latent * scale, 8)
    condition = torch.randn(1, 1, 768)
    stamps = []
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    finetune_unet(unet, vae, DDPMScheduler(), lambda _selfies: condition, samples, steps=steps, batch_size=batch,
                  lora_rank=VARIANTS[name], progress=Progress(steps, lambda *_: stamps.append(time.perf_counter())))
    growth = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    steps_s = [b - a for a, b in zip(stamps[-steps:], stamps[-steps + 1:])]
    return {"step_s": min(steps_s), "mb": growth}


def augment_ms(size: int = 512, count: int = 50) -> float:
    capture = _capture(size, count)
    start = time.perf_counter()
    for i in range(count):
        capture[i]
    return (time.perf_counter() - start) / count * 1000


def run_variant(name: str, args) -> dict:
    out = subprocess.run([sys.executable, __file__, "--one", name, "--latent", str(args.latent), "--steps",
                          str(args.steps), "--batch", str(args.batch)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def step_ratio(rounds: list) -> tuple:
    """(fastest LoRA step / fastest full step over all rounds, each round's LoRA / full step ratio)."""
    return fastest_ratio([{k: v["step_s"] for k, v in r.items()} for r in rounds], "lora", "full")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--latent", type=int, default=32)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds (>= 7)")
    parser.add_argument("--one", choices=sorted(VARIANTS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one_variant(args.one, args.latent, args.steps, args.batch)))
        return
    if args.rounds < 7 or args.steps < 3:
        parser.error("--rounds must be >= 7 and --steps >= 3")
    rounds = []
    for r in range(args.rounds):
        rounds.append({name: run_variant(name, args) for name in alternating(VARIANTS, r)})
    ratio, per_round = step_ratio(rounds)
    peak_mb = {name: min(r[name]["mb"] for r in rounds) for name in VARIANTS}
    print(f"augment_ms_per_image: {augment_ms():.2f}")
    for name in VARIANTS:
        print(f"{name}_step_s: {min(r[name]['step_s'] for r in rounds):.2f}")
        print(f"{name}_peak_growth_mb: {peak_mb[name]:.0f}")
    print(f"lora_step_round_ratios: {' '.join(f'{x:.3f}' for x in per_round)}")
    print(f"lora_step_spread: {max(per_round) - min(per_round):.3f}")
    print(f"lora_step_ratio: {ratio:.3f}")
    print(f"lora_mem_ratio: {peak_mb['lora'] / max(peak_mb['full'], 1e-6):.3f}")


if __name__ == "__main__":
    main()
