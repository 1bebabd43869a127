"""The methods in plain torch / diffusers / transformers. Nothing here imports ComfyUI."""
