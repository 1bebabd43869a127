"""VLM text instruction generator (thesis 6.2.2 / 6.5.2): answer cleaning, the side-by-side
input, folder errors, and an end-to-end run on a tiny random LLaVA built offline."""
import importlib

import pytest
import torch

from pipelines.common import CheckpointFormatError, InputError
from pipelines.inverse_painting.interfaces import InstructionGenerator
from pipelines.inverse_painting.vlm import (
    FALLBACK_INSTRUCTION,
    QUESTION_PROMPT,
    VLMInstructions,
    clean_answer,
    load_vlm,
    load_vlm_instructions,
    side_by_side,
)
from scripts.harness.inprocess import import_pack

TINY_WORDS = ["<unk>", "<s>", "</s>", "<pad>", "<image>", "USER:", "ASSISTANT:", "sky", "grass", "details"]


def build_tiny_llava(folder):
    """A random LLaVA (tiny CLIP vision tower + tiny Llama) and its processor, made offline."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import (
        CLIPImageProcessor,
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
        PreTrainedTokenizerFast,
    )

    word_level = Tokenizer(models.WordLevel({w: i for i, w in enumerate(TINY_WORDS)}, unk_token="<unk>"))
    word_level.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=word_level, unk_token="<unk>", bos_token="<s>",
                                        eos_token="</s>", pad_token="<pad>")
    tokenizer.add_tokens(["<image>"], special_tokens=True)
    image_processor = CLIPImageProcessor(size={"shortest_edge": 16}, crop_size={"height": 16, "width": 16})
    processor = LlavaProcessor(image_processor=image_processor, tokenizer=tokenizer, patch_size=8,
                               vision_feature_select_strategy="default", image_token="<image>",
                               num_additional_image_tokens=1)
    vision = CLIPVisionConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                              image_size=16, patch_size=8)
    text = LlamaConfig(vocab_size=len(TINY_WORDS), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                       num_attention_heads=2, num_key_value_heads=2, pad_token_id=3, bos_token_id=1,
                       eos_token_id=2)
    config = LlavaConfig(vision_config=vision, text_config=text, image_token_index=4, vision_feature_layer=-1)
    torch.manual_seed(0)
    LlavaForConditionalGeneration(config).eval().save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


@pytest.mark.parametrize("answer, expected, noted", [
    ("Sky.", "sky", False),
    ("  grass\n", "grass", False),
    ('"Details!"', "details", False),
    ("the blue sky with clouds", "the blue", True),
    ("", FALLBACK_INSTRUCTION, True),
    ("  ...  ", FALLBACK_INSTRUCTION, True),
    ("water\nbecause the left image", "water", False),
])
def test_answers_are_cleaned_to_at_most_max_words(answer, expected, noted):
    instruction, note = clean_answer(answer, max_words=2)
    assert instruction == expected
    assert bool(note) == noted


def test_long_answer_note_names_the_original_answer():
    instruction, note = clean_answer("tall green trees", max_words=1)
    assert instruction == "tall"
    assert "tall green trees" in note and "1 word" in note


def test_side_by_side_puts_target_left_and_canvas_right():
    target = torch.zeros(1, 3, 8, 12)
    canvas = torch.ones(1, 3, 8, 12)
    pair = side_by_side(target, canvas)
    assert pair.shape == (1, 3, 8, 24)
    assert torch.equal(pair[..., :12], target) and torch.equal(pair[..., 12:], canvas)


def test_side_by_side_rejects_different_sizes():
    with pytest.raises(InputError, match="target's size"):
        side_by_side(torch.zeros(1, 3, 8, 12), torch.zeros(1, 3, 8, 8))


def test_prompt_is_the_thesis_question():
    assert QUESTION_PROMPT.startswith("There are two images side by side.")
    assert QUESTION_PROMPT.endswith("The answer should be less than 2 words.")


def test_missing_folder_error_names_folder_and_expected_files(tmp_path):
    missing = tmp_path / "no_such_vlm"
    with pytest.raises(CheckpointFormatError) as err:
        load_vlm(str(missing))
    message = str(err.value)
    assert str(missing) in message and "config.json" in message and "processor" in message


def test_folder_without_processor_files_is_rejected(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(CheckpointFormatError, match="processor/tokenizer"):
        load_vlm(str(tmp_path))


class _FixedAnswer(VLMInstructions):
    def __init__(self, answer):
        super().__init__(processor=None, model=None, max_words=2, name="fixed")
        self.answer = answer
        self.seen = []

    def ask(self, image):
        self.seen.append(image.size)
        return self.answer


def test_next_records_notes_for_empty_answers_and_sees_both_images():
    generator = _FixedAnswer("")
    assert isinstance(generator, InstructionGenerator)
    assert generator.next(torch.rand(1, 3, 16, 20), torch.rand(1, 3, 16, 20), step=3) == FALLBACK_INSTRUCTION
    assert generator.seen == [(40, 16)]
    assert len(generator.notes) == 1 and generator.notes[0].startswith("update 3:")


def test_tiny_llava_end_to_end(tmp_path):
    folder = build_tiny_llava(str(tmp_path / "tiny-llava"))
    generator = load_vlm_instructions(folder, max_words=2)
    target, canvas = torch.rand(1, 3, 32, 32), torch.ones(1, 3, 32, 32)
    first = generator.next(canvas, target, step=0)
    second = generator.next(canvas, target, step=1)
    assert isinstance(first, str) and 1 <= len(first.split()) <= 2
    assert first == second  # greedy decoding is deterministic
    assert len(generator.answers) == 2
    assert "tiny-llava" in generator.name


class _Processor:
    def __init__(self, chat_template=None):
        self.chat_template = chat_template
        self.conversation = None

    def apply_chat_template(self, conversation, add_generation_prompt, tokenize):
        self.conversation = conversation
        return "templated"


def test_prompt_uses_chat_template_when_present_else_llava15_format():
    from pipelines.inverse_painting.vlm import build_prompt

    assert build_prompt(_Processor()) == f"USER: <image>\n{QUESTION_PROMPT} ASSISTANT:"
    with_template = _Processor(chat_template="...")
    assert build_prompt(with_template) == "templated"
    content = with_template.conversation[0]["content"]
    assert content[0] == {"type": "image"} and content[1]["text"] == QUESTION_PROMPT


def test_vlm_list_holds_model_folders_not_their_parts(tmp_path, monkeypatch):
    import_pack()
    node = importlib.import_module("recompose_pack.nodes.painting_vlm")
    for folder in ("TP_llava", "TP_llava/clip-vit-large-patch14-336", "family/llava-1.5-7b-hf"):
        (tmp_path / folder).mkdir(parents=True)
        (tmp_path / folder / "config.json").write_text("{}")
    (tmp_path / "notes").mkdir()
    monkeypatch.setattr(node, "llm_roots", lambda: [str(tmp_path)])
    assert node.vlm_folders() == ["TP_llava", "family/llava-1.5-7b-hf"]
