"""Portrait editing (thesis ch. 5, bytedance/feature-preserve-portrait-editing), native ComfyUI: the MCDM UNet
loads as a MODEL (core detects an 8-channel SD1.5 UNet as InstructPix2Pix-style, fed c_concat), its image
embedding joins a CONDITIONING, and multi-condition / mask-guided guidance are GUIDERs for core's
SamplerCustomAdvanced. The editing mask works on any native model (DiffEdit generalised, thesis 5.5.3)."""
import os

import torch
from comfy_api.latest import io

from ..pipelines.common.errors import InputError
from ..pipelines.portrait_edit import guidance
from ..pipelines.portrait_edit import mask as mask_maths
from ..pipelines.portrait_edit.adapter import ADAPTER_IMAGE_SIDE
from ._runtime import choice, load_models, model_files, output_device, resolve_file

CATEGORY = "Recompose/Portrait Editing"
MASK_MODES = ["noise (thesis)", "latent (official)"]
FOLDER = "recompose_portrait"
NO_MODEL = "(none found)"
SD15_LATENT_SCALE = 0.18215  # MCDM was trained on scaled latents for c_s and the adapter (official code)
LATENT_TO_PIXELS = 8
AdapterType = io.Custom("RECOMPOSE_PORTRAIT_ADAPTER")
MASK_MODE_TOOLTIP = ("noise (thesis): per step eps = eps(target) * M + eps(reconstruction) * (1 - M). "
                     "latent (official code): after each step the latent outside M is reset to the sampler's "
                     "input latent (give it the source latent E(x_A)) re-noised to that step, through core's "
                     "inpainting blend; no reconstruction conditioning is needed.")


def _unet_files() -> list:
    names = [f for f in model_files(FOLDER) if os.path.basename(f) == "unet.pth"
             or (f.endswith(".safetensors") and "adapter" not in os.path.basename(f))]
    return names or [NO_MODEL]


def _adapter_files() -> list:
    return [f for f in model_files(FOLDER) if os.path.basename(f).startswith("adapter")] or [NO_MODEL]


def _pick(name: str, what: str) -> str:
    if name == NO_MODEL:
        raise InputError(f"No MCDM {what} file in models/recompose/portrait: put the official "
                         "{outfit,cartoon}/checkpoint-200000/ folders there and refresh the page.")
    return resolve_file(FOLDER, name)


class RecomposePortraitMCDMLoader(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="RecomposePortraitMCDMLoader",
            display_name="Load MCDM (Portrait Editing)",
            category=CATEGORY,
            description="Loads the Multi-Conditioned Diffusion Model of thesis ch. 5 as a native MODEL: the "
                        "official unet.pth (diffusers layout, conv_in widened to 8 channels, DDP 'module.' "
                        "prefixes; read with weights_only=True) or a .safetensors with the same keys, plus "
                        "adapter.pth (vae2clip 1024->768, linear1 54->50) loaded strictly. Core treats the UNet "
                        "as an InstructPix2Pix-style SD1.5 model, so core samplers, LoRAs and offloading apply.",
            inputs=[
                io.Combo.Input("unet", options=_unet_files(),
                               tooltip="unet.pth from models/recompose/portrait/{outfit,cartoon}/checkpoint-200000/, "
                                       "or one .safetensors with its keys."),
                io.Combo.Input("adapter", options=_adapter_files(),
                               tooltip="adapter.pth from the same checkpoint folder."),
            ],
            outputs=[
                io.Model.Output(display_name="model", tooltip="The MCDM UNet as a native MODEL (takes E(x_A) "
                                                              "as concat_latent_image)."),
                AdapterType.Output(display_name="adapter", tooltip="The image-embedding adapter, for "
                                                                  "'Portrait Editing Conditioning'."),
            ],
        )

    @classmethod
    def execute(cls, unet, adapter) -> io.NodeOutput:
        from ..pipelines.portrait_edit.adapter import load_adapter
        from ._portrait_native import load_mcdm_unet

        return io.NodeOutput(load_mcdm_unet(_pick(unet, "UNet")), load_adapter(_pick(adapter, "adapter")))


