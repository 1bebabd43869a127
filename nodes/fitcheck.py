"""Fit Check video: multi-reference attention as a MODEL patch, the reference-frame
strategy (front and back references as frames 1-2, dropped after decoding), and the
MimicMotion/SVD video model that runs both (loader + sampler)."""
import torch
from comfy_api.latest import io

from ..pipelines.common.errors import InputError
from ..pipelines.common.images import cover_crop, image_to_bchw, require_same_size
from ._runtime import (cancellable, load_models, load_placement, model_dirs, model_files, output_device, progress,
                       resolve_dir, resolve_file)

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
                             tooltip="Frames per video in the batch (0 = the whole batch is one video). Under "
                                     "core's context windows each window is one video and always holds the "
                                     "references."),
                io.Int.Input("front_frame", default=1, min=1, max=4096,
                             tooltip="1-based frame number of the front reference (frame 1 after 'Prepend References')."),
                io.Int.Input("back_frame", default=2, min=1, max=4096,
                             tooltip="1-based frame number of the back reference (frame 2 after 'Prepend References')."),
                io.Float.Input("strength", default=1.0, min=0.0, max=4.0, step=0.05,
                               tooltip="Weight of the reference tokens in attention (1 = thesis, 0 = off). Must be "
                                       "1 when another node already replaced the model's self-attention (that "
                                       "replacement then runs over the reference tokens too)."),
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
                io.Image.Input("front", tooltip="The front mirror selfie: one image, the same size as the frames."),
                io.Image.Input("back", tooltip="The back mirror selfie: one image, the same size as the frames."),
            ],
            outputs=[io.Image.Output(display_name="frames", tooltip="[front, back, frames...].")],
        )

    @classmethod
    def execute(cls, frames, front, back) -> io.NodeOutput:
        for name, image in (("front", front), ("back", back)):
            if image.shape[0] != 1:  # one video has one front and one back reference
                raise InputError(f"Prepend References: '{name}' holds {image.shape[0]} images but one video takes "
                                 f"one {name} reference; pick one image (e.g. with core's ImageFromBatch node).")
        require_same_size(front, frames, "The front image", "the frames")
        require_same_size(back, frames, "The back image", "the frames")
        rgb = [image_to_bchw(x).permute(0, 2, 3, 1) for x in (front, back, frames)]  # grey/RGBA -> RGB
        return io.NodeOutput(torch.cat(rgb, dim=0))


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


FitCheckPipe = io.Custom("RECOMPOSE_FITCHECK_PIPE")
NO_FILE = "(none)"
WEIGHT_EXT = (".pth", ".pt", ".ckpt", ".safetensors")


def _svd_folders() -> list:
    from ..pipelines.mimicmotion.loader import is_svd_folder

    found = [d for d in model_dirs("diffusers", "model_index.json") if is_svd_folder(resolve_dir("diffusers", d))]
    return found or [NO_FILE]


def _mimicmotion_files() -> list:
    from ..pipelines.mimicmotion.loader import SIDE_POSE_NET

    files = [f for f in model_files("recompose_fitcheck")
             if f.lower().endswith(WEIGHT_EXT) and not f.endswith(SIDE_POSE_NET)]
    return files or [NO_FILE]


def _fit(image: torch.Tensor, width: int, height: int) -> torch.Tensor:
    return cover_crop(image_to_bchw(image).float(), width, height)


class RecomposeFitCheckLoader(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="RecomposeFitCheckLoader",
            display_name="Load Fit Check Model (MimicMotion / SVD)",
            category=CATEGORY,
            description="Loads a Stable Video Diffusion XT 1.1 diffusers folder (local files only) with MimicMotion "
                        "weights on top: MimicMotion_1.pth / MimicMotion_1-1.pth (unet.* merged over the SVD UNet, "
                        "pose_net.* into the pose encoder) or a MimicMotionMergedUnet_*.safetensors. A checkpoint "
                        "whose UNet takes 16 input channels runs the thesis' Fit Check mode (front, back and "
                        "background latents); the public 8-channel weights run MimicMotion mode.",
            inputs=[
                io.Combo.Input("svd_model", options=_svd_folders(),
                               tooltip="SVD diffusers folder in models/diffusers "
                                       "(stable-video-diffusion-img2vid-xt-1-1 for the released weights); its "
                                       "unet/ may hold only config.json or be missing, as the MimicMotion file "
                                       "carries the UNet."),
                io.Combo.Input("weights", options=_mimicmotion_files(),
                               tooltip="MimicMotion weights in models/recompose/fitcheck "
                                       "(MimicMotion_1-1.pth, or a Fit Check checkpoint in the same layout)."),
            ],
            outputs=[FitCheckPipe.Output(display_name="fitcheck_pipe",
                                         tooltip="The video model, for 'Fit Check Sampler'.")],
        )

    @classmethod
    def execute(cls, svd_model, weights) -> io.NodeOutput:
        from ..pipelines.mimicmotion.loader import load_fitcheck_pipeline

        device, dtype = load_placement()
        pipe = load_fitcheck_pipeline(resolve_dir("diffusers", svd_model, "svd_model"),
                                      resolve_file("recompose_fitcheck", weights, "weights"),
                                      device=device, dtype=dtype)
        return io.NodeOutput(pipe)


