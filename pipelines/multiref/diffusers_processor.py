"""The multi-reference attention as a diffusers attention processor (spatial attn1 of
UNet2DConditionModel or UNetSpatioTemporalConditionModel; temporal attention untouched)."""
from .attention import DEFAULT_REFERENCES, multi_reference_attention


class MultiReferenceAttnProcessor:
    def __init__(self, frames: int, references=DEFAULT_REFERENCES, strength: float = 1.0):
        self.frames = frames
        self.references = tuple(references)
        self.strength = strength

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, **kwargs):
        residual = hidden_states
        shape = hidden_states.shape
        if hidden_states.ndim == 4:  # [B, C, H, W] inputs of some blocks
            b, c, h, w = shape
            hidden_states = hidden_states.view(b, c, h * w).transpose(1, 2)
        q, k, v = attn.to_q(hidden_states), attn.to_k(hidden_states), attn.to_v(hidden_states)
        out = multi_reference_attention(q, k, v, attn.heads, self.frames, self.references, self.strength)
        out = attn.to_out[1](attn.to_out[0](out))
        if len(shape) == 4:
            out = out.transpose(1, 2).reshape(shape)
        if attn.residual_connection:
            out = out + residual
        return out / attn.rescale_output_factor


def spatial_self_attention_names(unet) -> list:
    """Processor names of the spatial self-attentions (attn1 outside temporal blocks)."""
    return [n for n in unet.attn_processors
            if n.endswith("attn1.processor") and "temporal" not in n and "time_stack" not in n]


def enable_multi_reference(unet, frames: int, references=DEFAULT_REFERENCES, strength: float = 1.0) -> None:
    """Install the processor on every spatial self-attention; others keep theirs."""
    processor = MultiReferenceAttnProcessor(frames, references, strength)
    procs = dict(unet.attn_processors)
    for name in spatial_self_attention_names(unet):
        procs[name] = processor
    unet.set_attn_processor(procs)
