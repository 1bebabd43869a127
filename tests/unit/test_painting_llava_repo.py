"""The official Inverse Painting text generator (TP_llava) is a LLaVA-repository checkpoint
(``model_type: llava_llama``). A tiny model saved in that layout (sharded weights with the
repo's key names, its config fields, tokenizer files; the CLIP tower as a separate folder
named by ``mm_vision_tower``) loads strictly into transformers' LLaVA classes, computes what
the original parts compute, and generates."""
import json

import pytest
import torch

from pipelines.common import CheckpointFormatError
from pipelines.inverse_painting.vlm import load_vlm_instructions

WORDS = ["<unk>", "<s>", "</s>", "sky", "grass", "details", "trees", "water", "Human:", "Assistant:"]
TOWER = "openai/clip-vit-large-patch14-336"


def llama_config():
    from transformers import LlamaConfig

    return LlamaConfig(vocab_size=len(WORDS), hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                       num_attention_heads=2, num_key_value_heads=2, bos_token_id=1, eos_token_id=2, pad_token_id=0)


def vision_config():
    from transformers import CLIPVisionConfig

    return CLIPVisionConfig(hidden_size=12, intermediate_size=24, num_hidden_layers=3, num_attention_heads=2,
                            image_size=16, patch_size=8)


def save_tokenizer(folder):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    word_level = Tokenizer(models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="<unk>"))
    word_level.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    PreTrainedTokenizerFast(tokenizer_object=word_level, unk_token="<unk>", bos_token="<s>", eos_token="</s>",
                            pad_token="<unk>").save_pretrained(folder)


