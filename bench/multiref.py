"""Cost of multi-reference attention on an SD1.5-size UNet (random init), CPU.

6 frames (2 references + 4) at 32x32 latents (256 px images) unless --frames / --latent say otherwise
(the printed `frames:` line says what ran; FLOPs are those of that size). 6 rather than 8 frames so
that 3 repeats per round fit in about 22 minutes on one thread (21 min 32 s on a quiet 2-core machine;
with 2 repeats the round-to-round spread there exceeded both effects). Variants, per denoising step of the main UNet:
  plain         stock attention
  multiref      our processor (reference keys/values projected once, shared by all frames)
  referencenet  a ReferenceNet-style UNet pass over the 2 references whose self-attention inputs
                are banked and appended to every frame's keys/values in the main UNet. As in
                MagicAnimate and Inverse Painting, the reference UNet runs once per sampling: its
                forward is timed on its own and spread over SAMPLING_STEPS steps (it shares the main
                UNet's weights here: same architecture, same cost, half the memory).

How the timing is taken (the bench runs on a 2-vCPU VM that other jobs share):
  - torch runs on --threads threads (default 1). With 2 threads on 2 vCPUs any other process
    preempts one OpenMP thread and the other waits for it at every barrier, so the step time
    swings with the neighbours' load; one thread leaves the second vCPU to them.
  - glibc is told to keep freed memory (the bench re-executes itself with MALLOC_MMAP_MAX_=0 and a
    huge MALLOC_TRIM_THRESHOLD_): otherwise every step returns its large activations to the kernel
    and page-faults them back (3.3 GB of fresh, zeroed pages per 8-frame step), and the time spent
    zeroing pages depends on the machine's memory traffic, not on the variant.
  - inputs and attention processors are built once, every variant is warmed up, and the garbage
    collector is off while timing.
  - a round is --repeats passes, each pass one step of every variant in turn (plain, multiref,
    referencenet, plain, multiref, ...); a variant's round time is the minimum over its repeats,
    so a burst of a neighbour's load that hits one pass is dropped instead of landing on one
    variant. There are --rounds (>= 7) rounds.
  - per-round ratio = variant's round time / plain's round time of the same round (printed as
    `<variant>_round_ratios`);
    `<variant>_step_spread` = max - min of the per-round ratios over the rounds;
    `<variant>_step_ratio` = (min over rounds of the variant's time) / (min over rounds of plain's
    time), printed as "not resolved" when the spread exceeds its effect |ratio - 1|.
  The wall time per step is the headline; CPU (process) time, the time inside the spatial
  self-attentions, FLOPs per step (convolutions/linears by torch's FlopCounterMode, every
  scaled_dot_product_attention call counted from its shapes: 4 * B * heads * Lq * Lk * d, for the
  frames and latent size that ran) and the peak memory growth (a process of its own per variant,
  default allocator) are printed beside it.

    .venv/bin/python bench/multiref.py [--rounds 7] [--repeats 3] [--threads 1] [--frames 6] [--latent 32]
"""
import argparse
import gc
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
FRAMES, REFS, LATENT, SAMPLING_STEPS = 6, (0, 1), 32, 25  # defaults of --frames, --latent
VARIANTS = ("plain", "multiref", "referencenet")
# glibc: never hand large blocks to mmap, never trim the heap, so freed activations are reused.
KEEP_FREED_MEMORY = {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": str(1 << 40)}


class Timed:
    """Wraps an attention processor and adds the time spent inside it to ``clock['s']``."""

    def __init__(self, inner, clock):
        self.inner, self.clock = inner, clock

    def __call__(self, *args, **kwargs):
        start = time.perf_counter()
        out = self.inner(*args, **kwargs)
        self.clock["s"] += time.perf_counter() - start
        return out


class BankWriter:
    """ReferenceNet side: keep each self-attention's input, run attention as usual."""

    def __init__(self, bank, name, base):
        self.bank, self.name, self.base = bank, name, base

    def __call__(self, attn, hidden_states, *args, **kwargs):
        self.bank[self.name] = hidden_states
        return self.base(attn, hidden_states, *args, **kwargs)


class BankReader:
    """Main UNet side: every frame's keys/values also come from the banked reference tokens."""

    def __init__(self, bank, name):
        self.bank, self.name = bank, name

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, **kwargs):
        refs = self.bank[self.name]  # [2, L, C]
        b, length, _ = hidden_states.shape
        ctx = torch.cat([hidden_states, refs.reshape(1, -1, refs.shape[-1]).expand(b, -1, -1)], dim=1)
        q, k, v = attn.to_q(hidden_states), attn.to_k(ctx), attn.to_v(ctx)
        split = lambda t: t.view(b, -1, attn.heads, t.shape[-1] // attn.heads).transpose(1, 2)  # noqa: E731
        out = torch.nn.functional.scaled_dot_product_attention(split(q), split(k), split(v))
        return attn.to_out[1](attn.to_out[0](out.transpose(1, 2).reshape(b, length, -1)))


def build(frames: int, latent: int):
    """(use(variant), step(), refnet_pass(), attention clock) over one SD1.5-size UNet. The
    ReferenceNet pass runs the same UNet with bank-writing processors (a ReferenceNet is a UNet of
    the same architecture; sharing the weights keeps the bench at one UNet's memory)."""
    from diffusers import UNet2DConditionModel
    from diffusers.models.attention_processor import AttnProcessor2_0

    from pipelines.multiref.diffusers_processor import MultiReferenceAttnProcessor, spatial_self_attention_names

    torch.manual_seed(0)
    unet = UNet2DConditionModel(cross_attention_dim=768).eval()  # SD1.5 layout, random weights
    names = spatial_self_attention_names(unet)
    base = dict(unet.attn_processors)
    bank, clock = {}, {"s": 0.0}
    inner = {"plain": lambda name: AttnProcessor2_0(),
             "multiref": lambda name: MultiReferenceAttnProcessor(frames, REFS),
             "referencenet": lambda name: BankReader(bank, name)}
    procs = {v: {**base, **{n: Timed(make(n), clock) for n in names}} for v, make in inner.items()}
    procs["writer"] = {**base, **{n: BankWriter(bank, n, AttnProcessor2_0()) for n in names}}
    chosen = {}

    def use(variant):
        chosen["variant"] = variant
        unet.set_attn_processor(dict(procs[variant]))  # a copy: diffusers pops from the dict it gets

    x, t, ctx = torch.randn(frames, 4, latent, latent), torch.tensor(500), torch.randn(frames, 77, 768)

    @torch.no_grad()
    def step():
        return unet(x, t, ctx).sample

    @torch.no_grad()
    def refnet_pass():  # once per sampling: fills the bank the main UNet's steps read
        unet.set_attn_processor(dict(procs["writer"]))
        unet(x[list(REFS)], t, ctx[list(REFS)])
        unet.set_attn_processor(dict(procs[chosen["variant"]]))

    return use, step, refnet_pass, clock


def peak_growth_mb(variant: str, frames: int, latent: int) -> float:
    """Peak memory growth of one step (own process, so peaks do not mix)."""
    use, step, refnet_pass, _ = build(frames, latent)
    use(variant)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if variant == "referencenet":
        refnet_pass()
    step()
    return (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024


def step_flops(use, step, refnet_pass) -> dict:
    """FLOPs of one main-UNet step per variant, and of one ReferenceNet pass."""
    from torch.utils.flop_counter import FlopCounterMode

    sdpa = torch.nn.functional.scaled_dot_product_attention
    counted = {"sdpa": 0}

    def counting_sdpa(q, k, v, *args, **kwargs):  # FlopCounterMode does not count SDPA on CPU
        counted["sdpa"] += 4 * q.shape[0] * q.shape[1] * q.shape[2] * k.shape[2] * q.shape[3]
        return sdpa(q, k, v, *args, **kwargs)

    def measure(run):
        counted["sdpa"] = 0
        torch.nn.functional.scaled_dot_product_attention = counting_sdpa
        try:
            with FlopCounterMode(display=False) as counter:
                run()
        finally:
            torch.nn.functional.scaled_dot_product_attention = sdpa
        return counter.get_total_flops() + counted["sdpa"]

    flops = {}
    for variant in VARIANTS:
        use(variant)
        if variant == "referencenet":
            flops["refnet_pass"] = measure(refnet_pass)
        flops[variant] = measure(step)
    return flops


def timed(run, clock) -> tuple:
    """(wall s, cpu s, attention s) of one call."""
    clock["s"] = 0.0
    wall, cpu = time.perf_counter(), time.process_time()
    run()
    return time.perf_counter() - wall, time.process_time() - cpu, clock["s"]


def one_pass(use, step, refnet_pass, clock) -> dict:
    """One step of every variant in turn, and the ReferenceNet pass: {name: (wall, cpu, attention)}."""
    out = {}
    for v in VARIANTS:
        use(v)
        if v == "referencenet":
            out["refnet_pass"] = timed(refnet_pass, clock)
        out[v] = timed(step, clock)
    return out


def interleaved_rounds(use, step, refnet_pass, clock, rounds: int, repeats: int) -> list:
    """Per round: {name: (wall, cpu, attention)}, each the minimum over the round's repeats."""
    one_pass(use, step, refnet_pass, clock)  # warm-up: first-call allocations and kernel selection
    gc.collect()
    gc.disable()  # a collection landing in one variant's step would be charged to it
    try:
        table = []
        for _ in range(rounds):
            passes = [one_pass(use, step, refnet_pass, clock) for _ in range(repeats)]
            table.append({name: tuple(min(p[name][i] for p in passes) for i in range(3)) for name in passes[0]})
        return table
    finally:
        gc.enable()


def per_sampling_step(row: dict, variant: str, i: int) -> float:
    """A variant's cost per denoising step of a sampling (the ReferenceNet pass spread over its steps)."""
    extra = row["refnet_pass"][i] / SAMPLING_STEPS if variant == "referencenet" else 0.0
    return row[variant][i] + extra


def per_sampling_flops(flops: dict, variant: str) -> float:
    return flops[variant] + (flops["refnet_pass"] / SAMPLING_STEPS if variant == "referencenet" else 0)


def round_ratios(rounds: list, variant: str) -> list:
    """Per round: the variant's wall time / plain's, same round."""
    return [per_sampling_step(r, variant, 0) / r["plain"][0] for r in rounds]


def step_ratio(rounds: list, variant: str) -> tuple:
    """(headline ratio, spread): min over rounds of the variant's wall time / min over rounds of
    plain's, and max - min of the per-round ratios (round_ratios)."""
    per_round = round_ratios(rounds, variant)
    best = min(per_sampling_step(r, variant, 0) for r in rounds) / min(r["plain"][0] for r in rounds)
    return best, max(per_round) - min(per_round)


def ratio_line(name: str, ratio: float, spread: float) -> str:
    if spread > abs(ratio - 1.0):
        return (f"{name}: not resolved (ratio {ratio:.3f}, round-to-round spread {spread:.3f}"
                f" > effect {abs(ratio - 1):.3f})")
    return f"{name}: {ratio:.3f}"


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=7, help="interleaved timing rounds (>= 7; minimum kept)")
    ap.add_argument("--repeats", type=int, default=3, help="passes per round; a round keeps each variant's minimum")
    ap.add_argument("--threads", type=int, default=1, help="torch threads while timing (1 is steadier on 2 vCPUs)")
    ap.add_argument("--frames", type=int, default=FRAMES, help="frames per video, the 2 references included")
    ap.add_argument("--latent", type=int, default=LATENT, help="latent side (32 = 256 px images)")
    ap.add_argument("--memory", metavar="VARIANT", help=argparse.SUPPRESS)  # internal: one memory run
    args = ap.parse_args()
    sizes_ok = args.frames > len(REFS) and args.latent >= 8 and args.latent % 8 == 0  # the UNet halves it 3 times
    if args.rounds < 7 or args.repeats < 1 or args.threads < 1 or not sizes_ok:
        ap.error("--rounds must be >= 7, --repeats and --threads >= 1, --frames > 2, --latent a multiple of 8")
    return args


def keep_freed_memory():
    """Re-execute this script under the glibc settings above (they are read at process start)."""
    if any(os.environ.get(k) != v for k, v in KEEP_FREED_MEMORY.items()):
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, **KEEP_FREED_MEMORY})


