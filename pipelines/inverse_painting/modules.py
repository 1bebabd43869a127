"""Small learned modules of the renderer and the mask generator, in the official key layouts.

Sizes are read from the checkpoint tensors (the official ones are 768-wide, the test fixtures tiny):
- ``TimeEncoder`` (``PE_state_dict``): NeRF positional encoding of the normalised interval
  (x, sin/cos at 10 log-spaced frequencies -> 21 dims) -> fc1 256 -> fc2 512 -> fc3 768, ReLU
  between (thesis 6.5.2). Output: one cross-attention token ``[B, 1, D]``.
- ``NextClipPredictor`` (``image_adpater_state_dict``): MLP over [CLIP(current), CLIP(target)]
  -> predicted CLIP(next) token (the official code uses 1536 -> 1024 -> 512 -> 768).
- ``CanvasEncoder`` (``cur_image_guider_state_dict``): the shallow 9-conv net over
  [canvas (-1..1), mask] -> 320 channels at 1/8 resolution, multiplied by a learned ``scale``;
  added to the UNet's ``conv_in`` output.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

NERF_FREQS = 10


def nerf_encoding(x: torch.Tensor, num_freqs: int = NERF_FREQS) -> torch.Tensor:
    """[..., d] -> [..., d * (1 + 2 * num_freqs)]: x, then sin/cos(pi * 2^k * x) per frequency."""
    out = [x]
    for k in range(num_freqs):
        f = math.pi * (2.0 ** k)
        out.append(torch.sin(x * f))
        out.append(torch.cos(x * f))
    return torch.cat(out, dim=-1)


def normalise_time(seconds: float, time_max: float = 100.0, time_interval: float = 5.0) -> float:
    """The official PE_wrapper: snap to the training interval grid, divide by the max, clamp, map to -1..1."""
    pos = float(seconds)
    if time_interval > 1:
        pos = round(pos / time_interval) * time_interval
    pos = pos / time_max
    pos = max(0.0, min(1.0, pos))
    return pos * 2.0 - 1.0


class TimeEncoder(nn.Module):
    def __init__(self, in_features: int = 21, dims=(256, 512, 768)):
        super().__init__()
        self.fc1 = nn.Linear(in_features, dims[0])
        self.fc2 = nn.Linear(dims[0], dims[1])
        self.fc3 = nn.Linear(dims[1], dims[2])

    @classmethod
    def from_state_dict_shapes(cls, sd) -> "TimeEncoder":
        return cls(sd["fc1.weight"].shape[1], (sd["fc1.weight"].shape[0], sd["fc2.weight"].shape[0],
                                                sd["fc3.weight"].shape[0]))

    def forward(self, pos: torch.Tensor) -> torch.Tensor:
        """pos: [B, 1] normalised time (-1..1) -> [B, 1, D]."""
        x = nerf_encoding(pos)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)[:, None, :]

    def embed_seconds(self, seconds: float, time_max: float, time_interval: float) -> torch.Tensor:
        p = self.fc1.weight
        pos = torch.tensor([[normalise_time(seconds, time_max, time_interval)]], dtype=p.dtype, device=p.device)
        return self(pos)


class NextClipPredictor(nn.Module):
    def __init__(self, clip_dim: int = 768, hidden: int = 1024, out_dim: int = 768):
        super().__init__()
        self.clip_dim = clip_dim
        self.out_dim = out_dim
        self.fc1 = nn.Linear(clip_dim * 2, hidden)
        self.fc2 = nn.Linear(hidden, hidden // 2)
        self.fc3 = nn.Linear(hidden // 2, out_dim)

    @classmethod
    def from_state_dict_shapes(cls, sd) -> "NextClipPredictor":
        return cls(sd["fc1.weight"].shape[1] // 2, sd["fc1.weight"].shape[0], sd["fc3.weight"].shape[0])

    def forward(self, clip_current: torch.Tensor, clip_target: torch.Tensor) -> torch.Tensor:
        """[B, C] or [B, 1, C] each -> [B, 1, out_dim]."""
        x = torch.cat([clip_current.reshape(-1, self.clip_dim), clip_target.reshape(-1, self.clip_dim)], dim=-1)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x).view(-1, 1, self.out_dim)


class CanvasEncoder(nn.Module):
    """Keys ``conv_layers.{0,2,...,16}``, ``final_proj``, ``scale`` as in the official guider."""

    def __init__(self, in_channels: int = 4, out_channels: int = 320):
        super().__init__()
        spec = [(in_channels, 3, 3, 1), (3, 16, 4, 2), (16, 16, 3, 1), (16, 32, 4, 2), (32, 32, 3, 1),
                (32, 64, 4, 2), (64, 64, 3, 1), (64, 128, 3, 1)]
        layers = []
        for cin, cout, k, s in spec:
            layers += [nn.Conv2d(cin, cout, kernel_size=k, stride=s, padding=1), nn.SiLU()]
        self.conv_layers = nn.Sequential(*layers)
        self.final_proj = nn.Conv2d(128, out_channels, kernel_size=1)
        self.scale = nn.Parameter(torch.ones(1) * 2)

    @classmethod
    def from_state_dict_shapes(cls, sd) -> "CanvasEncoder":
        return cls(sd["conv_layers.0.weight"].shape[1], sd["final_proj.weight"].shape[0])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.final_proj(self.conv_layers(x)) * self.scale
