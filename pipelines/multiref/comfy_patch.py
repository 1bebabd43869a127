"""The multi-reference attention as a ComfyUI attn1 replacement. Plain Python over the
ModelPatcher API (``clone``, ``set_model_attn1_replace``) so it imports no ComfyUI module;
the node in nodes/fitcheck.py hands it the model."""
from .attention import DEFAULT_REFERENCES, multi_reference_attention

BLOCK_GROUPS = (("input", "input_blocks"), ("middle", "middle_block"), ("output", "output_blocks"))


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


def make_replacement(plain_attention, frames_per_video: int, references=DEFAULT_REFERENCES, strength: float = 1.0,
                     sigma_start: float = float("inf"), sigma_end: float = 0.0):
    """attn1 replacement: multi-reference on spatial self-attention inside [sigma_end, sigma_start];
    ``plain_attention(q, k, v, heads)`` everywhere else."""

    def attn1(q, k, v, extra_options):
        heads = extra_options["n_heads"]
        sigma = extra_options.get("sigmas")
        active = sigma is None or sigma_end <= float(sigma.max()) <= sigma_start
        if not active or not _is_spatial(q, extra_options):
            return plain_attention(q, k, v, heads)
        chunks = max(len(extra_options.get("cond_or_uncond") or [1]), 1)  # CFG halves
        frames = frames_per_video or q.shape[0] // chunks
        return multi_reference_attention(q, k, v, heads, frames, references, strength)

    return attn1


def patch_model(model, plain_attention, frames_per_video: int = 0, references=DEFAULT_REFERENCES,
                strength: float = 1.0, sigma_start: float = float("inf"), sigma_end: float = 0.0):
    """A clone of a ComfyUI ModelPatcher with every spatial attn1 replaced; ``model`` is untouched."""
    patched = model.clone()
    fn = make_replacement(plain_attention, frames_per_video, references, strength, sigma_start, sigma_end)
    for name, number, index in transformer_block_keys(patched.model.diffusion_model):
        patched.set_model_attn1_replace(fn, name, number, index)
    return patched
