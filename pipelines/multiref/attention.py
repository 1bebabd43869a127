"""Multi-reference self-attention (thesis 4.2, Fig. 4.4) — the one implementation that the
ComfyUI model patch and the diffusers attention processor both call.

The thesis concatenates, width-wise, every frame's feature map with the front and back
reference frames' maps, runs self-attention and keeps the first third. Since
attention has no positional terms here, that equals: queries of frame i attend to the
keys/values of frame i *and* of every reference frame; a reference frame, concatenated
with copies of itself, attends to itself only (duplicated keys do not change softmax
attention). Reference keys/values are projected once and shared by all frames.
"""
import math

import torch
import torch.nn.functional as F

from ..common import InputError

DEFAULT_REFERENCES = (0, 1)


def _attend(q, k, v, bias=None):
    """SDPA on [N, L, heads, d] tensors (4-D, heads-transposed views: the layout CPU and GPU
    kernels run fastest on)."""
    return F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2),
                                          attn_mask=bias).transpose(1, 2)


def check_frames(batch: int, frames: int, references) -> list:
    if frames < 1 or batch % frames:
        raise InputError(f"A batch of {batch} cannot be split into videos of {frames} frames; set frames "
                         "per video to a divisor of the batch (0 = the whole batch is one video).")
    refs = sorted(set(int(r) for r in references))
    if not refs or refs[0] < 0 or refs[-1] >= frames:
        raise InputError(f"Reference frames {list(references)} do not exist in a video of {frames} frames; "
                         "prepend the front and back images as frames 1 and 2 first.")
    if len(refs) == frames:
        raise InputError("Every frame is a reference frame; add frames to animate after the references.")
    return refs


def thesis_context(t: torch.Tensor, frames: int, refs: list) -> torch.Tensor:
    """Keys or values [B, L, C] -> [B, (1 + len(refs)) * L, C] laid out as Fig. 4.4 concatenates
    them: every frame's own tokens, then each reference frame's; a reference frame gets copies of
    its own tokens instead ([x_fr, x_fr, x_fr])."""
    batch, length, width = t.shape
    grid = t.view(batch // frames, frames, length, width)
    source = [[f] + [f if f in refs else r for r in refs] for f in range(frames)]
    return grid[:, torch.tensor(source, device=t.device)].reshape(batch, (1 + len(refs)) * length, width)


def multi_reference_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, heads: int, frames: int,
                              references=DEFAULT_REFERENCES, strength: float = 1.0, attend=None) -> torch.Tensor:
    """Attention output [B, L, heads*d] for projected q, k, v [B, L, heads*d], where the
    batch holds B / frames videos of ``frames`` consecutive frames (e.g. each CFG half).

    ``strength`` scales the reference keys' attention weights (a log(strength) logit
    bias): 1 is the thesis' formulation, 0 falls back to plain self-attention.

    ``attend(q, k, v)`` (another attention implementation, e.g. a replacement another node
    pack installed) runs instead of SDPA, once over the whole batch with the thesis' extended
    keys/values (``thesis_context``); it takes no logit bias, so it needs strength 1."""
    batch, length, width = q.shape
    refs = check_frames(batch, frames, references)
    if attend is not None:
        if strength != 1.0:
            raise InputError(f"Multi-reference strength {strength:g} cannot be passed to another attention "
                             "replacement (it takes no attention bias); use strength 1 with it.")
        return attend(q, thesis_context(k, frames, refs), thesis_context(v, frames, refs))
    groups, d = batch // frames, width // heads
    others = [i for i in range(frames) if i not in refs]
    n_refs, n_other = len(refs), len(others)

    def grid(t):  # [groups, frames, L, heads, d] view
        return t.view(groups, frames, length, heads, d)

    def pick(t, idx):
        return grid(t)[:, idx].reshape(groups * len(idx), length, heads, d)

    def extended(t):  # own tokens, then every reference frame's tokens
        shared = grid(t)[:, refs].reshape(groups, 1, n_refs * length, heads, d)
        own = grid(t)[:, others]
        return torch.cat([own, shared.expand(groups, n_other, n_refs * length, heads, d)], dim=2).reshape(
            groups * n_other, (1 + n_refs) * length, heads, d)

    out = torch.empty(groups, frames, length, heads, d, dtype=q.dtype, device=q.device)
    # reference frames: plain self-attention ([x_fr, x_fr, x_fr] in the thesis)
    out[:, refs] = _attend(pick(q, refs), pick(k, refs), pick(v, refs)).view(groups, n_refs, length, heads, d)
    bias = None
    if strength != 1.0:
        bias = torch.zeros(1, 1, 1, length * (1 + n_refs), dtype=q.dtype, device=q.device)
        bias[..., length:] = math.log(strength) if strength > 0 else float("-inf")
    out[:, others] = _attend(pick(q, others), extended(k), extended(v), bias).view(groups, n_other, length, heads, d)
    return out.reshape(batch, length, width)


def width_concat_reference(x: torch.Tensor, to_q, to_k, to_v, heads: int, references=DEFAULT_REFERENCES):
    """The thesis' literal formulation (Fig. 4.4), for tests: x [F, H, W, C] feature maps of
    one video -> attention output [F, H*W, heads*d] (before the output projection)."""
    frames, h, w, c = x.shape
    fr, bk = (x[r:r + 1].expand(frames, h, w, c) for r in references)
    wide = torch.cat([x, fr, bk], dim=2)
    wide[references[0]] = torch.cat([x[references[0]]] * 3, dim=1)  # x_fr with [x_fr, x_fr]
    wide[references[1]] = torch.cat([x[references[1]]] * 3, dim=1)  # x_bk with [x_bk, x_bk]
    tokens = wide.reshape(frames, h * 3 * w, c)
    q, k, v = to_q(tokens), to_k(tokens), to_v(tokens)
    split = lambda t: t.view(frames, -1, heads, t.shape[-1] // heads).transpose(1, 2)  # noqa: E731
    out = F.scaled_dot_product_attention(split(q), split(k), split(v)).transpose(1, 2).reshape(frames, h, 3 * w, -1)
    return out[:, :, :w].reshape(frames, h * w, -1)  # the first third along the width
