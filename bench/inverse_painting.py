"""One Inverse Painting canvas update with the SD1.5-size renderer architecture (random init) at 256x256 on
CPU: ours (per-painting cache of target latents / CLIP(target) / ReferenceNet bank + its K/V, one bank
broadcast, canvas encoder on 3 distinct inputs, CFG branches chunked) vs the official formulation
(ReferenceNet over six copies at the first step of every update, six-copy bank, self-attention over
[x, bank] as queries and keys, all six branches in one batch). Both run in the same script, each in its own
subprocess so that peak memory is measured cleanly (RSS sampled every 2 ms, minus the RSS before the work;
weights are identical on both sides and excluded; both sides are warmed up with a 1-step update first; the
measured window includes ours' per-painting cache build and the official six-copy banks, which the official
code keeps on the attention modules through the VAE decode).

Denoising steps are few to keep the runtime reasonable on CPU (``--steps``, default 2; about 6 minutes on
2 cores); the 25-step figures are extrapolated from the measured fixed cost + per-step cost (says so in the
output). Timing runs both formulations in one process on the same weights, alternating, best of ``--repeats``.

    .venv/bin/python bench/inverse_painting.py [--steps 2] [--size 256] [--chunk 2]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SD15_UNET = dict(sample_size=64, in_channels=4, out_channels=4, layers_per_block=2,
                 block_out_channels=(320, 640, 1280, 1280),
                 down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
                 up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
                 cross_attention_dim=768, attention_head_dim=8)


class RSSPeak:
    def __init__(self):
        self.page = os.sysconf("SC_PAGE_SIZE")
        self.peak = 0
        self._stop = False

    def rss(self):
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * self.page

    def __enter__(self):
        self.start = self.rss()
        self.peak = self.start
        self._stop = False
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()
        return self

    def _run(self):
        while not self._stop:
            self.peak = max(self.peak, self.rss())
            time.sleep(0.002)

    def __exit__(self, *exc):
        self._stop = True
        self.t.join()
        self.peak = max(self.peak, self.rss())

    @property
    def extra(self):
        return self.peak - self.start


def build_renderer(steps, chunk, mode):
    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer, CLIPVisionConfig, CLIPVisionModel

    from pipelines.inverse_painting.modules import CanvasEncoder, NextClipPredictor, TimeEncoder
    from pipelines.inverse_painting.renderer import CanvasRenderer, ClipImageEncoder, TextEncoder
    from pipelines.inverse_painting.weights import PaintingConfig
    from tests.fixtures.build_painting import _write_tokenizer

    torch.manual_seed(0)
    unet = UNet2DConditionModel(**SD15_UNET)
    refnet = UNet2DConditionModel(**SD15_UNET)
    vae = AutoencoderKL(block_out_channels=(128, 256, 512, 512), layers_per_block=2, latent_channels=4,
                        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
                        sample_size=512)
    tok_dir = Path(tempfile.mkdtemp()) / "tokenizer"
    vocab = _write_tokenizer(tok_dir)
    te = CLIPTextModel(CLIPTextConfig(vocab_size=vocab, hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                                      num_attention_heads=12, max_position_embeddings=77,
                                      bos_token_id=vocab - 2, eos_token_id=vocab - 1, pad_token_id=vocab - 1))
    clip = CLIPVisionModel(CLIPVisionConfig(hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                                            num_attention_heads=12, image_size=224, patch_size=32))
    guider = CanvasEncoder(4, 320)
    with torch.no_grad():
        guider.final_proj.weight.normal_(0, 0.02)
    return CanvasRenderer(unet, refnet, guider, NextClipPredictor(768, 1024, 768), TimeEncoder(21, (256, 512, 768)),
                          vae.eval(), TextEncoder(CLIPTokenizer.from_pretrained(tok_dir), te.eval()),
                          ClipImageEncoder(clip.eval()), PaintingConfig(), steps=steps, cfg_chunk=chunk,
                          reference_mode=mode)


def run_variant(args):
    import torch

    from pipelines.common.progress import Progress

    torch.set_num_threads(max(1, os.cpu_count() or 1))
    mode = "official" if args.variant == "official" else "cached"
    r = build_renderer(args.steps, args.chunk if mode == "cached" else 6, mode)
    g = torch.Generator().manual_seed(0)
    target = torch.rand(1, 3, args.size, args.size, generator=g)
    canvas = torch.ones(1, 3, args.size, args.size)
    mask = torch.zeros(1, 1, args.size, args.size)
    mask[..., : args.size // 2, :] = 1
    with torch.no_grad():
        r.text_encoder("sky")
        r.text_encoder("")
    # warm-up (1 step, not measured): first-use allocations of kernels/primitive caches are not working memory
    warm = r.settings(steps=1)
    warm.update(canvas, target, mask, "sky", 20.0)
    warm.end()
    del warm
    r.end()
    import gc

    gc.collect()
    out = {"variant": args.variant, "steps": args.steps, "chunk": r.cfg_chunk}
    stamps = []
    prog = Progress(args.steps, lambda d, t, p: stamps.append(time.perf_counter()))
    mem = RSSPeak()
    phase = {}
    decode = r.vae.decode

    def timed_decode(*a, **k):  # split the peak: denoising (+ cache) vs the VAE decode both sides share
        phase["before_decode"] = mem.peak - mem.start
        phase["decode_t0"] = time.perf_counter()
        base = mem.rss()
        mem.peak = base
        res = decode(*a, **k)
        phase["decode"] = max(mem.peak, mem.rss()) - mem.start
        phase["decode_s"] = time.perf_counter() - phase["decode_t0"]
        return res

    r.vae.decode = timed_decode
    with mem:
        t0 = time.perf_counter()
        if mode == "cached":
            r.begin(target)  # once per painting; later updates reuse it
            out["cache_build_s"] = time.perf_counter() - t0
        t1 = time.perf_counter()
        r.update(canvas, target, mask, "sky", 20.0, progress=prog)
        t2 = time.perf_counter()
    step_times = [b - a for a, b in zip([t1] + stamps[:-1], stamps)]
    per_step = sum(step_times[1:]) / (len(step_times) - 1) if len(step_times) > 1 else step_times[0]
    out.update(update_s=t2 - t1, per_step_s=per_step, fixed_s=(t2 - t1) - per_step * len(step_times),
               decode_s=phase.get("decode_s", 0.0),
               peak_extra_bytes=max(mem.extra, phase.get("before_decode", 0)),
               peak_denoise_bytes=phase.get("before_decode", mem.extra), peak_decode_bytes=phase.get("decode", 0),
               referencenet_runs=r.stats["referencenet_runs"])
    print("RESULT " + json.dumps(out), flush=True)


def run_timing(args):
    """Both formulations in one process on the same weights, alternating, best of ``--repeats``
    (the machine is shared: alternating and taking the minimum keeps drift out of the ratio)."""
    import torch

    from pipelines.common.progress import Progress

    torch.set_num_threads(max(1, os.cpu_count() or 1))
    base = build_renderer(args.steps, 6, "cached")
    official = base.settings(reference_mode="official")
    ours = base.settings(reference_mode="cached", cfg_chunk=6)
    g = torch.Generator().manual_seed(0)
    target = torch.rand(1, 3, args.size, args.size, generator=g)
    canvas = torch.ones(1, 3, args.size, args.size)
    mask = torch.zeros(1, 1, args.size, args.size)
    mask[..., : args.size // 2, :] = 1
    for r in (official, ours):  # warm-up
        r.settings(steps=1).update(canvas, target, mask, "sky", 20.0)
    t = time.perf_counter()
    ours.begin(target)
    cache_s = time.perf_counter() - t
    # what the official pipeline redoes at every update and ours once per painting: VAE(target), CLIP(target),
    # ReferenceNet over six copies (+ the reader's clone of the bank)
    with torch.no_grad():
        t = time.perf_counter()
        c6 = official._prepare_target(target, copies=6)
        {k: v.clone() for k, v in c6.bank.items()}
        target_work_s = time.perf_counter() - t
        del c6
    best = {"official": None, "ours": None}
    for _ in range(args.repeats):
        for name, r in (("official", official), ("ours", ours)):
            stamps = []
            prog = Progress(args.steps, lambda d, tt, p: stamps.append(time.perf_counter()))
            t1 = time.perf_counter()
            r.update(canvas, target, mask, "sky", 20.0, progress=prog)
            t2 = time.perf_counter()
            steps = [b - a for a, b in zip([t1] + stamps[:-1], stamps)]
            per_step = min(steps[1:]) if len(steps) > 1 else steps[0]
            rec = dict(update_s=t2 - t1, per_step_s=per_step, fixed_s=(t2 - t1) - per_step * len(steps))
            if best[name] is None or rec["update_s"] < best[name]["update_s"]:
                best[name] = rec
    best["ours"]["cache_build_s"] = cache_s
    best["official"]["target_work_s"] = target_work_s
    print("RESULT " + json.dumps(best), flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--chunk", type=int, default=1, help="CFG branches per UNet batch for ours (memory run)")
    ap.add_argument("--repeats", type=int, default=2, help="timed updates per formulation (best is kept)")
    ap.add_argument("--variant", choices=["official", "ours", "ours_chunked", "timing"])
    args = ap.parse_args()
    if args.variant == "timing":
        return run_timing(args)
    if args.variant:
        if args.variant == "ours":
            args.chunk = 6
        return run_variant(args)
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536", MALLOC_TRIM_THRESHOLD_="0",
               PYTHONWARNINGS="ignore", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    res = {}
    for variant in ("timing", "official", "ours", "ours_chunked"):
        cmd = [sys.executable, __file__, "--variant", variant, "--steps", str(args.steps), "--size", str(args.size),
               "--chunk", str(args.chunk), "--repeats", str(args.repeats)]
        p = subprocess.run(cmd, env=env, capture_output=True, text=True)
        line = [ln for ln in p.stdout.splitlines() if ln.startswith("RESULT ")]
        if p.returncode or not line:
            print(p.stdout[-3000:], p.stderr[-3000:])
            raise SystemExit(f"{variant} failed")
        res[variant] = json.loads(line[-1][7:])
    o, c, k = res["official"], res["ours"], res["ours_chunked"]
    to, tc = res["timing"]["official"], res["timing"]["ours"]
    gib = 2 ** 30
    # 25-step extrapolation: the fixed part (CLIP, text, canvas encoder, VAE decode; for the official side also
    # the six-copy ReferenceNet run inside the first step) + 25 x the measured per-step time
    o25 = to["fixed_s"] + 25 * to["per_step_s"]
    c25 = tc["fixed_s"] + 25 * tc["per_step_s"]
    saving_per_update = to["target_work_s"]  # measured directly (robust to the per-step/fixed split)
    print(f"# SD1.5-size renderer (random init), {args.size}x{args.size}, CPU threads {os.cpu_count()}, "
          f"{args.steps} denoising steps measured per update (25-step figures extrapolated from fixed + per-step)")
    print(f"# timing (one process, same weights, alternating, best of {args.repeats}): official "
          f"{to['update_s']:.2f}s (per step {to['per_step_s']:.2f}s, fixed {to['fixed_s']:.2f}s; per-update target "
          f"work incl. six-copy ReferenceNet {to['target_work_s']:.2f}s); ours {tc['update_s']:.2f}s (per step {tc['per_step_s']:.2f}s, fixed {tc['fixed_s']:.2f}s; "
          f"cache build {tc['cache_build_s']:.2f}s once per painting)")
    for name, r in (("official", o), ("ours", c), (f"ours cfg_chunk={k['chunk']}", k)):
        print(f"# memory run, {name}: update {r['update_s']:.2f}s; peak +{r['peak_extra_bytes'] / gib:.3f} GiB "
              f"(denoising {r['peak_denoise_bytes'] / gib:.3f}, VAE decode {r['peak_decode_bytes'] / gib:.3f}); "
              f"ReferenceNet images {r['referencenet_runs']}")
    print(f"steps_measured: {args.steps}")
    print(f"update_s: {tc['update_s']:.3f}")
    print(f"update_s_official: {to['update_s']:.3f}")
    print(f"update_time_ratio_measured: {tc['update_s'] / to['update_s']:.3f}")
    print(f"update_s_25_steps_extrapolated: {c25:.3f}")
    print(f"update_s_official_25_steps_extrapolated: {o25:.3f}")
    print(f"update_time_ratio: {c25 / o25:.3f}")
    print(f"update_s_chunked: {k['update_s']:.3f}")
    print(f"peak_mem_ratio: {k['peak_extra_bytes'] / max(1, o['peak_extra_bytes']):.3f}")
    print(f"peak_mem_ratio_denoising: {k['peak_denoise_bytes'] / max(1, o['peak_denoise_bytes']):.3f}")
    print(f"peak_mem_ratio_unchunked: {c['peak_extra_bytes'] / max(1, o['peak_extra_bytes']):.3f}")
    print(f"cache_build_s_per_painting: {tc['cache_build_s']:.3f}")
    print(f"caching_saving_s_per_update: {saving_per_update:.3f}")
    print(f"caching_saving_s_per_50_update_painting: {50 * saving_per_update - tc['cache_build_s']:.3f}")


if __name__ == "__main__":
    main()
