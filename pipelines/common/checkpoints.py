"""Safe checkpoint loading and key remapping.

safetensors are read directly; pickles only with ``torch.load(weights_only=True)``.
Every failure names the file, its folder and the keys that were expected.
"""
import os
from typing import Iterable, Mapping

import torch

from .errors import CheckpointFormatError

PICKLE_SUFFIXES = (".pth", ".pt", ".ckpt", ".bin", ".tar")


def load_state_dict(path: str, device: str = "cpu", mmap: bool = False) -> dict:
    """Load a flat or nested checkpoint dict from safetensors or a (safe) pickle. ``mmap``: map a zip-format
    pickle instead of reading it (tensors are paged in when used; old-format files are read as before)."""
    path = str(path)
    if not os.path.isfile(path):
        raise CheckpointFormatError(path, "Weight file not found", hint="Put the file in that folder or pick another.")
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file

        try:
            return load_file(path, device=device)
        except Exception as exc:  # safetensors raises several types for corrupt headers
            raise CheckpointFormatError(path, f"Not a readable safetensors file ({exc})") from exc
    if path.endswith(PICKLE_SUFFIXES):
        try:
            if mmap:
                try:
                    return torch.load(path, map_location=device, weights_only=True, mmap=True)
                except RuntimeError as exc:  # only zip-format files can be mapped
                    if "mmap" not in str(exc):
                        raise
            return torch.load(path, map_location=device, weights_only=True)
        except Exception as exc:
            raise CheckpointFormatError(
                path,
                f"Could not load the checkpoint with weights_only=True ({type(exc).__name__}: {str(exc)[:200]})",
                hint="Only plain tensor checkpoints are loaded; convert others to safetensors.",
            ) from exc
    raise CheckpointFormatError(path, "Unknown weight file type", hint="Use .safetensors or .pth/.ckpt.")


def strip_prefix(state_dict: Mapping[str, torch.Tensor], prefix: str) -> dict:
    """Remove ``prefix`` from every key that has it (e.g. DDP's ``module.``)."""
    n = len(prefix)
    return {(k[n:] if k.startswith(prefix) else k): v for k, v in state_dict.items()}


def sub_dict(state_dict: Mapping[str, torch.Tensor], prefix: str) -> dict:
    """The entries under ``prefix`` with the prefix removed."""
    n = len(prefix)
    return {k[n:]: v for k, v in state_dict.items() if k.startswith(prefix)}


def require_keys(container: Mapping, keys: Iterable[str], path: str, what: str) -> None:
    """Raise a CheckpointFormatError naming the missing top-level keys."""
    keys = list(keys)
    missing = [k for k in keys if k not in container]
    if missing:
        raise CheckpointFormatError(
            path,
            f"This is not a {what} checkpoint (missing {', '.join(missing)})",
            expected=keys,
        )


def load_into(module: torch.nn.Module, state_dict: Mapping[str, torch.Tensor], path: str, what: str,
              allow_missing: Iterable[str] = (), assign: bool = False) -> None:
    """Strict load with a readable error; ``allow_missing`` lists key prefixes that may stay at init.
    ``assign``: the module takes the given tensors instead of copying them (for modules built on the meta device)."""
    expected = module.state_dict()
    allow = tuple(allow_missing)
    missing = [k for k in expected if k not in state_dict and not k.startswith(allow)]
    unexpected = [k for k in state_dict if k not in expected]
    wrong = [k for k, v in state_dict.items() if k in expected and tuple(v.shape) != tuple(expected[k].shape)]
    if missing or unexpected or wrong:
        details = []
        if missing:
            details.append(f"{len(missing)} missing (e.g. {missing[0]})")
        if unexpected:
            details.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
        if wrong:
            k = wrong[0]
            details.append(f"{len(wrong)} of another shape (e.g. {k}: {tuple(state_dict[k].shape)} vs {tuple(expected[k].shape)})")
        raise CheckpointFormatError(path, f"Weights do not fit the {what}: {'; '.join(details)}", expected=list(expected))
    module.load_state_dict(state_dict, strict=False, assign=assign)
