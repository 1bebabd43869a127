"""AlignTok nodes: load a tokenizer, encode IMAGE -> LATENT, decode LATENT -> IMAGE (tiled)."""
import torch
import torch.nn.functional as F
from comfy_api.latest import io

from ..pipelines.common.errors import InputError
from ..pipelines.common.images import bchw_to_image, image_to_bchw, usable
from ._runtime import (cancellable, input_path, load_models, model_files, output_device, progress, resolve_file,
                       save_path, torch_device)

CATEGORY = "Recompose/AlignTok"
FOLDER = "recompose_aligntok"
Tokenizer = io.Custom("RECOMPOSE_TOKENIZER")


def _model(tokenizer):
    from ..pipelines.aligntok.model import AlignTok

    if not isinstance(tokenizer, AlignTok):
        raise InputError("'tokenizer' must come from 'Load AlignTok Tokenizer'.")
    load_models(tokenizer)
    return tokenizer


class RecomposeAlignTokLoader(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="RecomposeAlignTokLoader",
            display_name="Load AlignTok Tokenizer",
            category=CATEGORY,
            description="Loads an AlignTok tokenizer (aligned DINOv2 encoder + adapter + pixel decoder, one "
                        ".safetensors file with its config) from models/recompose/aligntok.",
            inputs=[io.Combo.Input("tokenizer_name", options=model_files(FOLDER),
                                   tooltip="A tokenizer file in models/recompose/aligntok.")],
            outputs=[Tokenizer.Output(display_name="tokenizer", tooltip="The loaded tokenizer.")],
        )

    @classmethod
    def execute(cls, tokenizer_name) -> io.NodeOutput:
        from ..pipelines.aligntok.model import load_tokenizer

        return io.NodeOutput(load_tokenizer(resolve_file(FOLDER, tokenizer_name, "tokenizer_name")))


class RecomposeAlignTokEncode(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="RecomposeAlignTokEncode",
            display_name="AlignTok Encode",
            category=CATEGORY,
            description="Encodes images into the tokenizer's latent grid (one d-channel token per 16x16 pixels). "
                        "Sides that are not multiples of 16 are resized to the nearest multiple.",
            inputs=[
                Tokenizer.Input("tokenizer", tooltip="From 'Load AlignTok Tokenizer'."),
                io.Image.Input("image", tooltip="Images to encode (any aspect ratio)."),
            ],
            outputs=[io.Latent.Output(tooltip="LATENT with the tokenizer's channel count, 1/16 of the image size.")],
        )

    @classmethod
    def execute(cls, tokenizer, image) -> io.NodeOutput:
        model = _model(tokenizer)
        x = image_to_bchw(image).to(torch_device())
        h, w = x.shape[-2:]
        th, tw = max(16, round(h / 16) * 16), max(16, round(w / 16) * 16)
        if (th, tw) != (h, w):
            x = F.interpolate(x, size=(th, tw), mode="bicubic", align_corners=False, antialias=True).clamp(0, 1)
        bar = progress(x.shape[0])
        latents = []
        with torch.no_grad(), cancellable():
            for i in range(x.shape[0]):
                latents.append(model.encode(x[i:i + 1]))
                bar.step()
        return io.NodeOutput({"samples": torch.cat(latents).to(output_device())})


