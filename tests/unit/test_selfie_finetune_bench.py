"""bench/selfie_finetune.py's step ratio: fastest over fastest, and each round's own, on scripted timings."""
import importlib.util
from pathlib import Path

import pytest

SPEC = importlib.util.spec_from_file_location("selfie_finetune_bench",
                                              Path(__file__).parents[2] / "bench" / "selfie_finetune.py")
bench = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(bench)


def test_step_ratio_is_fastest_lora_over_fastest_full():
    rounds = [{"full": {"step_s": 4.0}, "lora": {"step_s": 3.0}}, {"lora": {"step_s": 2.8}, "full": {"step_s": 4.2}}]
    ratio, per_round = bench.step_ratio(rounds)
    assert ratio == pytest.approx(2.8 / 4.0)  # minima from different rounds
    assert per_round == pytest.approx([0.75, 2.8 / 4.2])
