"""The built-in BASELINE painter (no renderer weights): paints the target region by
region, back to front, each visit one layer finer — the region's mean colour, then a
strongly blurred target, then a lightly blurred one, then the target itself. Its mask
generator paints the instructed region (or, for "details" and unknown words, where the
difference mask says the canvas is still off). A documented heuristic, not the thesis'
learned renderer."""
import torch
import torch.nn.functional as F

from .difference import difference_mask
from .instructions import segment_regions

BLUR_SIGMAS = (None, 8.0, 2.0, 0.0)  # None = flat mean colour; 0 = the target itself


def _blur(image: torch.Tensor, sigma: float) -> torch.Tensor:
    if sigma <= 0:
        return image
    from kornia.filters import gaussian_blur2d

    k = int(2 * round(3 * sigma) + 1)
    return gaussian_blur2d(image, (k, k), (sigma, sigma), border_type="reflect")


def _soft(mask: torch.Tensor, radius: int = 2) -> torch.Tensor:
    """A slightly feathered mask, so layers blend like brush edges."""
    k = 2 * radius + 1
    return F.avg_pool2d(F.max_pool2d(mask, k, 1, radius), k, 1, radius).clamp(0, 1)


class BaselinePainter:
    name = "baseline painter (heuristic layering, no renderer weights)"

    def __init__(self):
        self.visits = {}

    def begin(self, target: torch.Tensor) -> None:
        self.visits = {}

    def update(self, canvas, target, mask, instruction, time_s, progress=None):
        level = min(self.visits.get(instruction, 0) + (len(BLUR_SIGMAS) - 1 if instruction == "details" else 0),
                    len(BLUR_SIGMAS) - 1)
        self.visits[instruction] = self.visits.get(instruction, 0) + 1
        sigma = BLUR_SIGMAS[level]
        if sigma is None:
            weight = mask.sum((2, 3), keepdim=True).clamp_min(1e-6)
            layer = ((target * mask).sum((2, 3), keepdim=True) / weight).expand_as(target)
        else:
            layer = _blur(target, sigma)
        soft = _soft(mask)
        if progress is not None:
            progress.step()
        return canvas * (1 - soft) + layer * soft


class BaselineMaskGenerator:
    name = "baseline mask generator (instructed region, else the difference mask)"

    def __init__(self, regions: int = 5, alpha: float = 0.2, distance=None):
        self.count, self.alpha, self.distance = regions, alpha, distance
        self.regions = {}

    def begin(self, target: torch.Tensor) -> None:
        self.regions = dict(segment_regions(target, self.count))

    def generate(self, canvas, target, instruction, time_s, prev_mask=None):
        if not self.regions:
            self.begin(target)
        if instruction in self.regions:
            return self.regions[instruction]
        return difference_mask(target, canvas, self.alpha, self.distance)
