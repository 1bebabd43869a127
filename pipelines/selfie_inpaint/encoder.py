"""Total Selfie's selfie encoder (thesis eq. 3.2): c = L([F(I_f), F(I_u), F(I_l), F(I_s)]).

F is Paint-by-Example's image branch: CLIP vision pooler output -> mapper (transformer
blocks) -> LayerNorm, applied to each of the four selfies (face, upper body, lower body,
shoes, in that order). Two projections L exist in the wild:

- "trained" (official ``pbe_selfie2full/image_encoder``): ``proj_out = Linear(4*hidden -> D)``
  over the concatenated four features, giving ONE cross-attention token.
- "four_tokens" (a plain Paint-by-Example ``image_encoder``, training-free): the stock
  ``proj_out = Linear(hidden -> D)`` applied to each selfie, giving FOUR tokens.

State-dict keys (as saved by the official ``PaintByExampleImageEncoder`` variant and by the
stock diffusers one): ``model.*`` (transformers ``CLIPVisionModel``: ``model.vision_model.*``),
``mapper.blocks.N.*`` (diffusers ``BasicTransformerBlock``: ``norm1``, ``attn1.to_q/k/v``,
``attn1.to_out.0``, ``norm3``, ``ff.net.*``), ``final_layer_norm.{weight,bias}``,
``proj_out.{weight,bias}`` and ``uncond_vector`` ([1, 1, D], the learned "no example"
embedding Paint-by-Example uses for classifier-free guidance). Checkpoints saved with
transformers 4 nest CLIP under ``model.vision_model.``; transformers 5 modules drop that level,
so ``module_state_dict`` / ``official_state_dict`` convert between the two.
"""
import torch
from torch import nn

NUM_SELFIES = 4
SELFIE_NAMES = ("face", "upper body", "lower body", "shoes")
MODES = ("trained", "four_tokens")
OFFICIAL_CLIP_PREFIX = "model.vision_model."


def mapper_depth(num_hidden_layers: int) -> int:
    """Paint-by-Example's mapper has one block per five CLIP layers (5 for CLIP-L/14)."""
    return (num_hidden_layers + 1) // 5


class PaintByExampleMapper(nn.Module):
    """Transformer blocks over the single pooled CLIP token (diffusers' key layout)."""

    def __init__(self, hidden_size: int, depth: int):
        super().__init__()
        from diffusers.models.attention import BasicTransformerBlock

        self.blocks = nn.ModuleList([
            BasicTransformerBlock(hidden_size, 1, hidden_size, activation_fn="gelu", attention_bias=True)
            for _ in range(depth)
        ])

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            hidden_states = block(hidden_states)
        return hidden_states


class SelfieImageEncoder(nn.Module):
    """Four CLIP-normalised selfies [B, 4, 3, H, W] -> cross-attention tokens.

    ``forward`` is the trained fused encoder ([B, 1, D]); ``encode_tokens`` is the
    training-free one ([B, 4, D]); ``embed`` picks by ``mode``.
    """

    def __init__(self, vision_config, proj_dim: int, mode: str = "trained"):
        super().__init__()
        from transformers import CLIPVisionModel

        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        hidden = vision_config.hidden_size
        self.mode = mode
        self.model = CLIPVisionModel(vision_config)
        self.mapper = PaintByExampleMapper(hidden, mapper_depth(vision_config.num_hidden_layers))
        self.final_layer_norm = nn.LayerNorm(hidden)
        self.proj_out = nn.Linear(hidden * NUM_SELFIES if mode == "trained" else hidden, proj_dim)
        self.uncond_vector = nn.Parameter(torch.zeros(1, 1, proj_dim))

    @property
    def num_tokens(self) -> int:
        return 1 if self.mode == "trained" else NUM_SELFIES

    def selfie_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """F(I) for every selfie: [B, 4, 3, H, W] -> [B, 4, hidden]."""
        if pixel_values.ndim != 5 or pixel_values.shape[1] != NUM_SELFIES:
            raise ValueError(f"expected pixel values [B, {NUM_SELFIES}, 3, H, W], got {tuple(pixel_values.shape)}")
        b = pixel_values.shape[0]
        pooled = self.model(pixel_values=pixel_values.flatten(0, 1)).pooler_output
        features = self.final_layer_norm(self.mapper(pooled[:, None]))
        return features.reshape(b, NUM_SELFIES, -1)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Trained mode: concatenated features through the fused projection -> [B, 1, D]."""
        self._require_mode("trained")
        return self.proj_out(self.selfie_features(pixel_values).flatten(1))[:, None]

    def encode_tokens(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Training-free mode: each selfie through the stock projection -> [B, 4, D]."""
        self._require_mode("four_tokens")
        return self.proj_out(self.selfie_features(pixel_values))

    def embed(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.forward(pixel_values) if self.mode == "trained" else self.encode_tokens(pixel_values)

    def uncond_tokens(self, batch: int) -> torch.Tensor:
        """Paint-by-Example's unconditional embedding, one per token slot: [batch, T, D]."""
        return self.uncond_vector.expand(batch, self.num_tokens, -1)

    def _require_mode(self, mode: str) -> None:
        if self.mode != mode:
            raise ValueError(f"this encoder's projection is the {self.mode!r} one; use embed() "
                             f"(or {'forward' if self.mode == 'trained' else 'encode_tokens'}) instead")



def to_official_keys(state: dict) -> dict:
    """``model.*`` CLIP keys (transformers 5) -> ``model.vision_model.*`` (as released)."""
    return {(OFFICIAL_CLIP_PREFIX + k[len("model."):] if k.startswith("model.") and
             not k.startswith(OFFICIAL_CLIP_PREFIX) else k): v for k, v in state.items()}


def module_state_dict(state: dict, module: nn.Module) -> dict:
    """Checkpoint keys (either CLIP naming) -> the names this module uses."""
    official = to_official_keys(state)
    if any(k.startswith(OFFICIAL_CLIP_PREFIX) for k in module.state_dict()):
        return official
    return {("model." + k[len(OFFICIAL_CLIP_PREFIX):] if k.startswith(OFFICIAL_CLIP_PREFIX) else k): v
            for k, v in official.items()}


def official_state_dict(encoder: nn.Module) -> dict:
    """The encoder's weights under the released key names (for writing test folders)."""
    return {k: v.contiguous() for k, v in to_official_keys(encoder.state_dict()).items()}
