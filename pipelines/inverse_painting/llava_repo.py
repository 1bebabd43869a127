"""LLaVA checkpoints in the LLaVA repository's own format (haotian-liu/LLaVA, ``model_type:
llava_llama``), such as Inverse Painting's official text generator ``TP_llava`` (LLaVA-1.5-7B
with its LoRA merged), loaded into transformers' ``LlavaForConditionalGeneration`` by
converting the config and the weight names in memory (nothing is written).

Such a folder holds:
  config.json   the Llama fields + ``mm_vision_tower`` (a CLIP name, e.g.
                openai/clip-vit-large-patch14-336), ``mm_projector_type`` (mlp2x_gelu),
                ``mm_hidden_size``, ``mm_vision_select_layer`` (-2), ``mm_vision_select_feature``
                (patch), ``image_aspect_ratio`` (pad), ``mm_use_im_start_end`` / ``mm_use_im_patch_token``
  weights       ``model.embed_tokens`` / ``model.layers.*`` / ``model.norm`` / ``lm_head`` (the Llama),
                ``model.mm_projector.{0,2}.*`` (Linear - GELU - Linear) and, only when the tower was
                trained too, ``model.vision_tower.vision_tower.vision_model.*``
  tokenizer     the Llama tokenizer files (no ``<image>`` token: the repo splices image features
                in at a sentinel id, where transformers expects a real token)
The CLIP tower is not stored: the repo loads it by the name in ``mm_vision_tower``. Here that
name must be a local transformers CLIP folder, beside or inside the model folder (e.g.
models/LLM/openai/clip-vit-large-patch14-336 or models/LLM/clip-vit-large-patch14-336).
"""
from __future__ import annotations

import glob
import json
import os

import torch

from ..common import CheckpointFormatError
from ..common.checkpoints import load_state_dict

MODEL_TYPE = "llava_llama"
IMAGE_TOKEN = "<image>"
PROJECTOR = {"0.weight": "linear_1.weight", "0.bias": "linear_1.bias",
             "2.weight": "linear_2.weight", "2.bias": "linear_2.bias"}  # mlp2x_gelu -> transformers' projector
TOWER_PREFIX = "model.vision_tower.vision_tower."
IGNORED_BUFFERS = ("rotary_emb.inv_freq", "position_ids")  # recomputed buffers some savers keep
# The conversation the repo builds at run time (llava/conversation.py); its eval code picks
# llava_v1 for model names containing "v1" and llava_v0 otherwise, so the official demo asks
# TP_llava in the v0 format.
SYSTEM = ("A chat between a curious human and an artificial intelligence assistant. "
          "The assistant gives helpful, detailed, and polite answers to the human's questions.")
TEMPLATES = {"llava_v0": (SYSTEM + "###Human: " + IMAGE_TOKEN + "\n{question}###Assistant:", "###"),
             "llava_v1": (SYSTEM + " USER: " + IMAGE_TOKEN + "\n{question} ASSISTANT:", "</s>")}


def read_config(folder) -> dict | None:
    path = os.path.join(str(folder), "config.json")
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def is_llava_repo_folder(folder) -> bool:
    config = read_config(folder)
    return isinstance(config, dict) and config.get("model_type") == MODEL_TYPE


def conversation_for(folder) -> tuple:
    """(prompt template with ``{question}``, stop string), by the repo's model-name rule."""
    name = os.path.basename(os.path.normpath(str(folder))).lower()
    return TEMPLATES["llava_v1" if "v1" in name else "llava_v0"]


def read_weights(folder) -> dict:
    """All weight shards of the folder, safetensors preferred, pickles only weights_only."""
    folder = str(folder)
    shards = sorted(glob.glob(os.path.join(folder, "*.safetensors"))) or sorted(
        glob.glob(os.path.join(folder, "pytorch_model*.bin")))
    if not shards:
        raise CheckpointFormatError(os.path.join(folder, "config.json"), "No weight files beside this LLaVA config",
                                    expected=["model-*.safetensors or pytorch_model-*.bin"])
    state = {}
    for shard in shards:
        state.update(load_state_dict(shard))
    return {k: v for k, v in state.items() if not k.endswith(IGNORED_BUFFERS)}


