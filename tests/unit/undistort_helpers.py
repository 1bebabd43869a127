"""The undistortion warp without its production shortcuts, the reference the fast path is pinned to."""
import numpy as np
import torch

from pipelines.undistort.warp import coarse_sources, identity_map, upsample_sources


def backward_map_from_rho(rho_field: np.ndarray, center: tuple, k: float, height: int, width: int,
                          stride: int = 1) -> torch.Tensor:
    """The sampling map inverting q = c + s(rho(p)) (p - c) at every output pixel q: solved per pixel
    (stride 1), or at the centres of stride x stride blocks and upsampled, with no fold check."""
    coarse = coarse_sources(rho_field, center, k, height, width, stride)
    if coarse is None:
        return identity_map(height, width)
    return upsample_sources(coarse, stride, height, width)
