"""Total Selfie per-capture fine-tuning (thesis 3.2.2, 3.5.5): resize-and-paste
augmentations of one capture and a masked-loss, UNet-only fine-tune of the
selfie-conditioned inpainting model; the result is one safetensors file."""
from .weights import apply_finetuned_unet

__all__ = ["apply_finetuned_unet"]
