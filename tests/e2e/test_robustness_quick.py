"""bench/robustness.py --quick against the session server: fuzzing of the cheap nodes' execute,
/interrupt latency of the long nodes, and a short soak of mixed workflows, each held to its goal."""
import importlib.util

import pytest

from scripts.harness.server import REPO


@pytest.fixture(scope="module")
def figures(comfy):
    spec = importlib.util.spec_from_file_location("robustness", REPO / "bench" / "robustness.py")
    robustness = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(robustness)
    figures = robustness.run(comfy, quick=True)
    robustness.report(figures)
    return figures


def test_fuzzed_inputs_give_clear_messages(figures):
    assert figures["fuzz_cases"] >= 25
    assert figures["fuzz_unclear_errors"] == 0, "\n".join(figures["fuzz_unclear"])


def test_long_nodes_stop_within_two_seconds_of_interrupt(figures):
    latencies = figures["cancel_latencies"]
    assert all(v is not None for v in latencies.values()), f"finished before the interrupt: {latencies}"
    assert figures["cancel_latency_s_max"] <= 2.0, latencies
    assert not figures["cancel_leftover_files"]


def test_soak_keeps_the_server_up_and_outputs_right(figures):
    assert figures["server_up"] and not figures["soak_failures"], figures["soak_failures"]
    assert figures["soak_prompts_ok"] == figures["soak_prompts"] - figures["soak_cancelled"]
    assert figures["soak_rss_growth_ratio"] <= 1.10