class RecomposeCLIPVisionLoader(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="RecomposeCLIPVisionLoader",
            display_name="Load CLIP Vision (config from weights)",
            category=CATEGORY,
            description="Loads a CLIP vision tower from models/clip_vision as core's CLIP_VISION type, sized from "
                        "its weights. Core's own loader knows only ViT-L/H/G (and SigLIP/DINOv2); MCDM needs "
                        "CLIP ViT-B/32 (openai/clip-vit-base-patch32, 50 tokens of 768). transformers "
                        "('vision_model.*') and OpenAI ('visual.*') layouts.",
            inputs=[io.Combo.Input("clip_name", options=model_files("clip_vision") or [NO_MODEL],
                                   tooltip="A CLIP vision .safetensors in models/clip_vision, e.g. "
                                           "clip-vit-base-patch32's model.safetensors renamed.")],
            outputs=[io.ClipVision.Output(display_name="clip_vision",
                                          tooltip="A native CLIP_VISION (works with core's CLIP Vision Encode).")],
        )

    @classmethod
    def execute(cls, clip_name) -> io.NodeOutput:
        from ._portrait_native import load_clip_vision

        if clip_name == NO_MODEL:
            raise InputError("No CLIP vision file in models/clip_vision: add CLIP ViT-B/32 and refresh the page.")
        return io.NodeOutput(load_clip_vision(resolve_file("clip_vision", clip_name)))


def _with_tokens(conditioning, tokens, concat_latent=None):
    """Each entry's cross-attention tokens followed by ``tokens`` (combine_type 'concat')."""
    out = []
    for cond, extras in conditioning:
        cond = cond.to(tokens)
        if cond.shape[0] != tokens.shape[0]:
            cond = cond[:1].expand(tokens.shape[0], -1, -1)
        extras = {k: v for k, v in extras.items() if k != "concat_latent_image"}
        if concat_latent is not None:
            extras["concat_latent_image"] = concat_latent
        out.append([torch.cat([cond, tokens], dim=1), extras])
    return out


def _image_embedding(images, vae, clip_vision, adapter):
    """c_im for [B, H, W, 3] images: adapter(CLIP tokens, scaled VAE latent), both of the image at 512x512."""
    import comfy.utils

    square = comfy.utils.common_upscale(images.movedim(-1, 1), ADAPTER_IMAGE_SIDE, ADAPTER_IMAGE_SIDE, "bicubic",
                                        "disabled").movedim(1, -1).clamp(0, 1)
    tokens = clip_vision.encode_image(square, crop=True)["last_hidden_state"]
    latent = vae.encode(square) * SD15_LATENT_SCALE
    device = load_models(adapter)
    with torch.no_grad():
        return adapter(tokens.to(device, torch.float32), latent.to(device, torch.float32)).to(output_device())


class RecomposePortraitConditioning(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="RecomposePortraitConditioning",
            display_name="Portrait Editing Conditioning (MCDM)",
            category=CATEGORY,
            description="Builds MCDM's conditionings for an input portrait x_A (thesis 5.2.3): the image "
                        "embedding c_im = adapter([CLIP ViT-B/32 tokens (50), pooled VAE latent]) is appended to "
                        "the text tokens (combine_type 'concat'), and the spatial input c_s = E(x_A) goes in as "
                        "concat_latent_image. Outputs the branches of eq. 5.1 (null image = a black image, as "
                        "in the official code) and E(x_A) as a latent.",
            inputs=[
                io.Conditioning.Input("positive", tooltip="Target prompt p_b, e.g. 'a man, cute flower costume'."),
                io.Conditioning.Input("reconstruction", tooltip="Source prompt p_a for the editing mask and "
                                                                "mask guidance, e.g. 'a man, normal costume'."),
                io.Conditioning.Input("negative", tooltip="The empty prompt (the null text of eq. 5.1)."),
                io.Image.Input("image", tooltip="The portrait to edit (512x512 in the thesis; the adapter "
                                                "always sees it resized to 512x512)."),
                io.Vae.Input("vae", tooltip="The SD1.5 VAE of the base model (realistic-vision-v13)."),
                io.ClipVision.Input("clip_vision", tooltip="CLIP ViT-B/32, from 'Load CLIP Vision (config from "
                                                           "weights)'."),
                AdapterType.Input("adapter", tooltip="From 'Load MCDM'."),
            ],
            outputs=[
                io.Conditioning.Output(display_name="positive", tooltip="{c_s, c_im, c_pb}: all conditions."),
                io.Conditioning.Output(display_name="reconstruction", tooltip="{c_s, c_im, c_pa}."),
                io.Conditioning.Output(display_name="image_condition", tooltip="{c_s, c_im}: null text."),
                io.Conditioning.Output(display_name="embedding_condition", tooltip="{c_im}: null text, no c_s."),
                io.Conditioning.Output(display_name="negative", tooltip="{}: null text, black-image c_im, no c_s."),
                io.Latent.Output(display_name="latent", tooltip="E(x_A): the source latent, for the editing mask "
                                                               "and the sampler."),
            ],
        )

    @classmethod
    def execute(cls, positive, reconstruction, negative, image, vae, clip_vision, adapter) -> io.NodeOutput:
        image = image[..., :3]
        with torch.no_grad():
            c_im = _image_embedding(image, vae, clip_vision, adapter)
            c_null = _image_embedding(torch.zeros_like(image[:1]), vae, clip_vision, adapter).expand_as(c_im)
        source = vae.encode(image)
        c_s = source * SD15_LATENT_SCALE
        return io.NodeOutput(_with_tokens(positive, c_im, c_s), _with_tokens(reconstruction, c_im, c_s),
                             _with_tokens(negative, c_im, c_s), _with_tokens(negative, c_im),
                             _with_tokens(negative, c_null), {"samples": source})