class RecomposeAlignTokDecode(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="RecomposeAlignTokDecode",
            display_name="AlignTok Decode",
            category=CATEGORY,
            description="Decodes AlignTok latents to images; large latents are decoded in overlapping tiles.",
            inputs=[
                Tokenizer.Input("tokenizer", tooltip="The tokenizer that made the latents."),
                io.Latent.Input("latent", tooltip="Latents from 'AlignTok Encode' (or a model trained on them)."),
                io.Int.Input("tile_size", default=32, min=4, max=256,
                             tooltip="Tile side in latent cells (x16 pixels); larger latents are decoded tile by tile."),
                io.Int.Input("tile_overlap", default=4, min=0, max=64,
                             tooltip="Overlap between tiles in latent cells, blended linearly."),
            ],
            outputs=[io.Image.Output(tooltip="The decoded images.")],
        )

    @classmethod
    def execute(cls, tokenizer, latent, tile_size, tile_overlap) -> io.NodeOutput:
        from ..pipelines.aligntok.tiling import tiled_decode

        model = _model(tokenizer)
        z = usable(latent["samples"], "LATENT").to(torch_device())
        if z.ndim != 4 or z.shape[1] != model.latent_dim:
            raise InputError(f"This LATENT has {z.shape[1] if z.ndim == 4 else z.ndim} channels; the tokenizer decodes "
                             f"{model.latent_dim}-channel AlignTok latents. Encode with the same tokenizer "
                             "(SD/SDXL VAE latents cannot be decoded here).")
        overlap = min(tile_overlap, tile_size - 1)
        h, w = z.shape[-2:]
        tiles = (-(-max(h - overlap, 1) // (tile_size - overlap))) * (-(-max(w - overlap, 1) // (tile_size - overlap)))
        with cancellable():
            images = tiled_decode(model, z, tile_size, overlap, progress(max(tiles, 1)))
        return io.NodeOutput(bchw_to_image(images).to(output_device()))


class RecomposeAlignTokTrain(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="RecomposeAlignTokTrain",
            display_name="Train AlignTok Stage",
            category=CATEGORY,
            description="Runs one AlignTok training stage on a folder of images (thesis 7.2): 1 = latent alignment "
                        "(encoder frozen), 2 = perceptual alignment (all parts, + L_sp, EMA), 3 = decoder refinement "
                        "(EMA). Thesis 7.5 defaults: lr 1e-4 / 1e-5 / 1e-4, GAN after 5K steps in stage 1 and from "
                        "the start in stages 2-3, random 256 crops; the GAN discriminator is saved with the tokenizer "
                        "and carried into the next stage. For small runs; use 'python -m pipelines.aligntok.train' "
                        "(accelerate) for real ones. The result is saved into models/recompose/aligntok.",
            inputs=[
                Tokenizer.Input("tokenizer", tooltip="The tokenizer to continue from (it is copied, not changed)."),
                io.String.Input("image_folder", default="aligntok_train",
                                tooltip="Folder of training images inside ComfyUI's input folder."),
                io.Int.Input("stage", default=1, min=1, max=3, tooltip="Which training stage to run (1, 2 or 3)."),
                io.Int.Input("steps", default=100, min=1, max=1_000_000, tooltip="Optimisation steps."),
                io.Int.Input("batch_size", default=4, min=1, max=256, tooltip="Images per step."),
                io.Int.Input("size", default=256, min=16, max=1024, step=16,
                             tooltip="Training crop side in pixels: each image's shorter side is resized to it, then a "
                                     "random square of that side is cropped (thesis: 256)."),
                io.Float.Input("lr_stage1", default=1e-4, min=1e-7, max=1e-2, step=1e-6,
                               tooltip="AdamW learning rate when 'stage' is 1 (thesis: 1e-4)."),
                io.Float.Input("lr_stage2", default=1e-5, min=1e-7, max=1e-2, step=1e-6,
                               tooltip="AdamW learning rate when 'stage' is 2 (thesis: 1e-5)."),
                io.Float.Input("lr_stage3", default=1e-4, min=1e-7, max=1e-2, step=1e-6,
                               tooltip="AdamW learning rate when 'stage' is 3 (thesis: 1e-4)."),
                io.Int.Input("gan_start_stage1", default=5000, min=0, max=1_000_000,
                             tooltip="Step at which the GAN loss starts in stage 1 (thesis: after 5K steps)."),
                io.Int.Input("gan_start_stages_2_3", default=0, min=0, max=1_000_000,
                             tooltip="Step at which the GAN loss starts in stages 2 and 3 (thesis: 0, active "
                                     "throughout). The discriminator goes on from the one the tokenizer carries."),
                io.String.Input("save_as", default="aligntok_trained.safetensors",
                                tooltip="File name for the result in models/recompose/aligntok."),
            ],
            outputs=[Tokenizer.Output(display_name="tokenizer", tooltip="The trained tokenizer (also saved).")],
        )

    @classmethod
    def execute(cls, tokenizer, image_folder, stage, steps, batch_size, size, lr_stage1, lr_stage2, lr_stage3,
                gan_start_stage1, gan_start_stages_2_3, save_as) -> io.NodeOutput:
        import os

        from ..pipelines.aligntok.model import AlignTok, save_tokenizer
        from ..pipelines.aligntok.train import StageSettings, image_folder_batches, train_stage

        folder = input_path(image_folder, "image_folder")
        if not save_as.endswith(".safetensors") or os.path.basename(save_as) != save_as:
            raise InputError("'save_as' must be a plain file name ending in .safetensors (it is saved in the "
                             "models/recompose/aligntok folder).")
        out_path = save_path(FOLDER, save_as, "save_as")
        device = torch_device()
        source = _model(tokenizer)
        settings = StageSettings(stage, steps, (lr_stage1, lr_stage2, lr_stage3)[stage - 1], batch_size,
                                 gan_start=gan_start_stage1 if stage == 1 else gan_start_stages_2_3)
        # ComfyUI runs nodes in inference mode; training needs ordinary tensors, so the
        # copy is rebuilt from cloned weights outside it (the loaded tokenizer stays as is).
        with torch.inference_mode(False), torch.enable_grad(), cancellable():
            model = AlignTok(source.config)
            model.load_state_dict({k: v.clone() for k, v in source.state_dict().items()})
            model.discriminator_state = {k: v.clone() for k, v in source.discriminator_state.items()}
            model.to(device)
            batches = (b.to(device) for b in image_folder_batches(folder, size, batch_size))
            trained = train_stage(model, batches, settings, progress=progress(steps))
        os.makedirs(os.path.dirname(out_path), exist_ok=True)
        save_tokenizer(trained, out_path)
        return io.NodeOutput(trained)


NODES = [RecomposeAlignTokLoader, RecomposeAlignTokEncode, RecomposeAlignTokDecode, RecomposeAlignTokTrain]
