"""transformers API differences across the versions a ComfyUI install may hold (ComfyUI 0.3.75 asks
for transformers >= 4.50.3; the pack must work from there on)."""

DTYPE_KEYWORD_SINCE = (4, 56)  # from_pretrained(dtype=...) took over from torch_dtype= in transformers 4.56


def from_pretrained_dtype(dtype) -> dict:
    """The keyword argument that sets the weights' dtype in this transformers version's from_pretrained."""
    import transformers

    major, minor = (int(part) for part in transformers.__version__.split(".")[:2])
    return {"dtype" if (major, minor) >= DTYPE_KEYWORD_SINCE else "torch_dtype": dtype}