def build_official_layout(root, with_tower_dir=True):
    """models/LLM/TP_llava as the LLaVA repo saves it, + models/LLM/openai/clip-vit-large-patch14-336."""
    from safetensors.torch import save_file
    from transformers import CLIPImageProcessor, CLIPVisionModel, LlamaForCausalLM

    torch.manual_seed(0)
    llama, clip = LlamaForCausalLM(llama_config()).eval(), CLIPVisionModel(vision_config()).eval()
    projector = torch.nn.Sequential(torch.nn.Linear(12, 16), torch.nn.GELU(), torch.nn.Linear(16, 16))
    folder = root / "TP_llava"
    folder.mkdir(parents=True)
    state = dict(llama.state_dict())  # model.embed_tokens / model.layers.* / model.norm / lm_head
    state.update({f"model.mm_projector.{k}": v for k, v in projector.state_dict().items()})
    keys = sorted(state)
    shards = {"model-00001-of-00002.safetensors": keys[: len(keys) // 2],
              "model-00002-of-00002.safetensors": keys[len(keys) // 2:]}
    for name, names in shards.items():
        save_file({k: state[k].contiguous() for k in names}, folder / name, metadata={"format": "pt"})
    (folder / "model.safetensors.index.json").write_text(json.dumps(
        {"metadata": {}, "weight_map": {k: name for name, names in shards.items() for k in names}}))
    config = llama_config().to_dict()
    config.update(model_type="llava_llama", architectures=["LlavaLlamaForCausalLM"], mm_vision_tower=TOWER,
                  mm_hidden_size=12, mm_projector_type="mlp2x_gelu", mm_vision_select_layer=-2,
                  mm_vision_select_feature="patch", mm_patch_merge_type="flat", image_aspect_ratio="pad",
                  mm_use_im_start_end=False, mm_use_im_patch_token=False, tokenizer_padding_side="right",
                  tokenizer_model_max_length=2048, tune_mm_mlp_adapter=False, freeze_mm_mlp_adapter=False,
                  use_mm_proj=True, image_grid_pinpoints=None, torch_dtype="float16", transformers_version="4.31.0")
    (folder / "config.json").write_text(json.dumps(config))
    save_tokenizer(folder)
    if with_tower_dir:
        clip.save_pretrained(root / TOWER)
        CLIPImageProcessor(size={"shortest_edge": 16}, crop_size={"height": 16, "width": 16}).save_pretrained(
            root / TOWER)
    return folder, llama, clip, projector


@pytest.fixture(scope="module")
def official(tmp_path_factory):
    folder, llama, clip, projector = build_official_layout(tmp_path_factory.mktemp("LLM"))
    return folder, llama, clip, projector, load_vlm_instructions(str(folder), max_words=2)


def test_the_converted_model_computes_what_the_original_parts_compute(official):
    _, llama, clip, projector, generator = official
    model = generator.model
    ids = torch.tensor([[1, 3, 4, 5, 6]])
    with torch.no_grad():
        # the language model: the original vocabulary's logits are unchanged
        assert torch.allclose(model(input_ids=ids).logits[..., :len(WORDS)], llama(input_ids=ids).logits, atol=1e-5)
        # the image features: mlp2x_gelu over the patch tokens of CLIP's second-to-last layer
        pixels = torch.rand(1, 3, 16, 16)
        want = projector(clip(pixel_values=pixels, output_hidden_states=True).hidden_states[-2][:, 1:])
        got = model.get_image_features(pixel_values=pixels)
        got = got.pooler_output if hasattr(got, "pooler_output") else got
        got = torch.cat(list(got)) if isinstance(got, (list, tuple)) else got
        assert torch.allclose(got.reshape(want.shape), want, atol=1e-5)


def test_it_asks_in_the_repos_conversation_format_and_generates(official):
    folder, _, _, _, generator = official
    assert "TP_llava" in generator.name
    # the official demo's conversation for a model named TP_llava (LLaVA's llava_v0)
    assert generator.template == ("A chat between a curious human and an artificial intelligence assistant. The "
                                  "assistant gives helpful, detailed, and polite answers to the human's questions."
                                  "###Human: <image>\n{question}###Assistant:")
    assert generator.stop == "###"
    assert generator.pad_colour == (122, 116, 104)  # LLaVA's 'pad' mode: CLIP's mean colour
    target, canvas = torch.rand(1, 3, 16, 24), torch.ones(1, 3, 16, 24)
    first = generator.next(canvas, target, step=0)
    assert isinstance(first, str) and 1 <= len(first.split()) <= 2
    assert generator.next(canvas, target, step=1) == first  # greedy


def test_pad_mode_centres_the_image_on_a_square():
    from PIL import Image

    from pipelines.inverse_painting.llava_repo import expand_to_square

    square = expand_to_square(Image.new("RGB", (40, 16), (255, 255, 255)), (122, 116, 104))
    assert square.size == (40, 40)
    assert square.getpixel((0, 0)) == (122, 116, 104) and square.getpixel((20, 20)) == (255, 255, 255)
    assert square.getpixel((20, 11)) == (122, 116, 104) and square.getpixel((20, 12)) == (255, 255, 255)


def test_a_missing_clip_tower_is_named(tmp_path):
    folder, *_ = build_official_layout(tmp_path, with_tower_dir=False)
    with pytest.raises(CheckpointFormatError, match="clip-vit-large-patch14-336"):
        load_vlm_instructions(str(folder))


def test_keys_outside_llava_15_are_refused():
    from pipelines.inverse_painting.llava_repo import split_weights

    with pytest.raises(CheckpointFormatError, match="fit no part"):
        split_weights({"model.mm_projector.4.weight": torch.zeros(1)}, vocab_size=4)


def test_a_tower_trained_with_the_model_comes_from_its_shards(tmp_path):
    from safetensors.torch import save_file
    from transformers import CLIPVisionModel

    folder, _, clip, _ = build_official_layout(tmp_path)
    torch.manual_seed(1)
    trained = CLIPVisionModel(vision_config())
    weights = {f"vision_model.{k}" if not k.startswith("vision_model.") else k: v
               for k, v in trained.state_dict().items()}
    save_file({f"model.vision_tower.vision_tower.{k}": v.contiguous() for k, v in weights.items()},
              folder / "model-00003-of-00003.safetensors")
    tower = load_vlm_instructions(str(folder)).model.model.vision_tower
    got = tower.state_dict()
    key = next(k for k in got if k.endswith("patch_embedding.weight"))
    assert torch.equal(got[key], trained.state_dict()[key])
    assert not torch.equal(got[key], clip.state_dict()[key])