def _mask_inputs():
    return [
        io.Mask.Input("mask", optional=True, tooltip="Editing mask (1 = may change), e.g. from 'Editing Mask'. "
                                                     "Without it the guider does no mask guidance."),
        io.Combo.Input("mask_mode", options=MASK_MODES, default="noise (thesis)", tooltip=MASK_MODE_TOOLTIP),
    ]


def _check_mask_inputs(node: str, mask, mask_mode, reconstruction):
    choice(mask_mode, MASK_MODES, node, "mask_mode")
    if mask is not None and mask_mode.startswith("noise") and reconstruction is None:
        raise InputError(f"{node}: mask mode 'noise (thesis)' needs the 'reconstruction' conditioning (prompt "
                         "p_a); connect it or pick 'latent (official)'.")


def _guider_schema(node_id: str, display_name: str, description: str, model_tooltip: str, conditionings: dict,
                   settings: list, output_tooltip: str = "For core's SamplerCustomAdvanced.") -> io.Schema:
    """What every guider here is: a MODEL, the named CONDITIONING inputs ({name: tooltip}), its own settings after
    them, and one GUIDER out."""
    return io.Schema(
        node_id=node_id, display_name=display_name, category=CATEGORY, description=description,
        inputs=[io.Model.Input("model", tooltip=model_tooltip),
                *(io.Conditioning.Input(name, tooltip=tip) for name, tip in conditionings.items()), *settings],
        outputs=[io.Guider.Output(display_name="guider", tooltip=output_tooltip)],
    )


def _scale(name: str, default: float, tooltip: str, most: float, step: float):
    return io.Float.Input(name, default=default, min=0.0, max=most, step=step, tooltip=tooltip)


def _cfg_input(default: float, tooltip: str):
    return _scale("cfg", default, tooltip, 100.0, 0.1)


