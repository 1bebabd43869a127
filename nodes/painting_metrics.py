"""Inverse Painting evaluation (thesis 6.3.4): generated keyframes against a real painting video."""

from comfy_api.latest import io

from ..pipelines.common.images import image_to_bchw
from ._runtime import input_path
from .painting_tools import DISTANCE_NOTE, perceptual_distance

CATEGORY = "Recompose/Inverse Painting"


class RecomposePaintingMetrics(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="RecomposePaintingMetrics",
            display_name="Painting Process Metrics",
            category=CATEGORY,
            description="Compares generated keyframes with a real painting video (thesis 6.3.4): LPIPS to the "
                        "nearest-in-time frame, best-match IoU of difference masks, DDC (DTW between "
                        f"distance-to-target curves) and DTS (difference of time spent, minutes). {DISTANCE_NOTE}; "
                        "the report names it. FID is not computed offline.",
            inputs=[
                io.Image.Input("keyframes", tooltip="The generated sequence, first canvas to finished painting."),
                io.Float.Input("interval_s", default=20.0, min=0.1, max=3600.0, step=0.1,
                               tooltip="Seconds between generated keyframes (keyframe i is at i * interval)."),
                io.String.Input("reference_folder", default="painting_reference",
                                tooltip="Folder of the real video's frames, each named with its time in seconds "
                                        "(frame_0120.png, 0120s.jpg), inside ComfyUI's input "
                                        "folder."),
            ],
            outputs=[
                io.String.Output(display_name="report", tooltip="All metrics as 'name: value' lines."),
                io.Float.Output(display_name="nearest_distance",
                                tooltip="Mean distance of each real frame to the nearest-in-time keyframe (lower "
                                        "is better)."),
                io.Float.Output(display_name="iou", tooltip="Mean best-match IoU of difference masks (higher is "
                                                            "better)."),
                io.Float.Output(display_name="ddc", tooltip="DTW between distance-to-target curves (lower is "
                                                            "better)."),
                io.Float.Output(display_name="dts_minutes",
                                tooltip="|duration generated - duration real| in minutes (lower is better)."),
            ],
        )

    @classmethod
    def execute(cls, keyframes, interval_s, reference_folder) -> io.NodeOutput:
        from ..pipelines.inverse_painting.metrics import compute_metrics, load_reference_sequence

        reference = load_reference_sequence(input_path(reference_folder.strip(), "reference_folder"))
        m = compute_metrics(image_to_bchw(keyframes).cpu(), interval_s, reference, distance=perceptual_distance())
        return io.NodeOutput(m.report(), m.nearest_distance, m.iou, m.ddc, m.dts_minutes)


NODES = [RecomposePaintingMetrics]
