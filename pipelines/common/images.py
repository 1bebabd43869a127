"""Conversions between ComfyUI's layouts and what models take.

IMAGE is [B, H, W, C] float in 0..1, MASK is [B, H, W] float in 0..1. Models take
[B, C, H, W]; diffusers VAEs take -1..1.
"""
import numpy as np
import torch
from PIL import Image

from .errors import InputError


def image_to_bchw(image: torch.Tensor) -> torch.Tensor:
    """IMAGE [B,H,W,C] -> [B,C,H,W] (RGB; an alpha channel is dropped; a grey image is repeated)."""
    return _rgb(image).permute(0, 3, 1, 2).contiguous()


def _rgb(image: torch.Tensor) -> torch.Tensor:
    """IMAGE [B,H,W,C] (or one [H,W,C]) -> a float [B,H,W,3] view, checked (shape, usable)."""
    if image.ndim == 3:
        image = image.unsqueeze(0)
    if image.ndim != 4 or image.shape[-1] not in (1, 3, 4):
        raise InputError(f"Expected an IMAGE of shape [B,H,W,C] with 1, 3 or 4 channels, got shape "
                         f"{tuple(image.shape)}.")
    image = usable(image, "IMAGE")
    return image[..., :3].expand(*image.shape[:3], 3)


def usable(x: torch.Tensor, kind: str) -> torch.Tensor:
    """``x`` as float32, refused (InputError) when empty or holding NaN/Inf: every node would otherwise
    fail somewhere inside a library with an error that does not say which input was wrong."""
    if x.numel() == 0:
        raise InputError(f"This {kind} is empty (shape {tuple(x.shape)}): the node that made it produced no "
                         "pixels or no batch entries. Check its inputs.")
    x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()  # uint8: 0..255 from a node that skipped it
    # a NaN or Inf makes the sum non-finite; only then (or on overflow) is every value checked
    if not torch.isfinite(x.sum()) and not torch.isfinite(x).all():
        raise InputError(f"This {kind} holds NaN or infinite values (shape {tuple(x.shape)}); the node that made "
                         "it failed numerically (e.g. a model run in too low precision). Fix that node first.")
    return x


def bchw_to_image(x: torch.Tensor) -> torch.Tensor:
    """[B,C,H,W] -> IMAGE [B,H,W,C], clamped to 0..1."""
    return x.clamp(0, 1).permute(0, 2, 3, 1).contiguous()


def mask_to_b1hw(mask: torch.Tensor) -> torch.Tensor:
    """MASK [B,H,W] or [H,W] -> [B,1,H,W]."""
    if mask.ndim == 2:
        mask = mask.unsqueeze(0)
    if mask.ndim != 3:
        raise InputError(f"Expected a MASK of shape [B,H,W], got shape {tuple(mask.shape)}.")
    return usable(mask, "MASK").unsqueeze(1)


def to_signed(x: torch.Tensor) -> torch.Tensor:
    """0..1 -> -1..1 (VAE input range)."""
    return x * 2.0 - 1.0


def to_unsigned(x: torch.Tensor) -> torch.Tensor:
    """-1..1 -> 0..1."""
    return ((x + 1.0) / 2.0).clamp(0, 1)


def pil_to_image(img: Image.Image) -> torch.Tensor:
    """PIL -> IMAGE [1,H,W,3]."""
    arr = np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(arr).unsqueeze(0)


def image_to_pils(image: torch.Tensor) -> list:
    """IMAGE [B,H,W,C] -> list of RGB PIL images."""
    arr = (image[..., :3].clamp(0, 1).cpu().numpy() * 255.0).round().astype(np.uint8)
    return [Image.fromarray(a) for a in arr]


def image_to_uint8(image: torch.Tensor) -> np.ndarray:
    """IMAGE [B,H,W,C] (or one [H,W,C]) -> uint8 numpy [B,H,W,3] (for mediapipe / OpenCV)."""
    return (_rgb(image).clamp(0, 1) * 255.0).round().to(torch.uint8).cpu().numpy()


def match_batch(x: torch.Tensor, batch: int, what: str) -> torch.Tensor:
    """Broadcast a batch of 1 to ``batch``; any other mismatch is the user's to fix."""
    if x.shape[0] == batch:
        return x
    if x.shape[0] == 1:
        return x.expand(batch, *x.shape[1:])
    raise InputError(f"{what} has a batch of {x.shape[0]} but {batch} was expected (or 1 to share).")


def require_same_size(a: torch.Tensor, b: torch.Tensor, what_a: str, what_b: str) -> None:
    """Both IMAGE/MASK-shaped tensors must share H and W."""
    ha, wa = a.shape[1], a.shape[2]
    hb, wb = b.shape[1], b.shape[2]
    if (ha, wa) != (hb, wb):
        raise InputError(
            f"{what_a} is {wa}x{ha} but {what_b} is {wb}x{hb}; resize one of them "
            "(e.g. with the core 'Upscale Image' node) so they match."
        )


def cover_crop(x: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """[B,C,H,W] -> [B,C,height,width]: scaled to cover the frame, then centre-cropped (aspect kept)."""
    scale = max(width / x.shape[-1], height / x.shape[-2])
    size = (max(height, round(x.shape[-2] * scale)), max(width, round(x.shape[-1] * scale)))
    if size != tuple(x.shape[-2:]):
        x = torch.nn.functional.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False)
    top, left = (size[0] - height) // 2, (size[1] - width) // 2
    return x[..., top:top + height, left:left + width].clamp(0, 1)


def resize_uint8(picture: np.ndarray, width: int, height: int) -> np.ndarray:
    """Bicubic resize of an [H, W, C] uint8 picture, e.g. a face crop to a detector's input size."""
    return np.asarray(Image.fromarray(np.ascontiguousarray(picture)).resize((width, height), Image.BICUBIC))


def mask_box(mask, reach: int = 0):
    """(y0, y1, x0, x1): the rows and columns of a 2-D bool mask (numpy, or torch on the CPU) that hold a
    True, grown by ``reach`` on every side and clipped to the mask; None for an all-False mask."""
    m = np.asarray(mask)
    rows, cols = np.nonzero(m.any(axis=1))[0], np.nonzero(m.any(axis=0))[0]
    if rows.size == 0:
        return None
    return (max(int(rows[0]) - reach, 0), min(int(rows[-1]) + 1 + reach, m.shape[0]),
            max(int(cols[0]) - reach, 0), min(int(cols[-1]) + 1 + reach, m.shape[1]))


def resize_area(values: np.ndarray, width: int, height: int) -> np.ndarray:
    """Area-average resize of a float [H, W] map (each output pixel is the mean of what it covers)."""
    resized = Image.fromarray(np.asarray(values, dtype=np.float32), mode="F").resize((width, height), Image.BOX)
    return np.asarray(resized, dtype=np.float32)
