"""Canonical 3D keypoints (facevid2vid's ``kp_detector``): a 2D encoder lifted to a volume by a
reshape, a 3D decoder, one heatmap volume per keypoint, keypoint = the heatmap's expected position."""
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import AntiAliasDownsample, DownBlock2d, UpBlock3d, coordinate_grid, named_sequential


@dataclass(frozen=True)
class KeypointConfig:
    num_kp: int = 15
    block_expansion: int = 32
    max_features: int = 1024
    num_blocks: int = 5
    reshape_channels: int = 16384  # the bottleneck's 2D channels = 3D channels x reshape_depth
    reshape_depth: int = 16
    kernel_size: int = 3  # of the final heatmap convolution
    scale_factor: float = 0.25  # the detector sees the image downscaled by this
    temperature: float = 0.1  # softmax temperature of the heatmaps
    image_channels: int = 3

    def width(self, level: int) -> int:
        """Channels at encoder level ``level`` (0 = after the first down block's input)."""
        return min(self.max_features, self.block_expansion * 2 ** level)


class KeypointHourglass(nn.Module):
    """2D down blocks -> 1x1 conv -> reshape to a volume -> 3D up blocks (height/width only)."""

    def __init__(self, cfg: KeypointConfig):
        super().__init__()
        n = cfg.num_blocks
        self.down_blocks = named_sequential("down", [
            DownBlock2d(cfg.image_channels if i == 0 else cfg.width(i), cfg.width(i + 1)) for i in range(n)])
        self.conv = nn.Conv2d(cfg.width(n), cfg.reshape_channels, 1)
        self.up_blocks = named_sequential("up", [UpBlock3d(cfg.width(n - i), cfg.width(n - i - 1)) for i in range(n)])
        self.reshape_depth = cfg.reshape_depth
        self.out_channels = cfg.width(0)

    def forward(self, x):
        x = self.conv(self.down_blocks(x))
        b, c, h, w = x.shape
        return self.up_blocks(x.view(b, c // self.reshape_depth, self.reshape_depth, h, w))


class KeypointDetector(nn.Module):
    """Image [B, 3, H, W] in 0..1 -> canonical keypoints [B, K, 3] in the volume's [-1, 1] grid."""

    def __init__(self, cfg: KeypointConfig = KeypointConfig()):
        super().__init__()
        self.predictor = KeypointHourglass(cfg)
        self.kp = nn.Conv3d(self.predictor.out_channels, cfg.num_kp, cfg.kernel_size, padding=cfg.kernel_size // 2)
        if cfg.scale_factor != 1:
            self.down = AntiAliasDownsample(cfg.image_channels, cfg.scale_factor)
        self.cfg = cfg

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        if self.cfg.scale_factor != 1:
            image = self.down(image)
        logits = self.kp(self.predictor(image))
        b, k, d, h, w = logits.shape
        heatmap = F.softmax(logits.view(b, k, -1).float() / self.cfg.temperature, dim=2).view(b, k, d, h, w)
        grid = coordinate_grid(d, h, w, like=heatmap)
        return (heatmap[..., None] * grid).sum(dim=(2, 3, 4))
