"""The autoregressive painting loop (thesis 6.2.4, official demo.py).

blank white canvas -> text instruction -> mask instruction -> render, every update one fixed
interval Δt (20 s by default), until the official stopping rule:
- after more than three updates, the perceptual distance between consecutive keyframes was below
  1e-3 twice in a row ("converged"), or
- the last keyframe is within 0.1 of the target ("close to target"), or
- ``max_updates`` (50) were made.
The official code measures LPIPS (AlexNet). The ``distance`` argument is LPIPS when the caller has a backbone
(``difference.default_distance(path)``), otherwise the calibrated offline stand-in; the thresholds above are on
the LPIPS scale and each distance converts them to its own (``image_threshold`` / ``pixel_threshold``). The
result names the distance and the thresholds that ran.

Any aspect ratio: the target is resized so its short side is ``short_side`` (512 by default; the
long side is capped at ``max_long_side``), padded with black to a multiple of 16 (as the official
``pad_to_16``) and every keyframe is cropped back and resized to the input size.
"""
import logging
import math
from typing import Callable, Optional

import torch
import torch.nn.functional as F

from ..common.errors import InputError
from ..common.progress import Progress
from .interfaces import PaintingResult
from .difference import default_distance, difference_mask

LOG = logging.getLogger(__name__)

DEFAULT_INSTRUCTION = "painting"
MAX_INSTRUCTION_CHARS = 60


class ConstantInstructions:
    name = "constant instruction"

    def __init__(self, text: str = DEFAULT_INSTRUCTION):
        self.text = text

    def next(self, canvas, target, step):
        return self.text


class DifferenceMasks:
    """Mask instruction = the difference mask D(I_T, I_{t-1}, α) itself (no learned generator)."""

    def __init__(self, alpha: float = 0.2, distance=None):
        self.alpha, self.distance = alpha, distance or default_distance()
        self.name = f"difference mask (alpha {alpha:g}, {self.distance.name})"

    def generate(self, canvas, target, instruction, time_s, prev_mask=None):
        return difference_mask(target, canvas, alpha=self.alpha, distance=self.distance)


def stop_rule(step_diffs: list, target_diffs: list, converge_at: float, target_at: float) -> Optional[str]:
    """Why the official loop stops before the next update, or None: after more than three updates, two
    consecutive-keyframe distances in a row below ``converge_at``, or the last keyframe below ``target_at``
    from the target (thresholds on the distance's own scale)."""
    if len(step_diffs) > 3 and step_diffs[-2] < converge_at and step_diffs[-1] < converge_at:
        return "converged (two tiny updates in a row)"
    if target_diffs and target_diffs[-1] < target_at:
        return "close to target"
    return None


def clean_instruction(text) -> str:
    """VLM answers can be empty or long: collapse whitespace, cut to a few words, fall back to a default."""
    text = " ".join(str(text or "").replace("\n", " ").split()).strip(" .,:;\"'")
    if len(text) > MAX_INSTRUCTION_CHARS:
        text = text[:MAX_INSTRUCTION_CHARS].rsplit(" ", 1)[0] or text[:MAX_INSTRUCTION_CHARS]
    return text or DEFAULT_INSTRUCTION


def working_size(h: int, w: int, short_side: int = 512, max_long_side: int = 2048, multiple: int = 16):
    """(resized h, w), (padded h, w), notes."""
    notes = []
    s = short_side / min(h, w)
    rh, rw = max(1, round(h * s)), max(1, round(w * s))
    if max(rh, rw) > max_long_side:
        k = max_long_side / max(rh, rw)
        rh, rw = max(multiple, round(rh * k)), max(multiple, round(rw * k))
        notes.append(f"very elongated image: long side capped at {max_long_side} px")
    if (rh, rw) != (h, w):
        notes.append(f"painted at {rw}x{rh} (input {w}x{h}, short side {short_side})")
    ph, pw = math.ceil(rh / multiple) * multiple, math.ceil(rw / multiple) * multiple
    return (rh, rw), (ph, pw), notes


def _resize(x, size, mode="bilinear"):
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    if mode == "nearest":
        return F.interpolate(x, size=size, mode="nearest")
    return F.interpolate(x, size=size, mode=mode, align_corners=False, antialias=True).clamp(0, 1)


def time_map(keyframes: torch.Tensor, alpha: float = 0.2, distance=None) -> torch.Tensor:
    """Thesis Fig. 6.10: difference masks between consecutive keyframes, mask t weighted by t / N,
    merged with max. keyframes [N+1,3,H,W] (index 0 = blank) -> [1,1,H,W] in 0..1."""
    n = keyframes.shape[0] - 1
    out = torch.zeros(1, 1, *keyframes.shape[-2:])
    for t in range(1, n + 1):
        m = difference_mask(keyframes[t:t + 1], keyframes[t - 1:t], alpha=alpha, distance=distance).float().cpu()
        out = torch.maximum(out, m * (t / n))
    return out


