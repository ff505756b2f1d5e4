"""The gain ratio of benchmarks/rlhf_tinyreviews.py: an agent's gold-reward gain over SFT as
a fraction of gold-reward PPO's, paired by seed."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "rlhf_tinyreviews.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("rlhf_tinyreviews", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    yield module
    del sys.modules[spec.name]


def row(seed: int, gold: float, sft: float) -> dict:
    return {"seed": seed, "gold_reward": gold, "sft_gold_reward": sft}


def test_gain_ratio_divides_mean_gains_paired_by_seed(bench):
    # gains 0.2, 0.1, 0.3 (mean 0.2); gold PPO's 0.4, 0.2, 0.2 (mean 0.8 / 3)
    agent = [row(2, 0.8, 0.5), row(0, 0.7, 0.5), row(1, 0.7, 0.6)]  # order: by seed inside
    gold = [row(0, 0.9, 0.5), row(1, 0.8, 0.6), row(2, 0.7, 0.5)]
    text = bench.gain_ratio(agent, gold, [])
    point, interval = text.split(" ", 1)
    assert float(point) == pytest.approx(0.2 / (0.8 / 3), abs=0.005)  # 0.75
    low, high = (float(x) for x in interval.strip("[]").split(", "))
    # resampled seeds: the ratio ranges over (mean of chosen gains) / (mean of chosen refs)
    assert 0.25 <= low <= 0.75 <= high <= 1.5


def test_gain_ratio_of_an_agent_that_matches_gold_ppo_is_one(bench):
    rows = [row(0, 0.9, 0.5), row(1, 0.8, 0.6)]
    assert bench.gain_ratio(rows, rows, []) == "1.00 [1.00, 1.00]"


def test_gain_ratio_resamples_seeds_in_pairs(bench):
    # Every seed's gain is half gold PPO's, with gains that differ across seeds: resampling
    # seeds in pairs keeps the ratio at 0.5 exactly; resampling them apart would not.
    agent = [row(1, 0.7, 0.6), row(0, 0.55, 0.5), row(2, 0.65, 0.5)]
    gold = [row(0, 0.6, 0.5), row(1, 0.8, 0.6), row(2, 0.8, 0.5)]
    assert bench.gain_ratio(agent, gold, []) == "0.50 [0.50, 0.50]"