class RecomposePortraitGuider(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        s1, s2, s3 = guidance.DEMO_SCALES
        t1, t2, t3 = guidance.THESIS_SCALES
        thesis = f" Defaults follow the official demo for the released weights; the thesis uses {t1:g}/{t2:g}/{t3:g}."
        return _guider_schema(
            "RecomposePortraitGuider", "Multi-Condition Guider (MCDM, eq. 5.1)",
            "Classifier-free guidance nested over MCDM's three signals (thesis eq. 5.1): "
            "eps(0) + s1 (eps(c_im) - eps(0)) + s2 (eps(c_im, c_s) - eps(c_im)) + s3 (eps(all) - "
            "eps(c_im, c_s)); all branches in one batch. With a mask, mask-guided editing (5.2.4). "
            "Run it with core's SamplerCustomAdvanced (official: uni_pc, 20 steps)." + thesis,
            "The MCDM from 'Load MCDM'.",
            {"positive": "'positive' of 'Portrait Editing Conditioning'.",
             "image_condition": "'image_condition' ({c_s, c_im}).",
             "embedding_condition": "'embedding_condition' ({c_im}).",
             "negative": "'negative' (no condition)."},
            [_scale("s1", s1, f"Image-embedding scale (demo {s1:g}, thesis {t1:g}).", 30.0, 0.1),
             _scale("s2", s2, f"Spatial-input scale (demo {s2:g}, thesis {t2:g}).", 30.0, 0.1),
             _scale("s3", s3, f"Text scale (demo {s3:g}, thesis {t3:g}).", 30.0, 0.1),
             io.Conditioning.Input("reconstruction", optional=True,
                                   tooltip="'reconstruction' ({c_s, c_im, c_pa}), for mask mode 'noise'."),
             *_mask_inputs()],
        )

    @classmethod
    def execute(cls, model, positive, image_condition, embedding_condition, negative, s1, s2, s3,
                reconstruction=None, mask=None, mask_mode="noise (thesis)") -> io.NodeOutput:
        from ._portrait_native import MultiConditionGuider

        _check_mask_inputs("Multi-Condition Guider", mask, mask_mode, reconstruction)
        guider = MultiConditionGuider(model)
        guider.set_branches(positive=positive, image=image_condition, embedding=embedding_condition,
                            negative=negative, reconstruction=reconstruction if mask is not None else None)
        guider.scales = (s1, s2, s3)
        guider.set_mask(mask, mask_mode)
        return io.NodeOutput(guider)


class RecomposeMaskGuidedGuider(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return _guider_schema(
            "RecomposeMaskGuidedGuider", "Mask-Guided Guider (any model)",
            "Mask-guided editing over any native model (thesis 5.2.4): CFG with the target and with "
            "the reconstruction prompt, combined as eps(target) * M + eps(reconstruction) * (1 - M), "
            "or the official latent form. All branches in one batch.",
            "Any native diffusion model (SD1.5, SDXL, MCDM...).",
            {"positive": "Target prompt p_b.", "reconstruction": "Source / reconstruction prompt p_a.",
             "negative": "Negative prompt."},
            [_cfg_input(7.5, "CFG scale per prompt."),
             io.Mask.Input("mask", tooltip="Editing mask (1 = may change)."),
             io.Combo.Input("mask_mode", options=MASK_MODES, default="noise (thesis)", tooltip=MASK_MODE_TOOLTIP)],
        )

    @classmethod
    def execute(cls, model, positive, reconstruction, negative, cfg, mask, mask_mode) -> io.NodeOutput:
        from ._portrait_native import MaskGuidedGuider

        choice(mask_mode, MASK_MODES, "Mask-Guided Guider", "mask_mode")
        guider = MaskGuidedGuider(model)
        guider.set_branches(positive=positive, reconstruction=reconstruction, negative=negative)
        guider.set_cfg(cfg)
        guider.set_mask(mask, mask_mode)
        return io.NodeOutput(guider)


class RecomposeEditingMask(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="RecomposeEditingMask",
            display_name="Editing Mask (DiffEdit-style, thesis 5.5.3)",
            category=CATEGORY,
            description="Where an edit changes the image: the latent is noised to a step, denoised one step with "
                        "the target and with the reconstruction conditioning, and M = N(|difference|) > threshold "
                        "(N: normalise to 0..1, Gaussian blur kernel 5), averaged over several noise draws, all in "
                        "one batch. Works on MCDM (its reconstruction ability gives precise masks) and, "
                        "training-free, on any native SD/SDXL model.",
            inputs=[
                io.Model.Input("model", tooltip="MCDM or any native diffusion model."),
                io.Conditioning.Input("target", tooltip="Target conditioning (p_b; MCDM: 'positive')."),
                io.Conditioning.Input("reconstruction", tooltip="Reconstruction conditioning (p_a)."),
                io.Latent.Input("latent", tooltip="The source latent E(x_A)."),
                io.Int.Input("draws", default=mask_maths.DEFAULT_SEEDS, min=1, max=64,
                             tooltip="Noise draws averaged (10 in the thesis, after DiffEdit)."),
                io.Int.Input("seed", default=0, min=0, max=0xFFFFFFFFFFFFFFFF, control_after_generate=True,
                             tooltip="Draw i uses seed + i."),
                io.Int.Input("steps", default=20, min=1, max=1000, tooltip="Schedule length (thesis: 20)."),
                io.Int.Input("noise_steps", default=10, min=1, max=1000,
                             tooltip="How far into the schedule the latent is noised (thesis: 10 of 20)."),
                io.Float.Input("threshold", default=mask_maths.THRESHOLD_COSTUME, min=0.0, max=1.0, step=0.01,
                               tooltip=f"lambda: {mask_maths.THRESHOLD_COSTUME} for costumes, "
                                       f"{mask_maths.THRESHOLD_CARTOON} for cartoon expressions (thesis)."),
            ],
            outputs=[
                io.Mask.Output(display_name="mask", tooltip="Binary editing mask at image resolution (1 = edit)."),
                io.Mask.Output(display_name="soft_mask", tooltip="The averaged N(|difference|) before "
                                                                 "thresholding, at image resolution."),
            ],
        )

    @classmethod
    def execute(cls, model, target, reconstruction, latent, draws, seed, steps, noise_steps,
                threshold) -> io.NodeOutput:
        from ._portrait_native import editing_mask, mask_sigma

        if noise_steps > steps:
            raise InputError(f"Editing Mask: noise_steps ({noise_steps}) must not exceed steps ({steps}).")
        samples = latent["samples"]
        sigma = mask_sigma(model, steps, noise_steps)
        soft, binary = editing_mask(model, target, reconstruction, samples, sigma,
                                    [seed + i for i in range(draws)], threshold)
        return io.NodeOutput(_to_pixels(binary), _to_pixels(soft))


def _to_pixels(mask):
    return torch.nn.functional.interpolate(mask.unsqueeze(1), scale_factor=LATENT_TO_PIXELS,
                                           mode="nearest").squeeze(1).to(output_device())


NO_IDENTITY = "(none)"


def _encode(clip, text):
    return clip.encode_from_tokens_scheduled(clip.tokenize(text))


class RecomposePairPrompts(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        from ..pipelines.portrait_edit import pairs

        return io.Schema(
            node_id="RecomposePairPrompts",
            display_name="Pair Prompts (paired data, thesis 5.5.1)",
            category=CATEGORY,
            description="The three prompts of paired-data generation: p = 'the same [X] on the left and right', "
                        "p_a = 'a [X], [Y]', p_b = 'a [X], [Z]', encoded with the given CLIP. Optional identity "
                        "tokens c_id go right before [X] in all three, read from a textual-inversion embedding "
                        "in models/embeddings (the thesis' FFHQ identity encoder, 2 tokens of 768, is not "
                        "released; any 2-vector SD1.5 embedding works).",
            inputs=[
                io.Clip.Input("clip", tooltip="The text encoder of the SD1.5 model that generates the pairs."),
                io.String.Input("subject", default="man", tooltip="[X]: 'man' or 'woman' in the thesis."),
                io.String.Input("source", default=pairs.COSTUME_SOURCE,
                                tooltip=f"[Y]: the source domain ('{pairs.COSTUME_SOURCE}' or "
                                        f"'{pairs.EXPRESSION_SOURCE}')."),
                io.String.Input("target", default=pairs.COSTUME_TARGETS[0],
                                tooltip="[Z]: the target domain, e.g. " + ", ".join(
                                    f"'{t}'" for t in pairs.COSTUME_TARGETS + pairs.EXPRESSION_TARGETS) + "."),
                io.Combo.Input("identity_embedding", options=[NO_IDENTITY] + model_files("embeddings"),
                               default=NO_IDENTITY,
                               tooltip="Optional identity tokens c_id: a textual-inversion embedding file "
                                       "(2x768 in the thesis; its FFHQ identity encoder is not released)."),
            ],
            outputs=[
                io.Conditioning.Output(display_name="shared", tooltip="p, for the whole canvas."),
                io.Conditioning.Output(display_name="source", tooltip="p_a, for the left half (x_A)."),
                io.Conditioning.Output(display_name="target", tooltip="p_b, for the right half (x_B)."),
                io.String.Output(display_name="source_prompt", tooltip="p_a as text (prompt.json's source)."),
                io.String.Output(display_name="target_prompt", tooltip="p_b as text (prompt.json's target)."),
            ],
        )

    @classmethod
    def execute(cls, clip, subject, source, target, identity_embedding) -> io.NodeOutput:
        from ..pipelines.portrait_edit.pairs import pair_prompts

        _, text_a, text_b = pair_prompts(subject, source, target)  # prompt.json keeps the plain words
        if identity_embedding != NO_IDENTITY:
            resolve_file("embeddings", identity_embedding)  # refuses names outside the folder
            # core's prompt syntax for textual-inversion tokens; the thesis puts c_id right before [X]
            subject = f"embedding:{os.path.splitext(identity_embedding)[0]} {subject.strip()}"
        shared, p_a, p_b = pair_prompts(subject, source, target)
        return io.NodeOutput(_encode(clip, shared), _encode(clip, p_a), _encode(clip, p_b), text_a, text_b)


class RecomposePairGuider(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        from ..pipelines.portrait_edit import pairs

        return _guider_schema(
            "RecomposePairGuider", "Paired-Data Guider (eq. 5.2)",
            "Denoises a side-by-side canvas [x_A | x_B] once (thesis eq. 5.2): s'_d eps~(p) + "
            "s'_a M'_a eps~(p_a) + s'_b M'_b eps~(p_b), M'_a / M'_b the left / right halves, each eps~ "
            "CFG-guided; all branches in one batch. Poses come through the conditionings (core's "
            "ControlNet Apply with an OpenPose ControlNet on a [pose | pose] canvas).",
            "A native SD1.5 model (RealisticVision in the thesis).",
            {"shared": "p: 'the same [X] on the left and right'.", "source": "p_a: 'a [X], [Y]' (left half).",
             "target": "p_b: 'a [X], [Z]' (right half).",
             "negative": "Negative prompt of the CFG of each prediction."},
            [_cfg_input(pairs.GUIDANCE_SCALE, f"CFG scale of each prediction ({pairs.GUIDANCE_SCALE} in the thesis)."),
             _scale("s_d", pairs.SHARED_SCALE, f"s'_d, weight of the shared prompt ({pairs.SHARED_SCALE} in the "
                                               "thesis).", 2.0, 0.01),
             _scale("s_a", pairs.SIDE_SCALE, f"s'_a, weight of p_a on the left ({pairs.SIDE_SCALE}).", 2.0, 0.01),
             _scale("s_b", pairs.SIDE_SCALE, f"s'_b, weight of p_b on the right ({pairs.SIDE_SCALE}).", 2.0, 0.01)],
            "For core's SamplerCustomAdvanced on a latent twice as wide as high.",
        )

    @classmethod
    def execute(cls, model, shared, source, target, negative, cfg, s_d, s_a, s_b) -> io.NodeOutput:
        from ._portrait_native import PairGuider

        guider = PairGuider(model)
        guider.set_branches(shared=shared, source=source, target=target, negative=negative)
        guider.set_cfg(cfg)
        guider.side_scales = (s_d, s_a, s_b)
        return io.NodeOutput(guider)


class RecomposeSplitPair(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="RecomposeSplitPair",
            display_name="Split Pair Canvas",
            category=CATEGORY,
            description="Cuts a side-by-side canvas [x_A | x_B] into the training pair (thesis 5.2.2).",
            inputs=[io.Image.Input("canvas", tooltip="Decoded canvas, twice as wide as high.")],
            outputs=[io.Image.Output(display_name="source", tooltip="x_A, the left half (train/condition)."),
                     io.Image.Output(display_name="target", tooltip="x_B, the right half (train/gt).")],
        )

    @classmethod
    def execute(cls, canvas) -> io.NodeOutput:
        from ..pipelines.portrait_edit.pairs import split_canvas

        return io.NodeOutput(*split_canvas(canvas))


NODES = [RecomposePortraitMCDMLoader, RecomposeCLIPVisionLoader, RecomposePortraitConditioning,
         RecomposePortraitGuider, RecomposeMaskGuidedGuider, RecomposeEditingMask, RecomposePairPrompts,
         RecomposePairGuider, RecomposeSplitPair]
