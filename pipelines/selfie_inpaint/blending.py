"""Background-preserving blending, thesis eq. 3.4 (section 3.5.4).

For the early, noisy steps (t > sT) the latent outside the dilated foreground mask M̄ is the
background latent noised to the same level with the run's initial noise:

    z_{t-1} = z^f_{t-1} * M̄ + z^b_{t-1} * (1 - M̄)   if t > sT
    z_{t-1} = z^f_{t-1}                               otherwise

Later steps run plain, so the model can add shadows and contact around the person.
"""
import torch
import torch.nn.functional as F


def blends_at(step: int, num_steps: int, s: float) -> bool:
    """Step ``step`` (0-based) turns z_t into z_{t-1} with t = T - step: blend while t > sT."""
    return num_steps - step > s * num_steps


def background_latent_at(scheduler, background: torch.Tensor, noise: torch.Tensor, timestep) -> torch.Tensor:
    """z^b at ``timestep`` (None = the clean end of the schedule) via the scheduler's forward process."""
    if timestep is None:
        return background
    t = torch.as_tensor(timestep, device=background.device).reshape(1).expand(background.shape[0])
    return scheduler.add_noise(background, noise, t)


def blend(foreground_latent: torch.Tensor, background_latent: torch.Tensor, keep_mask: torch.Tensor) -> torch.Tensor:
    """z^f * M̄ + z^b * (1 - M̄); ``keep_mask`` is M̄ (1 = generated foreground) at latent size."""
    return foreground_latent * keep_mask + background_latent * (1.0 - keep_mask)


def dilate(mask: torch.Tensor, pixels: int) -> torch.Tensor:
    """Binary dilation of a [B,1,H,W] mask by ``pixels`` (square structuring element)."""
    if pixels <= 0:
        return mask
    return F.max_pool2d(mask, kernel_size=2 * pixels + 1, stride=1, padding=pixels)


def latent_foreground(mask: torch.Tensor, latent_hw) -> torch.Tensor:
    """Pixel mask -> latent grid; a latent cell counts as foreground if any of its pixels is."""
    return F.adaptive_max_pool2d(mask, tuple(latent_hw))
