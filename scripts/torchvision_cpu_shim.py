"""Lets torchvision's pure-Python parts import beside a CPU-only torch.

Installed into the dev venv by scripts/setup_env.sh as a .pth hook. The only
torchvision wheels matching torch 2.13.0 are CUDA builds whose compiled ops do not
load here; torchvision then fails registering fake kernels for ops that do not
exist. Defining those op schemas first (only when they are missing) lets the
import succeed; the kernels themselves stay unavailable.
"""
import importlib.abc
import sys

_SCHEMAS = {
    "nms": "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms": "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
}
_libs = []


def _define_missing_ops():
    import torch

    lib = None
    for name, schema in _SCHEMAS.items():
        try:
            torch._C._dispatch_find_schema_or_throw(f"torchvision::{name}", "")
            continue
        except RuntimeError:
            pass
        if lib is None:
            lib = torch.library.Library("torchvision", "FRAGMENT")
            _libs.append(lib)
        lib.define(schema)


class _BeforeTorchvision(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "torchvision":
            sys.meta_path.remove(self)
            _define_missing_ops()
        return None


sys.meta_path.insert(0, _BeforeTorchvision())
