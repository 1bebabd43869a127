"""The tokenizer: DINOv2 encoder (transformers) -> 2-layer MLP adapter (1024 -> d) ->
VA-VAE-style CNN decoder (diffusers' Decoder: ch 128, mult (1,1,2,2,4), 2+1 res blocks per
level, single-head self-attention at the 16x16 level: in the middle block and after each res
block of the lowest up level, as LDM's ``attn_resolutions=[16]``; 41.4M parameters at d=32,
the thesis' "~42M"). Stride 16: a 256x256 image is read by DINOv2/14 at 224x224 and
gives a 16x16xd latent; any size that is a multiple of 16 works the same way.

Saved as ONE safetensors file whose metadata holds the config and a format version. A
trained file also holds the GAN discriminator under ``discriminator.`` so that the next
stage goes on with it (thesis 7.5 keeps the GAN running through all stages); inference
never builds it.
"""
import json
import os
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from ..common import CheckpointFormatError, InputError

FORMAT_VERSION = 1
STRIDE = 16  # pixels per latent cell
DISCRIMINATOR_PREFIX = "discriminator."
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DINOV2_LARGE = {"hidden_size": 1024, "num_hidden_layers": 24, "num_attention_heads": 16, "patch_size": 14,
                "image_size": 518, "intermediate_size": 4096}


@dataclass
class AlignTokConfig:
    encoder: dict = field(default_factory=lambda: dict(DINOV2_LARGE))  # transformers Dinov2Config fields
    latent_dim: int = 32
    adapter_hidden: int = 1024
    decoder_channels: tuple = (128, 128, 256, 256, 512)  # ch 128 x mult (1, 1, 2, 2, 4)
    decoder_layers: int = 2
    norm_groups: int = 32
    decoder_attention: bool = True  # self-attention in the lowest (16x16 at 256^2) up level, as VA-VAE

    @property
    def patch_size(self) -> int:
        return int(self.encoder.get("patch_size", 14))

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> "AlignTokConfig":
        data = json.loads(text)
        data["decoder_channels"] = tuple(data["decoder_channels"])
        return cls(**data)


class AlignTok(nn.Module):
    def __init__(self, config: AlignTokConfig):
        super().__init__()
        from diffusers.models.autoencoders.vae import Decoder
        from transformers import Dinov2Config, Dinov2Model

        self.config = config
        self.encoder = Dinov2Model(Dinov2Config(**config.encoder))
        width = config.encoder["hidden_size"]
        self.adapter = nn.Sequential(nn.Linear(width, config.adapter_hidden), nn.GELU(),
                                     nn.Linear(config.adapter_hidden, config.latent_dim))
        if 2 ** (len(config.decoder_channels) - 1) != STRIDE:
            raise ValueError(f"The decoder must upsample x{STRIDE}: give {int(torch.log2(torch.tensor(STRIDE))) + 1} "
                             "channel levels.")
        self.decoder = Decoder(in_channels=config.latent_dim, out_channels=3,
                               up_block_types=(("AttnUpDecoderBlock2D",) if config.decoder_attention else
                                               ("UpDecoderBlock2D",)) + ("UpDecoderBlock2D",) * (len(config.decoder_channels) - 1),
                               block_out_channels=config.decoder_channels, layers_per_block=config.decoder_layers,
                               norm_num_groups=config.norm_groups)
        self.discriminator_state = {}  # plain tensors, not a submodule: model placement never moves them
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    @property
    def latent_dim(self) -> int:
        return self.config.latent_dim

    def encoder_features(self, images: torch.Tensor) -> torch.Tensor:
        """DINOv2 patch tokens as a grid [B, width, H/16, W/16] for images [B,3,H,W] in 0..1."""
        b, _, h, w = images.shape
        if h % STRIDE or w % STRIDE:
            raise InputError(f"AlignTok needs sides that are multiples of {STRIDE}; got {w}x{h}. Resize or crop "
                             f"the image (e.g. to {w // STRIDE * STRIDE}x{h // STRIDE * STRIDE}).")
        gh, gw = h // STRIDE, w // STRIDE
        p = self.config.patch_size
        x = F.interpolate(images, size=(gh * p, gw * p), mode="bicubic", align_corners=False, antialias=True)
        x = (x - self.mean) / self.std
        tokens = self.encoder(pixel_values=x).last_hidden_state[:, 1:]  # drop CLS
        return tokens.transpose(1, 2).reshape(b, -1, gh, gw)

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        feats = self.encoder_features(images)
        return self.adapter(feats.permute(0, 2, 3, 1)).permute(0, 3, 1, 2).contiguous()

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        if latents.ndim != 4 or latents.shape[1] != self.latent_dim:
            raise InputError(f"These latents have {latents.shape[1] if latents.ndim == 4 else '?'} channels but this "
                             f"AlignTok tokenizer decodes {self.latent_dim}-channel latents; encode with the same "
                             "tokenizer (or load the one that made them).")
        return ((self.decoder(latents) + 1) / 2).clamp(0, 1)

    def forward(self, images: torch.Tensor, return_latent: bool = False):
        """The reconstruction; with ``return_latent`` also the latent, (z, recon). Training
        calls this through the DDP wrapper so that gradients are all-reduced."""
        z = self.encode(images)
        recon = self.decode(z)
        return (z, recon) if return_latent else recon


def save_tokenizer(model: AlignTok, path) -> None:
    from safetensors.torch import save_file

    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    state.update({DISCRIMINATOR_PREFIX + k: v.detach().cpu().contiguous() for k, v in model.discriminator_state.items()})
    tmp = f"{path}.tmp"
    save_file(state, tmp, metadata={"format": "aligntok", "format_version": str(FORMAT_VERSION),
                                    "config": model.config.to_json()})
    os.replace(tmp, str(path))  # never leave a half-written tokenizer under the name the loader lists


def load_tokenizer(path, device="cpu") -> AlignTok:
    from safetensors import safe_open

    from ..common.checkpoints import load_into, load_state_dict, sub_dict, unreadable

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except Exception as exc:
        raise unreadable(path, exc) from exc
    if meta.get("format") != "aligntok":
        raise CheckpointFormatError(path, "Not an AlignTok tokenizer (no 'aligntok' format metadata)",
                                    hint="Expected a file written by pipelines.aligntok (save_tokenizer).")
    if meta.get("format_version") != str(FORMAT_VERSION):
        raise CheckpointFormatError(path, f"AlignTok format version {meta.get('format_version')} is not supported "
                                          f"(this pack reads version {FORMAT_VERSION})",
                                    hint="Re-export the tokenizer with this version of the pack.")
    model = AlignTok(AlignTokConfig.from_json(meta["config"]))
    state = load_state_dict(path)
    load_into(model, {k: v for k, v in state.items() if not k.startswith(DISCRIMINATOR_PREFIX)}, str(path),
              "AlignTok tokenizer")
    model.discriminator_state = sub_dict(state, DISCRIMINATOR_PREFIX)
    return model.to(device).eval()
