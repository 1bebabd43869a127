"""Fit Check video: multi-reference attention as a MODEL patch, and the reference-frame
strategy (front and back references as frames 1-2, dropped after decoding)."""
import torch
from comfy_api.latest import io

from ..pipelines.common.errors import InputError
from ..pipelines.common.images import require_same_size

CATEGORY = "Recompose/Fit Check"
REFERENCE_COUNT = 2


class RecomposeMultiReferenceAttention(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="RecomposeMultiReferenceAttention",
            display_name="Multi-Reference Attention",
            category=CATEGORY,
            description="Patches a clone of the model so every frame's spatial self-attention also attends to the "
                        "tokens of the reference frames (front and back, frames 1 and 2; thesis Fig. 4.4). For "
                        "image models that treat the batch as frames (SD1.5/SDXL with AnimateDiff-style setups). "
                        "The input model is left untouched.",
            inputs=[
                io.Model.Input("model", tooltip="The model to patch (a clone is patched)."),
                io.Int.Input("frames_per_video", default=0, min=0, max=4096,
                             tooltip="Frames per video in the batch (0 = the whole batch is one video)."),
                io.Int.Input("front_frame", default=1, min=1, max=4096,
                             tooltip="1-based frame number of the front reference (frame 1 after 'Prepend References')."),
                io.Int.Input("back_frame", default=2, min=1, max=4096,
                             tooltip="1-based frame number of the back reference (frame 2 after 'Prepend References')."),
                io.Float.Input("strength", default=1.0, min=0.0, max=4.0, step=0.05,
                               tooltip="Weight of the reference tokens in attention (1 = thesis, 0 = off)."),
                io.Float.Input("start_percent", default=0.0, min=0.0, max=1.0, step=0.01,
                               tooltip="Part of the sampling schedule where the patch starts (0 = first step)."),
                io.Float.Input("end_percent", default=1.0, min=0.0, max=1.0, step=0.01,
                               tooltip="Part of the sampling schedule where the patch ends (1 = last step)."),
            ],
            outputs=[io.Model.Output(tooltip="The patched clone.")],
        )

    @classmethod
    def execute(cls, model, frames_per_video, front_frame, back_frame, strength, start_percent,
                end_percent) -> io.NodeOutput:
        from comfy.ldm.modules.attention import optimized_attention

        from ..pipelines.multiref.comfy_patch import patch_model

        if front_frame == back_frame:
            raise InputError("front_frame and back_frame must be different frames.")
        if start_percent > end_percent:
            raise InputError(f"start_percent ({start_percent}) is after end_percent ({end_percent}).")
        sampling = model.get_model_object("model_sampling")
        patched = patch_model(model, optimized_attention, frames_per_video, (front_frame - 1, back_frame - 1),
                              strength, sigma_start=float(sampling.percent_to_sigma(start_percent)),
                              sigma_end=float(sampling.percent_to_sigma(end_percent)))
        return io.NodeOutput(patched)


class RecomposePrependReferences(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="RecomposePrependReferences",
            display_name="Prepend References",
            category=CATEGORY,
            description="Puts the front and back reference images before the frames (thesis 4.2: the references "
                        "are generated as frames 1 and 2 so every frame can attend to them). Drop them after "
                        "decoding with 'Drop References'.",
            inputs=[
                io.Image.Input("frames", tooltip="The frames to animate (e.g. pose images or a first guess)."),
                io.Image.Input("front", tooltip="The front mirror selfie (same size as the frames)."),
                io.Image.Input("back", tooltip="The back mirror selfie (same size as the frames)."),
            ],
            outputs=[io.Image.Output(display_name="frames", tooltip="[front, back, frames...].")],
        )

    @classmethod
    def execute(cls, frames, front, back) -> io.NodeOutput:
        require_same_size(front, frames, "The front image", "the frames")
        require_same_size(back, frames, "The back image", "the frames")
        return io.NodeOutput(torch.cat([front[:1, ..., :3], back[:1, ..., :3], frames[..., :3]], dim=0))


class RecomposeDropReferences(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="RecomposeDropReferences",
            display_name="Drop References",
            category=CATEGORY,
            description="Removes the reference frames (the first two by default) from decoded frames.",
            inputs=[
                io.Image.Input("frames", tooltip="Decoded frames that start with the reference frames."),
                io.Int.Input("count", default=REFERENCE_COUNT, min=0, max=64,
                             tooltip="How many leading frames to drop (2: front and back)."),
            ],
            outputs=[io.Image.Output(display_name="frames", tooltip="The frames without the references.")],
        )

    @classmethod
    def execute(cls, frames, count) -> io.NodeOutput:
        if frames.shape[0] <= count:
            raise InputError(f"Only {frames.shape[0]} frame(s): nothing is left after dropping {count} references.")
        return io.NodeOutput(frames[count:])


NODES = [RecomposeMultiReferenceAttention, RecomposePrependReferences, RecomposeDropReferences]
