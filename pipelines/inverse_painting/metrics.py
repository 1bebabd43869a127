"""Painting-process metrics of thesis 6.3.4: nearest-time distance, IoU, DDC, DTS (FID not computed).

A generated sequence is keyframes [N,3,H,W] in 0..1 at a fixed interval (keyframe i at
i * interval seconds); a reference sequence is frames with timestamps in seconds. Both are
measured from their own first frame, and the reference is resized to the generated size.

- The thesis' LPIPS column: ``distance`` is LPIPS when the caller has a backbone
  (``difference.default_distance(path)``), else the offline stand-in; every line of the report
  names the distance that ran. Like the thesis, every reference frame is compared with the
  generated keyframe nearest in time (a real frame at 1:17 with the keyframe at 1:20 for a 20 s interval).
- IoU: for each generated difference mask D(frame_i, frame_{i-1}), the best IoU with any
  reference difference mask; mean. Two empty masks count as IoU 1 (nothing changed in both).
- DDC: DTW between the distance-to-target curves (distance of the frame shown at time t
  to the final reference frame, the target painting), both sampled every ``step_s`` seconds.
- DTS: |duration generated - duration reference| in minutes, as in the thesis tables.
- FID: not computed (no offline Inception backbone); reported as None with a note.

CLI: ``python -m pipelines.inverse_painting.metrics GEN_DIR REF_DIR [--interval 20]``.
"""
import argparse
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..common.errors import InputError
from .difference import default_distance, difference_mask

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
FID_NOTE = "not computed: no offline Inception backbone"
BATCH = 16  # frames per distance call, to bound memory on long reference videos


@dataclass
class ReferenceSequence:
    frames: torch.Tensor  # [M,3,H,W] in 0..1
    times: torch.Tensor  # [M] seconds, ascending


@dataclass
class PaintingMetrics:
    distance_name: str
    nearest_distance: float
    iou: float
    ddc: float
    dts_minutes: float
    fid: float | None = None
    fid_note: str = FID_NOTE

    def lines(self) -> list[str]:
        return [
            f"distance: {self.distance_name}",
            f"nearest_time_distance ({self.distance_name}): {self.nearest_distance:.6f}",
            f"iou_best_match: {self.iou:.6f}",
            f"ddc: {self.ddc:.6f}",
            f"dts_minutes: {self.dts_minutes:.6f}",
            f"fid: {self.fid} ({self.fid_note})",
        ]

    def report(self) -> str:
        return "\n".join(self.lines())


# ---------------------------------------------------------------- loading

def _timestamp(path: Path) -> int | None:
    match = re.search(r"\d+", path.stem)
    return int(match.group()) if match else None


def _image_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise InputError(f"The sequence folder '{folder}' does not exist or is not a folder.")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise InputError(f"The sequence folder '{folder}' has no images ({', '.join(IMAGE_SUFFIXES)}).")
    return files


def _load_frames(files: list[Path]) -> torch.Tensor:
    from PIL import Image

    first = None
    frames = []
    for path in files:
        with Image.open(path) as img:
            img = img.convert("RGB")
            # Frames of one video should share a size; resize stragglers to the first one's.
            first = first or img.size
            if img.size != first:
                img = img.resize(first, Image.BICUBIC)
            frames.append(torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0).permute(2, 0, 1))
    return torch.stack(frames)


def load_reference_sequence(folder) -> ReferenceSequence:
    """Images whose stem holds the timestamp in seconds (first integer: frame_0120.png, 0120s.jpg)."""
    folder = Path(folder)
    files = _image_files(folder)
    missing = [p.name for p in files if _timestamp(p) is None]
    if missing:
        raise InputError(f"Reference images in '{folder}' need the time in seconds in their name "
                         f"(e.g. frame_0120.png); these have none: {', '.join(missing[:5])}.")
    files.sort(key=lambda p: (_timestamp(p), p.name))
    times = torch.tensor([float(_timestamp(p)) for p in files])
    return ReferenceSequence(_load_frames(files), times)


def load_generated_sequence(folder) -> torch.Tensor:
    """Generated keyframes in file-name order (their times come from the interval)."""
    return _load_frames(_image_files(Path(folder)))


# ---------------------------------------------------------------- helpers

def _check_frames(frames: torch.Tensor, what: str) -> None:
    if frames.ndim != 4 or frames.shape[1] != 3:
        raise InputError(f"The {what} must be frames [N,3,H,W], got shape {tuple(frames.shape)}.")
    if frames.shape[0] < 2:
        raise InputError(f"The {what} needs at least 2 frames (got {frames.shape[0]}).")


