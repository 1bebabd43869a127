"""Total Selfie per-capture fine-tuning node (thesis 3.2.2 and 3.5.5)."""
import os

import torch
from comfy_api.latest import io

from ..pipelines.common.errors import InputError
from ..pipelines.common.images import image_to_bchw, require_same_size
from ._runtime import cancellable, load_models, model_files, progress, resolve_file, save_path
from ._types import SelfiePipeType

CATEGORY = "Recompose/Total Selfie"
FOLDER = "recompose_selfie"
SELFIE_INPUTS = ("face", "upper_body", "lower_body", "shoes")
# A composite differs from the background where the person is; below this it is noise.
COMPOSITE_THRESHOLD = 0.1


def person_masks(person: torch.Tensor, mask, background: torch.Tensor) -> torch.Tensor:
    """[P,H,W] person masks: the given MASK (batch 1 shared), else where a composite differs from the background."""
    if mask is not None:
        if mask.ndim == 2:
            mask = mask[None]
        require_same_size(person, mask, "The person image", "the person mask")
        if mask.shape[0] not in (1, person.shape[0]):
            raise InputError(f"The person mask has a batch of {mask.shape[0]}; give one mask per person image "
                             f"({person.shape[0]}) or one for all.")
        return mask.expand(person.shape[0], -1, -1).float()
    difference = (person[..., :3] - background[..., :3]).abs().amax(dim=-1)
    found = (difference > COMPOSITE_THRESHOLD).float()
    if not found.flatten(1).any(dim=1).all():
        raise InputError("No person_mask is connected and a person image equals the background, so the person "
                         "cannot be found; connect a person mask (e.g. from 'Person Mask + Pose (mediapipe)').")
    return found


