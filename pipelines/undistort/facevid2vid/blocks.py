"""Layers shared by the facevid2vid networks, with the parameter names of the published
checkpoints (``conv``/``norm`` pairs, ``weight_orig``/``weight_u``/``weight_v`` for
spectral-normalised convolutions) so those load strictly.

Coordinates follow facevid2vid: a volume's grid spans [-1, 1] on every axis, ordered
(x, y, z) = (width, height, depth), and volumes are resampled with ``grid_sample``'s
default ``align_corners=False`` the checkpoints were trained with.
"""
from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn


def coordinate_grid(depth: int, height: int, width: int, like: torch.Tensor) -> torch.Tensor:
    """[depth, height, width, 3] grid of (x, y, z), each axis evenly spaced over [-1, 1]."""
    axes = [torch.linspace(-1.0, 1.0, n, device=like.device, dtype=like.dtype) for n in (depth, height, width)]
    z, y, x = torch.meshgrid(*axes, indexing="ij")
    return torch.stack([x, y, z], dim=-1)


def keypoint_gaussians(keypoints: torch.Tensor, spatial: tuple, variance: float) -> torch.Tensor:
    """Isotropic Gaussians [B, K, D, H, W] centred on keypoints [B, K, 3] (grid units)."""
    grid = coordinate_grid(*spatial, like=keypoints)
    offsets = grid[None, None] - keypoints[:, :, None, None, None, :]
    return torch.exp(-0.5 * offsets.pow(2).sum(-1) / variance)


def named_sequential(prefix: str, modules) -> nn.Sequential:
    """A Sequential whose children are called ``prefix0``, ``prefix1``... (the checkpoints' names)."""
    return nn.Sequential(OrderedDict((f"{prefix}{i}", m) for i, m in enumerate(modules)))


class ConvNormAct2d(nn.Module):
    """3x3 (or given) convolution, batch norm, ReLU or leaky ReLU; keeps the resolution."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, leaky: bool = False):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2)
        self.norm = nn.BatchNorm2d(out_channels)
        self.leaky = leaky

    def forward(self, x):
        x = self.norm(self.conv(x))
        return F.leaky_relu(x) if self.leaky else F.relu(x)


class DownBlock2d(nn.Module):
    """conv-norm-ReLU, then halve height and width by average pooling."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.norm = nn.BatchNorm2d(out_channels)

    def forward(self, x):
        return F.avg_pool2d(F.relu(self.norm(self.conv(x))), 2)


class DownBlock3d(nn.Module):
    """conv-norm-ReLU on a volume, then halve height and width (depth is kept)."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv = nn.Conv3d(in_channels, out_channels, 3, padding=1)
        self.norm = nn.BatchNorm3d(out_channels)

    def forward(self, x):
        return F.avg_pool3d(F.relu(self.norm(self.conv(x))), (1, 2, 2))


class UpBlock3d(nn.Module):
    """Double height and width (nearest), then conv-norm-ReLU on the volume."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv = nn.Conv3d(in_channels, out_channels, 3, padding=1)
        self.norm = nn.BatchNorm3d(out_channels)

    def forward(self, x):
        x = F.interpolate(x, scale_factor=(1, 2, 2))
        return F.relu(self.norm(self.conv(x)))


