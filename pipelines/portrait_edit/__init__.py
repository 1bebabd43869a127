"""Portrait editing (thesis chapter 5, bytedance/feature-preserve-portrait-editing): the MCDM image-embedding
adapter, multi-condition guidance (eq. 5.1), the editing mask (5.5.3) and mask-guided editing (5.2.4).
Plain torch: the nodes bridge these to ComfyUI's native MODEL / CONDITIONING / GUIDER types."""
