"""The occlusion-aware SPADE generator (facevid2vid's ``generator``, Total Selfie's "spade" variant).

The source image is encoded into a 3D appearance volume, warped by the dense motion between
the source and driving keypoints, flattened back to 2D, masked by the occlusion map and
decoded by a SPADE decoder (the warped features are both its input and its label map).
"""
from dataclasses import dataclass, field
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import ConvNormAct2d, DownBlock2d, ResBlock3d, SPADEResBlock, named_sequential
from .dense_motion import DenseMotionConfig, DenseMotionNetwork

MIDDLE_BLOCKS = 6


@dataclass(frozen=True)
class GeneratorConfig:
    block_expansion: int = 64
    max_features: int = 512  # 2D channels before the reshape = feature_channels x reshape_depth
    num_down_blocks: int = 2
    feature_channels: int = 32  # channels of the 3D appearance volume
    reshape_depth: int = 16
    num_resblocks: int = 6
    spade_hidden: int = 128
    decoder_out_channels: int = 64
    image_channels: int = 3
    dense_motion: DenseMotionConfig = field(default_factory=DenseMotionConfig)

    @property
    def bottleneck_channels(self) -> int:
        """2D channels after warping, also the SPADE decoder's input and label channels."""
        return self.block_expansion * 2 ** self.num_down_blocks


class SPADEDecoder(nn.Module):
    """Six SPADE residual blocks at the feature resolution, then two x2 upsamplings to the image."""

    def __init__(self, cfg: GeneratorConfig):
        super().__init__()
        c, hidden = cfg.bottleneck_channels, cfg.spade_hidden
        self.fc = nn.Conv2d(c, 2 * c, 3, padding=1)
        for i in range(MIDDLE_BLOCKS):
            setattr(self, f"G_middle_{i}", SPADEResBlock(2 * c, 2 * c, c, hidden))
        self.up_0 = SPADEResBlock(2 * c, c, c, hidden)
        self.up_1 = SPADEResBlock(c, cfg.decoder_out_channels, c, hidden)
        self.conv_img = nn.Conv2d(cfg.decoder_out_channels, cfg.image_channels, 3, padding=1)

    def forward(self, features):
        x = self.fc(features)
        for i in range(MIDDLE_BLOCKS):
            x = getattr(self, f"G_middle_{i}")(x, features)
        x = self.up_0(F.interpolate(x, scale_factor=2), features)
        x = self.up_1(F.interpolate(x, scale_factor=2), features)
        return torch.sigmoid(self.conv_img(F.leaky_relu(x, 0.2)))


@dataclass
class GeneratorOutput:
    image: torch.Tensor  # [B, 3, H, W] in 0..1
    deformation: torch.Tensor  # [B, D, h, w, 3] where each feature voxel was sampled from
    occlusion: Optional[torch.Tensor]  # [B, 1, h, w]


class OcclusionAwareSPADEGenerator(nn.Module):
    def __init__(self, cfg: GeneratorConfig = GeneratorConfig()):
        super().__init__()
        self.dense_motion_network = DenseMotionNetwork(cfg.dense_motion)
        self.first = ConvNormAct2d(cfg.image_channels, cfg.block_expansion)
        widths = [min(cfg.max_features, cfg.block_expansion * 2 ** i) for i in range(cfg.num_down_blocks + 1)]
        self.down_blocks = nn.ModuleList(DownBlock2d(a, b) for a, b in zip(widths[:-1], widths[1:]))
        self.second = nn.Conv2d(widths[-1], cfg.max_features, 1)
        self.resblocks_3d = named_sequential("3dr", [ResBlock3d(cfg.feature_channels)
                                                      for _ in range(cfg.num_resblocks)])
        self.third = ConvNormAct2d(cfg.max_features, cfg.bottleneck_channels, leaky=True)
        self.fourth = nn.Conv2d(cfg.bottleneck_channels, cfg.bottleneck_channels, 1)
        self.decoder = SPADEDecoder(cfg)
        self.cfg = cfg

    def appearance_volume(self, image: torch.Tensor) -> torch.Tensor:
        """Image [B, 3, H, W] -> [B, feature_channels, reshape_depth, H/4, W/4]."""
        x = self.first(image)
        for block in self.down_blocks:
            x = block(x)
        x = self.second(x)
        b, _, h, w = x.shape
        return self.resblocks_3d(x.view(b, self.cfg.feature_channels, self.cfg.reshape_depth, h, w))

    def forward(self, image: torch.Tensor, kp_source: torch.Tensor, kp_driving: torch.Tensor) -> GeneratorOutput:
        volume = self.appearance_volume(image)
        motion = self.dense_motion_network(volume, kp_source, kp_driving)
        warped = F.grid_sample(volume, motion.deformation.to(volume.dtype), align_corners=False)
        b, c, d, h, w = warped.shape
        x = self.fourth(self.third(warped.reshape(b, c * d, h, w)))
        if motion.occlusion is not None:
            x = x * motion.occlusion.to(x.dtype)
        return GeneratorOutput(self.decoder(x), motion.deformation, motion.occlusion)
