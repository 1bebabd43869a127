"""AlignTok (thesis ch. 7): an image tokenizer made by aligning a pretrained DINOv2
encoder to a low-dimensional latent (adapter) and training a pixel decoder on it."""
