"""Dense 3D motion from two keypoint sets (facevid2vid's ``dense_motion_network``).

Each keypoint k proposes that a driving-frame point p came from p - kp_driving[k] + kp_source[k]
(a translation; the Total Selfie checkpoint has no Jacobians), plus an identity "background"
proposal. A 3D hourglass looks at the source features warped by every proposal and at the
keypoint Gaussians, and predicts per-voxel softmax weights over the proposals (their blend is
the deformation) and a 2D occlusion map.
"""
from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import DownBlock3d, UpBlock3d, coordinate_grid, keypoint_gaussians

KEYPOINT_VARIANCE = 0.01


@dataclass(frozen=True)
class DenseMotionConfig:
    num_kp: int = 15
    feature_channels: int = 32  # channels of the generator's 3D features
    reshape_depth: int = 16
    block_expansion: int = 32
    max_features: int = 1024
    num_blocks: int = 5
    compress: int = 4  # the features are compressed to this many channels first
    estimate_occlusion_map: bool = True

    def width(self, level: int) -> int:
        return min(self.max_features, self.block_expansion * 2 ** level)


class Hourglass3dEncoder(nn.Module):
    def __init__(self, cfg: DenseMotionConfig, in_channels: int):
        super().__init__()
        self.down_blocks = nn.ModuleList(
            DownBlock3d(in_channels if i == 0 else cfg.width(i), cfg.width(i + 1)) for i in range(cfg.num_blocks))

    def forward(self, x) -> list:
        levels = [x]
        for block in self.down_blocks:
            levels.append(block(levels[-1]))
        return levels


class Hourglass3dDecoder(nn.Module):
    """Up blocks, each followed by concatenating the encoder level of the same size (U-Net skips)."""

    def __init__(self, cfg: DenseMotionConfig, in_channels: int):
        super().__init__()
        n = cfg.num_blocks
        self.up_blocks = nn.ModuleList(
            UpBlock3d((1 if i == n - 1 else 2) * cfg.width(i + 1), cfg.width(i)) for i in reversed(range(n)))
        self.out_channels = cfg.block_expansion + in_channels
        self.conv = nn.Conv3d(self.out_channels, self.out_channels, 3, padding=1)
        self.norm = nn.BatchNorm3d(self.out_channels)

    def forward(self, levels: list):
        out = levels[-1]
        for block, skip in zip(self.up_blocks, reversed(levels[:-1])):
            out = torch.cat([block(out), skip], dim=1)
        return F.relu(self.norm(self.conv(out)))


class Hourglass3d(nn.Module):
    def __init__(self, cfg: DenseMotionConfig, in_channels: int):
        super().__init__()
        self.encoder = Hourglass3dEncoder(cfg, in_channels)
        self.decoder = Hourglass3dDecoder(cfg, in_channels)
        self.out_channels = self.decoder.out_channels

    def forward(self, x):
        return self.decoder(self.encoder(x))


@dataclass
class DenseMotion:
    deformation: torch.Tensor  # [B, D, H, W, 3] source position (x, y, z in [-1, 1]) of every voxel
    weights: torch.Tensor  # [B, K + 1, D, H, W] softmax over background + keypoint proposals
    occlusion: Optional[torch.Tensor]  # [B, 1, H, W] in 0..1, or None


class DenseMotionNetwork(nn.Module):
    def __init__(self, cfg: DenseMotionConfig = DenseMotionConfig()):
        super().__init__()
        proposals = cfg.num_kp + 1
        self.hourglass = Hourglass3d(cfg, in_channels=proposals * (cfg.compress + 1))
        self.mask = nn.Conv3d(self.hourglass.out_channels, proposals, 7, padding=3)
        self.compress = nn.Conv3d(cfg.feature_channels, cfg.compress, 1)
        self.norm = nn.BatchNorm3d(cfg.compress)
        if cfg.estimate_occlusion_map:
            self.occlusion = nn.Conv2d(self.hourglass.out_channels * cfg.reshape_depth, 1, 7, padding=3)
        self.cfg = cfg

    def forward(self, features: torch.Tensor, kp_source: torch.Tensor, kp_driving: torch.Tensor) -> DenseMotion:
        b, _, d, h, w = features.shape
        features = F.relu(self.norm(self.compress(features)))
        proposals = self._proposals(kp_source, kp_driving, (d, h, w), features)  # [B, K+1, D, H, W, 3]
        k1 = proposals.shape[1]
        warped = F.grid_sample(features.repeat_interleave(k1, dim=0), proposals.flatten(0, 1),
                               align_corners=False).view(b, k1, -1, d, h, w)
        heatmaps = keypoint_gaussians(kp_driving, (d, h, w), KEYPOINT_VARIANCE) - \
            keypoint_gaussians(kp_source, (d, h, w), KEYPOINT_VARIANCE)
        heatmaps = torch.cat([torch.zeros_like(heatmaps[:, :1]), heatmaps], dim=1).to(warped.dtype)
        hourglass_in = torch.cat([heatmaps[:, :, None], warped], dim=2).view(b, -1, d, h, w)
        prediction = self.hourglass(hourglass_in)
        weights = F.softmax(self.mask(prediction).float(), dim=1)
        deformation = (weights[..., None] * proposals).sum(dim=1)
        occlusion = None
        if self.cfg.estimate_occlusion_map:
            occlusion = torch.sigmoid(self.occlusion(prediction.reshape(b, -1, h, w)))
        return DenseMotion(deformation, weights, occlusion)

    @staticmethod
    def _proposals(kp_source, kp_driving, spatial, like) -> torch.Tensor:
        grid = coordinate_grid(*spatial, like=kp_source)[None, None]  # [1, 1, D, H, W, 3]
        shifted = grid - kp_driving[:, :, None, None, None] + kp_source[:, :, None, None, None]
        return torch.cat([grid.expand(kp_source.shape[0], 1, *grid.shape[2:]), shifted], dim=1).to(like.dtype)
