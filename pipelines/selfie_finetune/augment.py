"""Resize-and-paste augmentations for per-capture fine-tuning (thesis 3.2.2 and 3.5.5).

Each augmentation pastes a full-body person (one of the candidate images I_n, or a
composite of the capture) onto the background at a random scale and position, then
pastes one randomly chosen selfie, resized to the height of its body part and keeping
its aspect ratio, centred on that part. The inpainting mask is the dilated box around
everything pasted, so the target equals the background outside the mask.

The thesis finds the body-part boxes with a human-parsing network; here they are fixed
vertical bands of the person's box (``PART_BANDS``), which needs no extra model.

Placements are drawn up front from the seed; images are rendered on demand, so 200
augmentations at 512^2 cost no memory until they are encoded.
"""
from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F

from ..common.errors import InputError

SELFIE_PARTS = ("face", "upper_body", "lower_body", "shoes")
# Top and bottom of each part inside a standing person's box, as fractions of its height.
PART_BANDS = ((0.0, 0.16), (0.12, 0.55), (0.45, 0.92), (0.86, 1.0))


@dataclass(frozen=True)
class Box:
    top: int
    left: int
    height: int
    width: int

    @property
    def bottom(self) -> int:
        return self.top + self.height

    @property
    def right(self) -> int:
        return self.left + self.width


@dataclass(frozen=True)
class Placement:
    person: int  # index of the candidate person image
    person_box: Box  # where the person's crop lands (always inside the image)
    part: int  # index into SELFIE_PARTS of the pasted selfie
    selfie_box: Box  # where that selfie lands (may reach past the image border; clipped when drawn)


def mask_box(mask: torch.Tensor) -> Box:
    """Bounding box of a [H,W] mask's pixels above 0.5."""
    rows = torch.nonzero(mask.amax(dim=1) > 0.5).flatten()
    cols = torch.nonzero(mask.amax(dim=0) > 0.5).flatten()
    top, left = int(rows[0]), int(cols[0])
    return Box(top, left, int(rows[-1]) - top + 1, int(cols[-1]) - left + 1)


def _uniform(gen: torch.Generator, low: float, high: float) -> float:
    return low + (high - low) * float(torch.rand((), generator=gen))


def _person_box(source: Box, size: tuple, gen: torch.Generator, scale: tuple, shift: float) -> Box:
    """The source box rescaled and moved at random, kept inside the image."""
    height, width = size
    s = _uniform(gen, *scale)
    s = min(s, height / source.height, width / source.width)  # never larger than the image
    h, w = max(int(round(source.height * s)), 1), max(int(round(source.width * s)), 1)
    cy = source.top + source.height / 2 + shift * source.height * _uniform(gen, -1, 1)
    cx = source.left + source.width / 2 + shift * source.width * _uniform(gen, -1, 1)
    top = min(max(int(round(cy - h / 2)), 0), height - h)
    left = min(max(int(round(cx - w / 2)), 0), width - w)
    return Box(top, left, h, w)


def _selfie_box(person: Box, part: int, selfie_size: tuple) -> Box:
    """The selfie resized to its part's band height (aspect kept), centred on the band."""
    start, end = PART_BANDS[part]
    h = max(int(round((end - start) * person.height)), 1)
    w = max(int(round(h * selfie_size[1] / selfie_size[0])), 1)
    cy = person.top + (start + end) / 2 * person.height
    cx = person.left + person.width / 2
    return Box(int(round(cy - h / 2)), int(round(cx - w / 2)), h, w)


def _resize(x: torch.Tensor, box: Box) -> torch.Tensor:
    return F.interpolate(x.unsqueeze(0), size=(box.height, box.width), mode="bilinear",
                         antialias=True, align_corners=False).squeeze(0)


def _paste(canvas: torch.Tensor, patch: torch.Tensor, box: Box, alpha: torch.Tensor = None) -> None:
    """Paste a [C,h,w] patch at box (clipped to the canvas), blended by an optional [1,h,w] alpha."""
    height, width = canvas.shape[-2:]
    top, left = max(box.top, 0), max(box.left, 0)
    bottom, right = min(box.bottom, height), min(box.right, width)
    if bottom <= top or right <= left:
        return
    piece = patch[:, top - box.top:bottom - box.top, left - box.left:right - box.left]
    region = canvas[:, top:bottom, left:right]
    if alpha is None:
        region.copy_(piece)
    else:
        a = alpha[:, top - box.top:bottom - box.top, left - box.left:right - box.left]
        region.copy_(region * (1 - a) + piece * a)


