"""MimicMotion's pose encoder in its published key layout: eight convolutions with SiLU
between them (``conv_layers.{0,2,...,14}``; three stride-2 ones bring the pose image to
latent resolution, 1/8), a 1x1 ``final_proj`` to the UNet's first block width (320 for
SVD) and a learned scalar ``scale``. Its output is added to the UNet's ``conv_in`` output."""
import torch
from torch import nn

# (in, out, kernel, stride) of each convolution; padding 1 everywhere
CONV_STACK = ((3, 3, 3, 1), (3, 16, 4, 2), (16, 16, 3, 1), (16, 32, 4, 2),
              (32, 32, 3, 1), (32, 64, 4, 2), (64, 64, 3, 1), (64, 128, 3, 1))
DOWNSCALE = 8
PREFIX = "pose_net."


class PoseNet(nn.Module):
    def __init__(self, out_channels: int = 320):
        super().__init__()
        layers = []
        for cin, cout, kernel, stride in CONV_STACK:
            layers += [nn.Conv2d(cin, cout, kernel, stride=stride, padding=1), nn.SiLU()]
        self.conv_layers = nn.Sequential(*layers)
        self.final_proj = nn.Conv2d(CONV_STACK[-1][1], out_channels, 1)
        self.scale = nn.Parameter(torch.full((1,), 2.0))

    def forward(self, poses: torch.Tensor) -> torch.Tensor:
        """Pose images [F, 3, H, W] in -1..1 -> features [F, out_channels, H/8, W/8]."""
        return self.final_proj(self.conv_layers(poses)) * self.scale
