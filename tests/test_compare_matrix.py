"""Every built-in agent on every env family: it runs in ``compare`` or is refused before any
work with a message saying which agents run on which families."""

from __future__ import annotations

import numpy as np
import pytest

from lfi_gym.agents import AGENTS
from lfi_gym.compare import family_matrix, plan_jobs, run_compare
from lfi_gym.envs import FAMILIES
from lfi_gym.suites import SuiteEntry

ENVS = {
    "control": ("Control-CartPole-v0", {}),
    "text": ("TextGen-TinyReviews-v0", {"max_new_tokens": 4}),
    "ranking": ("Rank-Synthetic-v0", {}),
    "atari": ("MinAtarImitation-Breakout-v0", {"horizon": 30}),
}
assert set(ENVS) == set(FAMILIES.values())

RL = ("ppo", "ppo++", "aggrevated", "lols", "d2lols")
#: The cells the harness must run (the rest may run or be refused).
MUST_RUN = (
    {(agent, family) for agent in ("bc", "dagger") for family in ENVS}
    | {(agent, family) for agent in RL for family in ("control", "text", "ranking")}
    | {("dril", "control"), ("dril", "atari"), ("pgrank", "ranking")}
    | {("rlhf", "text"), ("dpo", "text")}
)

# Tiny budgets: the test checks that each cell runs and spends its budget, not learning.
RL_STEPS = {"control": 64, "text": 32, "ranking": 40, "atari": 64}


def tiny_settings(agent: str, family: str) -> dict:
    if agent == "bc":
        return {"batch_size": 4}
    if agent == "dagger":
        return {"steps_per_round": 4, "batch_size": 4}
    if agent == "dril":
        return {
            "total_timesteps": 32,
            "n_envs": 2,
            "bc_epochs": 1,
            "ensemble_epochs": 1,
            "ensemble_size": 2,
            "rl_kwargs": {"n_steps": 8},
        }
    if agent == "rlhf":
        rl = {"n_envs": 2, "n_steps": 8, "batch_size": 8, "n_epochs": 1}
        return {
            "total_timesteps": RL_STEPS[family],
            "preference_queries": 4,
            "rl_kwargs": rl,
            "rm_epochs": 1,
            "center_samples": 4,
        }
    if agent == "dpo":
        return {"total_timesteps": 8, "preference_queries": 4, "batch_size": 2}
    if agent == "pgrank":
        return {"total_timesteps": RL_STEPS[family], "n_samples": 2, "queries_per_update": 2}
    return {
        "total_timesteps": RL_STEPS[family],
        "n_envs": 2,
        "n_steps": RL_STEPS[family] // 2,
        "batch_size": 8,
        "n_epochs": 1,
    }


def tiny_entry(agent: str, family: str) -> SuiteEntry:
    env_id, env_kwargs = ENVS[family]
    return SuiteEntry(
        env_id=env_id,
        agents=(agent,),
        label_budget=8,
        curve_points=(4, 8),
        eval_episodes=1,
        n_epochs=1,
        agent_kwargs={agent: tiny_settings(agent, family), "bc": {"batch_size": 4}},
        env_kwargs=env_kwargs,
        demo_env_kwargs={"split": "train", "labels": [1]} if family == "text" else {},
        deterministic_eval=family != "text",
    )


@pytest.mark.parametrize("family", list(ENVS))
@pytest.mark.parametrize("agent", list(AGENTS))
def test_every_agent_runs_or_is_refused_on_every_family(agent: str, family: str) -> None:
    entry = tiny_entry(agent, family)
    cls = AGENTS[agent]
    if cls.FAMILIES is not None and family not in cls.FAMILIES:
        assert (agent, family) not in MUST_RUN
        with pytest.raises(ValueError, match="Agents by family") as caught:
            plan_jobs([entry], [0])
        message = str(caught.value)
        assert f"does not run on {entry.env_id}" in message
        for fam, names in family_matrix().items():
            assert f"{fam}: {', '.join(names)}" in message
        return
    results = run_compare([entry], [0])
    curve = results.curve(entry.env_id, agent)[0]
    assert np.isfinite(curve[-1]["scores"]).all()
    budgets = curve[-1]["budgets"]
    if cls.BUDGET_UNIT in ("demonstrations", "expert_labels"):
        assert [p["budgets"]["expert_labels"] for p in curve] == [4, 8]
    elif cls.BUDGET_UNIT == "preference_queries":  # from the BC (SFT) model of 8 labels
        assert budgets["preference_queries"] == 4 and budgets["expert_labels"] == 8
        assert budgets["env_steps"] >= 4 * 2  # two completions of at least a token per pair
    else:
        assert budgets["env_steps"] >= entry.agent_kwargs[agent]["total_timesteps"]
        guided = agent in RL[1:]  # PPO++, AggreVaTeD, LOLS, D2LOLS: BC guide on 8 labels
        assert budgets["expert_labels"] == (8 if guided else 0)
    assert budgets["tokens"] == (budgets["env_steps"] if family == "text" else 0)


def test_the_cells_that_must_run_are_not_refused() -> None:
    matrix = family_matrix()
    for agent, family in MUST_RUN:
        assert agent in matrix[family], (agent, family)
