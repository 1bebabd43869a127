"""Cost of multi-reference attention on an SD1.5-size UNet (random init), CPU.

8 frames (2 references + 6) at 32x32 latents, one UNet step. Variants, each in its own
process so peak memory is comparable:
  plain         stock attention
  multiref      our processor (reference keys/values projected once, shared by all frames)
  referencenet  a ReferenceNet-style second UNet over the 2 references whose self-attention
                inputs are banked and appended to every frame's keys/values in the main UNet
Prints `multiref_step_ratio`, `referencenet_step_ratio` (step time / plain) and
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


def run_variant(variant: str) -> dict:
    from diffusers import UNet2DConditionModel
    from diffusers.models.attention_processor import AttnProcessor2_0

    from pipelines.multiref.diffusers_processor import enable_multi_reference, spatial_self_attention_names

    torch.manual_seed(0)
    unet = UNet2DConditionModel(cross_attention_dim=768).eval()  # SD1.5 layout, random weights
    x, t, ctx = torch.randn(FRAMES, 4, 32, 32), torch.tensor(500), torch.randn(FRAMES, 77, 768)
    refnet = None
    if variant == "multiref":
        enable_multi_reference(unet, FRAMES, REFS)
    elif variant == "referencenet":
        refnet = UNet2DConditionModel(cross_attention_dim=768).eval()
        bank, writers, readers = {}, dict(refnet.attn_processors), dict(unet.attn_processors)
        for name in spatial_self_attention_names(unet):
            writers[name] = BankWriter(bank, name, AttnProcessor2_0())
            readers[name] = BankReader(bank, name)
        refnet.set_attn_processor(writers)
        unet.set_attn_processor(readers)

    def step():
        with torch.no_grad():
            if refnet is not None:
                refnet(x[list(REFS)], t, ctx[list(REFS)])
            return unet(x, t, ctx).sample

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    step()
    grown_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    times = []
    for _ in range(RUNS):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return {"step_s": statistics.median(times), "peak_growth_mb": grown_kb / 1024}


def main():
    if len(sys.argv) > 2 and sys.argv[1] == "--variant":
        print(json.dumps(run_variant(sys.argv[2])))
        return
    results = {}
    for variant in ("plain", "multiref", "referencenet"):
        out = subprocess.run([sys.executable, __file__, "--variant", variant], capture_output=True, text=True,
                             check=True).stdout
        results[variant] = json.loads(out.strip().splitlines()[-1])
        print(f"{variant}_step_s: {results[variant]['step_s']:.3f}")
        print(f"{variant}_peak_growth_mb: {results[variant]['peak_growth_mb']:.0f}")
    plain = results["plain"]
    print(f"multiref_step_ratio: {results['multiref']['step_s'] / plain['step_s']:.3f}")
    print(f"referencenet_step_ratio: {results['referencenet']['step_s'] / plain['step_s']:.3f}")
    print(f"multiref_mem_ratio: {results['multiref']['peak_growth_mb'] / max(plain['peak_growth_mb'], 1e-6):.3f}")


if __name__ == "__main__":
    main()
