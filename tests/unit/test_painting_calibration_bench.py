"""bench/painting_distance_calibration.py: its threshold searches on hand-made values, and a whole run on
one example image (its inputs are the shipped example files)."""
import ast
import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.fixtures.build_painting import write_lpips_backbone

SPEC = importlib.util.spec_from_file_location("calibration_bench",
                                              Path(__file__).parents[2] / "bench" / "painting_distance_calibration.py")
bench = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(bench)


def test_image_threshold_splits_the_pairs_below_the_lpips_value():
    lp, st = np.array([0.0005, 0.002, 0.05]), np.array([0.01, 0.02, 0.03])
    # below 1e-3: only the first pair; the midpoint 0.015 between it and the rest separates them exactly
    assert bench.best_image_threshold(lp, st, 1e-3) == (pytest.approx(0.015), 1.0, 1)
    assert bench.best_image_threshold(lp, st, 1.0) == (None, None, 3)  # every pair below: nothing to fit


def test_pixel_threshold_keeps_the_best_iou_cut():
    lp = [np.array([[0.5, 0.5, 0.0, 0.0]])]
    st = [np.array([[0.30, 0.40, 0.10, 0.35]])]
    # LPIPS > 0.2 on the first two pixels; stand-in > 0.30 keeps pixels 2 and 4 (IoU 1/3), >= 0.10 all four
    # (IoU 1/2), and the first histogram edge above 0.10 (edges every 0.0005) keeps three: IoU 2/3, the best
    tau, iou, frac = bench.best_pixel_threshold(lp, st, 0.2)
    assert (tau, iou, frac) == (pytest.approx(0.1005), pytest.approx(2 / 3), 0.5)


def test_stop_update_is_where_the_loop_rule_fires():
    far = [0.9] * 5
    # convergence needs more than three updates: the last two of the first five are below 1e-3
    assert bench.stop_update([0.5, 0.1, 0.0005, 0.0004, 0.0003], far, 1e-3, 0.1) == 4
    assert bench.stop_update([0.5, 0.1, 0.01, 0.0005, 0.0004], far, 1e-3, 0.1) == 5
    assert bench.stop_update([0.5, 0.4], [0.9, 0.05], 1e-3, 0.1) == 2  # close to target after the 2nd update
    assert bench.stop_update([0.5, 0.4], [0.9, 0.5], 1e-3, 0.1) is None


def test_a_whole_run_on_one_example_prints_increasing_tables(tmp_path, monkeypatch, capsys):
    backbone = write_lpips_backbone(tmp_path / "alexnet-random-test.pth")
    monkeypatch.setattr(bench, "IMAGES", bench.IMAGES[:1])
    monkeypatch.setattr(bench, "HELD_OUT", bench.HELD_OUT[:1])
    monkeypatch.setattr(sys, "argv", ["painting_distance_calibration.py", "--backbone", str(backbone)])
    bench.main()
    out = capsys.readouterr().out
    assert "calibration_backbone: alexnet-random-test.pth" in out and "pairs: 86" in out
    tables = dict(line.split(" = ") for line in out.splitlines() if " = " in line)
    for name in ("PIXEL_CALIBRATION", "IMAGE_CALIBRATION"):
        xs, ys = zip(*ast.literal_eval(tables[name]))
        assert xs[0] == ys[0] == 0.0 and list(xs) == sorted(xs)
    assert len(out.split("heldout_stop_update_standin: ")[1].split()[0]) > 0  # the held-out photo ran
