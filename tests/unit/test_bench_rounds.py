"""bench/rounds.py: the alternating order and the fastest-over-fastest ratio, on scripted values."""
import pytest

from bench.rounds import alternating, fastest_ratio


def test_order_alternates_between_rounds():
    assert [alternating({"full": 0, "lora": 8}, r) for r in range(3)] == [["full", "lora"], ["lora", "full"],
                                                                          ["full", "lora"]]
    assert alternating((8, 2), 1) == [2, 8]


def test_ratio_of_the_fastest_times_and_each_rounds_own():
    ratio, per_round = fastest_ratio([{"a": 3.0, "b": 4.0}, {"b": 3.5, "a": 3.2}], "a", "b")
    assert ratio == pytest.approx(3.0 / 3.5)  # the two minima come from different rounds
    assert per_round == pytest.approx([0.75, 3.2 / 3.5])