class AugmentedCapture(Sequence):
    """``count`` (target image [3,H,W], inpainting mask [1,H,W]) pairs made from one capture.

    background [3,H,W], people [P,3,H,W] and person_masks [P,H,W] in 0..1 share H and W
    (P candidates, e.g. the thesis' 20 generated full-body images or one composite);
    selfies: the four selfies [3,h,w] (face, upper body, lower body, shoes), any sizes.
    ``margin`` dilates the mask box by that fraction of the image's longer side.
    """

    def __init__(self, background: torch.Tensor, people: torch.Tensor, person_masks: torch.Tensor,
                 selfies: Sequence[torch.Tensor], count: int = 200, seed: int = 0,
                 scale: tuple = (0.85, 1.15), shift: float = 0.15, margin: float = 0.04):
        if len(selfies) != len(SELFIE_PARTS):
            raise InputError(f"Fine-tuning needs {len(SELFIE_PARTS)} selfies ({', '.join(SELFIE_PARTS)}), "
                             f"got {len(selfies)}.")
        if people.ndim != 4 or people.shape[1] != 3 or person_masks.ndim != 3 or people.shape[0] != person_masks.shape[0]:
            raise InputError(f"Expected person images [P,3,H,W] with masks [P,H,W]; got {tuple(people.shape)} and "
                             f"{tuple(person_masks.shape)}.")
        if people.shape[-2:] != background.shape[-2:] or person_masks.shape[-2:] != background.shape[-2:]:
            raise InputError(f"The person image(s) {tuple(people.shape[-2:])} and mask(s) "
                             f"{tuple(person_masks.shape[-2:])} must have the background's size "
                             f"{tuple(background.shape[-2:])} (height, width).")
        for i, m in enumerate(person_masks):
            if not (m > 0.5).any():
                raise InputError(f"Person mask {i + 1} is empty; draw or segment the person in that image.")
        if count < 1:
            raise InputError("Make at least one augmentation.")
        self.background = background.float().cpu()
        self.people = people.float().cpu()
        self.person_masks = person_masks.float().cpu()
        self.selfies = [s.float().cpu() for s in selfies]
        self.margin = int(round(margin * max(background.shape[-2:])))
        self.placements = self._draw(count, seed, scale, shift)

    def _draw(self, count: int, seed: int, scale: tuple, shift: float) -> list:
        gen = torch.Generator().manual_seed(int(seed))
        sources = [mask_box(m) for m in self.person_masks]
        size = tuple(self.background.shape[-2:])
        placements = []
        for _ in range(count):
            person = int(torch.randint(len(sources), (), generator=gen))
            box = _person_box(sources[person], size, gen, scale, shift)
            part = int(torch.randint(len(SELFIE_PARTS), (), generator=gen))
            selfie = _selfie_box(box, part, tuple(self.selfies[part].shape[-2:]))
            placements.append(Placement(person, box, part, selfie))
        return placements

    def __len__(self) -> int:
        return len(self.placements)

    @property
    def selfie_images(self) -> list:
        """The selfies as ComfyUI IMAGEs [1,h,w,3], the selfie encoder's input."""
        return [s.permute(1, 2, 0)[None] for s in self.selfies]

    def __getitem__(self, index: int) -> tuple:
        p = self.placements[index]
        src = mask_box(self.person_masks[p.person])
        crop = self.people[p.person, :, src.top:src.bottom, src.left:src.right]
        alpha = self.person_masks[p.person:p.person + 1, src.top:src.bottom, src.left:src.right]
        image = self.background.clone()
        _paste(image, _resize(crop, p.person_box), p.person_box, _resize(alpha, p.person_box).clamp(0, 1))
        _paste(image, _resize(self.selfies[p.part], p.selfie_box), p.selfie_box)
        return image.clamp(0, 1), self.inpaint_mask(p)

    def inpaint_mask(self, p: Placement) -> torch.Tensor:
        """1 inside the dilated box around the pasted person and selfie, clipped to the image."""
        height, width = self.background.shape[-2:]
        top = max(min(p.person_box.top, p.selfie_box.top) - self.margin, 0)
        left = max(min(p.person_box.left, p.selfie_box.left) - self.margin, 0)
        bottom = min(max(p.person_box.bottom, p.selfie_box.bottom) + self.margin, height)
        right = min(max(p.person_box.right, p.selfie_box.right) + self.margin, width)
        mask = torch.zeros(1, height, width)
        mask[:, top:bottom, left:right] = 1.0
        return mask
