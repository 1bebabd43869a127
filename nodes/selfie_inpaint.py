"""Total Selfie selfie-conditioned inpainting (thesis 3.2.1, 3.5.4): loaders for Paint-by-Example-layout
folders and ControlNets, and the inpainting node (four selfies -> a full-body person in the background).
Custom types RECOMPOSE_SELFIE_PIPE and RECOMPOSE_SELFIE_CONTROLNET carry diffusers models."""
import os

from comfy_api.latest import io

from ..pipelines.common.errors import InputError
from ._runtime import (cancellable, choice, load_models, load_placement, model_dirs, model_files, output_device,
                       progress, resolve_dir, resolve_file)
from ._types import SelfiePipeType

CATEGORY = "Recompose/Total Selfie"
NO_MODEL = "(none found)"
SelfieControlNetType = io.Custom("RECOMPOSE_SELFIE_CONTROLNET")
SCHEDULER_CHOICES = ["default", "pndm", "ddim", "euler", "dpmpp_2m"]
CONTROLNET_FILE_EXT = (".safetensors", ".pth", ".pt", ".ckpt", ".bin")


def _pipeline_folders() -> list:
    """diffusers folders that have an image encoder (Paint-by-Example layout)."""
    found = [d for d in model_dirs("diffusers", "model_index.json")
             if os.path.isfile(os.path.join(resolve_dir("diffusers", d), "image_encoder", "config.json"))]
    found.sort(key=lambda d: ("selfie" not in d.lower(), d))
    return found or [NO_MODEL]


def _controlnets() -> list:
    """diffusers ControlNet folders, then single files that are not part of such a folder."""
    folders = model_dirs("controlnet", "config.json")
    files = [f for f in model_files("controlnet") if f.lower().endswith(CONTROLNET_FILE_EXT)
             and os.path.dirname(f).replace(os.sep, "/") not in folders]
    return folders + files or [NO_MODEL]


class RecomposeSelfieInpaintLoader(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="RecomposeSelfieInpaintLoader",
            display_name="Load Selfie Inpainting Model (Total Selfie)",
            category=CATEGORY,
            description="Loads a Paint-by-Example-layout diffusers folder from models/diffusers: Total Selfie's "
                        "pbe_selfie2full (the four selfies fused into one token by its 4x1024 -> 768 proj_out) or a "
                        "plain Paint-by-Example folder (training-free: the four selfies as four tokens). The mode is "
                        "read from the image encoder's weights.",
            inputs=[
                io.Combo.Input("model", options=_pipeline_folders(),
                               tooltip="Folder in models/diffusers with model_index.json, unet/ (9 input "
                                       "channels), vae/, scheduler/ and image_encoder/ (e.g. pbe_selfie2full)."),
            ],
            outputs=[
                SelfiePipeType.Output(display_name="selfie_pipe",
                                      tooltip="The selfie-conditioned inpainting model, for 'Selfie Inpaint'."),
                io.String.Output(display_name="mode", tooltip="Which conditioning the folder supports."),
            ],
        )

    @classmethod
    def execute(cls, model) -> io.NodeOutput:
        from ..pipelines.selfie_inpaint.loader import load_selfie_pipeline

        device, dtype = load_placement()
        pipe = load_selfie_pipeline(resolve_dir("diffusers", model, "model"), device=device, dtype=dtype)
        return io.NodeOutput(pipe, pipe.describe())


class RecomposeSelfieControlNetLoader(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="RecomposeSelfieControlNetLoader",
            display_name="Load ControlNet for Selfie Inpainting",
            category=CATEGORY,
            description="Loads an SD1.5 ControlNet as a diffusers model for 'Selfie Inpaint', which feeds it the "
                        "selfie embedding instead of text (Total Selfie's modified ControlNet; the thesis uses the "
                        "Canny ControlNet on edges of the reference photo's parsing map). Diffusers folders and "
                        "single .safetensors/.pth files (read with the SD1.5 config shipped in the pack) work.",
            inputs=[
                io.Combo.Input("controlnet", options=_controlnets(),
                               tooltip="A diffusers ControlNet folder or an SD1.5 ControlNet file in "
                                       "models/controlnet (e.g. control_v11p_sd15_canny.pth)."),
            ],
            outputs=[SelfieControlNetType.Output(display_name="controlnet",
                                                 tooltip="The ControlNet, for the 'controlnet' input of "
                                                         "'Selfie Inpaint'.")],
        )

    @classmethod
    def execute(cls, controlnet) -> io.NodeOutput:
        from ..pipelines.selfie_inpaint.controlnet import load_controlnet

        device, dtype = load_placement()
        folders = model_dirs("controlnet", "config.json")
        path = (resolve_dir("controlnet", controlnet, "controlnet") if controlnet in folders
                else resolve_file("controlnet", controlnet, "controlnet"))
        return io.NodeOutput(load_controlnet(path, device=device, dtype=dtype))