def find_vision_tower(folder, name: str) -> str:
    """The local CLIP folder ``mm_vision_tower`` names (see the module doc for where it may be)."""
    folder = os.path.abspath(str(folder))
    parent = os.path.dirname(folder)
    base = os.path.basename(os.path.normpath(name))
    candidates = [name, os.path.join(folder, name), os.path.join(parent, name), os.path.join(folder, base),
                  os.path.join(parent, base), os.path.join(folder, "vision_tower")]
    for path in candidates:
        if os.path.isfile(os.path.join(path, "config.json")):
            return path
    raise CheckpointFormatError(
        os.path.join(folder, "config.json"), f"The CLIP vision tower '{name}' this LLaVA model uses is not here",
        expected=[os.path.join(parent, name), os.path.join(parent, base)],
        hint=f"The LLaVA repository downloads it by name; save that model (transformers CLIP folder with "
             f"config.json, weights and preprocessor_config.json) as '{os.path.join(parent, name)}'.")


def hf_config(repo: dict, vision_config, vocab_size: int, image_token_id: int, path: str = "config.json"):
    """transformers' LlavaConfig for a repo config (its Llama fields) and the tower's config."""
    from transformers import LlamaConfig, LlavaConfig

    if repo.get("mm_projector_type", "linear") != "mlp2x_gelu":
        raise CheckpointFormatError(path, f"mm_projector_type '{repo.get('mm_projector_type', 'linear')}' "
                                                   "has no transformers equivalent (only mlp2x_gelu, LLaVA-1.5's)")
    if repo.get("mm_vision_select_feature", "patch") != "patch" or repo.get("mm_use_im_start_end"):
        raise CheckpointFormatError(path, "only LLaVA-1.5 image features (mm_vision_select_feature 'patch', "
                                                   "no image start/end tokens) are supported")
    if int(repo["mm_hidden_size"]) != vision_config.hidden_size:
        raise CheckpointFormatError(path, f"mm_hidden_size {repo['mm_hidden_size']} differs from the CLIP "
                                                   f"tower's hidden_size {vision_config.hidden_size}")
    llama_fields = {k: v for k, v in repo.items() if not k.startswith("mm_") and k not in (
        "model_type", "architectures", "_name_or_path", "transformers_version", "image_aspect_ratio",
        "tokenizer_model_max_length", "tokenizer_padding_side", "tune_mm_mlp_adapter", "freeze_mm_mlp_adapter",
        "use_mm_proj", "image_grid_pinpoints", "unfreeze_mm_vision_tower", "torch_dtype", "dtype")}  # dtype: the caller's
    text = LlamaConfig(**{**llama_fields, "vocab_size": vocab_size})
    return LlavaConfig(vision_config=vision_config, text_config=text, image_token_index=image_token_id,
                       vision_feature_layer=int(repo.get("mm_vision_select_layer", -2)),
                       vision_feature_select_strategy="default", projector_hidden_act="gelu")


def _grow_rows(weight: torch.Tensor, rows: int) -> torch.Tensor:
    """Append rows equal to the mean row: the image token's embedding is never read (image
    features replace it) and a mean output row never wins greedy decoding."""
    extra = rows - weight.shape[0]
    return torch.cat([weight, weight.float().mean(0, keepdim=True).to(weight.dtype).expand(extra, -1)]) if extra else weight


def split_weights(state: dict, vocab_size: int) -> dict:
    """Repo key names -> {part: state dict in transformers' names} for the decoder, the
    output layer, the projector and (when stored) the vision tower. Every key must be used."""
    parts = {"decoder": {}, "lm_head": {}, "projector": {}, "tower": {}}
    unused = []
    for key, value in state.items():
        if key.startswith(TOWER_PREFIX):
            parts["tower"][key[len(TOWER_PREFIX):]] = value
        elif key.startswith("model.mm_projector."):
            sub = key[len("model.mm_projector."):]
            if sub in PROJECTOR:
                parts["projector"][PROJECTOR[sub]] = value
            else:
                unused.append(key)
        elif key == "lm_head.weight":
            parts["lm_head"]["weight"] = _grow_rows(value, vocab_size)
        elif key.startswith("model."):
            sub = key[len("model."):]
            parts["decoder"][sub] = _grow_rows(value, vocab_size) if sub == "embed_tokens.weight" else value
        else:
            unused.append(key)
    if unused:
        raise CheckpointFormatError("LLaVA weights", f"{len(unused)} keys fit no part of LLaVA-1.5 (e.g. {unused[0]})")
    return parts


