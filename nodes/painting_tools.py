"""Inverse Painting tools that need no learned weights: the difference mask, text
instruction generators (offline heuristic, user list) and the built-in baseline painter
and mask generator that drive 'Inverse Paint' when no renderer checkpoint is present.
``perceptual_distance`` is the one place the family picks its distance (LPIPS or the stand-in)."""
from comfy_api.latest import io

from ..pipelines.common.images import image_to_bchw
from ._runtime import model_files, output_device, resolve_file
from ._types import InstructionsType, MaskGeneratorType, PainterType

CATEGORY = "Recompose/Inverse Painting"
LPIPS_FOLDER = "recompose_lpips"
BACKBONE_EXT = (".pth", ".pt", ".safetensors", ".bin")
DISTANCE_NOTE = ("True LPIPS when a torchvision AlexNet/VGG16 backbone (alexnet-owt-7be5be79.pth) is in "
                 "models/lpips, else an offline SSIM + colour stand-in calibrated to the LPIPS scale")


def perceptual_distance():
    """LPIPS over the backbone in models/lpips (AlexNet first, as the official code), else the stand-in."""
    from ..pipelines.inverse_painting.difference import default_distance

    files = sorted((f for f in model_files(LPIPS_FOLDER) if f.lower().endswith(BACKBONE_EXT)),
                   key=lambda f: ("alex" not in f.lower(), f))
    return default_distance(resolve_file(LPIPS_FOLDER, files[0]) if files else None)


class RecomposeDifferenceMask(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="RecomposeDifferenceMask",
            display_name="Painting Difference Mask",
            category=CATEGORY,
            description="D(I_T, I_t, alpha): where a canvas still differs perceptually from the target (thesis "
                        f"6.2). {DISTANCE_NOTE}; the text output names it and the threshold that ran.",
            inputs=[
                io.Image.Input("target", tooltip="The finished painting."),
                io.Image.Input("canvas", tooltip="The current canvas (same size as the target)."),
                io.Float.Input("alpha", default=0.2, min=0.0, max=1.0, step=0.01,
                               tooltip="Threshold on the per-pixel LPIPS (thesis: 0.2); converted to the "
                                       "stand-in's scale when no LPIPS backbone is installed."),
            ],
            outputs=[
                io.Mask.Output(display_name="mask", tooltip="1 where the canvas still differs."),
                io.String.Output(display_name="distance",
                                 tooltip="Which perceptual distance ran and the threshold it used."),
            ],
        )

    @classmethod
    def execute(cls, target, canvas, alpha) -> io.NodeOutput:
        from ..pipelines.common.images import match_batch, require_same_size
        from ..pipelines.inverse_painting.difference import difference_mask

        require_same_size(target, canvas, "The target", "the canvas")
        canvas = match_batch(canvas, target.shape[0], "canvas")
        distance = perceptual_distance()
        mask = difference_mask(image_to_bchw(target), image_to_bchw(canvas), alpha, distance)
        used = f"{distance.name}; alpha {alpha:g} (LPIPS scale) -> threshold {distance.pixel_threshold(alpha):.4g}"
        return io.NodeOutput(mask[:, 0].to(output_device()), used)


class RecomposeHeuristicInstructions(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="RecomposeHeuristicInstructions",
            display_name="Offline Painting Instructions",
            category=CATEGORY,
            description="Text instructions without a vision-language model: regions of the target found by colour "
                        "and position clustering, named (sky, trees, water, ...) and visited back to front, each "
                        "several times (coarse to fine), then 'details'.",
            inputs=[
                io.Int.Input("regions", default=5, min=1, max=16, tooltip="How many regions to split the target into."),
                io.Int.Input("passes", default=3, min=1, max=8,
                             tooltip="How often each region is visited before 'details'."),
            ],
            outputs=[InstructionsType.Output(display_name="instructions",
                                             tooltip="An instruction generator for 'Inverse Paint'.")],
        )

    @classmethod
    def execute(cls, regions, passes) -> io.NodeOutput:
        from ..pipelines.inverse_painting.instructions import HeuristicInstructions

        return io.NodeOutput(HeuristicInstructions(regions, passes))


class RecomposeUserInstructions(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="RecomposeUserInstructions",
            display_name="Painting Instructions (List)",
            category=CATEGORY,
            description="Your own instruction per update, one per line (the last line repeats).",
            inputs=[io.String.Input("text", multiline=True, default="sky\nmountains\nwater\ntrees\ndetails",
                                    tooltip="One short instruction per line, e.g. 'sky'.")],
            outputs=[InstructionsType.Output(display_name="instructions",
                                             tooltip="An instruction generator for 'Inverse Paint'.")],
        )

    @classmethod
    def execute(cls, text) -> io.NodeOutput:
        from ..pipelines.inverse_painting.instructions import UserInstructions

        return io.NodeOutput(UserInstructions(text))


class RecomposeBaselinePainter(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="RecomposeBaselinePainter",
            display_name="Baseline Painter (no weights)",
            category=CATEGORY,
            description="The built-in BASELINE painter for when no renderer checkpoint is present: each update "
                        "layers the instructed region one step finer (flat colour, strong blur, light blur, exact). "
                        "A heuristic, not the thesis' learned renderer.",
            inputs=[],
            outputs=[PainterType.Output(display_name="painter", tooltip="A painter for 'Inverse Paint'.")],
        )

    @classmethod
    def execute(cls) -> io.NodeOutput:
        from ..pipelines.inverse_painting.baseline import BaselinePainter

        return io.NodeOutput(BaselinePainter())


class RecomposeBaselineMaskGenerator(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="RecomposeBaselineMaskGenerator",
            display_name="Baseline Mask Generator",
            category=CATEGORY,
            description="Where to paint without the learned mask generator: the instructed region of the target "
                        "(same regions as 'Offline Painting Instructions'), else the difference mask "
                        f"({DISTANCE_NOTE}).",
            inputs=[
                io.Int.Input("regions", default=5, min=1, max=16,
                             tooltip="How many regions; match 'Offline Painting Instructions'."),
                io.Float.Input("alpha", default=0.2, min=0.0, max=1.0, step=0.01,
                               tooltip="Difference-mask threshold (LPIPS scale, thesis 0.2) for instructions that "
                                       "name no region."),
            ],
            outputs=[MaskGeneratorType.Output(display_name="mask_generator",
                                              tooltip="A mask generator for 'Inverse Paint'.")],
        )

    @classmethod
    def execute(cls, regions, alpha) -> io.NodeOutput:
        from ..pipelines.inverse_painting.baseline import BaselineMaskGenerator

        return io.NodeOutput(BaselineMaskGenerator(regions, alpha, perceptual_distance()))


NODES = [RecomposeDifferenceMask, RecomposeHeuristicInstructions, RecomposeUserInstructions,
         RecomposeBaselinePainter, RecomposeBaselineMaskGenerator]
