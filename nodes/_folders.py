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
# mediapipe's Tasks model files (face_landmarker.task, ...), as Google publishes them, in models/mediapipe/.
MEDIAPIPE_FOLDER = "mediapipe"
MEDIAPIPE_EXTENSIONS = {".task", ".tflite"}


def register_model_folders() -> None:
    for name, sub in PACK_FOLDERS.items():
        path = os.path.join(folder_paths.models_dir, *sub.split("/"))
        folder_paths.add_model_folder_path(name, path, is_default=True)
        _, exts = folder_paths.folder_names_and_paths[name]
        exts.update(WEIGHT_EXTENSIONS)
    register_mediapipe_folder()


def register_mediapipe_folder() -> None:
    from ..pipelines.selfie_tools.mediapipe_backends import set_model_dirs

    folder_paths.add_model_folder_path(MEDIAPIPE_FOLDER, os.path.join(folder_paths.models_dir, "mediapipe"),
                                       is_default=True)
    folder_paths.folder_names_and_paths[MEDIAPIPE_FOLDER][1].update(MEDIAPIPE_EXTENSIONS)
    # Looked up at each build, so paths added later (extra_model_paths.yaml) count too.
    set_model_dirs(lambda: folder_paths.get_folder_paths(MEDIAPIPE_FOLDER))


def folder_path_for(name: str) -> str:
    """The first registered path of a folder, for messages and for saving."""
    return folder_paths.get_folder_paths(name)[0]
