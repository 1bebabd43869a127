"""What every adapter needs from ComfyUI: progress + cancel, devices, model files."""
import os
import weakref

import comfy.model_management as mm
import comfy.model_patcher
import comfy.utils
import folder_paths
import torch

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


def offload_device():
    """Where loader nodes put models: ComfyUI moves them to the compute device when they run."""
    return mm.unet_offload_device()


def load_placement():
    """(device, dtype) for loader nodes: the offload device, in the dtype models run in on the
    compute device (float32 on CPU; ComfyUI's fp16/bf16 choice on a GPU)."""
    device = mm.get_torch_device()
    dtype = torch.float32 if device.type == "cpu" else mm.unet_dtype(device=device)
    if dtype not in (torch.float16, torch.bfloat16, torch.float32):
        dtype = torch.float16  # fp8 storage types are not compute types for these models
    return offload_device(), dtype


class _ModuleSet(torch.nn.Module):
    """A plain container, so ModelPatcher can track modules it did not build (diffusers models
    have a read-only ``device`` property, which ModelPatcher sets on the model it holds)."""

    def __init__(self, modules):
        super().__init__()
        self.parts = torch.nn.ModuleList(modules)


_PATCHERS = weakref.WeakKeyDictionary()  # loaded model object -> its ModelPatcher, dropped with it


def load_models(*owners) -> torch.device:
    """Puts the owners' torch modules on the compute device, all in one go, through
    comfy.model_management: it frees other models' memory first and offloads these when another
    model needs room. An owner is an nn.Module or an object with ``torch_modules()``; others
    (None, a painter without weights) are skipped. Call it in every execute that runs them."""
    patchers = [_patcher(owner) for owner in owners if _modules_of(owner)]
    mm.load_models_gpu(patchers)  # the manager picks full or partial loading (dynamic VRAM offload)
    for patcher in patchers:
        # plain torch modules have no comfy cast weights, so a part the manager left offloaded (or a
        # module shared with another owner that was offloaded since) must still be on the device to run
        patcher.model.to(patcher.load_device)
    return mm.get_torch_device()


def _modules_of(owner) -> list:
    if isinstance(owner, torch.nn.Module):
        return [owner]
    return [m for m in getattr(owner, "torch_modules", list)() if m is not None]


def _patcher(owner):
    patcher = _PATCHERS.get(owner)
    if patcher is None:
        patcher = comfy.model_patcher.ModelPatcher(_ModuleSet(_modules_of(owner)), load_device=mm.get_torch_device(),
                                                   offload_device=offload_device())
        _PATCHERS[owner] = patcher
    return patcher


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