class ResBlock3d(nn.Module):
    """Pre-activation residual block on a volume."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = nn.Conv3d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv3d(channels, channels, 3, padding=1)
        self.norm1 = nn.BatchNorm3d(channels)
        self.norm2 = nn.BatchNorm3d(channels)

    def forward(self, x):
        out = self.conv1(F.relu(self.norm1(x)))
        return x + self.conv2(F.relu(self.norm2(out)))


class ResBottleneck(nn.Module):
    """ResNet bottleneck (1x1 -> 3x3 -> 1x1 at a quarter of the width); stride 2 adds a projected skip."""

    def __init__(self, channels: int, stride: int = 1):
        super().__init__()
        inner = channels // 4
        self.conv1 = nn.Conv2d(channels, inner, 1)
        self.conv2 = nn.Conv2d(inner, inner, 3, padding=1, stride=stride)
        self.conv3 = nn.Conv2d(inner, channels, 1)
        self.norm1 = nn.BatchNorm2d(inner)
        self.norm2 = nn.BatchNorm2d(inner)
        self.norm3 = nn.BatchNorm2d(channels)
        if stride != 1:
            self.skip = nn.Conv2d(channels, channels, 1, stride=stride)
            self.norm4 = nn.BatchNorm2d(channels)
        self.stride = stride

    def forward(self, x):
        out = F.relu(self.norm1(self.conv1(x)))
        out = F.relu(self.norm2(self.conv2(out)))
        out = self.norm3(self.conv3(out))
        skip = self.norm4(self.skip(x)) if self.stride != 1 else x
        return F.relu(out + skip)


def gaussian_kernel_size(scale: float) -> int:
    """Side of the anti-aliasing kernel for a downscale: sigma = (1/scale - 1)/2, 4 sigmas each side."""
    sigma = (1.0 / scale - 1.0) / 2.0
    return 2 * round(sigma * 4) + 1


class AntiAliasDownsample(nn.Module):
    """Gaussian blur (kernel stored as the buffer ``weight``) then keep every (1/scale)-th pixel."""

    def __init__(self, channels: int, scale: float):
        super().__init__()
        size = gaussian_kernel_size(scale)
        sigma = (1.0 / scale - 1.0) / 2.0
        offsets = torch.arange(size, dtype=torch.float32) - (size - 1) / 2.0
        profile = torch.exp(-offsets ** 2 / (2 * sigma ** 2))
        kernel = profile[:, None] * profile[None, :]
        self.register_buffer("weight", (kernel / kernel.sum()).expand(channels, 1, size, size).clone())
        self.stride = int(1.0 / scale)

    def forward(self, x):
        pad = self.weight.shape[-1] // 2
        x = F.conv2d(F.pad(x, (pad, pad, pad, pad)), self.weight.to(x.dtype), groups=x.shape[1])
        return x[:, :, ::self.stride, ::self.stride]


class SpectralNormConv2d(nn.Module):
    """Conv2d divided by its largest singular value, estimated as u^T W v from the stored vectors.

    This is what torch's ``spectral_norm`` computes at inference (no power iteration), with
    its state-dict names. A fresh module starts from a few power iterations so it is usable
    untrained (the test fixtures rely on that).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, padding: int = 0, bias: bool = True):
        super().__init__()
        conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=padding, bias=bias)
        self.weight_orig = conv.weight
        self.bias = conv.bias
        self.padding = padding
        u, v = _top_singular_vectors(conv.weight.detach().flatten(1))
        self.register_buffer("weight_u", u)
        self.register_buffer("weight_v", v)

    def forward(self, x):
        sigma = torch.dot(self.weight_u, torch.mv(self.weight_orig.flatten(1), self.weight_v))
        return F.conv2d(x, self.weight_orig / sigma, self.bias, padding=self.padding)


def _top_singular_vectors(matrix: torch.Tensor, iterations: int = 20) -> tuple:
    generator = torch.Generator().manual_seed(0)
    u = F.normalize(torch.randn(matrix.shape[0], generator=generator), dim=0)
    v = F.normalize(matrix.t() @ u, dim=0)
    for _ in range(iterations):
        u = F.normalize(matrix @ v, dim=0)
        v = F.normalize(matrix.t() @ u, dim=0)
    return u, v


class SPADE(nn.Module):
    """Instance norm whose scale and shift are predicted per pixel from a label map."""

    def __init__(self, channels: int, label_channels: int, hidden: int):
        super().__init__()
        self.param_free_norm = nn.InstanceNorm2d(channels, affine=False)
        self.mlp_shared = nn.Sequential(nn.Conv2d(label_channels, hidden, 3, padding=1), nn.ReLU())
        self.mlp_gamma = nn.Conv2d(hidden, channels, 3, padding=1)
        self.mlp_beta = nn.Conv2d(hidden, channels, 3, padding=1)

    def forward(self, x, labels):
        labels = F.interpolate(labels, size=x.shape[2:], mode="nearest")
        shared = self.mlp_shared(labels)
        return self.param_free_norm(x) * (1 + self.mlp_gamma(shared)) + self.mlp_beta(shared)


class SPADEResBlock(nn.Module):
    """Residual block with SPADE norms and spectral-normalised convolutions (learned skip if widths differ)."""

    def __init__(self, in_channels: int, out_channels: int, label_channels: int, hidden: int):
        super().__init__()
        middle = min(in_channels, out_channels)
        self.learned_shortcut = in_channels != out_channels
        self.conv_0 = SpectralNormConv2d(in_channels, middle, 3, padding=1)
        self.conv_1 = SpectralNormConv2d(middle, out_channels, 3, padding=1)
        self.norm_0 = SPADE(in_channels, label_channels, hidden)
        self.norm_1 = SPADE(middle, label_channels, hidden)
        if self.learned_shortcut:
            self.conv_s = SpectralNormConv2d(in_channels, out_channels, 1, bias=False)
            self.norm_s = SPADE(in_channels, label_channels, hidden)

    def forward(self, x, labels):
        skip = self.conv_s(self.norm_s(x, labels)) if self.learned_shortcut else x
        out = self.conv_0(F.leaky_relu(self.norm_0(x, labels), 0.2))
        out = self.conv_1(F.leaky_relu(self.norm_1(out, labels), 0.2))
        return skip + out
