"""The MCDM image-embedding adapter (thesis 5.2.3: c_im = MLP([E(x_A), CLIP_im(x_A)])), in the layout of the
official ``adapter.pth``: ``vae2clip`` Linear(1024 -> 768) and ``linear1`` Linear(54 -> 50)."""
import torch
from torch import nn

from ..common.checkpoints import load_into, load_state_dict, strip_prefix
from ..common.errors import InputError

CLIP_TOKENS = 50  # CLIP ViT-B/32 at 224^2: 7x7 patches + the class token
LATENT_TOKENS = 4  # one token per VAE latent channel
TOKEN_WIDTH = 768  # SD1.5 cross-attention width (= CLIP ViT-B/32 hidden size)
POOLED_LATENT_SIDE = 32  # MaxPool2d(2) of the 64x64 latent of a 512x512 image
ADAPTER_IMAGE_SIDE = 512  # the official pipeline resizes inputs to 512x512
DDP_PREFIX = "module."


class EmbeddingAdapter(nn.Module):
    """[50 CLIP tokens ; 4 pooled-latent tokens] -> 50 image tokens for cross-attention."""

    def __init__(self, output_tokens: int = CLIP_TOKENS):
        super().__init__()
        self.pool = nn.MaxPool2d(2)
        self.vae2clip = nn.Linear(POOLED_LATENT_SIDE * POOLED_LATENT_SIDE, TOKEN_WIDTH)
        self.linear1 = nn.Linear(CLIP_TOKENS + LATENT_TOKENS, output_tokens)
        with torch.no_grad():
            # identity over the token axis: before training, c_im is the CLIP tokens (the latent tokens
            # enter with weight 0); the bias keeps nn.Linear's default initialisation, as in the official code
            self.linear1.weight.copy_(torch.eye(output_tokens, CLIP_TOKENS + LATENT_TOKENS))

    def forward(self, clip_tokens: torch.Tensor, latent: torch.Tensor) -> torch.Tensor:
        """clip_tokens [B, 50, 768] (CLIP last hidden state), latent [B, 4, 64, 64] (scaled VAE latent)."""
        check_inputs(clip_tokens, latent)
        pooled = self.pool(latent).flatten(2)  # [B, 4, 1024]
        tokens = torch.cat([clip_tokens, self.vae2clip(pooled)], dim=1)  # [B, 54, 768]: CLIP first, as trained
        return self.linear1(tokens.transpose(1, 2)).transpose(1, 2)  # mix over the token axis -> [B, 50, 768]


def check_inputs(clip_tokens: torch.Tensor, latent: torch.Tensor) -> None:
    if clip_tokens.dim() != 3 or tuple(clip_tokens.shape[1:]) != (CLIP_TOKENS, TOKEN_WIDTH):
        raise InputError(f"The image-embedding adapter needs {CLIP_TOKENS} CLIP tokens of {TOKEN_WIDTH} (CLIP "
                         f"ViT-B/32 at 224x224), got {tuple(clip_tokens.shape)}. Use a CLIP ViT-B/32 vision model.")
    side = 2 * POOLED_LATENT_SIDE
    if latent.dim() != 4 or tuple(latent.shape[1:]) != (LATENT_TOKENS, side, side):
        raise InputError(f"The image-embedding adapter needs a {LATENT_TOKENS}x{side}x{side} VAE latent (an SD1.5 "
                         f"VAE on a {ADAPTER_IMAGE_SIDE}x{ADAPTER_IMAGE_SIDE} image), got {tuple(latent.shape)}.")


def load_adapter(path: str) -> EmbeddingAdapter:
    """``adapter.pth`` as published (``module.``-prefixed state dict), loaded strictly."""
    adapter = EmbeddingAdapter()
    state = strip_prefix(load_state_dict(path), DDP_PREFIX)
    load_into(adapter, state, path, "MCDM image-embedding adapter (vae2clip 1024->768, linear1 54->50)")
    return adapter.eval()
