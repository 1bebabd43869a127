"""True LPIPS (Zhang et al. 2018), as the official Inverse Painting code uses it (``lpips.LPIPS(net='alex')``):
- the per-pixel map (``spatial=True``: every layer's weighted squared feature difference upsampled
  bilinearly to the image size and summed) for the difference mask D(I_T, I_{t-1}, α), and
- the image value (``spatial=False``: every layer's map averaged, then summed) for the stopping rule
  and the LPIPS / DDC metrics.

The ``lpips`` package ships the learned linear-layer weights (v0.1) but no backbone; the backbone is a
torchvision-layout state dict the user puts in a model folder (AlexNet ``alexnet-owt-7be5be79.pth`` or
VGG16 ``vgg16-397923af.pth``; only the ``features.*`` tensors are read). Images are 0..1 here and mapped
to -1..1 as the official calls do.
"""
import functools
import os
import warnings

import torch
import torch.nn.functional as F

from ..common.checkpoints import load_state_dict, sub_dict
from ..common.errors import CheckpointFormatError, InputError

# torchvision's features.N indices of the convolutions each backbone uses, per LPIPS slice
BACKBONES = {
    "alex": (0, 3, 6, 8, 10),
    "vgg": (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28),
}
HINT = ("Put a torchvision-layout AlexNet state dict (alexnet-owt-7be5be79.pth, the official choice) or "
        "VGG16 (vgg16-397923af.pth) into models/lpips.")


def _backbone_kind(features: dict, path: str) -> str:
    first = features.get("0.weight")
    if first is not None and tuple(first.shape[-2:]) == (11, 11):
        return "alex"
    if first is not None and "28.weight" in features:
        return "vgg"
    raise CheckpointFormatError(path, "Not an AlexNet or VGG16 backbone in the torchvision layout",
                                expected=[f"features.{i}.weight" for i in BACKBONES["alex"]], hint=HINT)


def _features_into(net: torch.nn.Module, features: dict, path: str) -> None:
    """Copy torchvision ``features.{i}.*`` into the LPIPS slices, which keep torchvision's child names."""
    targets = {}
    for slice_name, block in net.named_children():
        for child, module in block.named_children():
            for pname, p in module.named_parameters():
                targets[f"{child}.{pname}"] = p
    missing = sorted(k for k in targets if k not in features)
    wrong = [k for k in targets if k in features and features[k].shape != targets[k].shape]
    if missing or wrong:
        raise CheckpointFormatError(path, f"The backbone does not fit LPIPS ({len(missing)} missing, {len(wrong)} "
                                          f"of another shape, e.g. features.{(missing or wrong)[0]})",
                                    expected=[f"features.{k}" for k in targets], hint=HINT)
    with torch.no_grad():
        for k, p in targets.items():
            p.copy_(features[k].to(p.dtype))


class LPIPSDistance:
    """Implements ``interfaces.PerceptualDistance``; thresholds are the official ones (identity scale)."""

    def __init__(self, model: torch.nn.Module, kind: str, source: str):
        self.model, self.kind, self.source = model.eval(), kind, source
        self.name = f"LPIPS ({'AlexNet' if kind == 'alex' else 'VGG16'} backbone {os.path.basename(source)})"

    def pixel_threshold(self, lpips_alpha: float) -> float:
        return float(lpips_alpha)

    def image_threshold(self, lpips_value: float) -> float:
        return float(lpips_value)

    @torch.no_grad()
    def _layers(self, a: torch.Tensor, b: torch.Tensor) -> list:
        """Per layer: the linear layer over the squared difference of unit-normalised features, [B,1,h,w]."""
        import lpips

        if a.shape != b.shape or a.ndim != 4 or a.shape[1] != 3:
            raise InputError(f"LPIPS compares two RGB batches of one shape, got {tuple(a.shape)} and {tuple(b.shape)}.")
        p = next(self.model.parameters())
        x = self.model.scaling_layer(a.to(p.device, torch.float32) * 2 - 1)
        y = self.model.scaling_layer(b.to(p.device, torch.float32) * 2 - 1)
        fx, fy = self.model.net(x), self.model.net(y)
        return [lin((lpips.normalize_tensor(u) - lpips.normalize_tensor(v)) ** 2)
                for lin, u, v in zip(self.model.lins, fx, fy)]

    def map(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Spatial LPIPS [B,1,H,W] (``spatial=True``), on the inputs' device."""
        size = a.shape[-2:]
        layers = self._layers(a, b)
        return sum(F.interpolate(m, size=size, mode="bilinear", align_corners=False) for m in layers).to(a.device)

    def __call__(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """LPIPS per image [B] (``spatial=False``)."""
        return sum(m.mean((2, 3)) for m in self._layers(a, b))[:, 0].to(a.device)


def _lpips_module(kind: str):
    try:
        import lpips
    except ImportError as exc:
        raise InputError("An LPIPS backbone is in models/lpips but the 'lpips' package is missing: "
                         "pip install lpips (it is in the pack's requirements.txt).") from exc
    with warnings.catch_warnings():  # torchvision's deprecation notes about `pretrained`
        warnings.simplefilter("ignore")
        # pretrained=True: the package's shipped linear layers; pnet_rand=True: no backbone download
        return lpips.LPIPS(net=kind, pretrained=True, pnet_rand=True, verbose=False)


@functools.lru_cache(maxsize=2)
def _load_cached(path: str, mtime: float, size: int) -> LPIPSDistance:
    features = sub_dict(load_state_dict(path), "features.")
    kind = _backbone_kind(features, path)
    model = _lpips_module(kind)
    _features_into(model.net, features, path)
    return LPIPSDistance(model, kind, path)


def load_lpips(path: str) -> LPIPSDistance:
    """LPIPS over the backbone file at ``path`` (cached per file version: it is read-only after loading)."""
    st = os.stat(path)
    return _load_cached(os.path.abspath(path), st.st_mtime, st.st_size)