class RecomposeFitCheckSampler(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="RecomposeFitCheckSampler",
            display_name="Fit Check Sampler",
            category=CATEGORY,
            description="Animates the person of the front and back photos along a pose sequence (thesis 4.2): the "
                        "references are generated as frames 1-2 of every tile (dropped from the output), frames "
                        "attend to them through multi-reference attention, long videos run in overlapping tiles "
                        "fused with triangular weights. Euler (EDM) sampling with classifier-free guidance; the VAE "
                        "decodes in chunks. Thesis settings: 576x1024, 25 steps, cfg 2, overlap 4.",
            inputs=[
                FitCheckPipe.Input("fitcheck_pipe", tooltip="From 'Load Fit Check Model'."),
                io.Image.Input("front", tooltip="Front-view full-body photo (first image of the batch is used)."),
                io.Image.Input("back", tooltip="Back-view full-body photo (first image of the batch is used)."),
                io.Image.Input("poses", tooltip="One OpenPose picture per output frame (e.g. 'Retrieve Motion' "
                                                "pose_images, or any OpenPose/DWPose preprocessor)."),
                io.Image.Input("background", optional=True,
                               tooltip="Target background (Fit Check checkpoints need it; MimicMotion weights "
                                       "ignore it)."),
                io.Image.Input("front_pose", optional=True,
                               tooltip="OpenPose picture of the front photo (e.g. 'Person Mask + Pose'); "
                                       "an empty canvas if not connected."),
                io.Image.Input("back_pose", optional=True,
                               tooltip="OpenPose picture of the back photo; an empty canvas if not connected."),
                io.Int.Input("width", default=576, min=64, max=2048, step=8,
                             tooltip="Output width; every input is scaled to cover it and centre-cropped."),
                io.Int.Input("height", default=1024, min=64, max=2048, step=8,
                             tooltip="Output height (thesis and MimicMotion: 1024 x 576 portrait)."),
                io.Int.Input("steps", default=25, min=1, max=200, tooltip="Euler denoising steps (thesis: 25)."),
                io.Float.Input("cfg", default=2.0, min=0.0, max=20.0, step=0.1,
                               tooltip="Classifier-free guidance scale (thesis: 2)."),
                io.Int.Input("tile_frames", default=0, min=0, max=128,
                             tooltip="Frames per model call including the 2 references; 0 = auto, what the "
                                     "checkpoint was made for: 72 for MimicMotion 1.1 (file name "
                                     "MimicMotion_1-1*), 16 for MimicMotion 1.0 and Fit Check checkpoints "
                                     "(thesis: 16 or 24). More frames = more memory."),
                io.Int.Input("overlap", default=4, min=0, max=64,
                             tooltip="Frames shared by neighbouring tiles (thesis: 4); below tile_frames - 2."),
                io.Int.Input("seed", default=0, min=0, max=2**31 - 1, tooltip="Noise seed."),
                io.Boolean.Input("multi_reference", default=True,
                                 tooltip="Multi-reference attention on spatial self-attention (thesis 4.2.3)."),
                io.Int.Input("decode_chunk", default=8, min=1, max=128,
                             tooltip="Frames per VAE decode call (fewer = less memory; MimicMotion decodes 8 "
                                     "at a time)."),
            ],
            outputs=[
                io.Image.Output(display_name="frames", tooltip="The generated frames, one per pose."),
                io.String.Output(display_name="mode", tooltip="Which mode ran (Fit Check or MimicMotion) and how."),
            ],
        )

    @classmethod
    def execute(cls, fitcheck_pipe, front, back, poses, width, height, steps, cfg, tile_frames, overlap, seed,
                multi_reference, decode_chunk, background=None, front_pose=None, back_pose=None) -> io.NodeOutput:
        from ..pipelines.mimicmotion.pipeline import progress_total, video_tiles

        if front is None or back is None or poses is None or poses.shape[0] < 1:
            raise InputError("Connect the front photo, the back photo and at least one pose picture.")
        if (front_pose is None) != (back_pose is None):
            raise InputError("Connect both front_pose and back_pose, or neither.")
        reference_poses = None
        if front_pose is not None:
            reference_poses = torch.cat([_fit(front_pose[:1], width, height), _fit(back_pose[:1], width, height)])
        tile_frames = fitcheck_pipe.tile_frames(tile_frames)
        load_models(fitcheck_pipe)
        with cancellable():
            frames = fitcheck_pipe(
                _fit(front[:1], width, height), _fit(back[:1], width, height), _fit(poses, width, height),
                background=None if background is None else _fit(background[:1], width, height),
                reference_poses=reference_poses, steps=steps, cfg=cfg, tile_frames=tile_frames, overlap=overlap,
                seed=seed, decode_chunk=decode_chunk, multi_reference=multi_reference,
                progress=progress(progress_total(poses.shape[0], steps, tile_frames, overlap, decode_chunk)))
        tiles = len(video_tiles(poses.shape[0] + REFERENCE_COUNT, tile_frames, overlap))
        mode = (f"{fitcheck_pipe.describe(background is not None, multi_reference)}; {poses.shape[0]} frames at "
                f"{width}x{height}, {tiles} tile(s), {steps} steps, cfg {cfg:g}")
        return io.NodeOutput(frames.to(output_device()), mode)


NODES = [RecomposeMultiReferenceAttention, RecomposePrependReferences, RecomposeDropReferences,
         RecomposeFitCheckLoader, RecomposeFitCheckSampler]
