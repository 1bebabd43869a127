"""The contracts the inverse-painting loop is written against (thesis 6.2.4).

One canvas update is: text instruction -> mask instruction -> canvas rendering. The learned
components (``renderer.py``, ``mask_generator.py``) and the heuristic baseline
(``baseline.py``, ``instructions.py``) implement these small protocols so that any mix of them
can drive ``loop.paint``.

Conventions (all three protocols):
- images are float tensors ``[B, 3, H, W]`` in 0..1 (the loop uses ``B == 1``), masks are
  ``[B, 1, H, W]`` in 0..1 (1 = paint here), all at the same working size (a multiple of 16);
- ``time_s`` is the interval Δt of this update in seconds (the official default is 20 s),
  ``step`` / ``progress`` count updates from 0;
- implementations must not keep references to ComfyUI objects; they may cache per-target work
  (e.g. ReferenceNet features, CLIP(target)) in ``begin(target)`` and drop it in ``end()``.
  Both hooks are optional: the loop calls them only when present.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional, Protocol, runtime_checkable

import torch

from ..common.progress import Progress


@runtime_checkable
class Painter(Protocol):
    """Renders the next keyframe from the current canvas (thesis eq. 6.1 at test time)."""

    name: str  # shown to users, e.g. "learned renderer" or "baseline (heuristic) painter"

    def update(self, canvas: torch.Tensor, target: torch.Tensor, mask: torch.Tensor,
               instruction: str, time_s: float, progress: Optional[Progress] = None) -> torch.Tensor:
        """Return the next canvas ``[B,3,H,W]`` 0..1. ``progress`` is a child progress for the
        denoising steps of this update (call ``progress.step()`` per step; it is also the cancel point)."""
        ...


@runtime_checkable
class MaskGenerator(Protocol):
    """Decides where to paint next (thesis eq. 6.3)."""

    name: str

    def generate(self, canvas: torch.Tensor, target: torch.Tensor, instruction: str,
                 time_s: float, prev_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Return a binary (0/1) mask ``[B,1,H,W]``; ``prev_mask`` is the previous update's mask
        (None at the first update), used by the official threshold schedule."""
        ...


@runtime_checkable
class InstructionGenerator(Protocol):
    """Decides what to paint next (thesis eq. 6.2): a short text, e.g. "sky" or "details"."""

    name: str

    def next(self, canvas: torch.Tensor, target: torch.Tensor, step: int) -> str:
        """Return the instruction for update ``step`` (0-based); at most a few words."""
        ...


@runtime_checkable
class PerceptualDistance(Protocol):
    """Image distance of the stopping rule, the difference mask and the metrics (LPIPS in the official code)."""

    name: str  # says which distance ran, e.g. "LPIPS (AlexNet ...)" or the offline stand-in

    def __call__(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Mean distance per image, ``[B]`` (0 = identical)."""
        ...

    def map(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Per-pixel distance ``[B,1,H,W]``."""
        ...

    def pixel_threshold(self, lpips_alpha: float) -> float:
        """The threshold on ``map`` that means ``lpips_alpha`` on the LPIPS scale."""
        ...

    def image_threshold(self, lpips_value: float) -> float:
        """The threshold on ``__call__`` that means ``lpips_value`` on the LPIPS scale."""
        ...


@dataclass
class PaintingResult:
    """What ``loop.paint`` returns. All tensors are on the CPU, cropped to the target's size.

    keyframes:    ``[N+1, 3, H, W]``; keyframes[0] is the blank (white) canvas at t = 0,
                  keyframes[i] the canvas after update i.
    masks:        ``[N, 1, H, W]`` mask instruction used by update i (0/1).
    instructions: N text instructions.
    times:        N+1 times in seconds of the keyframes (times[0] = 0, then i * Δt).
    time_map:     ``[1, 1, H, W]`` in 0..1 (thesis Fig. 6.10): the difference masks between
                  consecutive keyframes weighted by their position i/N and merged with max.
    stop_reason:  why the loop stopped ("converged", "close to target", "max updates", ...).
    painter / mask_generator / instruction_generator / distance: names of what ran.
    """

    keyframes: torch.Tensor
    masks: torch.Tensor
    instructions: List[str]
    times: List[float]
    time_map: torch.Tensor
    stop_reason: str = ""
    painter: str = ""
    mask_generator: str = ""
    instruction_generator: str = ""
    distance: str = ""
    distances_to_target: List[float] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)  # e.g. "resized 4000x3000 -> 683x512 to work on"

    @property
    def updates(self) -> int:
        return len(self.instructions)
