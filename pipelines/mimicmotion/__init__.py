"""Fit Check video generation on MimicMotion / Stable Video Diffusion (thesis 4.2): PoseNet,
the official-weight loader and the tiled, multi-reference sampling pipeline."""
