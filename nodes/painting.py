"""Inverse Painting nodes (thesis chapter 6), learned path: the official renderer and mask generator
loaders, renderer settings, and the painting loop that also drives the baseline painter and the
instruction/mask nodes from nodes/painting_tools.py (custom types RECOMPOSE_PAINTER,
RECOMPOSE_MASK_GENERATOR, RECOMPOSE_INSTRUCTIONS)."""
import copy

import torch
from comfy_api.latest import io

from ._runtime import (cancellable, load_models, load_placement, model_dirs, model_files, output_device, progress,
                       resolve_dir, resolve_file)
from ._types import InstructionsType, MaskGeneratorType, PainterType
from .painting_tools import DISTANCE_NOTE, perceptual_distance

CATEGORY = "Recompose/Inverse Painting"

NO_FILE = "(none)"
CKPT_EXT = (".ckpt", ".pth", ".pt", ".safetensors")


def _checkpoints(prefer: str) -> list:
    files = [f for f in model_files("recompose_painting") if f.lower().endswith(CKPT_EXT)]
    files.sort(key=lambda f: (prefer.lower() not in f.lower(), f))
    return files or [NO_FILE]


def _dirs(folder: str, marker: str) -> list:
    return model_dirs(folder, marker) or [NO_FILE]


class PaintingRendererLoader(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="RecomposePaintingRendererLoader",
            display_name="Load Painting Renderer (Inverse Painting)",
            category=CATEGORY,
            description="Loads the official Inverse Painting canvas renderer "
                        "(checkpoint-global_step-200000.ckpt with unet/referencenet/cur_image_guider/"
                        "image_adpater/PE state dicts, and the config.yaml one folder up) over a base SD1.5 "
                        "diffusers folder (RealisticVision 5.1 in the paper) and CLIP ViT-B/32. "
                        "Defaults: Euler-Ancestral 25 steps, guidance CLIP 2 / canvas 1 / time 5 / mask 5 / text 5.",
            inputs=[
                io.Combo.Input("checkpoint", options=_checkpoints("renderer"),
                               tooltip="Renderer checkpoint in models/recompose/painting (e.g. "
                                       "renderer/ckpt/checkpoint-global_step-200000.ckpt; config.yaml is read from "
                                       "renderer/config.yaml or beside the file)."),
                io.Combo.Input("base_model", options=_dirs("diffusers", "model_index.json"),
                               tooltip="Stable Diffusion 1.5 diffusers folder in models/diffusers "
                                       "(realisticVisionV51_v51VAE for the released weights)."),
                io.Combo.Input("clip_model", options=_dirs("clip_vision", "config.json"),
                               tooltip="transformers folder of CLIP ViT-B/32 (clip-vit-base-patch32) in "
                                       "models/clip_vision."),
            ],
            outputs=[PainterType.Output(display_name="painter",
                                        tooltip="The learned canvas renderer, for Inverse Paint.")],
        )

    @classmethod
    def execute(cls, checkpoint, base_model, clip_model) -> io.NodeOutput:
        from ..pipelines.inverse_painting.renderer import load_renderer

        device, dtype = load_placement()
        painter = load_renderer(resolve_file("recompose_painting", checkpoint, "checkpoint"),
                                resolve_dir("diffusers", base_model, "base_model"),
                                resolve_dir("clip_vision", clip_model, "clip_model"),
                                device=device, dtype=dtype)
        return io.NodeOutput(painter)


