"""Inverse Painting tools without weights: difference mask, offline/user instructions,
the baseline painter and mask generator."""
import pytest
import torch

from pipelines.common import InputError
from pipelines.inverse_painting.baseline import BaselineMaskGenerator, BaselinePainter
from pipelines.inverse_painting.difference import default_distance, difference_mask
from pipelines.inverse_painting.instructions import HeuristicInstructions, UserInstructions, segment_regions


def landscape(h=64, w=96):
    img = torch.zeros(1, 3, h, w)
    img[:, :, : h // 3] = torch.tensor([0.5, 0.7, 1.0]).view(1, 3, 1, 1)  # sky
    img[:, :, h // 3: 2 * h // 3] = torch.tensor([0.2, 0.6, 0.2]).view(1, 3, 1, 1)  # trees
    img[:, :, 2 * h // 3:] = torch.tensor([0.6, 0.4, 0.3]).view(1, 3, 1, 1)  # ground
    return img + 0.02 * torch.rand(1, 3, h, w)


def test_distance_is_zero_for_identical_images_and_mask_thresholds():
    a = landscape()
    d = default_distance()
    assert float(d(a, a)) < 1e-4 and "SSIM" in d.name
    canvas = a.clone()
    canvas[:, :, :20, :30] = 0.0  # a black block: far above the stand-in's threshold for LPIPS 0.2
    mask = difference_mask(a, canvas, 0.2)
    assert mask[0, 0, 5, 5] == 1 and mask[0, 0, 50, 80] == 0
    assert difference_mask(a, canvas, 0.4).sum() < mask.sum()  # a higher alpha masks less
    assert difference_mask(a, canvas, 10.0).sum() == 0  # past the stand-in's 0..1 range: nothing


def test_regions_are_named_and_ordered_back_to_front():
    names = [n for n, _ in segment_regions(landscape(), 3)]
    assert names[0] == "sky" and names[1] == "trees" and len(set(names)) == 3
    regions = segment_regions(landscape(), 3)
    assert torch.stack([m for _, m in regions]).sum(0).eq(1).all()  # a partition of the image


def test_heuristic_visits_regions_then_details_and_user_list_repeats():
    gen = HeuristicInstructions(regions=3, passes=2)
    target = landscape()
    words = [gen.next(target, target, i) for i in range(7)]
    assert words[:3] == words[3:6] and words[6] == "details"
    user = UserInstructions("sky\n\n trees \n")
    assert [user.next(None, None, i) for i in range(3)] == ["sky", "trees", "trees"]
    with pytest.raises(InputError, match="empty"):
        UserInstructions("  \n")


def test_baseline_converges_to_the_target():
    target = landscape()
    painter, masks, words = BaselinePainter(), BaselineMaskGenerator(3), HeuristicInstructions(3, 3)
    canvas = torch.ones_like(target)
    errors = [float((canvas - target).abs().mean())]
    for step in range(10):
        word = words.next(canvas, target, step)
        canvas = painter.update(canvas, target, masks.generate(canvas, target, word, 20.0), word, 20.0)
        errors.append(float((canvas - target).abs().mean()))
    assert errors[-1] < 0.1 * errors[0] and errors[3] < errors[0]
    assert "baseline" in painter.name and "baseline" in masks.name


def test_rgba_and_bad_targets():
    with pytest.raises(InputError, match="RGB"):
        segment_regions(torch.rand(1, 4, 8, 8))
