"""bench/multiref.py's timing method: interleaving order, minimum over a round's repeats, the
spread and the refusal to print an unresolved ratio, checked on scripted timings."""
import gc
import importlib.util
from pathlib import Path

import pytest

SPEC = importlib.util.spec_from_file_location("multiref_bench", Path(__file__).parents[2] / "bench" / "multiref.py")
bench = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(bench)


def scripted(monkeypatch, walls):
    """use/step/refnet_pass stubs; each timed call returns the next wall time of its name (cpu and
    attention time derived from it) and records whether the garbage collector was on."""
    order, current, gc_on = [], {}, []

    def use(variant):
        current["v"] = variant

    def timed(run, clock):
        gc_on.append(gc.isenabled())
        run()
        wall = walls[order[-1]].pop(0)
        return wall, wall / 2, wall / 4

    monkeypatch.setattr(bench, "timed", timed)
    return use, lambda: order.append(current["v"]), lambda: order.append("refnet_pass"), order, gc_on


def test_each_round_keeps_the_minimum_of_its_interleaved_repeats(monkeypatch):
    # per name: the warm-up's value (unused), then 2 rounds x 2 repeats
    walls = {"plain": [1.0, 10.0, 9.0, 9.5, 8.0], "multiref": [1.0, 11.0, 9.9, 12.0, 8.8],
             "referencenet": [1.0, 13.0, 12.0, 11.0, 11.5], "refnet_pass": [1.0, 4.0, 5.0, 3.0, 6.0]}
    use, step, refnet_pass, order, gc_on = scripted(monkeypatch, walls)
    table = bench.interleaved_rounds(use, step, refnet_pass, {"s": 0.0}, rounds=2, repeats=2)
    assert order == ["plain", "multiref", "refnet_pass", "referencenet"] * 5  # A B C A B C ... throughout
    assert gc_on == [True] * 4 + [False] * 16 and gc.isenabled()  # off while timing, back on after
    assert table == [
        {"plain": (9.0, 4.5, 2.25), "multiref": (9.9, 4.95, 2.475), "referencenet": (12.0, 6.0, 3.0),
         "refnet_pass": (4.0, 2.0, 1.0)},
        {"plain": (8.0, 4.0, 2.0), "multiref": (8.8, 4.4, 2.2), "referencenet": (11.0, 5.5, 2.75),
         "refnet_pass": (3.0, 1.5, 0.75)},
    ]


def test_the_reference_pass_is_spread_over_the_sampling():
    row = {"referencenet": (11.0, 5.0, 2.0), "refnet_pass": (5.0, 2.5, 0.0), "plain": (9.0, 4.0, 2.0)}
    assert bench.per_sampling_step(row, "referencenet", 0) == pytest.approx(11.0 + 5.0 / 25)
    assert bench.per_sampling_step(row, "plain", 0) == 9.0


def test_headline_is_min_over_min_and_spread_the_range_of_per_round_ratios():
    rounds = [{"plain": (10.0,), "multiref": (10.5,), "referencenet": (12.0,), "refnet_pass": (5.0,)},
              {"plain": (9.0,), "multiref": (9.9,), "referencenet": (11.0,), "refnet_pass": (2.5,)},
              {"plain": (9.5,), "multiref": (10.0,), "referencenet": (11.5,), "refnet_pass": (3.0,)}]
    # per-round 1.05, 1.1, 10/9.5; headline 9.9 / 9.0
    assert bench.round_ratios(rounds, "multiref") == pytest.approx([1.05, 1.1, 10.0 / 9.5])
    ratio, spread = bench.step_ratio(rounds, "multiref")
    assert ratio == pytest.approx(1.1) and spread == pytest.approx(1.1 - 1.05)
    # per-round (12.2/10, 11.1/9, 11.62/9.5); headline min(12.2, 11.1, 11.62) / 9.0
    ratio, spread = bench.step_ratio(rounds, "referencenet")
    assert ratio == pytest.approx(11.1 / 9.0) and spread == pytest.approx(11.1 / 9.0 - 12.2 / 10.0)


def test_a_ratio_is_printed_only_when_the_spread_is_below_its_effect():
    assert bench.ratio_line("r", 1.061, 0.05) == "r: 1.061"
    assert bench.ratio_line("r", 0.94, 0.05) == "r: 0.940"
    assert bench.ratio_line("r", 1.061, 0.23) == ("r: not resolved (ratio 1.061, round-to-round spread 0.230"
                                                  " > effect 0.061)")


@pytest.mark.parametrize("argv", [["--rounds", "6"], ["--repeats", "0"], ["--threads", "0"], ["--frames", "2"],
                                  ["--latent", "12"]])
def test_fewer_than_seven_rounds_and_impossible_sizes_are_refused(monkeypatch, argv):
    monkeypatch.setattr("sys.argv", ["multiref.py", *argv])
    with pytest.raises(SystemExit):
        bench.parse_args()
