"""Fit Check's chunked VAE decode: SVD's temporal decoder at full width (AutoencoderKLTemporalDecoder,
random init, SVD-XT config), CPU. Each chunk size is measured in its own process (peak RSS growth of
one decode of FRAMES frames) and timed there; the chunked pipeline decode is what the sampler calls.

The ratio says how much of the decode's peak memory chunking removes; the 576x1024 figure scales the
measured per-frame-pixel activation cost to the thesis resolution (fp32 here; fp16 on a GPU halves it).
Prints `decode_mem_ratio_chunk2_over_chunk8`, `decode_time_ratio_chunk2_over_chunk8` and the estimates
last.

    .venv/bin/python bench/fitcheck_decode.py [--size 128x224] [--frames 8]
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
CHUNKS = (8, 2)


def decode_once(height: int, width: int, frames: int, chunk: int) -> dict:
    from diffusers import AutoencoderKLTemporalDecoder

    from pipelines.mimicmotion.pipeline import FitCheckPipeline

    torch.manual_seed(0)
    vae = AutoencoderKLTemporalDecoder(block_out_channels=[128, 256, 512, 512], layers_per_block=2,
                                       latent_channels=4).eval()
    pipe = FitCheckPipeline(None, vae, None, None, None, None)
    latents = torch.randn(frames, 4, height // 8, width // 8)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    with torch.no_grad():
        out = pipe.decode(latents, chunk)
    seconds = time.perf_counter() - start
    growth_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert out.shape == (frames, height, width, 3)
    return {"mb": growth_mb, "s": seconds}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", default="128x224", help="HxW of the decoded frames")
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    height, width = (int(v) for v in args.size.split("x"))
    if args.one:
        print(json.dumps(decode_once(height, width, args.frames, args.one)))
        return
    runs = {}
    for chunk in CHUNKS:
        out = subprocess.run([sys.executable, __file__, "--size", args.size, "--frames", str(args.frames),
                              "--one", str(chunk)], capture_output=True, text=True, check=True)
        runs[chunk] = json.loads(out.stdout.strip().splitlines()[-1])
    full = 576 * 1024 / (height * width)
    for chunk, r in runs.items():
        print(f"decode_chunk{chunk}_peak_growth_mb: {r['mb']:.0f}")
        print(f"decode_chunk{chunk}_s_per_frame: {r['s'] / args.frames:.2f}")
        print(f"decode_chunk{chunk}_576x1024_fp16_gb_est: {r['mb'] * full / 2 / 1024:.1f}")
    print(f"decode_mem_ratio_chunk2_over_chunk8: {runs[2]['mb'] / max(runs[8]['mb'], 1e-6):.3f}")
    print(f"decode_time_ratio_chunk2_over_chunk8: {runs[2]['s'] / max(runs[8]['s'], 1e-9):.3f}")


if __name__ == "__main__":
    main()
