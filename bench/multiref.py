"""Cost of multi-reference attention on an SD1.5-size UNet (random init), CPU.

8 frames (2 references + 6) at 32x32 latents. Variants, per denoising step of the main UNet:
  plain         stock attention
  multiref      our processor (reference keys/values projected once, shared by all frames)
  referencenet  a ReferenceNet-style UNet pass over the 2 references whose self-attention inputs
                are banked and appended to every frame's keys/values in the main UNet. As in
                MagicAnimate and Inverse Painting, the reference UNet runs once per sampling: its
                forward is timed on its own and spread over SAMPLING_STEPS steps (it shares the main
                UNet's weights here: same architecture, same cost, half the memory).

Times are the minimum over ROUNDS interleaved rounds (one step of every variant per round, so machine
noise hits all alike). Printed per variant: wall and CPU (process) seconds per step, seconds inside
the spatial self-attentions, FLOPs per step (convolutions/linears by torch's FlopCounterMode, every
scaled_dot_product_attention call counted from its shapes: 4 * B * heads * Lq * Lk * d), and peak
memory growth in a process of its own.

`multiref_step_spread` is max - min of the per-round multiref/plain ratios. A ratio whose spread
exceeds its effect (|ratio - 1|) is printed as "not resolved" instead of a number.

    .venv/bin/python bench/multiref.py
"""
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
FRAMES, REFS, ROUNDS, SAMPLING_STEPS = 8, (0, 1), 7, 25
VARIANTS = ("plain", "multiref", "referencenet")


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


def build():
    """(use(variant), step(variant), refnet_pass(), attention clock) over one SD1.5-size UNet. The
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

    def processors(variant):
        procs = dict(base)
        for name in names:
            if variant == "writer":
                procs[name] = BankWriter(bank, name, AttnProcessor2_0())
                continue
            inner = {"plain": AttnProcessor2_0, "multiref": lambda: MultiReferenceAttnProcessor(FRAMES, REFS),
                     "referencenet": lambda: BankReader(bank, name)}[variant]()
            procs[name] = Timed(inner, clock)
        return procs

    chosen = {}

    def use(variant):
        chosen["procs"] = processors(variant)
        unet.set_attn_processor(dict(chosen["procs"]))

    x, t, ctx = torch.randn(FRAMES, 4, 32, 32), torch.tensor(500), torch.randn(FRAMES, 77, 768)

    @torch.no_grad()
    def step(variant):
        return unet(x, t, ctx).sample

    @torch.no_grad()
    def refnet_pass():  # once per sampling: fills the bank the main UNet's steps read
        unet.set_attn_processor(processors("writer"))
        unet(x[list(REFS)], t, ctx[list(REFS)])
        unet.set_attn_processor(dict(chosen["procs"]))

    return use, step, refnet_pass, clock


def peak_growth_mb(variant: str) -> float:
    """Peak memory growth of one step (own process, so peaks do not mix)."""
    use, step, refnet_pass, _ = build()
    use(variant)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if variant == "referencenet":
        refnet_pass()
    step(variant)
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
        flops[variant] = measure(lambda: step(variant))
    return flops


def interleaved_rounds(use, step, refnet_pass, clock) -> list:
    """Per round: {variant: (wall s, cpu s, attention s)} for one step each, plus the ReferenceNet pass."""
    for v in VARIANTS:  # warm-up
        use(v)
        refnet_pass() if v == "referencenet" else None
        step(v)
    rounds = []
    for _ in range(ROUNDS):
        row = {}
        for v in VARIANTS:
            use(v)
            if v == "referencenet":
                wall, cpu = time.perf_counter(), time.process_time()
                refnet_pass()
                row["refnet_pass"] = (time.perf_counter() - wall, time.process_time() - cpu, 0.0)
            clock["s"] = 0.0
            wall, cpu = time.perf_counter(), time.process_time()
            step(v)
            row[v] = (time.perf_counter() - wall, time.process_time() - cpu, clock["s"])
        rounds.append(row)
    return rounds


def per_sampling_step(row: dict, variant: str, i: int) -> float:
    """A variant's cost per denoising step of a sampling (the ReferenceNet pass spread over its steps)."""
    extra = row["refnet_pass"][i] / SAMPLING_STEPS if variant == "referencenet" else 0.0
    return row[variant][i] + extra


def ratio_line(name: str, ratio: float, spread: float) -> str:
    if spread > abs(ratio - 1.0):
        return f"{name}: not resolved (ratio {ratio:.3f}, round-to-round spread {spread:.3f} > effect {abs(ratio - 1):.3f})"
    return f"{name}: {ratio:.3f}"


def main():
    if len(sys.argv) > 2 and sys.argv[1] == "--memory":
        print(json.dumps(peak_growth_mb(sys.argv[2])))
        return
    memory = {}
    for v in VARIANTS:
        out = subprocess.run([sys.executable, __file__, "--memory", v], capture_output=True, text=True, check=True)
        memory[v] = json.loads(out.stdout.strip().splitlines()[-1])
    use, step, refnet_pass, clock = build()
    flops = step_flops(use, step, refnet_pass)
    rounds = interleaved_rounds(use, step, refnet_pass, clock)

    def best(variant, i):
        return min(per_sampling_step(r, variant, i) for r in rounds)

    for v in VARIANTS:
        print(f"{v}_step_s: {best(v, 0):.3f}")
        print(f"{v}_cpu_s: {best(v, 1):.3f}")
        print(f"{v}_attention_s: {min(r[v][2] for r in rounds):.3f}")
        print(f"{v}_gflops: {(flops[v] + (flops['refnet_pass'] / SAMPLING_STEPS if v == 'referencenet' else 0)) / 1e9:.1f}")
        print(f"{v}_peak_growth_mb: {memory[v]:.0f}")
    print(f"rounds: {ROUNDS}")
    print(f"referencenet_pass_s: {min(r['refnet_pass'][0] for r in rounds):.3f} (once per {SAMPLING_STEPS}-step sampling)")
    for v in ("multiref", "referencenet"):
        per_round = [per_sampling_step(r, v, 0) / r["plain"][0] for r in rounds]
        spread = max(per_round) - min(per_round)
        ratio = best(v, 0) / best("plain", 0)
        extra = flops["refnet_pass"] / SAMPLING_STEPS if v == "referencenet" else 0
        print(f"{v}_flop_ratio: {(flops[v] + extra) / flops['plain']:.3f}")
        print(f"{v}_cpu_ratio: {best(v, 1) / best('plain', 1):.3f}")
        print(f"{v}_step_spread: {spread:.3f}")
        print(ratio_line(f"{v}_step_ratio", ratio, spread))
    print(f"multiref_mem_ratio: {memory['multiref'] / max(memory['plain'], 1e-6):.3f}")


if __name__ == "__main__":
    main()
