"""Start a tokenizer from a real pretrained DINOv2: a local transformers folder
(``config.json`` + weights, e.g. a saved ``facebook/dinov2-large``) or a DINOv2 state dict
in the Hugging Face key layout (what core ComfyUI's ``clip_vision`` loader reads for DINOv2:
its ``comfy.image_encoders.dino2`` model uses the same key names). Adapter and decoder are
freshly initialised: run stage 1 next.

    python -m pipelines.aligntok.init --dinov2 FOLDER --out tok_stage0.safetensors [--latent-dim 32]
"""
import argparse
from pathlib import Path

from ..common import CheckpointFormatError, InputError
from .model import AlignTok, AlignTokConfig, save_tokenizer

_CONFIG_SKIP = {"architectures", "transformers_version", "_name_or_path", "torch_dtype", "dtype", "id2label",
                "label2id", "return_dict", "output_hidden_states", "output_attentions", "out_features",
                "out_indices", "stage_names", "_attn_implementation_autoset"}


def encoder_config_dict(dinov2_config) -> dict:
    """The JSON-safe Dinov2Config fields our AlignTokConfig.encoder stores."""
    data = dinov2_config.to_dict()
    return {k: v for k, v in data.items() if k not in _CONFIG_SKIP and not k.startswith("_")
            and isinstance(v, (int, float, str, bool, list, type(None)))}


def tokenizer_from_dinov2(folder, latent_dim: int = 32, **config_overrides) -> AlignTok:
    """AlignTok whose encoder is the pretrained DINOv2 in ``folder`` (local files only)."""
    from transformers import Dinov2Model

    folder = Path(folder)
    if not (folder / "config.json").is_file():
        raise InputError(f"{folder} is not a transformers DINOv2 folder (no config.json). Save one with "
                         "Dinov2Model.save_pretrained(folder) on a machine that has the weights.")
    encoder = Dinov2Model.from_pretrained(str(folder), local_files_only=True)
    if encoder.config.model_type != "dinov2":
        raise InputError(f"{folder} holds a '{encoder.config.model_type}' model, not DINOv2.")
    config = AlignTokConfig(encoder=encoder_config_dict(encoder.config), latent_dim=latent_dim, **config_overrides)
    model = AlignTok(config)
    model.encoder.load_state_dict(encoder.state_dict())
    return model


def load_dinov2_state(model: AlignTok, state_dict, source: str = "state dict") -> AlignTok:
    """Copy DINOv2 weights in the HF key layout (optionally under a prefix such as
    ``vision_model.`` / ``encoder.``) into ``model.encoder``; sizes must match its config."""
    own = model.encoder.state_dict()
    anchor = "embeddings.patch_embeddings.projection.weight"
    prefixes = [k[:-len(anchor)] for k in state_dict if k.endswith(anchor)]
    if not prefixes:
        raise CheckpointFormatError(source, "No DINOv2 weights found (no '...embeddings.patch_embeddings."
                                            "projection.weight' key)")
    prefix = prefixes[0]
    picked = {k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix) and k[len(prefix):] in own}
    missing = sorted(set(own) - set(picked) - {"embeddings.mask_token"})
    if missing:
        raise CheckpointFormatError(source, f"DINOv2 weights lack {len(missing)} keys the encoder needs "
                                            f"(first: {missing[:3]})")
    for k, v in picked.items():
        if v.shape != own[k].shape:
            raise CheckpointFormatError(source, f"'{k}' is {tuple(v.shape)} but this tokenizer's encoder needs "
                                                f"{tuple(own[k].shape)}: a different DINOv2 size")
    model.encoder.load_state_dict(picked, strict=False)
    return model


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dinov2", required=True, help="local transformers DINOv2 folder")
    parser.add_argument("--out", required=True, help="tokenizer file to write (.safetensors)")
    parser.add_argument("--latent-dim", type=int, default=32, help="latent channels d (32 default, 64 option)")
    args = parser.parse_args(argv)
    save_tokenizer(tokenizer_from_dinov2(args.dinov2, args.latent_dim), args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
