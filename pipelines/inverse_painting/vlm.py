"""Text instruction generator backed by a vision-language model (thesis 6.2.2, 6.5.2).

The thesis fine-tunes LLaVA 1.5 as g_text: it sees the target and the current canvas
concatenated horizontally (eq. 6.2, ``[I_T, I_{t-1}]``) together with a fixed question prompt
and answers with a short instruction ("sky", "grass", "details"). This module runs any
LLaVA-style model that ``transformers`` loads with ``AutoProcessor`` +
``AutoModelForImageTextToText`` from a local folder, and the official fine-tuned text
generator ``TP_llava`` (published with the renderer) in the LLaVA repository's own format,
converted at load time (``llava_repo.py``). A stock LLaVA 1.5 gives the "pretrained LLaVA"
behaviour of Sec. 6.4.

``transformers`` is imported inside the functions only.
"""
from __future__ import annotations

import os
from typing import List

import numpy as np
import torch
from PIL import Image

from ..common import CheckpointFormatError, InputError
from ..common.hf_compat import from_pretrained_dtype

# Thesis 6.5.2, verbatim ("question prompt p" of the text instruction generator).
QUESTION_PROMPT = (
    "There are two images side by side. The left image is an intermediate stage in a painting process "
    "of the right image. Please tell me what content should be painted next? "
    "The answer should be less than 2 words."
)
# Used when the processor has no chat template: the LLaVA 1.5 conversation format.
LLAVA15_TEMPLATE = "USER: <image>\n{question} ASSISTANT:"
FALLBACK_INSTRUCTION = "painting"
MAX_NEW_TOKENS = 8
PROCESSOR_FILES = ("preprocessor_config.json", "processor_config.json", "tokenizer.json",
                   "tokenizer_config.json", "tokenizer.model")

_EDGE_PUNCTUATION = " \t\r\n.,;:!?\"'`()[]{}*-_"


def side_by_side(target: torch.Tensor, canvas: torch.Tensor) -> torch.Tensor:
    """``[1,3,H,2W]``: the target on the left, the current canvas on the right (eq. 6.2).

    Note: eq. 6.2 orders the pair as [I_T, I_{t-1}] while the wording of the question prompt
    calls the left image the intermediate stage; we follow the equation (the layout the thesis
    states for g_text) and keep the prompt verbatim.
    """
    if target.ndim != 4 or canvas.ndim != 4 or target.shape[1] != 3 or canvas.shape[1] != 3:
        raise InputError(f"Expected RGB images [B,3,H,W], got target {tuple(target.shape)} "
                         f"and canvas {tuple(canvas.shape)}.")
    if target.shape[2:] != canvas.shape[2:]:
        raise InputError(f"The canvas ({canvas.shape[3]}x{canvas.shape[2]}) must have the target's size "
                         f"({target.shape[3]}x{target.shape[2]}).")
    return torch.cat([target[:1], canvas[:1].to(target)], dim=3)


def to_pil(image: torch.Tensor) -> Image.Image:
    """``[1,3,H,W]`` 0..1 -> RGB PIL image."""
    arr = (image[0].detach().float().clamp(0, 1).permute(1, 2, 0).cpu().numpy() * 255.0).round()
    return Image.fromarray(arr.astype(np.uint8))


def clean_answer(answer: str, max_words: int = 2) -> tuple[str, str]:
    """Return ``(instruction, note)``: the answer's first line, lower case, without edge
    punctuation, at most ``max_words`` words. ``note`` is "" when nothing had to be changed
    beyond trimming, else says what was done (empty answer -> "painting", long -> truncated)."""
    first_line = answer.strip().splitlines()[0] if answer.strip() else ""
    words = [w.strip(_EDGE_PUNCTUATION) for w in first_line.split()]
    words = [w.lower() for w in words if w]
    if not words:
        return FALLBACK_INSTRUCTION, f"the model gave no usable answer ({answer!r}); used '{FALLBACK_INSTRUCTION}'"
    if len(words) > max_words:
        kept = " ".join(words[:max_words])
        return kept, f"the model's answer {first_line.strip()!r} was cut to {max_words} word(s): '{kept}'"
    return " ".join(words), ""


def check_vlm_folder(folder: str) -> None:
    """Raise ``CheckpointFormatError`` unless ``folder`` looks like a transformers VLM folder."""
    config = os.path.join(str(folder), "config.json")
    expected = ["config.json", "model weights (*.safetensors)",
                "processor files (preprocessor_config.json, tokenizer.json / tokenizer_config.json)"]
    hint = ("A vision-language model folder as saved by transformers (save_pretrained), e.g. "
            "llava-hf/llava-1.5-7b-hf, is expected.")
    if not os.path.isdir(str(folder)):
        raise CheckpointFormatError(config, "VLM folder not found", expected, hint)
    if not os.path.isfile(config):
        raise CheckpointFormatError(config, "VLM folder has no config.json", expected, hint)
    if not any(os.path.isfile(os.path.join(str(folder), f)) for f in PROCESSOR_FILES):
        raise CheckpointFormatError(config, "VLM folder has no processor/tokenizer files", expected, hint)


