"""Crop geometry for crop -> refine -> paste back (the RECOMPOSE_CROP type).

A crop is an affine map from the source image's pixels to the crop's pixels (a plain
axis-aligned box, or a rotated FFHQ alignment quad), the sizes of both, and a feathered
blend mask in crop coordinates. Pasting warps the refined crop back with the inverse map
and blends it in, so any refiner wired in between (e.g. core KSampler with denoise) only
ever sees a normal image.
"""
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
import torch

from ..common.errors import InputError


@dataclass
class CropGeometry:
    matrix: np.ndarray          # [2, 3] source pixel (x, y, 1) -> crop pixel
    source_size: tuple          # (height, width)
    crop_size: tuple            # (height, width)
    feather: float = 0.08       # blend ramp width, as a fraction of the crop side

    def inverse(self) -> np.ndarray:
        full = np.vstack([self.matrix, [0.0, 0.0, 1.0]])
        return np.linalg.inv(full)[:2]


@dataclass
class CropBatch:
    """What travels on a RECOMPOSE_CROP wire: one geometry per image of the batch."""
    crops: list

    def __len__(self):
        return len(self.crops)


def box_of_mask(mask: np.ndarray, threshold: float = 0.5) -> Optional[tuple]:
    """(x0, y0, x1, y1) of the pixels above threshold, or None if there are none."""
    ys, xs = np.nonzero(mask > threshold)
    if len(xs) == 0:
        return None
    return float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)


def box_crop(box: Sequence[float], source_size: tuple, crop_size: tuple, context: float = 1.5,
             feather: float = 0.08) -> CropGeometry:
    """A crop around ``box`` grown by ``context`` and padded to the crop's aspect ratio (no stretching)."""
    x0, y0, x1, y1 = [float(v) for v in box]
    if x1 <= x0 or y1 <= y0:
        raise InputError(f"Empty crop box {box}.")
    out_h, out_w = crop_size
    cx, cy = (x0 + x1) / 2.0, (y0 + y1) / 2.0
    w, h = (x1 - x0) * context, (y1 - y0) * context
    aspect = out_w / out_h
    if w / h < aspect:
        w = h * aspect
    else:
        h = w / aspect
    scale = out_w / w
    matrix = np.array([[scale, 0.0, out_w / 2.0 - scale * cx],
                       [0.0, scale, out_h / 2.0 - scale * cy]])
    return CropGeometry(matrix, tuple(source_size), (int(out_h), int(out_w)), feather)


def quad_crop(quad: np.ndarray, source_size: tuple, size: int, feather: float = 0.08) -> CropGeometry:
    """Crop mapping quad corners (top-left, bottom-left, bottom-right, top-right) to a square of ``size``."""
    src = np.c_[np.asarray(quad[:3], dtype=np.float64)[:, :2], np.ones(3)]
    dst = np.array([[0, 0], [0, size], [size, size]], dtype=np.float64)
    matrix = np.linalg.solve(src, dst).T  # the affine map taking three quad corners to the square's
    return CropGeometry(matrix, tuple(source_size), (int(size), int(size)), feather)


def _sampling_grid(matrix_out_to_in: np.ndarray, out_h: int, out_w: int, in_h: int, in_w: int) -> torch.Tensor:
    """grid_sample grid [1, out_h, out_w, 2] (normalised, align_corners=False) for an affine map of pixel centres."""
    ys, xs = np.meshgrid(np.arange(out_h, dtype=np.float64) + 0.5, np.arange(out_w, dtype=np.float64) + 0.5,
                         indexing="ij")
    a = matrix_out_to_in
    sx = a[0, 0] * xs + a[0, 1] * ys + a[0, 2]
    sy = a[1, 0] * xs + a[1, 1] * ys + a[1, 2]
    grid = np.stack([sx / in_w * 2 - 1, sy / in_h * 2 - 1], -1)
    return torch.from_numpy(grid).float()[None]




