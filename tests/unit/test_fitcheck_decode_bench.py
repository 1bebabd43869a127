"""bench/fitcheck_decode.py's time ratio: fastest over fastest, and each round's own, on scripted timings."""
import importlib.util
from pathlib import Path

import pytest

SPEC = importlib.util.spec_from_file_location("fitcheck_decode_bench",
                                              Path(__file__).parents[2] / "bench" / "fitcheck_decode.py")
bench = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(bench)


def test_time_ratio_is_fastest_chunk2_over_fastest_chunk8():
    rounds = [{8: 10.0, 2: 8.0}, {2: 7.0, 8: 9.5}, {8: 9.0, 2: 7.5}]
    ratio, per_round = bench.time_ratio(rounds)
    assert ratio == pytest.approx(7.0 / 9.0)  # the two minima come from different rounds
    assert per_round == pytest.approx([0.8, 7.0 / 9.5, 7.5 / 9.0])
    assert bench.ROUNDS >= 7
