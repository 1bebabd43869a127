"""pipelines/aligntok/losses.py against values computed by hand: the hinge GAN terms, the
discriminator's layout and input scaling, the normalised feature distance, the adaptive
weight (gradient-norm ratio, its cap and its cross-process mean) and L_sp."""
import math

import pytest
import torch
from torch import nn

from pipelines.aligntok.losses import (PatchDiscriminator, discriminator_loss, feature_perceptual_loss,
                                       generator_loss, gradient_ratio, semantic_preservation_loss)


def scores(*values):
    """A batch whose 'discriminator score' is the value itself (used with nn.Identity)."""
    return torch.tensor(values).view(-1, 1, 1, 1)


def test_discriminator_hinge_loss_by_hand():
    # real 0.5 -> relu(0.5) = 0.5, real 2 -> 0; mean 0.25.  fake -2 -> 0, fake 0.5 -> 1.5; mean 0.75
    fake = scores(-2.0, 0.5).requires_grad_(True)
    loss = discriminator_loss(nn.Identity(), scores(0.5, 2.0), fake)
    assert loss.item() == pytest.approx(1.0)
    assert not loss.requires_grad  # the fake images are detached: D's step never reaches the generator


def test_discriminator_loss_keeps_real_and_fake_apart():
    # three real, one fake: the split must follow the real batch's size
    loss = discriminator_loss(nn.Identity(), scores(0.0, 0.0, 3.0), scores(1.0))
    assert loss.item() == pytest.approx(2 / 3 + 2.0)


def test_generator_loss_by_hand():
    fake = scores(1.0, 3.0).requires_grad_(True)
    loss = generator_loss(nn.Identity(), fake)
    assert loss.item() == pytest.approx(-2.0)
    loss.backward()
    assert torch.allclose(fake.grad, torch.full_like(fake, -0.5))


def test_patch_discriminator_layout_and_input_range():
    disc = PatchDiscriminator()
    # conv 3->64 k4, conv 64->128 k4 + GN, conv 128->256 k4 + GN, conv 256->1 k3 (weights + biases)
    expected = (3 * 64 * 16 + 64) + (64 * 128 * 16 + 128) + 2 * 128 + (128 * 256 * 16 + 256) + 2 * 256 + (256 * 9 + 1)
    assert sum(p.numel() for p in disc.parameters()) == expected == 661953
    assert disc(torch.rand(2, 3, 32, 32)).shape == (2, 1, 4, 4)  # three stride-2 convs
    assert [m.negative_slope for m in disc.net if isinstance(m, nn.LeakyReLU)] == [0.2, 0.2, 0.2]
    assert [m.num_groups for m in disc.net if isinstance(m, nn.GroupNorm)] == [8, 8]
    convs = [m for m in disc.net if isinstance(m, nn.Conv2d)]
    assert [(c.kernel_size, c.stride, c.padding) for c in convs] == [((4, 4), (2, 2), (1, 1))] * 3 + [
        ((3, 3), (1, 1), (1, 1))]
    disc.net = nn.Identity()
    assert torch.allclose(disc(torch.tensor([0.0, 0.25, 1.0])), torch.tensor([-1.0, -0.5, 1.0]))  # 0..1 -> -1..1


class FeaturesAreThePixels(nn.Module):
    def encoder_features(self, images):
        return images


def test_feature_perceptual_loss_by_hand():
    # features [1, C=2, H=3, W=1], each position's channel vector normalised, then the squared
    # distance summed over channels and averaged over the 3 positions:
    #   h=0: (1,0) vs (0,1) -> 2;  h=1: (1,0) vs (2,2)/|.| -> (1 - 1/sqrt2)^2 + 1/2;  h=2: (0,1) vs (0,5) -> 0
    target = torch.tensor([[[[1.0], [1.0], [0.0]], [[0.0], [0.0], [1.0]]]], requires_grad=True)
    recon = torch.tensor([[[[0.0], [2.0], [0.0]], [[1.0], [2.0], [5.0]]]], requires_grad=True)
    loss = feature_perceptual_loss(FeaturesAreThePixels(), recon, target)
    assert loss.item() == pytest.approx((2 + (1 - 0.5 ** 0.5) ** 2 + 0.5) / 3)
    loss.backward()
    assert target.grad is None and recon.grad is not None  # the target's features are constants


def test_gradient_ratio_by_hand():
    w = torch.ones(2, requires_grad=True)
    main = (3 * w).sum()  # gradient (3, 3), norm 3*sqrt2
    extra = (w * w).sum()  # gradient (2, 2), norm 2*sqrt2
    lam = gradient_ratio(main, extra, w)
    assert float(lam) == pytest.approx(3 * math.sqrt(2) / (2 * math.sqrt(2) + 1e-6), rel=1e-7)
    assert not lam.requires_grad
    # reduce is applied to both gradients: (4, 4) and (3, 3) -> 4/3
    assert float(gradient_ratio(main, extra, w, reduce=lambda g: g + 1)) == pytest.approx(4 / 3, rel=1e-6)
    # a ratio below 1 stays below 1: gradients (1, 1) vs (3, 3)
    assert gradient_ratio(w.sum(), (3 * w).sum(), w).item() == pytest.approx(1 / 3, rel=1e-5)
    # an extra term without gradient there: the ratio is capped at 1e4
    assert float(gradient_ratio(main, (0 * w).sum(), w)) == 1e4


def test_semantic_preservation_loss_by_hand():
    z = torch.tensor([1.0, 2.0, 3.0, 4.0]).view(1, 1, 2, 2).requires_grad_(True)
    z1 = torch.tensor([1.0, 0.0, 0.0, 2.0]).view(1, 1, 2, 2).requires_grad_(True)
    loss = semantic_preservation_loss(z, z1)
    assert loss.item() == pytest.approx((0 + 4 + 9 + 4) / 4)  # mean squared difference
    loss.backward()
    assert z1.grad is None  # the stage-1 latents are the fixed target
    assert torch.allclose(z.grad, (z - z1).detach() * 2 / 4)