def paint(target: torch.Tensor, painter, mask_generator=None, instruction_generator=None, distance=None,
          interval_s: float = 20.0, max_updates: int = 50, short_side: int = 512, max_long_side: int = 2048,
          alpha: float = 0.2, converge_eps: float = 1e-3, target_eps: float = 0.1,
          progress: Optional[Progress] = None, steps_per_update: Optional[int] = None,
          on_update: Optional[Callable] = None, max_output_side: int = 2048) -> PaintingResult:
    """Paint ``target`` ([1,3,H,W] or [3,H,W], 0..1) from a white canvas. See module docstring."""
    if target.ndim == 3:
        target = target.unsqueeze(0)
    if target.ndim != 4 or target.shape[1] != 3:
        raise InputError(f"Expected one RGB target image [1,3,H,W], got {tuple(target.shape)}.")
    if target.shape[0] != 1:
        raise InputError("Paint one target at a time (the batch has several images).")
    if min(target.shape[-2:]) < 8:
        raise InputError(f"The target is too small ({target.shape[-1]}x{target.shape[-2]}); use at least 8x8 pixels.")
    if max_updates < 1:
        raise InputError("max_updates must be at least 1.")
    h0, w0 = target.shape[-2:]
    target = target.float().cpu().clamp(0, 1)
    distance = distance or default_distance()
    converge_at, target_at = distance.image_threshold(converge_eps), distance.image_threshold(target_eps)
    thresholds = (f"thresholds (LPIPS scale -> this distance): alpha {alpha:g} -> {distance.pixel_threshold(alpha):.4g}, "
                  f"converged {converge_eps:g} -> {converge_at:.4g}, close to target {target_eps:g} -> {target_at:.4g}")
    LOG.info("Inverse Painting distance: %s; %s", distance.name, thresholds)
    masks_gen = mask_generator or DifferenceMasks(alpha, distance)
    instr_gen = instruction_generator or ConstantInstructions()
    (rh, rw), (ph, pw), notes = working_size(h0, w0, short_side, max_long_side)
    out_h, out_w = h0, w0
    if max(h0, w0) > max_output_side:  # N+1 full-size keyframes of a huge photo would not fit in memory
        k = max_output_side / max(h0, w0)
        out_h, out_w = max(1, round(h0 * k)), max(1, round(w0 * k))
        notes.append(f"outputs capped at {out_w}x{out_h} (input {w0}x{h0})")
    tgt = torch.zeros(1, 3, ph, pw)
    tgt[..., :rh, :rw] = _resize(target, (rh, rw))
    valid = (slice(None), slice(None), slice(0, rh), slice(0, rw))

    def repad(x):
        x = x.float().cpu().clamp(0, 1)
        if x.shape[-2:] != (ph, pw):
            x = _resize(x, (ph, pw))
        y = torch.zeros(1, x.shape[1], ph, pw)
        y[valid] = x[valid]
        return y

    def dist(a, b) -> float:
        return float(torch.as_tensor(distance(a[valid], b[valid])).reshape(-1)[0])

    canvas = torch.zeros(1, 3, ph, pw)
    canvas[valid] = 1.0
    keyframes, masks, instructions, times = [canvas], [], [], [0.0]
    step_diffs, target_diffs = [], []
    steps = steps_per_update or getattr(painter, "steps", 1) or 1
    stop_reason = "max updates"
    hooks = [o for o in (painter, masks_gen, instr_gen) if hasattr(o, "begin")]
    if dist(canvas, tgt) < target_at:
        stop_reason = "target is already blank (nothing to paint)"
        max_updates = 0
    for o in hooks:
        o.begin(tgt)
    prev_mask = None
    try:
        for idx in range(max_updates):
            reason = stop_rule(step_diffs, target_diffs, converge_at, target_at)
            if reason:
                stop_reason = reason
                break
            text = clean_instruction(instr_gen.next(canvas, tgt, idx))
            mask = masks_gen.generate(canvas, tgt, text, interval_s, prev_mask)
            mask = (repad(mask[:, :1]) > 0.5).float()
            child = progress.child(steps) if progress is not None else None
            new = repad(painter.update(canvas, tgt, mask, text, interval_s, child)[:, :3])
            step_diffs.append(dist(canvas, new))
            target_diffs.append(dist(new, tgt))
            canvas, prev_mask = new, mask
            keyframes.append(new)
            masks.append(mask)
            instructions.append(text)
            times.append((idx + 1) * float(interval_s))
            if progress is not None:
                progress.step(preview=new[valid].permute(0, 2, 3, 1))
            if on_update is not None:
                on_update(idx, new, mask, text)
        else:
            if max_updates and stop_reason == "max updates":
                stop_reason = f"max updates ({max_updates})"
    finally:
        for o in hooks:
            if hasattr(o, "end"):
                o.end()
    kf = torch.cat(keyframes, 0)
    tmap = time_map(kf, alpha, distance)
    crop = lambda x: x[..., :rh, :rw]  # noqa: E731
    return PaintingResult(
        keyframes=_resize(crop(kf), (out_h, out_w)),
        masks=_resize(crop(torch.cat(masks, 0)), (out_h, out_w), "nearest") if masks else torch.zeros(0, 1, out_h, out_w),
        instructions=instructions, times=times,
        time_map=_resize(crop(tmap), (out_h, out_w)),
        stop_reason=stop_reason,
        painter=getattr(painter, "name", type(painter).__name__),
        mask_generator=getattr(masks_gen, "name", type(masks_gen).__name__),
        instruction_generator=getattr(instr_gen, "name", type(instr_gen).__name__),
        distance=getattr(distance, "name", type(distance).__name__),
        distances_to_target=target_diffs, notes=[thresholds] + notes)
