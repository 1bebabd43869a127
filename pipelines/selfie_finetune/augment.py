"""Resize-and-paste augmentations for per-capture fine-tuning (thesis 3.2.2 and 3.5.5).

The "ground truth" of each augmentation is the background I_b with ONE randomly chosen selfie
pasted into the inpainting mask M: the selfie is resized to the height of its body part in a
candidate full-body image I_n (aspect ratio kept) and centred on that part. The candidates
(the thesis generates 20 without ControlNet) only say where the parts are; their pixels are
never pasted, so the model is not taught their (wrong) outfit or identity. M is the capture's
inpainting mask (default: the candidates' person box x1.1, as in 3.5.3); the selfie is pasted
only inside it, so the target equals I_b outside M.

The thesis finds the body-part boxes with a human-parsing network; here they are fixed
vertical bands of the person's box (``PART_BANDS``), which needs no extra model. The
candidate's box is also jittered a little in scale and position (``scale``, ``shift``), which
adds variety when the pool holds few candidates (set both to no jitter for the thesis' setup).

Placements are drawn up front from the seed; images are rendered on demand, so 200
augmentations at 512^2 cost no memory until they are encoded.
"""
from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F

from ..common.errors import InputError
from ..selfie_tools.crop import box_of_mask, scaled_box_mask

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
    """Bounding box of a [H,W] mask's pixels above 0.5 (the mask must not be empty)."""
    x0, y0, x1, y1 = (int(v) for v in box_of_mask(mask.cpu().numpy()))
    return Box(y0, x0, y1 - y0, x1 - x0)


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

    background [3,H,W] and person_masks [P,H,W] in 0..1 share H and W (P candidates I_n,
    e.g. the thesis' 20 generated full-body images, or one composite: only their masks are
    used); selfies: the four selfies [3,h,w] (face, upper body, lower body, shoes), any sizes;
    inpaint_mask [H,W]: M (None: the candidates' person box x1.1).
    """

    def __init__(self, background: torch.Tensor, person_masks: torch.Tensor, selfies: Sequence[torch.Tensor],
                 count: int = 200, seed: int = 0, inpaint_mask: torch.Tensor = None,
                 scale: tuple = (0.9, 1.1), shift: float = 0.1):
        if len(selfies) != len(SELFIE_PARTS):
            raise InputError(f"Fine-tuning needs {len(SELFIE_PARTS)} selfies ({', '.join(SELFIE_PARTS)}), "
                             f"got {len(selfies)}.")
        if person_masks.ndim != 3:
            raise InputError(f"Expected person masks [P,H,W]; got {tuple(person_masks.shape)}.")
        if person_masks.shape[-2:] != background.shape[-2:]:
            raise InputError(f"The person mask(s) {tuple(person_masks.shape[-2:])} must have the background's size "
                             f"{tuple(background.shape[-2:])} (height, width).")
        for i, m in enumerate(person_masks):
            if not (m > 0.5).any():
                raise InputError(f"Person mask {i + 1} is empty; draw or segment the person in that image.")
        if count < 1:
            raise InputError("Make at least one augmentation.")
        self.background = background.float().cpu()
        self.person_masks = person_masks.float().cpu()
        self.selfies = [s.float().cpu() for s in selfies]
        self.mask = self._inpaint_mask(inpaint_mask)
        self.placements = self._draw(count, seed, scale, shift)

    def _inpaint_mask(self, given) -> torch.Tensor:
        if given is None:
            union = self.person_masks.amax(0).numpy()
            return torch.from_numpy(scaled_box_mask(union, 1.1))[None]
        given = given.float().cpu()
        if given.shape != self.background.shape[-2:]:
            raise InputError(f"The inpainting mask {tuple(given.shape)} must have the background's size "
                             f"{tuple(self.background.shape[-2:])} (height, width).")
        if not (given > 0.5).any():
            raise InputError("The inpainting mask is empty; connect the mask the person is generated in.")
        return (given > 0.5).float()[None]

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
        image = self.background.clone()
        box = p.selfie_box
        inside = self.mask[:, max(box.top, 0):box.bottom, max(box.left, 0):box.right]
        alpha = torch.zeros(1, box.height, box.width)  # paste only inside M
        alpha[:, max(-box.top, 0):max(-box.top, 0) + inside.shape[1],
              max(-box.left, 0):max(-box.left, 0) + inside.shape[2]] = inside
        _paste(image, _resize(self.selfies[p.part], box), box, alpha)
        return image.clamp(0, 1), self.mask
