"""Guidance combinations of chapter 5, as pure functions of model predictions. They are affine with weights
summing to one, so they hold alike for noise (eps) and for denoised (x0) predictions, which ComfyUI passes."""
import torch

# official demo values for the released weights; the thesis (5.5.3) gives s1 = 3, s2 = 3, s3 = 5
DEMO_SCALES = (3.0, 2.0, 4.0)
THESIS_SCALES = (3.0, 3.0, 5.0)


def multi_condition_cfg(uncond, image_embedding, image_and_spatial, full, s1, s2, s3):
    """Eq. 5.1 nested over three signals: image embedding c_im (s1), spatial input c_s (s2), text c_p (s3).
    uncond = eps({}), image_embedding = eps({c_im}), image_and_spatial = eps({c_im, c_s}),
    full = eps({c_im, c_s, c_p})."""
    return (uncond
            + s1 * (image_embedding - uncond)
            + s2 * (image_and_spatial - image_embedding)
            + s3 * (full - image_and_spatial))


def mask_guided(target, reconstruction, mask):
    """Thesis 5.2.4: eps_hat = eps~(c_pb) * M + eps~(c_pa) * (1 - M); M = 1 where the edit may change things."""
    return target * mask + reconstruction * (1 - mask)


def latent_blend(latents, reconstruction_latents, mask):
    """The official code's form: after each step, latents * M + rec_latents * (1 - M)."""
    return latents * mask + reconstruction_latents * (1 - mask)


def fit_mask(mask: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A [B, H, W] or [B, 1, H, W] mask resized (nearest) to the latent ``like`` [B, C, h, w], broadcast on C."""
    if mask.dim() == 3:
        mask = mask.unsqueeze(1)
    mask = mask.to(device=like.device, dtype=like.dtype)
    if tuple(mask.shape[-2:]) != tuple(like.shape[-2:]):
        mask = torch.nn.functional.interpolate(mask, size=like.shape[-2:], mode="nearest")
    if mask.shape[0] not in (1, like.shape[0]):
        mask = mask[:1]
    return mask


def cfg(uncond, cond, scale):
    """Classifier-free guidance with one condition (eq. 5.1 with a single signal)."""
    return uncond + scale * (cond - uncond)
