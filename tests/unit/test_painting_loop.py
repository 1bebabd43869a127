"""The painting loop: official stopping rules, cancel points, any aspect ratio, the time map."""
import pytest
import torch

from pipelines.common.progress import Progress
from pipelines.inverse_painting.interfaces import Painter
from pipelines.inverse_painting.loop import clean_instruction, paint, working_size
from tests.unit.painting_helpers import painting_models, tiny_renderer, tiny_rp  # noqa: F401


class L1:
    name = "test L1 distance"

    def __call__(self, a, b):
        return (a - b).abs().flatten(1).mean(1)

    def map(self, a, b):
        return (a - b).abs().mean(1, keepdim=True)

    def pixel_threshold(self, lpips_alpha):
        return lpips_alpha

    def image_threshold(self, lpips_value):
        return lpips_value


class Copy:
    """Paints nothing."""
    name = "no-op painter"
    steps = 1

    def __init__(self):
        self.began = self.ended = 0

    def begin(self, target):
        self.began += 1

    def end(self):
        self.ended += 1

    def update(self, canvas, target, mask, instruction, time_s, progress=None):
        return canvas.clone()


class Finish(Copy):
    name = "finishing painter"

    def update(self, canvas, target, mask, instruction, time_s, progress=None):
        return target.clone()


class Halves(Copy):
    """Update 1 paints the left half, update 2 the right half, then nothing."""
    name = "halves painter"

    def __init__(self):
        super().__init__()
        self.n = 0

    def update(self, canvas, target, mask, instruction, time_s, progress=None):
        self.n += 1
        out = canvas.clone()
        w = canvas.shape[-1]
        if self.n == 1:
            out[..., : w // 2] = target[..., : w // 2]
        elif self.n == 2:
            out[..., w // 2:] = target[..., w // 2:]
        return out


def _target(h=32, w=48, value=0.2):
    return torch.full((1, 3, h, w), value)


def test_protocols_are_satisfied():
    assert isinstance(Copy(), Painter)


def test_stops_when_close_to_target():
    res = paint(_target(), Finish(), distance=L1(), short_side=32, max_updates=10)
    assert res.updates == 1 and res.stop_reason == "close to target"
    assert res.keyframes.shape == (2, 3, 32, 48) and res.times == [0.0, 20.0]


def test_stops_after_two_tiny_updates_in_a_row():
    p = Copy()
    res = paint(_target(), p, distance=L1(), short_side=32, max_updates=10)
    assert res.updates == 4 and res.stop_reason.startswith("converged")
    assert p.began == 1 and p.ended == 1


def test_max_updates():
    res = paint(_target(), Halves(), distance=L1(), short_side=32, max_updates=2)
    assert res.updates == 2 and res.stop_reason == "max updates (2)"


def test_time_map_orders_regions_by_when_they_were_painted():
    res = paint(_target(), Halves(), distance=L1(), short_side=32, max_updates=2)
    tm = res.time_map[0, 0]
    assert tm.shape == (32, 48)
    assert torch.allclose(tm[:, :20], torch.full_like(tm[:, :20], 0.5), atol=1e-3)
    assert torch.allclose(tm[:, 28:], torch.ones_like(tm[:, 28:]), atol=1e-3)


def test_blank_target_paints_nothing():
    p = Copy()
    res = paint(torch.ones(1, 3, 20, 20), p, distance=L1(), short_side=32)
    assert res.updates == 0 and "blank" in res.stop_reason
    assert res.keyframes.shape == (1, 3, 20, 20) and res.masks.shape[0] == 0


def test_cancel_between_updates_raises_and_cleans_up():
    p = Halves()

    def cb(done, total, preview):
        if done >= 1:
            raise KeyboardInterrupt("cancelled")

    with pytest.raises(KeyboardInterrupt):
        paint(_target(), p, distance=L1(), short_side=32, max_updates=5, progress=Progress(5, cb))
    assert p.n == 1 and p.ended == 1


def test_any_aspect_ratio_is_padded_and_cropped_back():
    (rh, rw), (ph, pw), notes = working_size(37, 101, short_side=512)
    assert rh == 512 and ph % 16 == 0 and pw % 16 == 0 and pw >= rw
    seen = []

    class Spy(Copy):
        def update(self, canvas, target, mask, instruction, time_s, progress=None):
            seen.append(tuple(canvas.shape[-2:]))
            return target.clone()

    res = paint(torch.rand(1, 3, 37, 101), Spy(), distance=L1(), short_side=64)
    assert all(h % 16 == 0 and w % 16 == 0 for h, w in seen)
    assert res.keyframes.shape[-2:] == (37, 101) and res.time_map.shape[-2:] == (37, 101)
    assert res.notes


def test_huge_input_outputs_are_capped_and_said():
    res = paint(torch.full((1, 3, 64, 3000), 0.3), Finish(), distance=L1(), short_side=32, max_output_side=1024)
    assert res.keyframes.shape[-2:] == (22, 1024) and res.masks.shape[-2:] == (22, 1024)
    assert any("capped" in n for n in res.notes)


def test_instructions_are_cleaned():
    assert clean_instruction("") == "painting"
    assert clean_instruction("  Sky.\n") == "Sky"
    long = clean_instruction("the sky and the clouds and the mountains " * 5)
    assert 0 < len(long) <= 60


def test_learned_loop_end_to_end(tiny_renderer, tiny_rp):
    calls = []
    p = Progress(2, lambda d, t, pv: calls.append(d))
    res = paint(torch.rand(1, 3, 40, 56), tiny_renderer.settings(), tiny_rp, short_side=64, max_updates=2,
                progress=p)
    assert res.updates == 2 and res.keyframes.shape == (3, 3, 40, 56)
    assert res.masks.shape == (2, 1, 40, 56)
    assert "learned" in res.painter and "learned" in res.mask_generator
    assert len(calls) == 2 * 3 + 2  # per denoising step and per update
