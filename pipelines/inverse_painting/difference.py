"""The offline perceptual distance and the difference mask D(I_T, I_{t-1}, α) (thesis 6.2).

LPIPS backbones cannot be had offline here, so the distance is a multi-scale structural
dissimilarity, (1 - SSIM) / 2 per pixel at scales 1, 1/2 and 1/4 (kornia), plus the
absolute colour difference at the same scales (SSIM alone barely sees a flat colour
change). Like LPIPS it is 0 for identical images; its ``name`` says which distance ran.
"""
import torch
import torch.nn.functional as F

SCALES = (1, 2, 4)


class MultiScaleSSIMDistance:
    name = "multi-scale SSIM + colour dissimilarity (offline stand-in for LPIPS)"

    def __init__(self, window: int = 7):
        self.window = window

    def map(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Per-pixel dissimilarity [B,1,H,W] in 0..1."""
        from kornia.metrics import ssim

        a, b = a.float(), b.float()
        h, w = a.shape[-2:]
        total = torch.zeros(a.shape[0], 1, h, w, device=a.device)
        for s in SCALES:
            x, y = (F.avg_pool2d(a, s), F.avg_pool2d(b, s)) if s > 1 else (a, b)
            if min(x.shape[-2:]) < self.window:
                x, y = a, b
            d = ((1 - ssim(x, y, self.window)) / 2 + (x - y).abs()).mean(1, keepdim=True)
            total += F.interpolate(d, size=(h, w), mode="bilinear", align_corners=False) if d.shape[-2:] != (h, w) else d
        return (total / len(SCALES)).clamp(0, 1)

    def __call__(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return self.map(a, b).flatten(1).mean(1)


def default_distance() -> MultiScaleSSIMDistance:
    return MultiScaleSSIMDistance()


def difference_mask(target: torch.Tensor, canvas: torch.Tensor, alpha: float = 0.2, distance=None) -> torch.Tensor:
    """1 where the canvas still differs perceptually from the target by more than α: [B,1,H,W]."""
    distance = distance if distance is not None and hasattr(distance, "map") else default_distance()
    return (distance.map(target, canvas) > alpha).to(target.dtype)
