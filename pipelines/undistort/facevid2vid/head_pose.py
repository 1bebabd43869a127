"""Head pose and expression (facevid2vid's ``he_estimator``) and how they move the canonical keypoints.

The estimator is a ResNet-style bottleneck network ending in five linear heads: yaw, pitch
and roll as scores over 66 bins of 3 degrees (-99..+96), a translation and per-keypoint
expression offsets. Total Selfie has two: ``he_estimator`` (the selfie's near view) and
``he_estimator_far`` (the same face seen from far away).
"""
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import ResBottleneck, named_sequential

BIN_DEGREES = 3.0
FIRST_BIN_DEGREES = -99.0
# The published code converts degrees with pi written as 3.14; the checkpoints learned poses
# under that conversion, so it is kept.
PI_AS_TRAINED = 3.14


@dataclass(frozen=True)
class HeadPoseConfig:
    num_kp: int = 15
    block_expansion: int = 64
    widths: tuple = (256, 512, 1024, 2048)  # channels of the four stages
    num_bins: int = 66
    image_channels: int = 3


@dataclass
class HeadPose:
    yaw: torch.Tensor  # [B, bins] scores
    pitch: torch.Tensor
    roll: torch.Tensor
    translation: torch.Tensor  # [B, 3]
    expression: torch.Tensor  # [B, K, 3]

    def degrees(self) -> tuple:
        """(yaw, pitch, roll), each [B] degrees: the expectation over the bins."""
        return bins_to_degrees(self.yaw), bins_to_degrees(self.pitch), bins_to_degrees(self.roll)


class HeadPoseEstimator(nn.Module):
    def __init__(self, cfg: HeadPoseConfig = HeadPoseConfig()):
        super().__init__()
        w1, w2, w3, w4 = cfg.widths
        self.conv1 = nn.Conv2d(cfg.image_channels, cfg.block_expansion, 7, padding=3, stride=2)
        self.norm1 = nn.BatchNorm2d(cfg.block_expansion)
        self.conv2 = nn.Conv2d(cfg.block_expansion, w1, 1)
        self.norm2 = nn.BatchNorm2d(w1)
        self.block1 = named_sequential("b1_", [ResBottleneck(w1) for _ in range(3)])
        self.conv3 = nn.Conv2d(w1, w2, 1)
        self.norm3 = nn.BatchNorm2d(w2)
        self.block2 = ResBottleneck(w2, stride=2)
        self.block3 = named_sequential("b3_", [ResBottleneck(w2) for _ in range(3)])
        self.conv4 = nn.Conv2d(w2, w3, 1)
        self.norm4 = nn.BatchNorm2d(w3)
        self.block4 = ResBottleneck(w3, stride=2)
        self.block5 = named_sequential("b5_", [ResBottleneck(w3) for _ in range(5)])
        self.conv5 = nn.Conv2d(w3, w4, 1)
        self.norm5 = nn.BatchNorm2d(w4)
        self.block6 = ResBottleneck(w4, stride=2)
        self.block7 = named_sequential("b7_", [ResBottleneck(w4) for _ in range(2)])
        self.fc_roll = nn.Linear(w4, cfg.num_bins)
        self.fc_pitch = nn.Linear(w4, cfg.num_bins)
        self.fc_yaw = nn.Linear(w4, cfg.num_bins)
        self.fc_t = nn.Linear(w4, 3)
        self.fc_exp = nn.Linear(w4, 3 * cfg.num_kp)

    def forward(self, image: torch.Tensor) -> HeadPose:
        x = F.max_pool2d(F.relu(self.norm1(self.conv1(image))), 3, stride=2, padding=1)
        x = self.block1(F.relu(self.norm2(self.conv2(x))))
        x = self.block3(self.block2(F.relu(self.norm3(self.conv3(x)))))
        x = self.block5(self.block4(F.relu(self.norm4(self.conv4(x)))))
        x = self.block7(self.block6(F.relu(self.norm5(self.conv5(x)))))
        x = x.mean(dim=(2, 3))
        # The published estimator reads yaw from the layer named fc_roll and roll from fc_yaw;
        # the trained weights follow that wiring.
        return HeadPose(yaw=self.fc_roll(x).float(), pitch=self.fc_pitch(x).float(), roll=self.fc_yaw(x).float(),
                        translation=self.fc_t(x).float(), expression=self.fc_exp(x).float().view(x.shape[0], -1, 3))


def bins_to_degrees(scores: torch.Tensor) -> torch.Tensor:
    """Bin scores [B, bins] -> expected angle [B] in degrees (bin i covers -99 + 3 i)."""
    index = torch.arange(scores.shape[1], device=scores.device, dtype=scores.dtype)
    return (F.softmax(scores, dim=1) * index).sum(dim=1) * BIN_DEGREES + FIRST_BIN_DEGREES


def rotation_matrix(yaw: torch.Tensor, pitch: torch.Tensor, roll: torch.Tensor) -> torch.Tensor:
    """[B, 3, 3] = R_pitch (about x) @ R_yaw (about y) @ R_roll (about z); angles [B] in degrees."""
    def about(axis: int, degrees: torch.Tensor) -> torch.Tensor:
        a = degrees / 180.0 * PI_AS_TRAINED
        c, s = torch.cos(a), torch.sin(a)
        one, zero = torch.ones_like(a), torch.zeros_like(a)
        rows = {0: [[one, zero, zero], [zero, c, -s], [zero, s, c]],
                1: [[c, zero, s], [zero, one, zero], [-s, zero, c]],
                2: [[c, -s, zero], [s, c, zero], [zero, zero, one]]}[axis]
        return torch.stack([torch.stack(r, dim=-1) for r in rows], dim=-2)

    return about(0, pitch) @ about(1, yaw) @ about(2, roll)


def posed_keypoints(canonical: torch.Tensor, pose: HeadPose) -> torch.Tensor:
    """Canonical keypoints [B, K, 3] -> rotated, translated and expression-shifted keypoints."""
    rotation = rotation_matrix(*pose.degrees())
    return canonical @ rotation.transpose(1, 2) + pose.translation[:, None, :] + pose.expression
