"""The metric assembly of benchmarks/tinyreviews_rl.py: concept coverage rates and the
mean with its bootstrap interval over seeds."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "tinyreviews_rl.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("tinyreviews_rl", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass resolves annotations through it
    spec.loader.exec_module(module)
    yield module
    del sys.modules[spec.name]


def test_concept_metrics_average_coverage_and_count_only_complete_rows(bench):
    completions = [
        "Greta Voss scored the thriller.",  # 2 of 2
        "A thriller with a fine soundtrack.",  # 2 of 3 (no Greta Voss)
        "Nothing here.",  # 0 of 2
        "Greta Voss's thrillers.",  # 2 of 2, inflected
    ]
    concepts = [
        ["Greta Voss", "thriller"],
        ["Greta Voss", "thriller", "soundtrack"],
        ["soundtrack", "brilliant"],
        ["Greta Voss", "thriller"],
    ]
    metrics = bench.concept_metrics(completions, concepts)
    assert metrics["coverage"] == pytest.approx((1 + 2 / 3 + 0 + 1) / 4)
    assert metrics["full_coverage"] == pytest.approx(2 / 4)


def test_concept_metrics_refuse_mismatched_rows(bench):
    with pytest.raises(ValueError, match="one concept list per completion"):
        bench.concept_metrics(["a", "b"], [["a"]])


def test_mean_and_ci_brackets_the_mean_and_collapses_on_one_seed(bench):
    mean, low, high = bench.mean_and_ci([0.1, 0.2, 0.6])
    assert mean == pytest.approx(0.3)
    # The bootstrap means of three values lie between the smallest and the largest.
    assert 0.1 <= low < mean < high <= 0.6
    assert bench.mean_and_ci([0.4]) == pytest.approx((0.4, 0.4, 0.4))


def test_runs_of_other_seeds_and_guides_merge_and_a_conflicting_seed_is_refused(bench):
    first = {"zero-shot": [{"seed": 3, "reward": 0.1}], "PPO": [{"seed": 3, "reward": 0.5}]}
    second = {"zero-shot": [{"seed": 0, "reward": 0.2}], "BC": [{"seed": 0, "reward": 0.3}]}
    merged = bench.merge_results([first, second])
    assert list(merged) == ["zero-shot", "PPO", "BC"]
    assert [r["seed"] for r in merged["zero-shot"]] == [0, 3]
    # the same zero-shot row in two runs is kept once; guided rows split by guide
    oracle = {
        "zero-shot": [{"seed": 3, "reward": 0.1}],
        "PPO++": [{"seed": 3, "reward": 0.7, "guide": "oracle"}],
    }
    bc = {"PPO++": [{"seed": 3, "reward": 0.6, "guide": "bc"}]}
    merged = bench.merge_results([first, oracle, bc])
    assert list(merged) == ["zero-shot", "PPO", "PPO++ (oracle guide)", "PPO++"]
    assert len(merged["zero-shot"]) == 1
    assert merged["PPO++"][0]["reward"] == 0.6
    changed = {"zero-shot": [{"seed": 3, "reward": 0.9}]}
    with pytest.raises(ValueError, match="zero-shot: seed 3 is in more than one results file"):
        bench.merge_results([first, changed])
