"""Paired-data generation (thesis 5.2.2, eq. 5.2; settings 5.5.1): a side-by-side canvas [x_A | x_B] denoised
once, its left half following the source prompt p_a, its right half the target prompt p_b, and the whole
canvas the shared prompt p, so identity and layout agree across the pair."""
import torch

from ..common.errors import InputError
from .guidance import cfg

SHARED_SCALE = 0.1  # s'_d
SIDE_SCALE = 0.9  # s'_a = s'_b
GUIDANCE_SCALE = 7.5  # CFG of each prediction (5.5.1)
SHARED_TEMPLATE = "the same {x} on the left and right"
SIDE_TEMPLATE = "a {x}, {y}"
COSTUME_SOURCE = "normal costume"
COSTUME_TARGETS = ("cute flower costume", "cute white sheep costume", "Santa Claus costume",
                   "traditional golden palace costume")
EXPRESSION_SOURCE = "neutral expression"
EXPRESSION_TARGETS = ("angry", "shocked", "laughing", "crying")


def pair_prompts(subject: str, source: str, target: str) -> tuple:
    """(p, p_a, p_b) of 5.5.1: subject [X] (e.g. 'man' / 'woman'), source [Y] and target [Z] descriptions."""
    if not subject.strip():
        raise InputError("The pair prompts need a subject [X], e.g. 'man' or 'woman'.")
    x = subject.strip()
    return SHARED_TEMPLATE.format(x=x), SIDE_TEMPLATE.format(x=x, y=source.strip()), \
        SIDE_TEMPLATE.format(x=x, y=target.strip())


def side_masks(like: torch.Tensor) -> tuple:
    """M'_a = [1, 0] (left half) and M'_b = [0, 1] (right half) for a [B, C, h, 2w] latent."""
    width = like.shape[-1]
    if width % 2:
        raise InputError(f"A side-by-side canvas needs an even latent width, got {width} (image width "
                         f"{width * 8}); use a width that is a multiple of 16.")
    left = torch.zeros(1, 1, 1, width, device=like.device, dtype=like.dtype)
    left[..., : width // 2] = 1
    return left, 1 - left


def paired_guidance(shared, source, target, s_d=SHARED_SCALE, s_a=SIDE_SCALE, s_b=SIDE_SCALE):
    """Eq. 5.2: s'_d eps~(c_p) + s'_a M'_a eps~(c_pa) + s'_b M'_b eps~(c_pb), each eps~ already CFG-guided.
    With s'_d + s'_a = s'_d + s'_b = 1 it is affine per pixel, so it holds for eps and x0 predictions alike."""
    m_a, m_b = side_masks(shared)
    return s_d * shared + s_a * m_a * source + s_b * m_b * target


def guided_pair_prediction(negative, shared, source, target, cfg_scale=GUIDANCE_SCALE, s_d=SHARED_SCALE,
                           s_a=SIDE_SCALE, s_b=SIDE_SCALE):
    """Eq. 5.2 over raw predictions: each prompt's prediction CFG-guided against ``negative``, then combined."""
    guided = [cfg(negative, cond, cfg_scale) for cond in (shared, source, target)]
    return paired_guidance(*guided, s_d, s_a, s_b)


def split_canvas(images: torch.Tensor) -> tuple:
    """IMAGE [B, H, 2W, C] -> (x_A = left half, x_B = right half)."""
    width = images.shape[2]
    if width % 2:
        raise InputError(f"The canvas width ({width}) is odd; it should be two images side by side.")
    return images[:, :, : width // 2], images[:, :, width // 2:]