def load_vlm(folder: str, dtype: torch.dtype = torch.float32, device="cpu"):
    """``(processor, model)`` from a transformers folder (never downloads)."""
    check_vlm_folder(folder)
    from transformers import AutoModelForImageTextToText, AutoProcessor

    try:
        processor = AutoProcessor.from_pretrained(folder, local_files_only=True)
        model = AutoModelForImageTextToText.from_pretrained(folder, local_files_only=True, **from_pretrained_dtype(dtype))
    except (OSError, ValueError, KeyError) as exc:
        raise CheckpointFormatError(os.path.join(str(folder), "config.json"),
                                    f"Could not load a vision-language model ({exc})",
                                    hint="Expected a transformers image-text-to-text model (e.g. LLaVA 1.5).") from exc
    return processor, model.to(device).eval()


def build_prompt(processor, question: str = QUESTION_PROMPT) -> str:
    """The chat-formatted prompt with one image placeholder."""
    if getattr(processor, "chat_template", None):
        conversation = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}]
        return processor.apply_chat_template(conversation, add_generation_prompt=True, tokenize=False)
    return LLAVA15_TEMPLATE.format(question=question)


class VLMInstructions:
    """``InstructionGenerator`` asking a LLaVA-style model what to paint next (greedy decoding)."""

    def __init__(self, processor, model, max_words: int = 2, max_new_tokens: int = MAX_NEW_TOKENS,
                 question: str = QUESTION_PROMPT, name: str = "", template: str = None, stop: str = None,
                 pad_colour: tuple = None):
        """``template``: a prompt with ``{question}`` (else the processor's chat template / LLaVA 1.5);
        ``stop``: the answer ends there; ``pad_colour``: pad the image to a square first (LLaVA's 'pad')."""
        self.processor = processor
        self.template = template
        self.stop = stop
        self.pad_colour = pad_colour
        self.model = model
        self.max_words = max(1, int(max_words))
        self.max_new_tokens = int(max_new_tokens)
        self.question = question
        self.name = name or f"vision-language model ({type(model).__name__})"
        self.notes: List[str] = []
        self.answers: List[str] = []  # raw model answers, one per call

    def torch_modules(self) -> list:
        return [self.model]

    @torch.no_grad()
    def ask(self, image: Image.Image) -> str:
        """The model's raw answer to the question about ``image``."""
        prompt = self.template.format(question=self.question) if self.template else build_prompt(self.processor,
                                                                                                 self.question)
        if self.pad_colour is not None:
            from .llava_repo import expand_to_square

            image = expand_to_square(image, self.pad_colour)
        inputs = self.processor(images=image, text=prompt, return_tensors="pt")
        device = next(self.model.parameters()).device
        inputs = {k: (v.to(device) if torch.is_tensor(v) else v) for k, v in inputs.items()}
        out = self.model.generate(**inputs, max_new_tokens=self.max_new_tokens, do_sample=False)
        new_tokens = out[:, inputs["input_ids"].shape[1]:]
        answer = self.processor.batch_decode(new_tokens, skip_special_tokens=True)[0]
        return answer.split(self.stop)[0] if self.stop else answer

    def next(self, canvas: torch.Tensor, target: torch.Tensor, step: int) -> str:
        answer = self.ask(to_pil(side_by_side(target, canvas)))
        self.answers.append(answer)
        instruction, note = clean_answer(answer, self.max_words)
        if note:
            self.notes.append(f"update {step}: {note}")
        return instruction


def load_vlm_instructions(folder: str, max_words: int = 2, dtype: torch.dtype = torch.float32,
                          device="cpu") -> VLMInstructions:
    """A transformers VLM folder, or a LLaVA-repository one (``model_type: llava_llama``, e.g.
    the official TP_llava), converted in memory."""
    from .llava_repo import is_llava_repo_folder, load_llava_repo

    label = os.path.basename(os.path.normpath(str(folder)))
    if is_llava_repo_folder(folder):
        check_vlm_folder(folder)
        processor, model, template, stop, pad = load_llava_repo(folder, dtype, device)
        return VLMInstructions(processor, model, max_words=max_words, template=template, stop=stop, pad_colour=pad,
                               name=f"LLaVA-repository model ({label}, converted to transformers)")
    processor, model = load_vlm(folder, dtype, device)
    return VLMInstructions(processor, model, max_words=max_words, name=f"vision-language model ({label})")