class PaintingRendererSettings(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="RecomposePaintingRendererSettings",
            display_name="Painting Renderer Settings (Inverse Painting)",
            category=CATEGORY,
            description="Sampling settings of a learned renderer: Euler-Ancestral steps, the six-branch "
                        "guidance scales, the seed (reused every update, as the official demo), how many "
                        "guidance branches run per batch (fewer = less memory; 6 = all at once) and the VAE "
                        "decode's tile size (0 = whole image).",
            inputs=[
                PainterType.Input("painter", tooltip="A renderer from Load Painting Renderer."),
                io.Int.Input("steps", default=25, min=1, max=200, tooltip="Denoising steps per update (official: 25)."),
                io.Float.Input("clip_scale", default=2.0, min=0.0, max=20.0, step=0.1,
                               tooltip="Guidance of the predicted next-CLIP embedding (official: 2)."),
                io.Float.Input("canvas_scale", default=1.0, min=0.0, max=20.0, step=0.1,
                               tooltip="Guidance of the current canvas (official: 1)."),
                io.Float.Input("time_scale", default=5.0, min=0.0, max=20.0, step=0.1,
                               tooltip="Guidance of the time interval (official: 5)."),
                io.Float.Input("mask_scale", default=5.0, min=0.0, max=20.0, step=0.1,
                               tooltip="Guidance of the mask instruction (official: 5)."),
                io.Float.Input("text_scale", default=5.0, min=0.0, max=20.0, step=0.1,
                               tooltip="Guidance of the text instruction (official: 5)."),
                io.Int.Input("seed", default=1, min=0, max=2**31 - 1, tooltip="Noise seed, reused for every update."),
                io.Int.Input("cfg_chunk", default=6, min=1, max=6,
                             tooltip="Guidance branches per UNet batch: 6 is fastest, 1-3 bound the memory "
                                     "(a 512x512 update fits 12 GB with 2)."),
                io.Int.Input("vae_tile_size", default=0, min=0, max=4096, step=64,
                             tooltip="Decode each keyframe in tiles of this many pixels (0 = whole image). "
                                     "256-512 bound the decode's memory, which dominates once cfg_chunk is small; "
                                     "tiles are blended, so the image changes slightly."),
            ],
            outputs=[PainterType.Output(display_name="painter", tooltip="The renderer with these settings.")],
        )

    @classmethod
    def execute(cls, painter, steps, clip_scale, canvas_scale, time_scale, mask_scale, text_scale, seed,
                cfg_chunk, vae_tile_size=0) -> io.NodeOutput:
        from ..pipelines.common.errors import InputError

        if not hasattr(painter, "settings"):
            raise InputError(f"Renderer settings apply to the learned renderer; this painter is "
                             f"'{getattr(painter, 'name', type(painter).__name__)}'.")
        from ..pipelines.inverse_painting.renderer import GuidanceScales

        scales = GuidanceScales(clip=clip_scale, canvas=canvas_scale, time=time_scale, mask=mask_scale,
                                text=text_scale)
        return io.NodeOutput(painter.settings(steps=steps, scales=scales, seed=seed, cfg_chunk=cfg_chunk,
                                              vae_tile_size=vae_tile_size))


class PaintingMaskGeneratorLoader(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="RecomposePaintingMaskGeneratorLoader",
            display_name="Load Painting Mask Generator (Inverse Painting)",
            category=CATEGORY,
            description="Loads the official learned mask instruction generator 'RP' "
                        "(checkpoint-global_step-80000.ckpt with RP_state_dict and PE_state_dict: a 9-channel "
                        "SD-layout UNet over [E(canvas), E(target), difference mask] with [time, text] "
                        "cross-attention and a sigmoid output) over a base SD1.5 diffusers folder. Thresholds "
                        "follow the official demo (0.5 down to 0.1 until the mask covers 5% and differs from "
                        f"the previous one). The difference mask input: {DISTANCE_NOTE}.",
            inputs=[
                io.Combo.Input("checkpoint", options=_checkpoints("rp"),
                               tooltip="RP checkpoint in models/recompose/painting (e.g. "
                                       "RP/checkpoint-global_step-80000.ckpt)."),
                io.Combo.Input("base_model", options=_dirs("diffusers", "model_index.json"),
                               tooltip="Stable Diffusion 1.5 diffusers folder in models/diffusers (VAE and text "
                                       "encoder; RealisticVision 5.1 for the released weights)."),
            ],
            outputs=[MaskGeneratorType.Output(display_name="mask_generator",
                                              tooltip="The learned mask generator, for Inverse Paint.")],
        )

    @classmethod
    def execute(cls, checkpoint, base_model) -> io.NodeOutput:
        from ..pipelines.inverse_painting.mask_generator import load_mask_generator

        device, dtype = load_placement()
        gen = load_mask_generator(resolve_file("recompose_painting", checkpoint, "checkpoint"),
                                  resolve_dir("diffusers", base_model, "base_model"), device=device, dtype=dtype,
                                  distance=perceptual_distance())
        return io.NodeOutput(gen)