def _load_strict(module, state: dict, what: str) -> None:
    own = module.state_dict()
    missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    if missing or unexpected:
        raise CheckpointFormatError(what, f"{len(missing)} missing (e.g. {missing[:1]}), {len(unexpected)} unexpected "
                                          f"(e.g. {unexpected[:1]}) keys after conversion")
    module.load_state_dict(state, strict=True)


def tower_state(tower, state: dict) -> dict:
    """CLIP vision weights named as ``tower`` names them: a full CLIP checkpoint (as
    openai/clip-vit-large-patch14-336) keeps them under ``vision_model.`` beside the text model,
    and transformers 5 drops that prefix inside CLIPVisionModel."""
    vision = {k[len("vision_model."):]: v for k, v in state.items() if k.startswith("vision_model.")} or state
    if all(k.startswith("vision_model.") for k in tower.state_dict()):
        vision = {f"vision_model.{k}": v for k, v in vision.items()}
    return vision


def _part(model, name: str):
    """transformers >= 4.52 keeps the parts under ``model.model``, older versions on the model."""
    inner = getattr(model, "model", None)
    return getattr(inner, name, None) if inner is not None and hasattr(inner, name) else getattr(model, name)


def load_llava_repo(folder, dtype: torch.dtype = torch.float32, device="cpu") -> tuple:
    """``(processor, model, prompt template, stop string, pad colour)`` for a LLaVA-repo folder."""
    from transformers import (AutoTokenizer, CLIPImageProcessor, CLIPVisionConfig, LlavaForConditionalGeneration,
                              LlavaProcessor)

    folder = str(folder)
    repo = read_config(folder)
    tower_dir = find_vision_tower(folder, repo.get("mm_vision_tower", ""))
    vision_config = CLIPVisionConfig.from_pretrained(tower_dir, local_files_only=True)
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    tokenizer.add_tokens([IMAGE_TOKEN], special_tokens=True)
    image_token_id = tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
    vocab_size = max(len(tokenizer), int(repo["vocab_size"]))
    parts = split_weights(read_weights(folder), vocab_size)
    tower_source = parts["tower"] or read_weights(tower_dir)  # stored only when the repo trained the tower
    config = hf_config(repo, vision_config, vocab_size, image_token_id, os.path.join(folder, "config.json"))
    model = LlavaForConditionalGeneration(config)
    _load_strict(model.get_decoder(), parts["decoder"], f"{folder} (language model)")
    _load_strict(model.get_output_embeddings(), parts["lm_head"], f"{folder} (lm_head)")
    _load_strict(_part(model, "multi_modal_projector"), parts["projector"], f"{folder} (mm_projector)")
    tower = _part(model, "vision_tower")
    _load_strict(tower, tower_state(tower, tower_source), f"{tower_dir} (CLIP vision tower)")
    image_processor = CLIPImageProcessor.from_pretrained(tower_dir, local_files_only=True)
    processor = LlavaProcessor(image_processor=image_processor, tokenizer=tokenizer,
                               patch_size=vision_config.patch_size, vision_feature_select_strategy="default",
                               image_token=IMAGE_TOKEN, num_additional_image_tokens=1)
    # int() truncates, as the repo's process_images does
    pad = tuple(int(m * 255) for m in image_processor.image_mean) \
        if repo.get("image_aspect_ratio") == "pad" else None
    template, stop = conversation_for(folder)
    return processor, model.to(device=device, dtype=dtype).eval(), template, stop, pad


def expand_to_square(image, colour):
    """The repo's 'pad' aspect mode: the image centred on a square of ``colour``."""
    from PIL import Image

    side = max(image.size)
    square = Image.new("RGB", (side, side), colour)
    square.paste(image, ((side - image.width) // 2, (side - image.height) // 2))
    return square
