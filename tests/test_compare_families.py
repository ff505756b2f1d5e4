"""compare on the text and ranking entries of the default suite, at tiny budgets."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from lfi_gym import agents
from lfi_gym.compare import run_compare
from lfi_gym.suites import entry_for


def test_text_entry_runs_zero_shot_and_fine_tuning(monkeypatch) -> None:
    entry = dataclasses.replace(
        entry_for("TextGen-TinyReviews-v0"),
        label_budget=48,
        curve_points=(24, 48),
        eval_episodes=3,
        n_epochs=1,
        env_kwargs={"max_new_tokens": 8},
        agents=("zero-shot", "bc"),
    )
    recorded = []
    collect = agents.Demonstrations.collect

    def spy(env, policy, **kwargs):
        demos = collect(env, policy, **kwargs)
        recorded.append(env.unwrapped.task)
        return demos

    monkeypatch.setattr(agents.Demonstrations, "collect", spy)
    results = run_compare([entry], seeds=1)
    # BC's demonstrations come from positive reviews only (demo_env_kwargs).
    assert recorded and all({s.label for s in task.samples} == {1} for task in recorded)
    assert all(task.max_new_tokens == 8 for task in recorded)
    (zero_shot,) = results.curve("TextGen-TinyReviews-v0", "zero-shot").values()
    (bc,) = results.curve("TextGen-TinyReviews-v0", "bc").values()
    assert [p["budgets"]["expert_labels"] for p in zero_shot] == [0]
    assert [p["budgets"]["expert_labels"] for p in bc] == [24, 48]
    for curve in (zero_shot, bc):
        returns = np.concatenate([p["scores"] for p in curve])
        assert ((0.0 <= returns) & (returns <= 1.0)).all()
    rows = results.summary()["envs"]["TextGen-TinyReviews-v0"]["agents"]
    assert "zero-shot" in rows and rows["zero-shot"]["normalized_mean"] == 0.0


def test_text_dagger_labels_the_prompts_and_expert_bc_learns_from(monkeypatch) -> None:
    """Like for like: DAgger rolls in on the train prompts of positive reviews, where BC's
    demonstrations come from, and its expert writes those positive reviews."""
    entry = dataclasses.replace(
        entry_for("TextGen-TinyReviews-v0"),
        label_budget=8,
        curve_points=(8,),
        eval_episodes=1,
        n_epochs=1,
        env_kwargs={"max_new_tokens": 4, "split": "validation"},
        agents=("dagger",),
        agent_kwargs={"dagger": {"steps_per_round": 4}},
    )
    seen = []
    init = agents.DAgger.__init__

    def spy(self, env, expert=None, **kwargs):
        seen.append((env.unwrapped.task, expert.env.unwrapped is env.unwrapped))
        init(self, env, expert, **kwargs)

    monkeypatch.setattr(agents.DAgger, "__init__", spy)
    run_compare([entry], seeds=1)
    ((task, bound),) = seen
    assert task.split == "train" and {s.label for s in task.samples} == {1} and bound


def test_text_entry_runs_ppo_and_the_guided_agents_at_their_budgets(monkeypatch) -> None:
    base = entry_for("TextGen-TinyReviews-v0")
    tiny = {"total_timesteps": 64, "n_steps": 32, "n_envs": 4, "batch_size": 32, "n_epochs": 1}
    entry = dataclasses.replace(
        base,
        label_budget=24,
        curve_points=(24,),
        eval_episodes=2,
        n_epochs=1,
        env_kwargs={"max_new_tokens": 8, "split": "validation"},
        agents=("ppo", "ppo++", "aggrevated"),
        agent_kwargs={
            **base.agent_kwargs,
            **{
                name: {**base.agent_kwargs[name], **tiny} for name in ("ppo", "ppo++", "aggrevated")
            },
        },
    )
    trained = []
    learn = agents.PPO.learn

    def spy(self, total_timesteps, **kwargs):
        trained.append((type(self).__name__, self.env.unwrapped.task.split, self.guide))
        return learn(self, total_timesteps, **kwargs)

    monkeypatch.setattr(agents.PPO, "learn", spy)
    results = run_compare([entry], seeds=1)
    # RL trains on train prompts (the entry evaluates on validation); guided agents get
    # the BC model as guide and are recorded at its labels, PPO at none.
    assert [(name, split) for name, split, _ in trained] == [
        ("PPO", "train"),
        ("PPOPlusPlus", "train"),
        ("AggreVaTeD", "train"),
    ]
    assert trained[0][2] is None and all(isinstance(g, agents.LMPolicy) for *_, g in trained[1:])
    budgets = {
        name: results.curve(entry.env_id, name)[0][0]["budgets"]
        for name in ("ppo", "ppo++", "aggrevated")
    }
    assert {name: b["expert_labels"] for name, b in budgets.items()} == {
        "ppo": 0,
        "ppo++": 24,
        "aggrevated": 24,
    }
    # Text: every env step is a token, and RL learns from the reward of each.
    for b in budgets.values():
        assert b["tokens"] == b["env_steps"] == b["reward_queries"] >= 64


def test_ranking_entry_trains_the_plackett_luce_policy() -> None:
    entry = dataclasses.replace(
        entry_for("Rank-Synthetic-v0"),
        label_budget=100,
        curve_points=(100,),
        eval_episodes=3,
        n_epochs=2,
        agent_kwargs={"bc": {"policy": "PlackettLucePolicy"}},
        agents=("bc",),
    )
    results = run_compare([entry], seeds=1)
    ((point,),) = results.curve("Rank-Synthetic-v0", "bc").values()
    assert point["budgets"]["expert_labels"] == 100
    # Scored by NDCG@10, in [0, 1], not by the DCG return.
    assert entry.metric == "ndcg@10" and all(0 < s <= 1 for s in point["scores"])


def test_preference_entry_gives_rlhf_and_dpo_the_same_sft_model_and_pairs(monkeypatch) -> None:
    """The "preferences" suite: RLHF and DPO of a seed start from the same BC (SFT) model and
    learn from the same labelled pairs of its completions; their records carry the pairs as
    preference queries and every token sampled (collection included), and the table shows
    the preference queries."""
    from lfi_gym.cli import _tables
    from lfi_gym.suites import get_suite

    (base,) = get_suite("preferences")
    assert {"rlhf", "dpo"} <= set(base.agents)
    tiny_rl = {"n_steps": 8, "n_envs": 2, "batch_size": 8, "n_epochs": 1}
    entry = dataclasses.replace(
        base,
        label_budget=8,
        curve_points=(8,),
        eval_episodes=2,
        n_epochs=1,
        env_kwargs={"max_new_tokens": 4, "split": "validation"},
        agents=("rlhf", "dpo"),
        agent_kwargs={
            "bc": {"policy": "LMPolicy", "batch_size": 4},
            "rlhf": {
                **base.agent_kwargs["rlhf"],
                "preference_queries": 6,
                "total_timesteps": 16,
                "rl_kwargs": tiny_rl,
                "rm_epochs": 1,
                "center_samples": 4,
            },
            "dpo": {**base.agent_kwargs["dpo"], "preference_queries": 6, "total_timesteps": 12},
        },
    )
    given = {}
    for cls in (agents.RLHF, agents.DPO):

        def spy(self, env, policy, *, preferences, _init=cls.__init__, **kwargs):
            weights = [p.detach().clone() for p in policy.parameters()]
            given[type(self).__name__] = (env.unwrapped.task.split, weights, preferences)
            _init(self, env, policy, preferences=preferences, **kwargs)

        monkeypatch.setattr(cls, "__init__", spy)
    results = run_compare([entry], seeds=[3])

    (split_r, sft_r, pairs_r), (split_d, sft_d, pairs_d) = given["RLHF"], given["DPO"]
    assert split_r == split_d == "train"
    assert all(torch.equal(a, b) for a, b in zip(sft_r, sft_d, strict=True))
    assert len(pairs_r) == 6 and pairs_r.labels.tolist() == pairs_d.labels.tolist()
    assert pairs_r.prompts == pairs_d.prompts
    for side in ("completion_ids_a", "completion_ids_b"):
        mine, theirs = getattr(pairs_r, side), getattr(pairs_d, side)
        assert all(np.array_equal(a, b) for a, b in zip(mine, theirs, strict=True))
    # The SFT model is BC's of the label budget, not the shipped LM.
    zero_shot = agents.make_learner("LMPolicy", *_spaces(entry), None, "cpu")
    assert not all(torch.equal(a, b) for a, b in zip(sft_r, zero_shot.parameters(), strict=True))

    collected = int(pairs_r.teacher["tokens"])
    assert collected >= 6 * 2  # two completions per pair, at least one token each
    rlhf = results.curve(entry.env_id, "rlhf")[3][0]["budgets"]
    dpo = results.curve(entry.env_id, "dpo")[3][0]["budgets"]
    assert rlhf["preference_queries"] == dpo["preference_queries"] == 6
    assert rlhf["expert_labels"] == dpo["expert_labels"] == 8  # the SFT model's labels
    assert dpo["tokens"] == dpo["env_steps"] == collected  # DPO samples nothing itself
    assert rlhf["tokens"] == rlhf["env_steps"] and rlhf["env_steps"] - collected >= 16
    assert rlhf["reward_queries"] == dpo["reward_queries"] == 0

    (table,) = _tables(results)[:1]
    assert "preference queries" in [column.header for column in table.columns]


def _spaces(entry):
    import gymnasium as gym

    env = gym.make(entry.env_id, **entry.env_kwargs)
    return env.observation_space, env.action_space


def test_preference_queries_given_to_an_agent_that_takes_no_preferences_is_refused() -> None:
    from lfi_gym.compare import plan_jobs
    from lfi_gym.suites import get_suite

    (base,) = get_suite("preferences")
    wrong = {**base.agent_kwargs, "ppo": {**base.agent_kwargs["ppo"], "preference_queries": 10}}
    entry = dataclasses.replace(base, agents=("ppo",), agent_kwargs=wrong)
    with pytest.raises(ValueError, match=r"preference_queries.*budgeted in env_steps"):
        plan_jobs([entry], [0])
