"""Paired-data generation maths (thesis eq. 5.2, 5.5.1) against the formulas written out by hand."""
import pytest
import torch

from pipelines.common import InputError
from pipelines.portrait_edit import pairs


def test_constants_are_the_thesis_values():
    assert (pairs.SHARED_SCALE, pairs.SIDE_SCALE, pairs.GUIDANCE_SCALE) == (0.1, 0.9, 7.5)
    assert pairs.COSTUME_TARGETS == ("cute flower costume", "cute white sheep costume", "Santa Claus costume",
                                     "traditional golden palace costume")
    assert pairs.EXPRESSION_TARGETS == ("angry", "shocked", "laughing", "crying")


def test_prompt_templates_of_5_5_1():
    assert pairs.pair_prompts(" man ", "normal costume", "Santa Claus costume") == (
        "the same man on the left and right", "a man, normal costume", "a man, Santa Claus costume")
    with pytest.raises(InputError, match=r"^The pair prompts need a subject \[X\], e\.g\. 'man' or 'woman'\.$"):
        pairs.pair_prompts("  ", "a", "b")


def test_side_masks_are_left_and_right_halves():
    m_a, m_b = pairs.side_masks(torch.zeros(2, 4, 3, 6))
    assert torch.equal(m_a.flatten(), torch.tensor([1.0, 1, 1, 0, 0, 0]))
    assert torch.equal(m_b.flatten(), torch.tensor([0.0, 0, 0, 1, 1, 1]))
    with pytest.raises(InputError, match=r"even latent width, got 5 \(image width 40\)"):
        pairs.side_masks(torch.zeros(1, 4, 3, 5))
    m_a, m_b = pairs.side_masks(torch.zeros(1, 4, 3, 4, dtype=torch.float64))
    assert m_a.shape == m_b.shape == (1, 1, 1, 4) and m_a.dtype == m_b.dtype == torch.float64


def test_eq_5_2_by_hand():
    shared = torch.full((1, 4, 2, 4), 10.0)
    source = torch.full((1, 4, 2, 4), 20.0)
    target = torch.full((1, 4, 2, 4), 40.0)
    out = pairs.paired_guidance(shared, source, target)
    torch.testing.assert_close(out[..., :2], torch.full((1, 4, 2, 2), 0.1 * 10 + 0.9 * 20))
    torch.testing.assert_close(out[..., 2:], torch.full((1, 4, 2, 2), 0.1 * 10 + 0.9 * 40))
    out = pairs.paired_guidance(shared, source, target, s_d=0.5, s_a=0.25, s_b=2.0)
    torch.testing.assert_close(out[..., :2], torch.full((1, 4, 2, 2), 5.0 + 5.0))
    torch.testing.assert_close(out[..., 2:], torch.full((1, 4, 2, 2), 5.0 + 80.0))


def test_split_canvas_halves():
    canvas = torch.arange(2 * 3 * 8 * 3, dtype=torch.float32).view(2, 3, 8, 3)
    left, right = pairs.split_canvas(canvas)
    assert torch.equal(left, canvas[:, :, :4]) and torch.equal(right, canvas[:, :, 4:])
    with pytest.raises(InputError, match="odd"):
        pairs.split_canvas(torch.zeros(1, 4, 7, 3))


def test_guided_pair_prediction_is_cfg_per_prompt_then_eq_5_2():
    negative, shared = torch.full((1, 4, 2, 4), 1.0), torch.full((1, 4, 2, 4), 2.0)
    source, target = torch.full((1, 4, 2, 4), 3.0), torch.full((1, 4, 2, 4), 5.0)
    out = pairs.guided_pair_prediction(negative, shared, source, target)
    # CFG 7.5: shared 1 + 7.5 = 8.5, source 1 + 15 = 16, target 1 + 30 = 31
    torch.testing.assert_close(out[..., :2], torch.full((1, 4, 2, 2), 0.1 * 8.5 + 0.9 * 16))
    torch.testing.assert_close(out[..., 2:], torch.full((1, 4, 2, 2), 0.1 * 8.5 + 0.9 * 31))
    out = pairs.guided_pair_prediction(negative, shared, source, target, 2.0, 1.0, 0.0, 0.5)
    torch.testing.assert_close(out[..., :2], torch.full((1, 4, 2, 2), 3.0))  # 1 + 2 * 1
    torch.testing.assert_close(out[..., 2:], torch.full((1, 4, 2, 2), 3.0 + 0.5 * 9))
