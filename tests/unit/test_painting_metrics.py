"""Painting metrics (thesis 6.3.4) on constructed sequences with known answers."""
import math

import numpy as np
import pytest
import torch
from PIL import Image

from pipelines.common import InputError
from pipelines.inverse_painting.metrics import (
    ReferenceSequence, compute_metrics, load_reference_sequence, main, nearest_index, shown_index,
)

SIZE = 32
COLOURS = [(0.8, 0.1, 0.1), (0.1, 0.6, 0.2), (0.1, 0.2, 0.9), (0.9, 0.8, 0.1)]
BLOCKS = [(0, 0), (0, 16), (16, 0), (16, 16)]  # quadrant corners (row, col)


def painting(order=(0, 1, 2, 3)) -> torch.Tensor:
    """A white canvas, then one quadrant painted per frame: [5,3,32,32]."""
    frames = [torch.ones(3, SIZE, SIZE)]
    for k in order:
        frame = frames[-1].clone()
        r, c = BLOCKS[k]
        frame[:, r:r + 16, c:c + 16] = torch.tensor(COLOURS[k])[:, None, None]
        frames.append(frame)
    return torch.stack(frames)


def reference(frames, times) -> ReferenceSequence:
    return ReferenceSequence(frames, torch.tensor(times, dtype=torch.float32))


def test_identical_sequences_score_perfectly():
    frames = painting()
    m = compute_metrics(frames, 20.0, reference(frames, [0, 20, 40, 60, 80]))
    assert m.nearest_distance == pytest.approx(0.0, abs=1e-6)
    assert m.iou == pytest.approx(1.0)
    assert m.ddc == pytest.approx(0.0, abs=1e-9)
    assert m.dts_minutes == pytest.approx(0.0)
    assert m.fid is None and "not computed" in m.report()
    assert m.distance_name in m.report()


def test_shifted_reference_is_measured_from_its_first_frame():
    frames = painting()
    m = compute_metrics(frames, 20.0, reference(frames, [100, 120, 140, 160, 180]))
    assert m.dts_minutes == pytest.approx(0.0)
    assert m.nearest_distance == pytest.approx(0.0, abs=1e-6)


def test_stretched_reference_gives_known_dts_and_dtw_absorbs_it():
    frames = painting()
    m = compute_metrics(frames, 20.0, reference(frames, [0, 40, 80, 120, 160]))
    assert m.dts_minutes == pytest.approx(80 / 60)  # 160 s vs 80 s
    # Sampled every 20 s the reference curve repeats each value twice; DTW warps that away.
    assert m.ddc == pytest.approx(0.0, abs=1e-9)
    assert m.iou == pytest.approx(1.0)
    assert m.nearest_distance > 0.01  # later reference frames meet earlier keyframes


def test_painting_order_matters_for_distance_not_for_iou():
    m = compute_metrics(painting((3, 2, 1, 0)), 20.0, reference(painting(), [0, 20, 40, 60, 80]))
    # The same quadrants change in another order; the structural window bleeds over a
    # quadrant's edge differently depending on its painted neighbours, hence not exactly 1 (0.74 with the
    # stand-in's threshold calibrated to LPIPS alpha 0.2).
    assert m.iou > 0.7
    assert m.nearest_distance > 0.01
    assert math.isfinite(m.ddc) and 0 < m.ddc < 1  # was inf with dtaidistance pruning on


def test_a_stalled_generation_has_lower_iou_and_positive_ddc():
    frames = painting()
    stalled = torch.cat([frames[:1].repeat(3, 1, 1, 1), frames[-1:]])  # nothing, nothing, then all at once
    m = compute_metrics(stalled, 20.0, reference(frames, [0, 20, 40, 60, 80]))
    assert m.iou < 1.0
    assert m.ddc > 0.0
    assert m.dts_minutes == pytest.approx(20 / 60)


def test_reference_is_resized_to_the_generated_size():
    frames = painting()
    big = torch.nn.functional.interpolate(frames, scale_factor=2, mode="nearest")
    m = compute_metrics(frames, 20.0, reference(big, [0, 20, 40, 60, 80]))
    assert m.nearest_distance < 0.05
    assert m.iou > 0.8


def test_time_matching_helpers():
    times = torch.tensor([0.0, 20.0, 40.0])
    assert nearest_index(times, torch.tensor([77.0 - 60, 9.0, 31.0, 100.0])).tolist() == [1, 0, 2, 2]
    assert shown_index(times, torch.tensor([0.0, 19.0, 20.0, 55.0])).tolist() == [0, 0, 1, 2]


def test_bad_inputs_raise_input_errors():
    frames = painting()
    with pytest.raises(InputError, match="at least 2"):
        compute_metrics(frames[:1], 20.0, reference(frames, [0, 20, 40, 60, 80]))
    with pytest.raises(InputError, match="interval"):
        compute_metrics(frames, 0.0, reference(frames, [0, 20, 40, 60, 80]))


def _save(frames, folder, names):
    folder.mkdir(parents=True, exist_ok=True)
    for frame, name in zip(frames, names):
        Image.fromarray((frame.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)).save(folder / name)


def test_loader_sorts_by_timestamp_in_the_name(tmp_path):
    frames = painting()
    _save(frames[[2, 0, 4, 1, 3]], tmp_path, ["frame_0040.png", "0000s.png", "frame_80.png", "20s.png", "x60.png"])
    seq = load_reference_sequence(tmp_path)
    assert seq.times.tolist() == [0, 20, 40, 60, 80]
    assert torch.allclose(seq.frames, frames, atol=1 / 255)


def test_loader_errors(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        load_reference_sequence(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no images"):
        load_reference_sequence(tmp_path / "empty")
    _save(painting()[:2], tmp_path / "bad", ["frame_0000.png", "final.png"])
    with pytest.raises(InputError, match="final.png"):
        load_reference_sequence(tmp_path / "bad")


def test_cli_prints_name_value_lines(tmp_path, capsys):
    frames = painting()
    _save(frames, tmp_path / "gen", [f"key_{i:02d}.png" for i in range(5)])
    _save(frames, tmp_path / "ref", [f"frame_{t:04d}.png" for t in (0, 40, 80, 120, 160)])
    main([str(tmp_path / "gen"), str(tmp_path / "ref"), "--interval", "20"])
    lines = dict(line.split(": ", 1) for line in capsys.readouterr().out.strip().splitlines())
    assert float(lines["dts_minutes"]) == pytest.approx(80 / 60)
    assert float(lines["iou_best_match"]) == pytest.approx(1.0)
    assert lines["fid"].startswith("None")


def test_cli_reports_input_errors_without_traceback(tmp_path):
    with pytest.raises(SystemExit, match="does not exist"):
        main([str(tmp_path / "gen"), str(tmp_path / "ref")])
