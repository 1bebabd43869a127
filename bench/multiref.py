"""Cost of multi-reference attention on an SD1.5-size UNet (random init), CPU.

8 frames (2 references + 6) at 32x32 latents, one UNet step. Variants:
  plain         stock attention
  multiref      our processor (reference keys/values projected once, shared by all frames)
  referencenet  a ReferenceNet-style second UNet over the 2 references whose self-attention
                inputs are banked and appended to every frame's keys/values in the main UNet
Step times are measured round-robin in one process (noise hits every variant alike);
peak memory in one process per variant. Prints `multiref_step_ratio`, `referencenet_step_ratio` (step time / plain) and
`multiref_mem_ratio` (peak memory growth during the step / plain's).

    .venv/bin/python bench/multiref.py
"""
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
FRAMES, REFS, RUNS = 8, (0, 1), 3


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


def build(variants):
    """The UNet (and a ReferenceNet when asked) with a setter per variant's processors."""
    from diffusers import UNet2DConditionModel
    from diffusers.models.attention_processor import AttnProcessor2_0

    from pipelines.multiref.diffusers_processor import MultiReferenceAttnProcessor, spatial_self_attention_names

    torch.manual_seed(0)
    unet = UNet2DConditionModel(cross_attention_dim=768).eval()  # SD1.5 layout, random weights
    names = spatial_self_attention_names(unet)
    refnet = UNet2DConditionModel(cross_attention_dim=768).eval() if "referencenet" in variants else None
    bank = {}

    def use(variant):
        procs = dict(unet.attn_processors)
        for name in names:
            procs[name] = {"plain": AttnProcessor2_0(), "multiref": MultiReferenceAttnProcessor(FRAMES, REFS),
                           "referencenet": BankReader(bank, name)}[variant]
        unet.set_attn_processor(procs)
        if refnet is not None:
            writers = dict(refnet.attn_processors)
            for name in names:
                writers[name] = BankWriter(bank, name, AttnProcessor2_0())
            refnet.set_attn_processor(writers)
        return variant

    x, t, ctx = torch.randn(FRAMES, 4, 32, 32), torch.tensor(500), torch.randn(FRAMES, 77, 768)

    def step(variant):
        with torch.no_grad():
            if variant == "referencenet":
                refnet(x[list(REFS)], t, ctx[list(REFS)])
            return unet(x, t, ctx).sample

    return use, step


def peak_growth_mb(variant: str) -> float:
    """Peak memory growth of one step (own process, so peaks do not mix)."""
    use, step = build({variant})
    use(variant)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    step(variant)
    return (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024


def interleaved_times(variants) -> dict:
    """Step times measured round-robin in one process, so machine noise hits all alike."""
    use, step = build(set(variants))
    times = {v: [] for v in variants}
    for v in variants:  # warm-up
        use(v)
        step(v)
    for _ in range(RUNS):
        for v in variants:
            use(v)
            start = time.perf_counter()
            step(v)
            times[v].append(time.perf_counter() - start)
    return {v: statistics.median(ts) for v, ts in times.items()}


def main():
    variants = ("plain", "multiref", "referencenet")
    if len(sys.argv) > 2 and sys.argv[1] == "--memory":
        print(json.dumps(peak_growth_mb(sys.argv[2])))
        return
    memory = {}
    for v in variants:
        out = subprocess.run([sys.executable, __file__, "--memory", v], capture_output=True, text=True, check=True)
        memory[v] = json.loads(out.stdout.strip().splitlines()[-1])
    times = interleaved_times(variants)
    for v in variants:
        print(f"{v}_step_s: {times[v]:.3f}")
        print(f"{v}_peak_growth_mb: {memory[v]:.0f}")
    print(f"multiref_step_ratio: {times['multiref'] / times['plain']:.3f}")
    print(f"referencenet_step_ratio: {times['referencenet'] / times['plain']:.3f}")
    print(f"multiref_mem_ratio: {memory['multiref'] / max(memory['plain'], 1e-6):.3f}")


if __name__ == "__main__":
    main()
