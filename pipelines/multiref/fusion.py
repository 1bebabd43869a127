"""Progressive latent fusion for videos longer than one model call (thesis 4.2, after
MimicMotion): frames are denoised in overlapping tiles that ALWAYS include the reference
frames, and each step's per-tile predictions are blended with triangular weights (a
frame near a tile's middle counts more than one near its edge)."""
import torch

from ..common import InputError
from .attention import DEFAULT_REFERENCES


def plan_tiles(num_frames: int, tile_length: int, overlap: int, references=DEFAULT_REFERENCES) -> list:
    """Frame indices of each tile: the references, then a window of the other frames."""
    refs = sorted(set(references))
    others = [i for i in range(num_frames) if i not in refs]
    window = tile_length - len(refs)
    if window <= overlap or overlap < 0:
        raise InputError(f"A tile of {tile_length} frames holds {len(refs)} references and {window} others; "
                         f"the overlap ({overlap}) must be smaller than that.")
    if not others:
        raise InputError("The video has only reference frames; add frames to generate.")
    starts = list(range(0, max(len(others) - window, 0) + 1, window - overlap))
    if starts[-1] + window < len(others):
        starts.append(len(others) - window)
    return [refs + others[s:s + window] for s in starts]


def triangular_weights(length: int) -> torch.Tensor:
    """1, 2, ..., peak, ..., 2, 1 (never zero, so edge frames of a lone tile still count)."""
    i = torch.arange(length, dtype=torch.float32)
    return torch.minimum(i + 1, length - i)


def fuse_tiles(tile_outputs: list, tiles: list, num_frames: int, n_refs: int = len(DEFAULT_REFERENCES)) -> torch.Tensor:
    """Blend per-tile outputs [tile_len, ...] into [num_frames, ...]; reference frames are
    averaged over the tiles, other frames weighted triangularly within their tile window."""
    if len(tile_outputs) != len(tiles):
        raise InputError(f"{len(tile_outputs)} tile outputs for {len(tiles)} tiles.")
    first = tile_outputs[0]
    total = torch.zeros(num_frames, *first.shape[1:], dtype=first.dtype, device=first.device)
    weight = torch.zeros(num_frames, dtype=first.dtype, device=first.device)
    for out, frames in zip(tile_outputs, tiles):
        if out.shape[0] != len(frames):
            raise InputError(f"A tile output has {out.shape[0]} frames but its tile lists {len(frames)}.")
        w = torch.cat([torch.ones(n_refs), triangular_weights(len(frames) - n_refs)]).to(first)
        idx = torch.tensor(frames, device=first.device)
        total.index_add_(0, idx, out * w.view(-1, *([1] * (out.ndim - 1))))
        weight.index_add_(0, idx, w)
    if (weight == 0).any():
        raise InputError("Some frames are in no tile; plan the tiles with plan_tiles.")
    return total / weight.view(-1, *([1] * (first.ndim - 1)))
