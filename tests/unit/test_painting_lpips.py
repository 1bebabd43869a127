"""True LPIPS over a user's backbone file, pinned against the lpips package called directly (as the official
demo and RP wrapper call it: inputs in -1..1, spatial map for the difference mask, image value for the
stopping rule), and the stand-in's conversion of LPIPS-scale thresholds."""
import warnings

import lpips  # a declared dependency (requirements.txt): a missing package fails here, never skips
import pytest
import torch

from pipelines.common import CheckpointFormatError
from pipelines.inverse_painting import difference
from pipelines.inverse_painting.difference import MultiScaleSSIMDistance, default_distance, difference_mask
from pipelines.inverse_painting.loop import paint
from pipelines.inverse_painting.lpips_distance import LPIPSDistance, load_lpips
from tests.fixtures.build_painting import write_lpips_backbone


@pytest.fixture(scope="module")
def backbone(tmp_path_factory):
    return write_lpips_backbone(tmp_path_factory.mktemp("lpips") / "alexnet-random-test.pth")


def _reference(backbone_path, spatial):
    """lpips.LPIPS with the same backbone, copied parameter by parameter in torchvision's order (not by key)."""
    import torchvision

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tv = torchvision.models.alexnet(weights=None)
        ref = lpips.LPIPS(net="alex", pretrained=True, pnet_rand=True, spatial=spatial, verbose=False)
    tv.features.load_state_dict({k[len("features."):]: v for k, v in torch.load(backbone_path).items()})
    with torch.no_grad():
        for mine, theirs in zip(ref.net.parameters(), tv.features.parameters(), strict=True):
            mine.copy_(theirs)
    return ref.eval()


def _images(n=2, h=64, w=96, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, h, w, generator=g), torch.rand(n, 3, h, w, generator=g)


def test_values_and_maps_equal_the_lpips_package_called_directly(backbone):
    d = load_lpips(str(backbone))
    a, b = _images()
    with torch.no_grad():
        ref_value = _reference(backbone, spatial=False)(a * 2 - 1, b * 2 - 1).flatten()
        ref_map = _reference(backbone, spatial=True)(a * 2 - 1, b * 2 - 1)
    assert torch.allclose(d(a, b), ref_value, rtol=1e-5, atol=1e-7)
    assert d.map(a, b).shape == (2, 1, 64, 96)
    assert torch.allclose(d.map(a, b), ref_map, rtol=1e-5, atol=1e-7)
    # the official difference mask: the spatial map above alpha = 0.2, nothing converted
    assert torch.equal(difference_mask(a, b, 0.2, d), (ref_map > 0.2).float())
    assert "LPIPS" in d.name and "AlexNet" in d.name


def test_hand_checked_properties(backbone):
    d = load_lpips(str(backbone))
    a, b = _images(n=1)
    assert float(d(a, a)) == 0.0 and float(d.map(a, a).abs().max()) == 0.0
    assert torch.allclose(d(a, b), d(b, a)) and float(d(a, b)) > 0
    assert d.pixel_threshold(0.2) == 0.2 and d.image_threshold(1e-3) == 1e-3  # LPIPS is its own scale
    # a full backbone file (with the classifier, as torchvision ships it) loads the same features
    full = backbone.parent / "alexnet-full.pth"
    torch.save({**torch.load(backbone), "classifier.1.weight": torch.zeros(4096, 9216)}, full)
    assert torch.allclose(load_lpips(str(full))(a, b), d(a, b))
    assert isinstance(default_distance(str(backbone)), LPIPSDistance)


def test_bad_backbone_files_name_the_expected_keys(backbone, tmp_path):
    torch.save({"conv1.weight": torch.zeros(1)}, tmp_path / "other.pth")
    with pytest.raises(CheckpointFormatError, match="features.0.weight"):
        load_lpips(str(tmp_path / "other.pth"))
    sd = torch.load(backbone)
    del sd["features.10.weight"]
    torch.save(sd, tmp_path / "cut.pth")
    with pytest.raises(CheckpointFormatError, match="features.10.weight"):
        load_lpips(str(tmp_path / "cut.pth"))


def test_stand_in_converts_lpips_thresholds_through_its_table(monkeypatch):
    monkeypatch.setattr(difference, "PIXEL_CALIBRATION", ((0.0, 0.0), (0.1, 0.05), (0.2, 0.3)))
    monkeypatch.setattr(difference, "IMAGE_CALIBRATION", ((0.0, 0.0), (1e-3, 0.01), (0.1, 0.2)))
    s = MultiScaleSSIMDistance()
    assert s.pixel_threshold(0.15) == pytest.approx(0.175)  # halfway between 0.05 and 0.3
    assert s.pixel_threshold(0.4) == pytest.approx(0.6)  # beyond the table: proportional to its last point
    assert s.image_threshold(1e-3) == pytest.approx(0.01)
    assert s.image_threshold(0.0505) == pytest.approx(0.105)


def test_shipped_tables_are_increasing_and_start_at_zero():
    for table in (difference.PIXEL_CALIBRATION, difference.IMAGE_CALIBRATION):
        xs, ys = zip(*table)
        assert xs[0] == 0 and ys[0] == 0
        assert all(b > a for a, b in zip(xs, xs[1:])) and all(b > a for a, b in zip(ys, ys[1:]))
    assert dict(difference.PIXEL_CALIBRATION).get(0.2) is not None  # the thesis' alpha is a measured point
    assert {1e-3, 0.1} <= set(dict(difference.IMAGE_CALIBRATION))  # and so are both stopping thresholds


class HalfwayL1:
    """L1 distance whose scale is 5x LPIPS: LPIPS 0.1 means 0.5 here."""

    name = "test scaled L1"

    def __call__(self, a, b):
        return (a - b).abs().flatten(1).mean(1)

    def map(self, a, b):
        return (a - b).abs().mean(1, keepdim=True)

    def pixel_threshold(self, lpips_alpha):
        return 5 * lpips_alpha

    def image_threshold(self, lpips_value):
        return 5 * lpips_value


class Towards:
    """Each update moves the canvas 60% of the way to the target."""

    name = "towards painter"
    steps = 1

    def update(self, canvas, target, mask, instruction, time_s, progress=None):
        return canvas + 0.6 * (target - canvas)


def test_loop_stops_on_thresholds_converted_to_the_distance_scale():
    target = torch.zeros(1, 3, 32, 32)  # white -> black: L1 1.0, then 0.4, 0.16, 0.064 ...
    res = paint(target, Towards(), distance=HalfwayL1(), short_side=32, max_updates=10)
    # LPIPS 0.1 -> 0.5 on this distance: stops after the first update (0.4 < 0.5); unconverted 0.1 needs 3
    assert res.updates == 1 and res.stop_reason == "close to target"
    assert res.distance == "test scaled L1" and any("0.1 -> 0.5" in n for n in res.notes)
