"""Where the learned path gets its perceptual distance and difference mask D(I_T, I_{t-1}, α).

The official code uses LPIPS (AlexNet, spatial) for both. ``difference.py`` (the metrics side of
this package) provides the offline perceptual distance and, when the user has them, true LPIPS
weights; this module only looks those up and otherwise falls back to a clearly named simple
distance so the learned path still runs.
"""
import torch
import torch.nn.functional as F


class FallbackDistance:
    """Fallback (not LPIPS): mean absolute RGB difference averaged over three scales (1, 1/2, 1/4)."""

    name = "fallback multi-scale RGB distance (not LPIPS)"

    def map(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        a, b = a.float(), b.float()
        h, w = a.shape[-2:]
        out = 0
        for s in (1, 2, 4):
            x = F.avg_pool2d(a, s) if s > 1 else a
            y = F.avg_pool2d(b, s) if s > 1 else b
            d = (x - y).abs().mean(1, keepdim=True)
            out = out + (F.interpolate(d, size=(h, w), mode="bilinear", align_corners=False) if s > 1 else d)
        return out / 3

    def __call__(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return self.map(a, b).flatten(1).mean(1)


def _difference_module():
    try:
        from . import difference  # provided by the metrics/baseline side of this package
    except ImportError:
        return None
    return difference


def default_distance():
    """The package's perceptual distance (from difference.py) or the named fallback."""
    mod = _difference_module()
    if mod is not None and hasattr(mod, "default_distance"):
        try:
            return mod.default_distance()
        except Exception:  # a broken optional backbone must not stop painting
            pass
    return FallbackDistance()


def difference_mask(target: torch.Tensor, canvas: torch.Tensor, alpha: float = 0.2, distance=None) -> torch.Tensor:
    """D(I_T, I_{t-1}, α): 1 where the canvas still differs from the target, [B,1,H,W] 0/1."""
    mod = _difference_module()
    if mod is not None and hasattr(mod, "difference_mask"):
        try:
            return mod.difference_mask(target, canvas, alpha=alpha, distance=distance)
        except TypeError:
            return mod.difference_mask(target, canvas, alpha)
    d = distance if distance is not None and hasattr(distance, "map") else FallbackDistance()
    return (d.map(target, canvas) > alpha).to(target.dtype)
