"""The editing mask of thesis 5.5.3 (DiffEdit generalised to any model): M = N(|z_{t-1} - z'_{t-1}|) > lambda,
N = normalise to 0..1 then Gaussian blur (kernel 5), averaged over several noise draws (10 in the thesis)."""
import torch

from ..common.errors import InputError

BLUR_KERNEL = 5
# OpenCV's / torchvision's default sigma for a given kernel size: 0.3 * ((k - 1) / 2 - 1) + 0.8 = 1.1 for k = 5
BLUR_SIGMA = 0.3 * ((BLUR_KERNEL - 1) * 0.5 - 1) + 0.8
DEFAULT_SEEDS = 10
THRESHOLD_COSTUME = 0.2
THRESHOLD_CARTOON = 0.35
EPS = 1e-12


def difference_map(target: torch.Tensor, reconstruction: torch.Tensor) -> torch.Tensor:
    """|target - reconstruction| averaged over latent channels: [N, C, h, w] -> [N, h, w]."""
    return (target.float() - reconstruction.float()).abs().mean(dim=1)


def normalise(maps: torch.Tensor) -> torch.Tensor:
    """Each [h, w] map to 0..1 (min-max); a constant map becomes all zeros (nothing stands out)."""
    flat = maps.flatten(1)
    low = flat.min(dim=1).values.view(-1, 1, 1)
    span = (flat.max(dim=1).values.view(-1, 1, 1) - low)
    return (maps - low) / span.clamp_min(EPS) * (span > EPS)


def gaussian_kernel(size: int = BLUR_KERNEL, sigma: float = BLUR_SIGMA) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float32) - (size - 1) / 2
    k = torch.exp(-x * x / (2 * sigma * sigma))
    return k / k.sum()


def blur(maps: torch.Tensor, size: int = BLUR_KERNEL, sigma: float = BLUR_SIGMA) -> torch.Tensor:
    """Separable Gaussian blur of [N, h, w] maps, edges reflected (as OpenCV's default border)."""
    k = gaussian_kernel(size, sigma).to(maps.device, maps.dtype)
    pad = size // 2
    x = maps.unsqueeze(1)
    x = torch.nn.functional.pad(x, (pad, pad, 0, 0), mode="reflect")
    x = torch.nn.functional.conv2d(x, k.view(1, 1, 1, size))
    x = torch.nn.functional.pad(x, (0, 0, pad, pad), mode="reflect")
    x = torch.nn.functional.conv2d(x, k.view(1, 1, size, 1))
    return x.squeeze(1)


def editing_mask(target: torch.Tensor, reconstruction: torch.Tensor, threshold: float = THRESHOLD_COSTUME,
                 draws: int = 1):
    """target / reconstruction: [draws * B, C, h, w] one-step predictions, draw-major (draw d of image b at
    d * B + b). Returns (soft [B, h, w] = mean over draws of N(|diff|), binary = soft > threshold)."""
    if target.shape != reconstruction.shape:
        raise InputError(f"Target and reconstruction predictions differ in shape: {tuple(target.shape)} vs "
                         f"{tuple(reconstruction.shape)}.")
    if draws < 1 or target.shape[0] % draws:
        raise InputError(f"{target.shape[0]} predictions cannot be split into {draws} noise draws.")
    maps = blur(normalise(difference_map(target, reconstruction)))
    soft = maps.view(draws, -1, *maps.shape[1:]).mean(dim=0)
    return soft, (soft > threshold).to(soft.dtype)