class RecomposeSelfieFineTune(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="RecomposeSelfieFineTune",
            display_name="Total Selfie Fine-Tune (per capture)",
            category=CATEGORY,
            description="Fine-tunes the selfie-conditioned inpainting UNet on one capture (thesis 3.2.2/3.5.5): "
                        "each augmentation pastes one selfie, resized to its body part in a generated full-body "
                        "image, into the inpainting mask of the background; masked noise-prediction loss, UNet "
                        "only (or a LoRA). The result is saved into models/recompose/selfie ('Load Selfie "
                        "Fine-Tune' applies it later); for long runs or several GPUs use "
                        "'python -m pipelines.selfie_finetune.train' (accelerate).",
            inputs=[
                SelfiePipeType.Input("selfie_pipe", tooltip="From 'Load Selfie Inpainting Model': the pipeline to "
                                                        "fine-tune (it is copied, not changed)."),
                io.Image.Input("background", tooltip="The background photo I_b (first image of the batch)."),
                io.Image.Input("person", tooltip="Full-body person image(s) the size of the background: generated "
                                                 "full-body selfies without ControlNet (the thesis uses 20) or one "
                                                 "composite. Only where their body parts are is used; each "
                                                 "augmentation picks one at random."),
                io.Mask.Input("person_mask", optional=True,
                              tooltip="The person's mask in each person image. Without it, the person is where the "
                                      "image differs from the background (for composites)."),
                io.Mask.Input("inpaint_mask", optional=True,
                              tooltip="The inpainting mask M the selfies are pasted into (default: the person box "
                                      "x1.1, as 'Mask Box')."),
                *[io.Image.Input(name, tooltip=f"The {name.replace('_', ' ')} selfie (first image of the batch).")
                  for name in SELFIE_INPUTS],
                io.Int.Input("steps", default=400, min=1, max=100_000,
                             tooltip="Optimisation steps (thesis: 400)."),
                io.Float.Input("learning_rate", default=5e-6, min=1e-8, max=1e-2, step=1e-7,
                               tooltip="AdamW learning rate (thesis: 5e-6; LoRA usually wants ~1e-4)."),
                io.Int.Input("batch_size", default=4, min=1, max=64, tooltip="Augmentations per step (thesis: 4)."),
                io.Int.Input("augmentations", default=200, min=1, max=10_000,
                             tooltip="How many resize-and-paste augmentations to make (thesis: 200)."),
                io.Int.Input("seed", default=0, min=0, max=2**31 - 1,
                             tooltip="Seed of the augmentations, batches, noise and timesteps."),
                io.Int.Input("lora_rank", default=0, min=0, max=256,
                             tooltip="0 fine-tunes the whole UNet (as the thesis); above 0 trains a LoRA of that "
                                     "rank instead (needs the 'peft' package; a much smaller file)."),
                io.String.Input("save_as", default="selfie_finetune.safetensors",
                                tooltip="File name for the result in models/recompose/selfie (overwritten if it "
                                        "exists)."),
            ],
            outputs=[
                SelfiePipeType.Output(display_name="selfie_pipe",
                                  tooltip="A copy of the pipeline with the fine-tuned UNet."),
                io.String.Output(display_name="saved_path", tooltip="Full path of the saved fine-tune file."),
            ],
        )

    @classmethod
    def execute(cls, selfie_pipe, background, person, face, upper_body, lower_body, shoes, steps, learning_rate,
                batch_size, augmentations, seed, lora_rank, save_as, person_mask=None,
                inpaint_mask=None) -> io.NodeOutput:
        from ..pipelines.selfie_finetune.augment import AugmentedCapture
        from ..pipelines.selfie_finetune.train import finetune_pipeline
        from ..pipelines.selfie_inpaint.pipeline import SelfieInpaintPipeline

        if not isinstance(selfie_pipe, SelfieInpaintPipeline):
            raise InputError("'selfie_pipe' must come from 'Load Selfie Inpainting Model'.")
        if not save_as.endswith(".safetensors") or os.path.basename(save_as) != save_as:
            raise InputError("'save_as' must be a plain file name ending in .safetensors (it is saved in the "
                             "models/recompose/selfie folder).")
        out_path = save_path(FOLDER, save_as, "save_as")
        require_same_size(background, person, "The background", "the person image")
        masks = person_masks(person, person_mask, background[:1])
        if inpaint_mask is not None:
            inpaint_mask = (inpaint_mask if inpaint_mask.ndim == 3 else inpaint_mask[None])[0]
        capture = AugmentedCapture(image_to_bchw(background[:1])[0], masks,
                                   [image_to_bchw(s[:1])[0] for s in (face, upper_body, lower_body, shoes)],
                                   count=augmentations, seed=seed, inpaint_mask=inpaint_mask)
        load_models(selfie_pipe)
        with cancellable():
            tuned = finetune_pipeline(selfie_pipe, capture, out_path, steps=steps, lr=learning_rate,
                                      batch_size=batch_size, lora_rank=lora_rank, seed=seed, progress=progress(steps))
        return io.NodeOutput(tuned, out_path)


class RecomposeSelfieFineTuneLoader(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="RecomposeSelfieFineTuneLoader",
            display_name="Load Selfie Fine-Tune",
            category=CATEGORY,
            description="Applies a per-capture fine-tune (a full UNet or a LoRA saved by 'Total Selfie Fine-Tune' "
                        "or the fine-tune CLI) to a copy of the selfie inpainting pipeline.",
            inputs=[
                SelfiePipeType.Input("selfie_pipe", tooltip="From 'Load Selfie Inpainting Model' (not changed)."),
                io.Combo.Input("finetune", options=_finetune_files(),
                               tooltip="A fine-tune file in models/recompose/selfie."),
            ],
            outputs=[SelfiePipeType.Output(display_name="selfie_pipe",
                                           tooltip="A copy of the pipeline with the fine-tuned UNet.")],
        )

    @classmethod
    def execute(cls, selfie_pipe, finetune) -> io.NodeOutput:
        from ..pipelines.selfie_finetune import apply_finetuned_unet

        return io.NodeOutput(apply_finetuned_unet(selfie_pipe, resolve_file(FOLDER, finetune, "finetune")))


def _finetune_files() -> list:
    return [f for f in model_files(FOLDER) if f.endswith(".safetensors")] or ["(none found)"]


NODES = [RecomposeSelfieFineTune, RecomposeSelfieFineTuneLoader]
