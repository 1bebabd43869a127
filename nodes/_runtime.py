"""What every adapter needs from ComfyUI: progress + cancel, devices, model files."""
import os

import comfy.model_management as mm
import comfy.utils
import folder_paths

from PIL import Image

from ..pipelines.common import CheckpointFormatError, Progress
from ..pipelines.common.images import image_to_pils

from ._folders import folder_path_for


def progress(total: int) -> Progress:
    """A Progress wired to ComfyUI's bar; every step is also a cancel point."""
    bar = comfy.utils.ProgressBar(max(int(total), 1))

    def report(done, total_steps, preview):
        mm.throw_exception_if_processing_interrupted()
        bar.update_absolute(done, total_steps, _preview(preview))

    return Progress(total, report)


def _preview(image):
    """Pipelines hand over an IMAGE tensor or a PIL image; the bar wants (format, PIL, max size)."""
    if image is None:
        return None
    if not isinstance(image, Image.Image):
        image = image_to_pils(image[:1])[0]
    return ("JPEG", image, 512)


def torch_device():
    return mm.get_torch_device()


def output_device():
    """Where node outputs (IMAGE, MASK...) are kept between nodes."""
    return mm.intermediate_device()


def model_dtype(device=None):
    return mm.unet_dtype(device=device)


def model_files(folder: str) -> list[str]:
    """Dropdown entries for weight files in a registered folder."""
    return folder_paths.get_filename_list(folder)


def model_dirs(folder: str, marker: str) -> list[str]:
    """Dropdown entries for model folders (diffusers layout) holding ``marker`` at any depth."""
    found = set()
    for root in folder_paths.get_folder_paths(folder):
        if not os.path.isdir(root):
            continue
        for here, _dirs, files in os.walk(root, followlinks=True):
            if marker in files:
                found.add(os.path.relpath(here, root).replace(os.sep, "/"))
    return sorted(found)


def resolve_file(folder: str, name: str) -> str:
    path = folder_paths.get_full_path(folder, name)
    if path is None:
        raise CheckpointFormatError(os.path.join(folder_path_for(folder), name), "Weight file not found",
                                    hint=f"Put it into the '{folder}' model folder and refresh the page.")
    return path


def resolve_dir(folder: str, name: str) -> str:
    for root in folder_paths.get_folder_paths(folder):
        path = os.path.join(root, name)
        if os.path.isdir(path):
            return path
    raise CheckpointFormatError(os.path.join(folder_path_for(folder), name), "Model folder not found",
                                hint=f"Put the folder into the '{folder}' model folder and refresh the page.")