def memory_runs(frames: int, latent: int) -> dict:
    """Peak growth per variant, each in a process of its own under the default allocator."""
    env = {k: v for k, v in os.environ.items() if k not in KEEP_FREED_MEMORY}
    memory = {}
    for v in VARIANTS:
        out = subprocess.run([sys.executable, __file__, "--memory", v, "--frames", str(frames),
                              "--latent", str(latent)], capture_output=True, text=True,
                             check=True, env=env)
        memory[v] = json.loads(out.stdout.strip().splitlines()[-1])
    return memory


def main():
    args = parse_args()
    if args.memory:
        print(json.dumps(peak_growth_mb(args.memory, args.frames, args.latent)))
        return
    keep_freed_memory()
    memory = memory_runs(args.frames, args.latent)
    use, step, refnet_pass, clock = build(args.frames, args.latent)
    flops = step_flops(use, step, refnet_pass)  # untimed: on torch's default threads
    torch.set_num_threads(args.threads)
    rounds = interleaved_rounds(use, step, refnet_pass, clock, args.rounds, args.repeats)

    def best(variant, i):
        return min(per_sampling_step(r, variant, i) for r in rounds)

    for v in VARIANTS:
        print(f"{v}_step_s: {best(v, 0):.3f}")
        print(f"{v}_cpu_s: {best(v, 1):.3f}")
        print(f"{v}_attention_s: {min(r[v][2] for r in rounds):.3f}")
        print(f"{v}_gflops: {per_sampling_flops(flops, v) / 1e9:.1f}")
        print(f"{v}_peak_growth_mb: {memory[v]:.0f}")
    print(f"frames: {args.frames}, latent: {args.latent}x{args.latent}, threads: {args.threads}")
    print(f"rounds: {args.rounds}, repeats: {args.repeats}")
    pass_s = min(r["refnet_pass"][0] for r in rounds)
    print(f"referencenet_pass_s: {pass_s:.3f} (once per {SAMPLING_STEPS}-step sampling)")
    for v in ("multiref", "referencenet"):
        ratio, spread = step_ratio(rounds, v)
        print(f"{v}_flop_ratio: {per_sampling_flops(flops, v) / flops['plain']:.3f}")
        print(f"{v}_cpu_ratio: {best(v, 1) / best('plain', 1):.3f}")
        print(f"{v}_round_ratios: {' '.join(f'{x:.3f}' for x in round_ratios(rounds, v))}")
        print(f"{v}_step_spread: {spread:.3f}")
        print(ratio_line(f"{v}_step_ratio", ratio, spread))
    print(f"multiref_mem_ratio: {memory['multiref'] / max(memory['plain'], 1e-6):.3f}")


if __name__ == "__main__":
    main()
