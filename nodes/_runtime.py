"""What every adapter needs from ComfyUI: progress + cancel, devices, model files, safe paths."""
import contextlib
import os
import re
import weakref

import comfy.model_management as mm
import comfy.model_patcher
import comfy.utils
import folder_paths
import torch

from PIL import Image

from ..pipelines.common import CheckpointFormatError, InputError, Progress
from ..pipelines.common.images import image_to_pils

from ._folders import folder_path_for
from ._sources import source_of


def progress(total: int) -> Progress:
    """A Progress wired to ComfyUI's bar; every step is also a cancel point."""
    bar = comfy.utils.ProgressBar(max(int(total), 1))

    def report(done, total_steps, preview):
        mm.throw_exception_if_processing_interrupted()
        bar.update_absolute(done, total_steps, _preview(preview))

    return Progress(total, report)


@contextlib.contextmanager
def cancellable():
    """Inside, every torch module call is a cancel point: set-up and finishing phases that are one big
    call between progress steps (VAE encode/decode, image encoders, a full-size UNet step on CPU) then
    react to /interrupt within one layer instead of after the whole call. The hook is global (it also
    covers copies a node makes of its models) and removed on exit, so other packs' nodes are untouched."""
    handle = torch.nn.modules.module.register_module_forward_pre_hook(_cancel_point)
    try:
        yield
    finally:
        handle.remove()


def _cancel_point(_module, _args):
    mm.throw_exception_if_processing_interrupted()


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
    mm.throw_exception_if_processing_interrupted()  # loading can take seconds: a cancel point right after
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


def choice(value, options, node: str, input_name: str):
    """``value`` if it is one of ``options``; ComfyUI 0.3.75 does not check V3 combo values against their
    options, so every enum-like input is checked here instead of silently falling back to a default."""
    options = list(options)
    if value not in options:
        raise InputError(f"{node}: '{input_name}' must be one of {', '.join(repr(o) for o in options)}; "
                         f"got {value!r}. Pick one from the list.")
    return value


def model_files(folder: str) -> list[str]:
    """Dropdown entries for weight files in a registered folder."""
    return folder_paths.get_filename_list(folder)


def model_dirs(folder: str, marker: str) -> list[str]:
    """Dropdown entries for model folders (diffusers layout) holding ``marker`` at any depth."""
    found = set()
    for root in folder_paths.get_folder_paths(folder):
        if not os.path.isdir(root):
            continue
        for here, dirs, files in os.walk(root, followlinks=True):
            dirs[:] = [d for d in dirs if stays_inside(root, os.path.join(here, d))]  # links out are refused
            if marker in files:
                found.add(os.path.relpath(here, root).replace(os.sep, "/"))
    return sorted(found)


def stays_inside(root: str, path: str) -> bool:
    real_root = os.path.realpath(root)
    return os.path.commonpath([real_root, os.path.realpath(path)]) == real_root


def safe_join(root: str, name: str, input_name: str, where: str = "") -> str:
    """``root/name`` for a name a user typed or picked, refused (InputError naming the input and the
    folder) when it would leave ``root``: absolute paths, '~', '..' parts, and links whose target lies
    outside. ComfyUI 0.3.75 does not check V3 combo values against their options, so every string that
    becomes a path comes through here. Messages name the input, never the contents of any file."""
    where = where or f"the folder '{root}'"
    parts = [p for p in re.split(r"[\\/]+", name) if p not in ("", ".")] if isinstance(name, str) else []
    if not parts or "\0" in name:
        raise InputError(f"'{input_name}' is empty or not a name: give a name inside {where}.")
    if os.path.isabs(name) or name.startswith(("~", "\\")) or re.match(r"[A-Za-z]:", name) or ".." in parts:
        raise InputError(f"'{input_name}' must name something inside {where}; '{name}' is refused (no absolute "
                         "paths, '~' or '..'). Put the file there and pick it from the list.")
    path = os.path.join(root, *parts)
    if not stays_inside(root, path):
        raise InputError(f"'{input_name}': '{name}' is a link that leads outside {where}; links out of the folder "
                         "are refused. Copy the file into the folder instead.")
    return path


def input_path(name: str, input_name: str) -> str:
    """A path inside ComfyUI's input folder (see safe_join); a trailing ' [input]' annotation is dropped."""
    if isinstance(name, str) and name.endswith(" [input]"):
        name = name[:-len(" [input]")]
    root = folder_paths.get_input_directory()
    return safe_join(root, name, input_name, f"ComfyUI's input folder ({root})")


def _in_folders(folder: str, name: str, input_name: str, exists) -> str | None:
    """The first registered root of ``folder`` where root/name passes ``exists`` (names checked by safe_join)."""
    for root in folder_paths.get_folder_paths(folder):
        path = safe_join(root, name, input_name or folder, f"the '{folder}' model folder ({root})")
        if exists(path):
            return path
    return None


def resolve_file(folder: str, name: str, input_name: str = "") -> str:
    return _resolve(folder, name, input_name, os.path.isfile, "Weight file not found")


def resolve_dir(folder: str, name: str, input_name: str = "") -> str:
    return _resolve(folder, name, input_name, os.path.isdir, "Model folder not found")


def _resolve(folder: str, name: str, input_name: str, exists, missing: str) -> str:
    path = _in_folders(folder, name, input_name, exists)
    if path is None:
        raise CheckpointFormatError(os.path.join(folder_path_for(folder), name), missing,
                                    hint=_put_hint(folder, name))
    return path


def save_path(folder: str, name: str, input_name: str) -> str:
    """Where a node saves ``name`` in a model folder (its first registered root), checked by safe_join."""
    root = folder_path_for(folder)
    return safe_join(root, name, input_name, f"the '{folder}' model folder ({root})")


def _put_hint(folder: str, name: str) -> str:
    """'Put FILE (from WHERE) into FOLDER': the user's next step when a model is missing."""
    source = source_of(folder, name)
    where = f" (from {source})" if source else ""
    return f"Put {name}{where} into {folder_path_for(folder)} (ComfyUI model folder '{folder}') and refresh the page."
