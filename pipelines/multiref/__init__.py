"""Fit Check multi-reference attention (thesis 4.2, Fig. 4.4) and the reference-frame strategy."""
from .attention import multi_reference_attention

__all__ = ["multi_reference_attention"]
