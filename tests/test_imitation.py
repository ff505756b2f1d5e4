"""lfi_gym.imitation: the DRIL benchmark's analysis of compare results (score against expert
demonstrations, expert-normalised per seed, DRIL minus BC paired by seed)."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest
import torch

from lfi_gym import imitation, stats
from lfi_gym.compare import CompareResults, plan_jobs, run_compare
from lfi_gym.suites import ATARI_TRAINING, SuiteEntry, get_suite

torch.set_num_threads(1)

ENV = "MinAtarImitation-Breakout-v0"
ENTRY = SuiteEntry(
    env_id=ENV,
    agents=("bc", "dril"),
    curve_unit="expert_episodes",
    label_budget=3,
    curve_points=(1, 3),
)


def _record(kind: str, name: str, seed: int, result: dict[str, Any]) -> dict[str, Any]:
    config = {"kind": kind, "env": {"env_id": ENV}, "name": name, "seed": seed}
    result = {**result, "wall_time_s": 1.0}
    return {"key": f"{kind}-{name}-{seed}", "config": config, "result": result}


def _point(point: int, scores: list[float], labels: int) -> dict[str, Any]:
    budgets = {"expert_labels": labels, "env_steps": 0, "tokens": 0, "reward_queries": 0}
    return {"point": point, "budgets": budgets, "scores": scores, "train_time_s": 1.0}


def _results(expert_seed_1: list[float] = (12.0, 10.0)) -> CompareResults:
    """Two seeds with hand-picked scores. Seed 0: random 1, expert 11 (range 10); seed 1:
    random 2, expert 11 (range 9)."""
    records = [
        _record("reference", "random", 0, {"scores": [0.0, 2.0]}),
        _record("reference", "random", 1, {"scores": [2.0, 2.0]}),
        _record("reference", "expert", 0, {"scores": [11.0, 11.0]}),
        _record("reference", "expert", 1, {"scores": list(expert_seed_1)}),
        # BC and DRIL are one job per curve point (the runner merges them into a curve).
        _record("agent", "bc", 0, {"curve": [_point(1, [6.0, 6.0], 40)]}),
        _record("agent", "bc", 0, {"curve": [_point(3, [11.0, 11.0], 120)]}),
        _record("agent", "bc", 1, {"curve": [_point(1, [2.0, 4.0], 50)]}),
        _record("agent", "bc", 1, {"curve": [_point(3, [8.0, 8.0], 150)]}),
        _record("agent", "dril", 0, {"curve": [_point(1, [11.0, 11.0], 40)]}),
        _record("agent", "dril", 1, {"curve": [_point(1, [11.0, 11.0], 50)]}),
    ]
    config = {"entries": [ENTRY.to_dict()], "seeds": [0, 1]}
    return CompareResults([ENTRY], [0, 1], records, config)


def test_summary_normalises_each_seed_by_its_own_references() -> None:
    rows = {(r["agent"], r["n_demos"]): r for r in imitation.summarize(_results())}
    assert list(rows) == [("bc", 1), ("dril", 1), ("bc", 3)]
    bc = rows[("bc", 1)]
    # seed 0: (6 - 1) / 10 = 0.5; seed 1: (3 - 2) / 9 = 1/9 (pooled references would give
    # (4.5 - 1.5) / 9.5 for the mean: each seed's episodes are normalised by their own).
    assert bc["normalized_mean"] == pytest.approx((0.5 + 1 / 9) / 2)
    assert bc["raw_mean"] == 4.5 and bc["seeds"] == [0, 1] and bc["n_seeds"] == 2
    assert bc["random"] == 1.5 and bc["expert"] == 11.0 and bc["expert_labels"] == 45
    assert bc["normalized_ci"] == stats.bootstrap_ci([0.5, 1 / 9])
    assert bc["raw_ci"] == stats.bootstrap_ci([6.0, 3.0])
    assert rows[("bc", 3)]["normalized_mean"] == pytest.approx((1.0 + 6 / 9) / 2)
    assert rows[("dril", 1)]["normalized_mean"] == 1.0
    assert rows[("dril", 1)]["normalized_ci"] == (1.0, 1.0)


def test_paired_differences_pair_seeds_where_both_ran() -> None:
    (row,) = imitation.paired_differences(_results())  # DRIL has no run at 3 demonstrations
    assert row["n_demos"] == 1 and row["seeds"] == [0, 1]
    assert row["pairs"] == [(11.0, 6.0), (11.0, 3.0)]
    # seed 0: 1 - 0.5; seed 1: 1 - 1/9
    assert row["difference_mean"] == pytest.approx((0.5 + 8 / 9) / 2)
    assert row["difference_ci"] == stats.bootstrap_ci([0.5, 8 / 9])
    assert imitation.paired_differences(_results(), agent="dagger") == []
    table = imitation.paired_table([row])
    assert "| Breakout | 1 | 2 | 11 / 6, 11 / 3 | +0.69 [+0.50, +0.89] |" in table


def test_report_tables_and_figure(tmp_path) -> None:
    results = _results()
    text = imitation.report(results, figure=tmp_path / "fig.png")
    assert "| Breakout | bc | 1 | 45 | 2 | 4.50 [3.00, 6.00] | 0.31 [0.11, 0.50] |" in text
    assert "DRIL minus BC, paired by seed" in text
    assert (tmp_path / "fig.png").read_bytes()[:4] == b"\x89PNG"
    # A folder written by compare reads the same.
    results.save(tmp_path / "saved")
    assert imitation.report(tmp_path / "saved") == text


def test_report_is_empty_without_entries_counted_in_episodes() -> None:
    results = _results()
    results.entries = [dataclasses.replace(ENTRY, curve_unit="expert_labels")]
    assert imitation.summarize(results) == []
    assert imitation.report(results) == ""


def test_equal_random_and_expert_scores_are_refused_by_name() -> None:
    with pytest.raises(ValueError, match=f"{ENV} seed 1: the random policy and the expert both"):
        imitation.summarize(_results(expert_seed_1=[2.0, 2.0]))


def test_a_tiny_atari_imitation_comparison(tmp_path) -> None:
    """The suite's SpaceInvaders entry at test size through the runner, then analysed: the
    numbers are the results' own scores, normalised by hand."""
    entry = get_suite("atari-imitation")[0]
    assert entry.env_id == "MinAtarImitation-SpaceInvaders-v0"
    dril = {
        "total_timesteps": 64,
        "n_envs": 2,
        "ensemble_size": 2,
        "bc_epochs": 1,
        "ensemble_epochs": 1,
        "rl_kwargs": {"n_steps": 8},
    }
    entry = dataclasses.replace(
        entry.with_budget(curve_points=(1, 2)),
        eval_episodes=2,
        n_epochs=1,
        env_kwargs={"horizon": 30},
        agent_kwargs={**entry.agent_kwargs, "dril": dril},
    )
    results = run_compare([entry], seeds=2, out=tmp_path)
    rows = {(r["agent"], r["n_demos"]): r for r in imitation.summarize(results)}
    assert set(rows) == {(a, n) for a in ("bc", "dagger", "dril") for n in (1, 2)}
    random = results.reference_scores(entry.env_id, "random")
    expert = results.reference_scores(entry.env_id, "expert")
    for (agent, n_demos), row in rows.items():
        curve = results.curve(entry.env_id, agent)
        raw = {
            s: np.mean(next(p for p in points if p["point"] == n_demos)["scores"])
            for s, points in curve.items()
        }
        normalized = [
            (raw[s] - np.mean(random[s])) / (np.mean(expert[s]) - np.mean(random[s]))
            for s in (0, 1)
        ]
        assert row["seeds"] == [0, 1]
        assert row["raw_mean"] == pytest.approx(np.mean([raw[0], raw[1]]))
        assert row["normalized_mean"] == pytest.approx(np.mean(normalized))
        # Equal labels: DAgger gets as many as the seed's demonstrations hold.
        assert row["expert_labels"] == rows[("bc", n_demos)]["expert_labels"]
    paired = imitation.paired_differences(results)
    assert [r["n_demos"] for r in paired] == [1, 2]
    for row in paired:  # normalised by the same seeds' references: the means' difference
        n_demos = row["n_demos"]
        assert row["difference_mean"] == pytest.approx(
            rows[("dril", n_demos)]["normalized_mean"] - rows[("bc", n_demos)]["normalized_mean"]
        )
    results.save(tmp_path)
    text = imitation.report(tmp_path, figure=tmp_path / imitation.FIGURE_FILE)
    assert "| SpaceInvaders | dril | 2 |" in text
    assert (tmp_path / imitation.FIGURE_FILE).stat().st_size > 1000


def test_the_ale_suite_plans_the_dril_benchmark_at_the_paper_setting() -> None:
    entries = get_suite("atari-imitation-ale")
    assert [e.env_id.split("-")[1] for e in entries] == [
        "Pong",
        "Breakout",
        "SpaceInvaders",
        "BeamRider",
        "Qbert",
        "MsPacman",
    ]
    jobs = plan_jobs(entries, [0])
    dril = [j for j in jobs if j.name == "dril"]
    # One DRIL job per (game, curve point), trained 20M steps on the paper's training envs.
    assert len(dril) == 6 * 5
    assert {j.settings["total_timesteps"] for j in dril} == {20_000_000}
    assert all(j.settings["train_env_kwargs"] == ATARI_TRAINING for j in dril)
