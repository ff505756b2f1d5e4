"""The lfi-gym command line: compare writes its table, JSON and plot; bad input exits 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest

from lfi_gym import envs
from lfi_gym.cli import main
from lfi_gym.suites import SuiteEntry, get_suite

SMALL = ["--label-budget", "60", "--curve-points", "30,60", "--eval-episodes", "2"]


def test_compare_writes_table_json_and_png(tmp_path: Path, capsys) -> None:
    argv = ["compare", "--env", "Control-CartPole-v0", "--agents", "bc,dagger", "--seeds", "2"]
    status = main([*argv, *SMALL, "--out", str(tmp_path), "--no-progress"])
    assert status == 0
    out = capsys.readouterr().out
    assert "Control-CartPole-v0" in out and "dagger" in out and "expert (ref.)" in out
    assert "IQM" in out and "P(X > Y)" in out

    results = json.loads((tmp_path / "results.json").read_text())
    assert results["format"] == "lfi-gym.compare" and results["format_version"] == 2
    jobs = results["jobs"]
    expert = [j for j in jobs if j["config"]["name"] == "expert"]
    assert [j["result"]["scores"] for j in expert] == [[500.0, 500.0]] * 2
    agent_jobs = [j for j in jobs if j["config"]["kind"] == "agent"]
    # BC: a fresh agent per curve point; DAgger: its whole curve in one job.
    assert sorted(
        (j["config"]["name"], j["config"]["seed"], j["config"]["points"]) for j in agent_jobs
    ) == [
        ("bc", 0, [30]),
        ("bc", 0, [60]),
        ("bc", 1, [30]),
        ("bc", 1, [60]),
        ("dagger", 0, [30, 60]),
        ("dagger", 1, [30, 60]),
    ]
    for job in agent_jobs:  # equal expert-label budgets at every curve point
        for point in job["result"]["curve"]:
            assert point["budgets"]["expert_labels"] == point["point"]
            assert len(point["scores"]) == 2 and 0 < np.mean(point["scores"]) <= 500
    summary = results["summary"]["envs"]["Control-CartPole-v0"]["agents"]
    assert {"bc", "dagger", "random", "expert"} <= set(summary)
    assert summary["bc"]["n_seeds"] == 2 and summary["expert"]["normalized_mean"] == 1.0
    assert set(results["summary"]["suite"]["aggregate"]) == {"bc", "dagger"}

    for name in ("learning_curves.png", "performance_profiles.png"):
        image = matplotlib.image.imread(tmp_path / name)
        assert image.ndim == 3 and image.shape[0] > 300 and image.shape[1] > 400
        assert image.std() > 0.05  # not a blank canvas


def test_compare_is_reproducible(tmp_path: Path) -> None:
    argv = ["compare", "--env", "Control-CartPole-v0", "--agents", "dagger", "--seeds", "1"]
    for name in ("a", "b"):
        assert main([*argv, *SMALL, "--out", str(tmp_path / name), "--no-progress"]) == 0
    first, second = (
        json.loads((tmp_path / name / "results.json").read_text())["jobs"] for name in "ab"
    )

    def dagger_scores(jobs: list) -> list:
        (job,) = [j for j in jobs if j["config"]["name"] == "dagger"]
        return [p["scores"] for p in job["result"]["curve"]]

    assert dagger_scores(first) == dagger_scores(second)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["compare", "--env", "Nope-v0"], "Control-CartPole-v0"),
        (["compare", "--agents", "bc,ppo9000"], "dagger"),
        (["compare", "--seeds", "0"], "positive"),
        (["compare", "--seeds", "-2"], "positive"),
        (["compare", "--eval-episodes", "0"], "positive"),
        (["compare", "--curve-points", "50,20"], "increasing"),
        (["compare", "--label-budget", "100", "--curve-points", "20,50"], "budget"),
        (["compare", "--agents", "no_such_module:Agent"], "cannot import module 'no_such_module'"),
        (["compare", "--agents", "json:JSONDecoder"], "not a subclass of lfi_gym.agents.BaseAgent"),
        (["compare", "--env", "Control-CartPole-v0", "--agents", "pgrank"], "Agents by family"),
        (["compare", "--agent-kwargs", "bc"], "NAME="),
        (["compare", "--agent-kwargs", "bc={oops"], "not JSON"),
        (["compare", "--agent-kwargs", "bc=[1]"], "JSON object"),
        (["compare", "--suite-file", "nope.toml"], "--suite-file"),
    ],
)
def test_bad_input_exits_2_with_a_helpful_message(tmp_path, capsys, argv, message) -> None:
    status = main([*argv, "--out", str(tmp_path), "--no-progress"])
    assert status == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "results.json").exists()


def test_unknown_env_lists_every_registered_id(tmp_path, capsys) -> None:
    assert main(["compare", "--env", "Nope-v0", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert all(env_id in err for env_id in envs.registered_ids())


def test_envs_lists_the_registered_ids(capsys) -> None:
    assert main(["envs"]) == 0
    out = capsys.readouterr().out
    assert all(env_id in out for env_id in envs.registered_ids())


def test_console_script_is_installed() -> None:
    # The script pip installs beside this interpreter, not `python -m`.
    script = Path(sys.executable).parent / "lfi-gym"
    assert script.exists(), "pip install -e . installs the lfi-gym command"
    result = subprocess.run(
        [str(script), "compare", "--env", "Nope-v0", "--out", "x"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2 and "unknown env id" in result.stderr


def test_python_dash_m_runs_the_command_line() -> None:
    # For environments where the console script is not on PATH (notebooks, some clusters).
    result = subprocess.run(
        [sys.executable, "-m", "lfi_gym", "--help"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert "usage: lfi-gym" in result.stdout and "compare" in result.stdout
    result = subprocess.run(
        [sys.executable, "-m", "lfi_gym", "compare", "--env", "Nope-v0", "--out", "x"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2 and "unknown env id" in result.stderr


def test_default_suite_covers_cartpole_with_bc_and_dagger() -> None:
    (cartpole,) = [e for e in get_suite("default") if e.env_id == "Control-CartPole-v0"]
    assert set(cartpole.agents) == {"bc", "dagger"}
    assert cartpole.curve_points[-1] == cartpole.label_budget


def test_suite_entry_validates() -> None:
    with pytest.raises(ValueError, match="strictly increasing"):
        SuiteEntry("Control-CartPole-v0", label_budget=100, curve_points=(50, 50, 100))
    with pytest.raises(ValueError, match="label budget"):
        SuiteEntry("Control-CartPole-v0", label_budget=100, curve_points=(50, 90))
    with pytest.raises(ValueError, match="positive"):
        SuiteEntry("Control-CartPole-v0", label_budget=0)


def test_budget_overrides_keep_budgets_equal_and_curves_consistent() -> None:
    entry = SuiteEntry("Control-CartPole-v0", label_budget=300, curve_points=(50, 100, 200, 300))
    assert entry.with_budget(label_budget=150).curve_points == (50, 100, 150)
    assert entry.with_budget(curve_points=[10, 20]).label_budget == 20
    assert entry.with_budget() is entry
    with pytest.raises(ValueError, match="label budget"):
        entry.with_budget(label_budget=100, curve_points=[20, 50])


def test_demos_records_oracle_episodes(tmp_path: Path, capsys) -> None:
    from lfi_gym.agents import Demonstrations

    out = tmp_path / "sub" / "demos.lfid"
    argv = ["demos", "--env", "MinAtarImitation-Freeway-v0", "--episodes", "2"]
    assert main([*argv, "--out", str(out), "--no-progress"]) == 0
    assert "2 episodes" in capsys.readouterr().out
    demos = Demonstrations.load(out)
    assert demos.n_episodes == 2 and demos.env_id == "MinAtarImitation-Freeway-v0"
    assert demos.observations.dtype == "uint8" and demos.rewards.sum() > 0


@pytest.mark.parametrize("env_id", ["TextGen-TinyReviews-v0", "Rank-Synthetic-v0"])
def test_demos_records_dict_observation_envs(tmp_path: Path, capsys, env_id: str) -> None:
    """The text and ranking envs observe a Dict of arrays; demos streams each key."""
    import gymnasium as gym

    from lfi_gym.agents import Demonstrations

    out = tmp_path / "x.lfid"
    argv = ["demos", "--env", env_id, "--episodes", "3", "--out", str(out), "--no-progress"]
    assert main(argv) == 0
    assert "3 episodes" in capsys.readouterr().out
    demos = Demonstrations.load(out)
    env = gym.make(env_id)
    assert demos.n_episodes == 3 and demos.env_id == env_id
    assert demos.observation_space == env.observation_space
    assert demos.action_space == env.action_space
    assert demos.observations.keys() == env.observation_space.spaces.keys()
    first, _ = env.reset(seed=0)  # the recording's first reset used --seed 0
    for key, space in env.observation_space.spaces.items():
        assert demos.observations[key].shape == (len(demos), *space.shape)
        np.testing.assert_array_equal(demos.observations[key][0], first[key])


def test_demos_shows_a_progress_bar(tmp_path: Path, capsys) -> None:
    argv = ["demos", "--env", "MinAtarImitation-Breakout-v0", "--episodes", "1"]
    assert main([*argv, "--out", str(tmp_path / "d.lfid")]) == 0
    err = capsys.readouterr().err
    assert "demos" in err and "1/1" in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--env", "Nope-v0", "--episodes", "1"], "unknown env id"),
        (["--env", "MinAtarImitation-Breakout-v0", "--episodes", "0"], "positive integer"),
        (["--env", "MinAtarImitation-Breakout-v0"], "--episodes"),
    ],
)
def test_demos_bad_input_exits_2(tmp_path: Path, capsys, argv, message) -> None:
    assert main(["demos", *argv, "--out", str(tmp_path / "d.lfid")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "d.lfid").exists()


def test_demos_out_must_be_a_file(tmp_path: Path, capsys) -> None:
    argv = ["demos", "--env", "MinAtarImitation-Breakout-v0", "--episodes", "1"]
    assert main([*argv, "--out", str(tmp_path)]) == 2
    assert "is a folder" in capsys.readouterr().err
