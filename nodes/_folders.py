"""Model folders of the pack, registered under ComfyUI's models/ directory.

Standard files reuse core folders (checkpoints, diffusers, controlnet, clip_vision,
vae); thesis-specific weights live under models/recompose/<family>/.
"""
import os

import folder_paths

# folder name used with folder_paths -> sub-folder of models/
PACK_FOLDERS = {
    "recompose_selfie": "recompose/selfie",
    "recompose_face": "recompose/face",
    "recompose_fitcheck": "recompose/fitcheck",
    "recompose_motion": "recompose/motion",
    "recompose_portrait": "recompose/portrait",
    "recompose_painting": "recompose/painting",
    "recompose_aligntok": "recompose/aligntok",
    "recompose_lpips": "lpips",  # LPIPS backbones (torchvision AlexNet/VGG16 state dicts), not pack-specific
}
WEIGHT_EXTENSIONS = {".safetensors", ".pth", ".pt", ".ckpt", ".bin", ".tar", ".json", ".yaml"}


def register_model_folders() -> None:
    for name, sub in PACK_FOLDERS.items():
        path = os.path.join(folder_paths.models_dir, *sub.split("/"))
        folder_paths.add_model_folder_path(name, path, is_default=True)
        _, exts = folder_paths.folder_names_and_paths[name]
        exts.update(WEIGHT_EXTENSIONS)


def folder_path_for(name: str) -> str:
    """The first registered path of a folder, for messages and for saving."""
    return folder_paths.get_folder_paths(name)[0]