class RecomposeSelfieInpaint(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="RecomposeSelfieInpaint",
            display_name="Selfie Inpaint (Total Selfie)",
            category=CATEGORY,
            description="Paints the person of four selfies (face, upper body, lower body, shoes) into the "
                        "background inside the mask (Total Selfie, thesis 3.2). Paint-by-Example sampling with the "
                        "selfie embedding as context; an optional ControlNet gets the same embedding in place of "
                        "text (pose/shape guidance); during the early steps (t > sT, eq. 3.4) everything outside "
                        "the dilated person mask is reset to the noised background. Thesis defaults: 50 steps, "
                        "cfg 5 without control, cfg 3 with the Canny ControlNet at 1.0, dilation 21 px, s = 0.4.",
            inputs=[
                SelfiePipeType.Input("selfie_pipe", tooltip="From 'Load Selfie Inpainting Model'."),
                io.Image.Input("background", tooltip="The scene to put the person into (sides multiple of 64 "
                                                     "for SD1.5 models; 512x512 in the thesis)."),
                io.Mask.Input("mask", tooltip="Where to inpaint (1 = generate): the reference person's box grown "
                                              "x1.1, e.g. from 'Mask Box'. Same size as the background."),
                io.Image.Input("face", tooltip="Face selfie (undistorted and FFHQ-aligned works best)."),
                io.Image.Input("upper_body", tooltip="Upper-body selfie."),
                io.Image.Input("lower_body", tooltip="Lower-body selfie."),
                io.Image.Input("shoes", tooltip="Shoes selfie (cropped to the shoes)."),
                io.Int.Input("steps", default=50, min=1, max=200, tooltip="Denoising steps (50 in the thesis)."),
                io.Float.Input("cfg", default=5.0, min=1.0, max=20.0, step=0.1,
                               tooltip="Guidance scale against Paint-by-Example's 'no example' token "
                                       "(5 without control, 3 with the ControlNet in the official runs)."),
                io.Int.Input("seed", default=0, min=0, max=0xFFFFFFFFFFFFFFFF, control_after_generate=True,
                             tooltip="Seed of the initial noise."),
                io.Combo.Input("scheduler", options=SCHEDULER_CHOICES, default="default",
                               tooltip="Sampler: 'default' = the folder's own (PNDM for Paint-by-Example); DDIM is "
                                       "the thesis' choice."),
                io.Float.Input("blend_s", default=0.4, min=0.0, max=1.0, step=0.05,
                               tooltip="s of eq. 3.4: the background outside the dilated person is kept while "
                                       "t > sT, i.e. for the first (1 - s) of the steps. 0 = every step, 1 = never."),
                io.Int.Input("dilation", default=21, min=0, max=256,
                             tooltip="Pixels the person mask is grown by before blending (21 in the thesis)."),
                io.Mask.Input("person_mask", optional=True,
                              tooltip="The finer person mask (e.g. 'Person Mask + Pose' on the reference photo) "
                                      "for blending; the inpainting mask is used when not connected."),
                SelfieControlNetType.Input("controlnet", optional=True,
                                           tooltip="From 'Load ControlNet for Selfie Inpainting'."),
                io.Image.Input("control_image", optional=True,
                               tooltip="The control picture (Canny edges of the reference's parsing map, or an "
                                       "OpenPose picture); resized to the background size."),
                io.Float.Input("control_scale", default=1.0, min=0.0, max=2.0, step=0.05,
                               tooltip="ControlNet strength (1.0 in the thesis)."),
                io.Float.Input("control_start", default=0.0, min=0.0, max=1.0, step=0.01,
                               tooltip="Fraction of the steps after which the ControlNet starts."),
                io.Float.Input("control_end", default=1.0, min=0.0, max=1.0, step=0.01,
                               tooltip="Fraction of the steps after which the ControlNet stops."),
            ],
            outputs=[
                io.Image.Output(display_name="image", tooltip="The background with the generated person."),
                io.String.Output(display_name="log",
                                 tooltip="Which conditioning ran (trained 1-token or training-free 4-token, "
                                         "ControlNet or not) and the blending steps."),
            ],
        )

    @classmethod
    def execute(cls, selfie_pipe, background, mask, face, upper_body, lower_body, shoes, steps, cfg, seed,
                scheduler, blend_s, dilation, person_mask=None, controlnet=None, control_image=None,
                control_scale=1.0, control_start=0.0, control_end=1.0) -> io.NodeOutput:
        from ..pipelines.selfie_inpaint.controlnet import ControlSpec
        from ..pipelines.selfie_inpaint.pipeline import SelfieInpaintPipeline

        if not isinstance(selfie_pipe, SelfieInpaintPipeline):
            raise InputError("'selfie_pipe' must come from 'Load Selfie Inpainting Model'.")
        choice(scheduler, SCHEDULER_CHOICES, "Selfie Inpaint", "scheduler")
        if (controlnet is None) != (control_image is None):
            raise InputError("Connect both 'controlnet' and 'control_image' to guide the pose, or neither.")
        control = None if controlnet is None else ControlSpec(controlnet, control_image, control_scale,
                                                              control_start, control_end)
        load_models(selfie_pipe, controlnet)
        bar = progress(selfie_pipe.model_calls(steps, scheduler))
        with cancellable():
            image = selfie_pipe.inpaint(background, mask, [face, upper_body, lower_body, shoes],
                                        foreground_mask=person_mask, control=control, steps=steps, cfg=cfg,
                                        seed=seed, blend_s=blend_s, dilation=dilation, scheduler=scheduler,
                                        progress=bar)
        log = [selfie_pipe.describe(),
               "ControlNet: none" if control is None else
               f"ControlNet fed the selfie embedding, scale {control_scale}, steps {control_start:.2f}-{control_end:.2f}",
               f"background blending (eq. 3.4) while t > {blend_s:g}T (the first {1 - blend_s:.0%} of the steps), "
               f"person mask "
               f"{'given' if person_mask is not None else '= inpainting mask'} dilated {dilation} px"]
        return io.NodeOutput(image.to(output_device()), "\n".join(log))


NODES = [RecomposeSelfieInpaintLoader, RecomposeSelfieControlNetLoader, RecomposeSelfieInpaint]
