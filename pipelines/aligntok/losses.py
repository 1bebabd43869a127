"""Losses of the three stages: L1, a perceptual term, a hinge GAN with the adaptive
(gradient-norm ratio) weight, and the semantic-preservation term L_sp.

Perceptual term: LPIPS weights cannot be had offline, so the substitute is the distance
between the *frozen pretrained* DINOv2's patch features of the reconstruction and of
the input ("dino feature loss"), which also measures what the aligned encoder sees.
"""
import torch
import torch.nn.functional as F
from torch import nn


class PatchDiscriminator(nn.Module):
    """A small PatchGAN (hinge loss) for the GAN term."""

    def __init__(self, channels: int = 64, layers: int = 3):
        super().__init__()
        mods, c = [nn.Conv2d(3, channels, 4, 2, 1), nn.LeakyReLU(0.2)], channels
        for _ in range(layers - 1):
            mods += [nn.Conv2d(c, c * 2, 4, 2, 1), nn.GroupNorm(8, c * 2), nn.LeakyReLU(0.2)]
            c *= 2
        mods.append(nn.Conv2d(c, 1, 3, 1, 1))
        self.net = nn.Sequential(*mods)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images * 2 - 1)


def discriminator_loss(disc: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """Hinge loss, mean(relu(1 - D(real))) + mean(relu(1 + D(fake))); one forward over both
    halves, so a DDP-wrapped ``disc`` runs once per backward (its norms are per sample)."""
    scores = disc(torch.cat([real, fake.detach()]))
    on_real, on_fake = scores[:real.shape[0]], scores[real.shape[0]:]
    return F.relu(1 - on_real).mean() + F.relu(1 + on_fake).mean()


def generator_loss(disc: nn.Module, fake: torch.Tensor) -> torch.Tensor:
    return -disc(fake).mean()


def feature_perceptual_loss(frozen_model, recon: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Normalised DINOv2 patch-feature distance (the LPIPS substitute named above)."""
    with torch.no_grad():
        want = F.normalize(frozen_model.encoder_features(target), dim=1)
    got = F.normalize(frozen_model.encoder_features(recon), dim=1)
    return (got - want).pow(2).sum(1).mean()


def gradient_ratio(main_loss: torch.Tensor, extra_loss: torch.Tensor, layer_weight: torch.Tensor,
                   max_ratio: float = 1e4, reduce=None) -> torch.Tensor:
    """||grad main|| / ||grad extra|| at one layer (the VQGAN adaptive weight): makes the
    extra term pull as hard as the main one there, whatever their scales. ``reduce``
    averages both gradients over processes first (the whole batch's ratio under DDP)."""
    g_main = torch.autograd.grad(main_loss, layer_weight, retain_graph=True)[0]
    g_extra = torch.autograd.grad(extra_loss, layer_weight, retain_graph=True)[0]
    if reduce is not None:
        g_main, g_extra = reduce(g_main), reduce(g_extra)
    return (g_main.norm() / (g_extra.norm() + 1e-6)).clamp(0, max_ratio).detach()


def semantic_preservation_loss(z: torch.Tensor, z_stage1: torch.Tensor) -> torch.Tensor:
    """L_sp = ||z - z_stage1||^2 (mean over elements)."""
    return (z - z_stage1.detach()).pow(2).mean()
