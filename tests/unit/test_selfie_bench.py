"""bench/selfie_inpaint.py's ratio: fastest step over all rounds, and each round's own, on scripted timings."""
import importlib.util
from pathlib import Path

import pytest

SPEC = importlib.util.spec_from_file_location("selfie_bench", Path(__file__).parents[2] / "bench" / "selfie_inpaint.py")
bench = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(bench)


def test_headline_is_fastest_over_fastest_and_rounds_keep_their_own():
    rounds = [{"ours": [2.2, 2.0], "reference": [1.9, 2.1]},  # round ratio 2.0 / 1.9
              {"reference": [1.6, 1.8], "ours": [1.8, 1.7]}]  # 1.7 / 1.6; fastest of all: 1.7 / 1.6
    best, per_round = bench.step_ratios(rounds)
    assert best == pytest.approx(1.7 / 1.6)
    assert per_round == pytest.approx([2.0 / 1.9, 1.7 / 1.6])
    rounds[0]["reference"] = [1.5]  # the fastest steps now come from different rounds
    assert bench.step_ratios(rounds)[0] == pytest.approx(1.7 / 1.5)