def _resize_to(frames: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    if tuple(frames.shape[-2:]) == tuple(size):
        return frames
    return F.interpolate(frames, size=size, mode="bilinear", align_corners=False, antialias=True).clamp(0, 1)


def _batched(fn, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.cat([fn(a[i:i + BATCH], b[i:i + BATCH]) for i in range(0, a.shape[0], BATCH)])


def nearest_index(times: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
    """For each query time, the index of the nearest time (ties go to the earlier frame)."""
    return (query[:, None] - times[None, :]).abs().argmin(dim=1)


def shown_index(times: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
    """For each query time, the last frame at or before it (what the canvas shows then)."""
    return (torch.searchsorted(times, query, right=True) - 1).clamp(min=0)


def _difference_masks(frames: torch.Tensor, distance) -> torch.Tensor:
    masks = _batched(lambda a, b: difference_mask(a, b, distance=distance), frames[1:], frames[:-1])
    return masks.flatten(1) > 0.5


# ---------------------------------------------------------------- metrics

def nearest_time_distance(gen, gen_times, ref, ref_times, distance) -> float:
    """Mean distance of every reference frame to the generated keyframe nearest in time."""
    idx = nearest_index(gen_times, ref_times)
    return float(_batched(distance, ref, gen[idx]).mean())


def best_match_iou(gen, ref, distance) -> float:
    gen_masks = _difference_masks(gen, distance).double()
    ref_masks = _difference_masks(ref, distance).double()
    inter = gen_masks @ ref_masks.T
    union = gen_masks.sum(1, keepdim=True) + ref_masks.sum(1)[None, :] - inter
    iou = torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(inter))
    return float(iou.max(dim=1).values.mean())


def distance_curve(frames, times, target, step_s: float, distance) -> np.ndarray:
    """Distance to the target of the frame shown at 0, step, 2*step, ... up to the last time."""
    per_frame = _batched(distance, frames, target.expand_as(frames))
    samples = torch.arange(0.0, float(times[-1]) + 1e-6, step_s)
    return per_frame[shown_index(times, samples)].double().numpy()


def ddc(gen, gen_times, ref, ref_times, step_s: float, distance) -> float:
    from dtaidistance import dtw

    target = ref[-1:]
    gen_curve = distance_curve(gen, gen_times, target, step_s, distance)
    ref_curve = distance_curve(ref, ref_times, target, step_s, distance)
    # distance_fast prunes with the Euclidean upper bound by default; when the diagonal path is
    # optimal, rounding puts DTW just above that bound and it returns inf, so pruning is off.
    return float(dtw.distance_fast(np.ascontiguousarray(gen_curve), np.ascontiguousarray(ref_curve),
                                   use_pruning=False))


def dts_minutes(gen_times: torch.Tensor, ref_times: torch.Tensor) -> float:
    return abs(float(gen_times[-1] - gen_times[0]) - float(ref_times[-1] - ref_times[0])) / 60.0


def compute_metrics(keyframes: torch.Tensor, interval_s: float, reference: ReferenceSequence,
                    step_s: float | None = None, distance=None) -> PaintingMetrics:
    """All metrics for one painting; ``step_s`` (default: the interval) samples the DDC curves."""
    if interval_s <= 0:
        raise InputError(f"The keyframe interval must be positive (got {interval_s} s).")
    _check_frames(keyframes, "generated sequence")
    _check_frames(reference.frames, "reference sequence")
    distance = distance or default_distance()
    gen = keyframes.float().clamp(0, 1)
    ref = _resize_to(reference.frames.float(), tuple(gen.shape[-2:]))
    gen_times = torch.arange(gen.shape[0], dtype=torch.float32) * float(interval_s)
    ref_times = reference.times.float() - reference.times[0].float()  # both start at 0
    step_s = float(step_s or interval_s)
    with torch.no_grad():
        return PaintingMetrics(
            distance_name=distance.name,
            nearest_distance=nearest_time_distance(gen, gen_times, ref, ref_times, distance),
            iou=best_match_iou(gen, ref, distance),
            ddc=ddc(gen, gen_times, ref, ref_times, step_s, distance),
            dts_minutes=dts_minutes(gen_times, ref_times),
        )


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("generated", help="folder of generated keyframes, in file-name order")
    parser.add_argument("reference", help="folder of reference frames named with their time in seconds")
    parser.add_argument("--interval", type=float, default=20.0, help="seconds between generated keyframes")
    parser.add_argument("--lpips", help="torchvision-layout AlexNet/VGG16 backbone file for true LPIPS "
                                        "(default: the offline stand-in distance)")
    args = parser.parse_args(argv)
    try:
        reference = load_reference_sequence(args.reference)
        keyframes = load_generated_sequence(args.generated)
        distance = default_distance(args.lpips)
        print(compute_metrics(keyframes, args.interval, reference, distance=distance).report())
    except InputError as error:  # a bad folder is the user's mistake: a message, not a traceback
        raise SystemExit(f"error: {error}") from None


if __name__ == "__main__":
    main()
