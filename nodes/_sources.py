"""Where the models the templates name are published: the "from WHERE" of a missing-model message.

Names are the published file or folder names (the templates use them), so a user who follows the
message ends up with exactly the file the template asks for.
"""
import posixpath

_TOTAL_SELFIE = "the Total Selfie pretrained weights (Google Drive folder linked from https://github.com/ArmastusChen/total_selfie)"
_INVERSE_PAINTING = ("the Inverse Painting pretrained models (Google Drive folder linked from "
                     "https://github.com/ArmastusChen/inverse_painting)")

_PORTRAIT = ("the portrait-editing checkpoints linked from "
             "https://github.com/bytedance/feature-preserve-portrait-editing")

SOURCES = {
    "pbe_selfie2full": _TOTAL_SELFIE,
    "00000196-checkpoint.pth.tar": _TOTAL_SELFIE,
    "Paint-by-Example": "https://huggingface.co/Fantasy-Studio/Paint-by-Example",
    "control_v11p_sd15_canny": "https://huggingface.co/lllyasviel/control_v11p_sd15_canny",
    "control_v11p_sd15_openpose": "https://huggingface.co/lllyasviel/control_v11p_sd15_openpose",
    "v1-5-pruned-emaonly.safetensors": "https://huggingface.co/stable-diffusion-v1-5/stable-diffusion-v1-5",
    "stable-video-diffusion-img2vid-xt-1-1":
        "https://huggingface.co/stabilityai/stable-video-diffusion-img2vid-xt-1-1 (the whole diffusers folder)",
    "MimicMotion_1-1.pth": "https://huggingface.co/tencent/MimicMotion",
    "MimicMotion_1.pth": "https://huggingface.co/tencent/MimicMotion",
    "checkpoint-global_step-200000.ckpt": f"{_INVERSE_PAINTING}, checkpoints/renderer/ with its config.yaml",
    "checkpoint-global_step-80000.ckpt": f"{_INVERSE_PAINTING}, checkpoints/RP/",
    "realisticVisionV51_v51VAE": f"{_INVERSE_PAINTING}, base_ckpt/",
    "clip-vit-base-patch32": f"https://huggingface.co/openai/clip-vit-base-patch32, also in {_INVERSE_PAINTING}, base_ckpt/",
    "TP_llava": f"{_INVERSE_PAINTING}, checkpoints/",
    "control_v11p_sd15_openpose.pth": "https://huggingface.co/lllyasviel/ControlNet-v1-1",
    "clip_vit_base_patch32.safetensors": ("https://huggingface.co/openai/clip-vit-base-patch32 (its model.safetensors, "
                                          "saved under this name)"),
    "unet.pth": f"{_PORTRAIT}, {{outfit,cartoon}}/checkpoint-200000/",
    "adapter.pth": f"{_PORTRAIT}, {{outfit,cartoon}}/checkpoint-200000/",
    "aligntok_f16d32.safetensors": ("no published weights: make it with `python -m pipelines.aligntok.init "
                                    "--dinov2 DINOV2_FOLDER --out aligntok_f16d32.safetensors` and train it "
                                    "(`python -m pipelines.aligntok.train`)"),
}

# For a name the table does not know (a renamed or self-made file): what belongs in that folder.
FOLDER_SOURCES = {
    "recompose_face": _TOTAL_SELFIE,
    "recompose_fitcheck": "https://huggingface.co/tencent/MimicMotion",
    "recompose_painting": _INVERSE_PAINTING,
    "recompose_selfie": "the Selfie Fine-Tune node or `python -m pipelines.selfie_finetune.train`",
    "recompose_aligntok": "`python -m pipelines.aligntok.init` (AlignTok has no published weights)",
    "recompose_motion": "the Build Motion Clip node or `python -m pipelines.motion.database build`",
    "recompose_portrait": _PORTRAIT,
}


def source_of(folder: str, name: str) -> str:
    """Where to get ``name`` (a path relative to the model folder; its last part is looked up)."""
    base = posixpath.basename(str(name).replace("\\", "/").rstrip("/"))
    return SOURCES.get(base) or FOLDER_SOURCES.get(folder, "")
