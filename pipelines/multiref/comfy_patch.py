"""The multi-reference attention as a ComfyUI attn1 replacement. Plain Python over the
ModelPatcher API (``clone``, ``set_model_attn1_replace``, ``add_wrapper_with_key``) so it imports
no ComfyUI module; the node in nodes/fitcheck.py hands it the model.

Living beside other packs and core features:
- an attn1 replacement already on the model (e.g. Self-Attention Guidance) is chained to: it runs
  with the extended keys/values instead of plain attention;
- ours is keyed per block (``(block, number)``), so a per-call replacement that core's
  Perturbed-Attention Guidance sets under the same key for its perturbed pass still takes over there;
- under core's context windows (``transformer_options["context_window"]``) every window is one
  video, and a sampling wrapper puts the reference frames into every window.
"""
import copy
import dataclasses

from ..common import InputError
from .attention import DEFAULT_REFERENCES, multi_reference_attention

BLOCK_GROUPS = (("input", "input_blocks"), ("middle", "middle_block"), ("output", "output_blocks"))
OUTER_SAMPLE = "outer_sample"  # comfy.patcher_extension.WrappersMP.OUTER_SAMPLE
WRAPPER_KEY = "recompose_multi_reference_windows"


def transformer_block_keys(diffusion_model) -> list:
    """(block name, block number, transformer index) of every spatial transformer block."""
    keys = []
    for name, attr in BLOCK_GROUPS:
        blocks = getattr(diffusion_model, attr, None)
        if blocks is None:
            continue
        blocks = [blocks] if name == "middle" else list(blocks)
        for number, block in enumerate(blocks):
            for module in block.modules():
                tbs = getattr(module, "transformer_blocks", None)
                if tbs is not None and module.__class__.__name__ != "BasicTransformerBlock":
                    keys.extend((name, number, index) for index in range(len(tbs)))
    return keys


def _is_spatial(q, extra_options) -> bool:
    """Video transformers run their temporal blocks under the same block key; those see
    [B*H*W, frames, C] instead of [B, H*W, C], so compare with the activations' shape."""
    shape = extra_options.get("activations_shape")
    return shape is None or (q.shape[0] == shape[0] and q.shape[1] == shape[2] * shape[3])


def call_layout(batch: int, extra_options: dict, frames_per_video: int, references) -> tuple:
    """(frames per video, reference positions) of one attention call. Inside a context window the
    window is the video and its ``index_list`` maps positions to frame numbers."""
    window = extra_options.get("context_window")
    if window is None:
        chunks = max(len(extra_options.get("cond_or_uncond") or [1]), 1)  # CFG halves
        return frames_per_video or batch // chunks, tuple(references)
    index = list(window.index_list)
    missing = [r + 1 for r in references if r not in index]
    if missing:
        raise InputError(f"Multi-Reference Attention: a context window (frames {[i + 1 for i in index]}) lacks "
                         f"reference frame(s) {missing}; use core's context windows node (the patch adds the "
                         "references to its windows) or sample without context windows.")
    return len(index), tuple(index.index(r) for r in references)


def make_replacement(plain_attention, frames_per_video: int, references=DEFAULT_REFERENCES, strength: float = 1.0,
                     sigma_start: float = float("inf"), sigma_end: float = 0.0, previous=None):
    """attn1 replacement: multi-reference on spatial self-attention inside [sigma_end, sigma_start];
    elsewhere ``previous(q, k, v, extra_options)`` (a replacement that was there before) or
    ``plain_attention(q, k, v, heads)``."""

    def attn1(q, k, v, extra_options):
        heads = extra_options["n_heads"]
        sigma = extra_options.get("sigmas")
        active = sigma is None or sigma_end <= float(sigma.max()) <= sigma_start
        if not active or not _is_spatial(q, extra_options):
            return previous(q, k, v, extra_options) if previous else plain_attention(q, k, v, heads)
        frames, refs = call_layout(q.shape[0], extra_options, frames_per_video, references)
        attend = None if previous is None else (lambda q_, k_, v_: previous(q_, k_, v_, extra_options))
        return multi_reference_attention(q, k, v, heads, frames, refs, strength, attend=attend)

    return attn1


def windows_with_references(windows: list, references) -> list:
    """Context windows (frame index lists) with the reference frames first in every one."""
    refs = sorted(set(references))
    return [refs + [f for f in window if f not in refs] for window in windows]


def keep_references_in_context_windows(references):
    """OUTER_SAMPLE wrapper: for this sampling run, core's context handler (over the batch, dim 0)
    schedules windows that all hold the reference frames. The handler in the run's own copy of
    the model options is replaced by a patched copy, so the model's handler is never changed."""

    def outer_sample(executor, *args, **kwargs):
        options = executor.class_obj.model_options  # CFGGuider.sample copied these for this run
        handler = options.get("context_handler")
        schedule = getattr(handler, "context_schedule", None)
        if getattr(handler, "dim", None) == 0 and dataclasses.is_dataclass(schedule):
            def windows(num_frames, owner, model_options):
                return windows_with_references(schedule.func(num_frames, owner, model_options), references)

            handler = copy.copy(handler)
            handler.context_schedule = dataclasses.replace(schedule, func=windows)
            options["context_handler"] = handler
        return executor(*args, **kwargs)

    return outer_sample


def patch_model(model, plain_attention, frames_per_video: int = 0, references=DEFAULT_REFERENCES,
                strength: float = 1.0, sigma_start: float = float("inf"), sigma_end: float = 0.0):
    """A clone of a ComfyUI ModelPatcher with every spatial attn1 replaced; ``model`` is untouched."""
    patched = model.clone()
    present = patched.model_options.get("transformer_options", {}).get("patches_replace", {}).get("attn1", {})
    if strength != 1.0 and present:
        raise InputError(f"Multi-Reference Attention: this model already has another attention replacement "
                         f"({len(present)} block(s)); it takes no attention bias, so use strength 1 with it.")

    def replacement(previous):
        return make_replacement(plain_attention, frames_per_video, references, strength, sigma_start, sigma_end,
                                previous)

    per_block = set()
    for name, number, index in transformer_block_keys(patched.model.diffusion_model):
        if (name, number, index) in present:  # core looks this key up first: chain to what it holds
            patched.set_model_attn1_replace(replacement(present[(name, number, index)]), name, number, index)
        elif (name, number) not in per_block:
            per_block.add((name, number))
            patched.set_model_attn1_replace(replacement(present.get((name, number))), name, number)
    patched.add_wrapper_with_key(OUTER_SAMPLE, WRAPPER_KEY, keep_references_in_context_windows(references))
    return patched
