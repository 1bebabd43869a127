"""Decode large latents tile by tile with overlapping, linearly blended seams, so the
decoder's activation memory stays that of one tile."""
import torch

from .model import STRIDE


def _ramp(n: int, overlap: int, at_start: bool, at_end: bool) -> torch.Tensor:
    w = torch.ones(n)
    if overlap > 0:
        ramp = torch.linspace(0, 1, overlap + 2)[1:-1]
        if not at_start:
            w[:overlap] = ramp
        if not at_end:
            w[-overlap:] = ramp.flip(0)
    return w


def _starts(size: int, tile: int, step: int) -> list:
    starts = list(range(0, max(size - tile, 0) + 1, step))
    if starts[-1] + tile < size:
        starts.append(size - tile)
    return starts


@torch.no_grad()
def tiled_decode(model, latents: torch.Tensor, tile: int = 32, overlap: int = 4, progress=None) -> torch.Tensor:
    """``tile``/``overlap`` in latent cells; returns images [B,3,16h,16w] in 0..1."""
    b, _, h, w = latents.shape
    if h <= tile and w <= tile:
        return model.decode(latents)
    step = max(tile - overlap, 1)
    out = torch.zeros(b, 3, h * STRIDE, w * STRIDE, device=latents.device)
    weight = torch.zeros(1, 1, h * STRIDE, w * STRIDE, device=latents.device)
    for y in _starts(h, min(tile, h), step):
        for x in _starts(w, min(tile, w), step):
            th, tw = min(tile, h), min(tile, w)
            pixels = model.decode(latents[:, :, y:y + th, x:x + tw])
            wy = _ramp(th * STRIDE, overlap * STRIDE, y == 0, y + th == h).to(latents.device)
            wx = _ramp(tw * STRIDE, overlap * STRIDE, x == 0, x + tw == w).to(latents.device)
            mask = (wy[:, None] * wx[None, :])[None, None]
            ys, xs = slice(y * STRIDE, (y + th) * STRIDE), slice(x * STRIDE, (x + tw) * STRIDE)
            out[:, :, ys, xs] += pixels * mask
            weight[:, :, ys, xs] += mask
            if progress is not None:
                progress.step()
    return out / weight.clamp_min(1e-6)
