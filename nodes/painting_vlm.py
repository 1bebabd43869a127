"""Inverse Painting: text instructions from a vision-language model (thesis 6.2.2 / 6.5.2,
LLaVA as g_text). The model folder is a transformers folder under ComfyUI's models/LLM;
nothing is loaded until the node runs."""
import os

import folder_paths
from comfy_api.latest import io

from ..pipelines.common import CheckpointFormatError
from ._runtime import load_placement, safe_join, stays_inside
from ._types import InstructionsType

CATEGORY = "Recompose/Inverse Painting"
LLM_FOLDER = "LLM"
NO_MODEL = "(put a VLM folder into models/LLM)"


def llm_roots() -> list[str]:
    """The folders ComfyUI uses for LLM / VLM models."""
    if LLM_FOLDER in getattr(folder_paths, "folder_names_and_paths", {}):
        return list(folder_paths.get_folder_paths(LLM_FOLDER))
    return [os.path.join(folder_paths.models_dir, LLM_FOLDER)]


def vlm_folders() -> list[str]:
    """Sub-folders (relative, '/'-separated) holding a config.json, not counting those inside another one."""
    found = set()
    for root in llm_roots():
        if not os.path.isdir(root):
            continue
        for here, dirs, files in os.walk(root, followlinks=True):
            dirs[:] = [d for d in dirs if stays_inside(root, os.path.join(here, d))]  # links out are refused
            if "config.json" in files and os.path.abspath(here) != os.path.abspath(root):
                found.add(os.path.relpath(here, root).replace(os.sep, "/"))
                dirs[:] = []  # a model's sub-folders (its vision tower, its projector) are parts, not models
    return sorted(found) or [NO_MODEL]


def resolve_vlm_folder(name: str) -> str:
    roots = llm_roots()
    if name != NO_MODEL:
        for root in roots:
            path = safe_join(root, name, "model", f"the models/LLM folder ({root})")
            if os.path.isdir(path):
                return path
    where = roots[0] if roots else LLM_FOLDER
    raise CheckpointFormatError(os.path.join(where, name if name != NO_MODEL else "<model folder>", "config.json"),
                                "VLM folder not found",
                                hint=f"Put a vision-language model folder (the official TP_llava, or a transformers "
                                     f"one such as llava-1.5-7b-hf) into '{where}' and refresh the page.")


class RecomposeVLMInstructions(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="RecomposeVLMInstructions",
            display_name="VLM Painting Instructions",
            category=CATEGORY,
            description="Text instructions from a vision-language model (LLaVA-style, thesis 6.2.2): it sees the "
                        "target and the current canvas side by side and is asked what to paint next (thesis "
                        "prompt, greedy decoding). Loads the official fine-tuned text generator TP_llava (published "
                        "with the renderer, LLaVA-repository format, model_type llava_llama; converted to "
                        "transformers' LLaVA at load time, with its CLIP tower from a folder named by its "
                        "mm_vision_tower, e.g. models/LLM/openai/clip-vit-large-patch14-336) or any transformers "
                        "LLaVA-style folder; a stock LLaVA 1.5 behaves like the thesis' 'pretrained LLaVA' baseline.",
            inputs=[
                io.Combo.Input("model", options=vlm_folders(),
                               tooltip="A vision-language model folder under models/LLM: the official TP_llava "
                                       "(LLaVA-repository layout) or a transformers folder (config.json, weights, "
                                       "processor files). Loaded when the node runs."),
                io.Int.Input("max_words", default=2, min=1, max=8,
                             tooltip="Longer answers are cut to this many words (the thesis asks for under 2)."),
            ],
            outputs=[InstructionsType.Output(display_name="instructions",
                                             tooltip="An instruction generator for 'Inverse Paint'.")],
        )

    @classmethod
    def execute(cls, model, max_words) -> io.NodeOutput:
        from ..pipelines.inverse_painting.vlm import load_vlm_instructions

        device, dtype = load_placement()
        folder = resolve_vlm_folder(model)
        return io.NodeOutput(load_vlm_instructions(folder, max_words, dtype=dtype, device=device))


NODES = [RecomposeVLMInstructions]