class InversePaint(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="RecomposeInversePaint",
            display_name="Inverse Paint (time-lapse)",
            category=CATEGORY,
            description="Reconstructs a painting process: from a white canvas, each update asks the instruction "
                        "generator what to paint, the mask generator where, and the painter renders the next "
                        "keyframe one interval later; stops when two updates in a row change almost nothing "
                        "(LPIPS < 1e-3), the canvas is close to the target (LPIPS < 0.1), or after max_updates. "
                        f"{DISTANCE_NOTE}; the report names it. Any aspect ratio (short side resized, padded to a "
                        "multiple of 16, cropped back).",
            inputs=[
                io.Image.Input("target", tooltip="The finished painting (the first image of a batch is painted)."),
                PainterType.Input("painter", tooltip="Learned renderer or the baseline painter."),
                MaskGeneratorType.Input("mask_generator", optional=True,
                                        tooltip="Where to paint; default: the difference mask between canvas "
                                                "and target."),
                InstructionsType.Input("instructions", optional=True,
                                       tooltip="What to paint: Offline Painting Instructions (regions of the target), VLM Painting "
                                               "Instructions (the thesis' LLaVA text generator) or a user list; "
                                               "unconnected: the constant 'painting'."),
                io.Float.Input("interval_s", default=20.0, min=1.0, max=100.0, step=1.0,
                               tooltip="Time between keyframes in seconds (official: 20)."),
                io.Int.Input("max_updates", default=50, min=1, max=200, tooltip="Upper bound on canvas updates (official: 50)."),
                io.Int.Input("short_side", default=512, min=64, max=1024, step=16,
                             tooltip="The target's short side while painting (official: 512); outputs are "
                                     "resized back to the input size."),
            ],
            outputs=[
                io.Image.Output(display_name="keyframes",
                                tooltip="The time-lapse: the blank canvas, then one keyframe per update."),
                io.Mask.Output(display_name="masks", tooltip="The mask instruction of each update."),
                io.String.Output(display_name="instructions",
                                 tooltip="One line per update: time and text instruction."),
                io.Image.Output(display_name="time_map",
                                tooltip="When each region was painted (thesis Fig. 6.10): later = brighter."),
                io.String.Output(display_name="report",
                                 tooltip="What ran (painter, mask/instruction generators, distance) and why it stopped."),
            ],
        )

    @classmethod
    def execute(cls, target, painter, interval_s, max_updates, short_side, mask_generator=None,
                instructions=None) -> io.NodeOutput:
        from ..pipelines.common.images import bchw_to_image, image_to_bchw
        from ..pipelines.inverse_painting.loop import paint

        image = image_to_bchw(target)
        load_models(painter, mask_generator, instructions)
        # The loop keeps per-run state on its components (begin(target) caches, visit counts); they are
        # cached outputs of upstream nodes, reused by later runs, so each run gets shallow copies (the
        # weights stay shared).
        painter, mask_generator, instructions = (None if c is None else copy.copy(c)
                                                 for c in (painter, mask_generator, instructions))
        bar = progress(max_updates)
        with cancellable():
            res = paint(image[:1], painter, mask_generator, instructions, distance=perceptual_distance(),
                        interval_s=interval_s, max_updates=max_updates, short_side=short_side, progress=bar)
        out = output_device()
        keyframes = bchw_to_image(res.keyframes).to(out)
        masks = res.masks[:, 0] if res.updates else torch.zeros(1, *res.keyframes.shape[-2:])
        text = "\n".join(f"{t:g}s: {p}" for t, p in zip(res.times[1:], res.instructions))
        tmap = bchw_to_image(res.time_map.expand(-1, 3, -1, -1)).to(out)
        lines = [f"painter: {res.painter}", f"mask generator: {res.mask_generator}",
                 f"instructions: {res.instruction_generator}", f"distance: {res.distance}",
                 f"updates: {res.updates}, stopped: {res.stop_reason}"]
        if image.shape[0] > 1:
            lines.append(f"only the first of {image.shape[0]} target images was painted")
        lines += res.notes
        return io.NodeOutput(keyframes, masks.to(out), text, tmap, "\n".join(lines))


NODES = [PaintingRendererLoader, PaintingRendererSettings, PaintingMaskGeneratorLoader, InversePaint]