def crop_images(images_bchw: torch.Tensor, crops: CropBatch, mode: str = "bicubic") -> torch.Tensor:
    """Cut each image's crop out (areas outside the source are filled by reflection).

    Bicubic by default: a crop -> paste round trip then loses about a third of bilinear's detail.
    """
    out = []
    for i, geo in enumerate(crops.crops):
        img = images_bchw[min(i, images_bchw.shape[0] - 1):][:1]
        grid = _sampling_grid(geo.inverse(), *geo.crop_size, *geo.source_size).to(img.device, img.dtype)
        cut = torch.nn.functional.grid_sample(img, grid, mode=mode, padding_mode="reflection", align_corners=False)
        out.append(cut.clamp(0, 1) if mode == "bicubic" else cut)  # bicubic overshoots at edges
    return torch.cat(out)


def blend_mask(geo: CropGeometry) -> torch.Tensor:
    """[h, w] weights in crop coordinates: 1 inside, ramping to 0 at the crop's border."""
    h, w = geo.crop_size
    ramp = max(geo.feather * min(h, w), 1e-6)
    ys = torch.arange(h, dtype=torch.float32) + 0.5
    xs = torch.arange(w, dtype=torch.float32) + 0.5
    wy = torch.clamp(torch.minimum(ys, h - ys) / ramp, 0, 1)
    wx = torch.clamp(torch.minimum(xs, w - xs) / ramp, 0, 1)
    m = wy[:, None] * wx[None, :]
    return m * m * (3 - 2 * m)  # smoothstep: no visible edge where the ramp ends


def paste_images(originals_bchw: torch.Tensor, refined_bchw: torch.Tensor, crops: CropBatch,
                 region_masks: Optional[torch.Tensor] = None) -> tuple:
    """Warp each refined crop back and blend it over its original. Returns (images, masks used [B,H,W])."""
    if refined_bchw.shape[0] not in (1, len(crops)):
        raise InputError(f"{refined_bchw.shape[0]} refined crops for {len(crops)} crop geometries.")
    outs, masks = [], []
    for i, geo in enumerate(crops.crops):
        orig = originals_bchw[min(i, originals_bchw.shape[0] - 1):][:1]
        if tuple(orig.shape[-2:]) != tuple(geo.source_size):
            raise InputError(f"The image to paste into is {orig.shape[-1]}x{orig.shape[-2]} but the crop was cut "
                             f"from a {geo.source_size[1]}x{geo.source_size[0]} image.")
        crop = refined_bchw[min(i, refined_bchw.shape[0] - 1):][:1].to(orig)
        if tuple(crop.shape[-2:]) != tuple(geo.crop_size):
            # A refiner may have resized the crop (e.g. upscale -> KSampler -> downscale); bring it back.
            crop = torch.nn.functional.interpolate(crop, size=geo.crop_size, mode="bilinear", align_corners=False)
        weight = blend_mask(geo)[None, None].to(orig)
        if region_masks is not None:
            region = region_masks[min(i, region_masks.shape[0] - 1)][None, None].to(orig)
            region = crop_images(region, CropBatch([geo]), mode="bilinear")
            weight = weight * region
        grid = _sampling_grid(geo.matrix, *geo.source_size, *geo.crop_size).to(orig)
        pixels = torch.nn.functional.grid_sample(crop, grid, mode="bicubic", padding_mode="border",
                                                 align_corners=False).clamp(0, 1)
        alpha = torch.nn.functional.grid_sample(weight, grid, mode="bilinear", padding_mode="zeros",
                                                align_corners=False)
        outs.append(orig * (1 - alpha) + pixels * alpha)
        masks.append(alpha[0, 0])
    return torch.cat(outs), torch.stack(masks)


def scaled_box_mask(mask: np.ndarray, scale: float = 1.1, threshold: float = 0.5) -> np.ndarray:
    """The mask's bounding box grown ``scale`` times about its centre, filled, clipped to the image
    (Total Selfie's inpainting mask: the reference person's box x1.1, thesis 3.5.3). Empty in, empty out."""
    out = np.zeros(mask.shape, np.float32)
    box = box_of_mask(mask, threshold)
    if box is None:
        return out
    x0, y0, x1, y1 = box
    cx, cy, hw, hh = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) * scale / 2, (y1 - y0) * scale / 2
    height, width = mask.shape
    top, bottom = int(np.clip(np.floor(cy - hh), 0, height)), int(np.clip(np.ceil(cy + hh), 0, height))
    left, right = int(np.clip(np.floor(cx - hw), 0, width)), int(np.clip(np.ceil(cx + hw), 0, width))
    out[top:bottom, left:right] = 1.0
    return out
