"""Fit Check's chunked VAE decode: SVD's temporal decoder at full width (AutoencoderKLTemporalDecoder,
random init, SVD-XT config), CPU. Each chunk size's memory is measured in its own process (peak RSS growth
of one decode of FRAMES frames); the chunked pipeline decode is what the sampler calls. Time: one more
process decodes with both chunk sizes in ROUNDS interleaved rounds (alternating order); the time ratio is
the fastest chunk-2 decode over the fastest chunk-8 one, printed with each round's ratio and their spread.

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

from bench.rounds import alternating, fastest_ratio  # noqa: E402
CHUNKS = (8, 2)
ROUNDS = 7


def decoder(height: int, width: int, frames: int):
    from diffusers import AutoencoderKLTemporalDecoder

    from pipelines.mimicmotion.pipeline import FitCheckPipeline

    torch.manual_seed(0)
    vae = AutoencoderKLTemporalDecoder(block_out_channels=[128, 256, 512, 512], layers_per_block=2,
                                       latent_channels=4).eval()
    return FitCheckPipeline(None, vae, None, None, None, None), torch.randn(frames, 4, height // 8, width // 8)


def timed_decode(pipe, latents, chunk: int) -> float:
    start = time.perf_counter()
    with torch.no_grad():
        out = pipe.decode(latents, chunk)
    assert out.shape[0] == latents.shape[0]
    return time.perf_counter() - start


def decode_once(height: int, width: int, frames: int, chunk: int) -> dict:
    """Peak memory growth of one decode (timing is interleaved_times' job)."""
    pipe, latents = decoder(height, width, frames)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    timed_decode(pipe, latents, chunk)
    return {"mb": (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024}


def interleaved_times(height: int, width: int, frames: int) -> list:
    """ROUNDS rounds of {chunk: seconds}, the order alternating, after one warm-up decode."""
    pipe, latents = decoder(height, width, frames)
    timed_decode(pipe, latents, CHUNKS[0])
    rounds = []
    for r in range(ROUNDS):
        rounds.append({chunk: timed_decode(pipe, latents, chunk) for chunk in alternating(CHUNKS, r)})
    return rounds


def time_ratio(rounds: list) -> tuple:
    """(fastest chunk-2 time / fastest chunk-8 time, each round's chunk-2 / chunk-8 ratio)."""
    return fastest_ratio(rounds, 2, 8)


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
    rounds = interleaved_times(height, width, args.frames)
    ratio, per_round = time_ratio(rounds)
    full = 576 * 1024 / (height * width)
    for chunk, r in runs.items():
        print(f"decode_chunk{chunk}_peak_growth_mb: {r['mb']:.0f}")
        print(f"decode_chunk{chunk}_s_per_frame: {min(t[chunk] for t in rounds) / args.frames:.2f}")
        print(f"decode_chunk{chunk}_576x1024_fp16_gb_est: {r['mb'] * full / 2 / 1024:.1f}")
    print(f"decode_time_round_ratios: {' '.join(f'{x:.3f}' for x in per_round)}")
    print(f"decode_time_ratio_spread: {max(per_round) - min(per_round):.3f}")
    print(f"decode_mem_ratio_chunk2_over_chunk8: {runs[2]['mb'] / max(runs[8]['mb'], 1e-6):.3f}")
    print(f"decode_time_ratio_chunk2_over_chunk8: {ratio:.3f}")


if __name__ == "__main__":
    main()
