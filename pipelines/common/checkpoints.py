"""Safe checkpoint loading and key remapping.

safetensors are read directly; pickles only with ``torch.load(weights_only=True)``.
Every failure names the file, its folder and the keys that were expected.
"""
import json
import os
import pickle
from typing import Iterable, Mapping

import torch

from .errors import CheckpointFormatError

PICKLE_SUFFIXES = (".pth", ".pt", ".ckpt", ".bin", ".tar")
ZIP_TAIL = 65_536 + 22  # the zip end-of-archive record lies within this many bytes of the end


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
            raise unreadable(path, exc) from exc
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
            raise unreadable(path, exc) from exc
    raise CheckpointFormatError(path, "Unknown weight file type", hint="Use .safetensors or .pth/.ckpt.")


def unreadable(path: str, exc: Exception) -> CheckpointFormatError:
    """The error for a weight file that would not load: truncated/corrupt files are told apart from
    pickles that weights_only=True refused (torch's own explanation is kept whole, as it names the
    offending class) and from files of another format."""
    path = str(path)
    truncation = truncation_problem(path, exc)
    if truncation:
        return CheckpointFormatError(path, f"The file is truncated or corrupt ({truncation})",
                                     hint="Download or copy it again; the copy on disk is incomplete.")
    if isinstance(exc, pickle.UnpicklingError) and "weights_only" in str(exc):
        return CheckpointFormatError(path, "Refused to unpickle this checkpoint: it holds more than tensors, and "
                                           "loading it could run code. torch says: " + str(exc).strip(),
                                     hint="Only plain tensor checkpoints are loaded (weights_only=True); convert "
                                          "this one to safetensors from a trusted copy.")
    kind = "safetensors" if path.endswith(".safetensors") else "torch checkpoint"
    return CheckpointFormatError(path, f"Not a readable {kind} file ({type(exc).__name__}: {str(exc)[:300]})",
                                 hint="Check that the file is the one the loader asks for.")


def truncation_problem(path: str, exc: Exception) -> str:
    """Why ``path`` looks cut short ('' when it does not): a safetensors file shorter than its header
    says, a torch zip without its end-of-archive record, a pickle stream that ended early."""
    size = os.path.getsize(path)
    if size == 0:
        return "the file is empty"
    with open(path, "rb") as f:
        head = f.read(9)
        if path.endswith(".safetensors"):
            return _safetensors_truncation(f, head, size)
        if head.startswith(b"PK\x03\x04"):
            f.seek(max(0, size - ZIP_TAIL))
            return "" if b"PK\x05\x06" in f.read() else f"{size} bytes, the zip archive has no end record"
    if isinstance(exc, EOFError) or any(m in str(exc) for m in ("truncated", "Ran out of input", "unexpected EOF")):
        return f"{size} bytes, the pickle stream ends early"  # a legacy (pre-1.6) torch.save stream
    return ""


def _safetensors_truncation(f, head: bytes, size: int) -> str:
    if size < 8:
        return f"{size} bytes, shorter than the 8-byte header length"
    n = int.from_bytes(head[:8], "little")
    if head[8:9] != b"{":
        return ""  # not a safetensors header at all: a format problem, not a short file
    if 8 + n > size:
        return f"{size} bytes, but the header alone is {8 + n} bytes"
    f.seek(8)
    try:
        header = json.loads(f.read(n))
    except ValueError:
        return ""
    end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__" and isinstance(v, dict)
               and "data_offsets" in v), default=0)
    return f"{size} bytes, but its tensors need {8 + n + end}" if 8 + n + end > size else ""


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


def drop_unsaved_buffers(state_dict: Mapping[str, torch.Tensor], module: torch.nn.Module) -> dict:
    """``state_dict`` without the module's non-persistent buffers (e.g. CLIP's
    ``embeddings.position_ids``): older transformers saved them, newer ones compute them at init,
    so a strict load must neither want nor refuse them."""
    saved = module.state_dict(keep_vars=True).keys()
    unsaved = {name for name, _ in module.named_buffers() if name not in saved}
    return {k: v for k, v in state_dict.items() if k not in unsaved}


def load_into(module: torch.nn.Module, state_dict: Mapping[str, torch.Tensor], path: str, what: str,
              allow_missing: Iterable[str] = (), assign: bool = False) -> None:
    """Strict load with a readable error; ``allow_missing`` lists key prefixes that may stay at init.
    Non-persistent buffers in the file are ignored (see ``drop_unsaved_buffers``). ``assign`` makes
    the file's tensors the module's (for a module built on the meta device: no copy)."""
    state_dict = drop_unsaved_buffers(state_dict, module)
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
