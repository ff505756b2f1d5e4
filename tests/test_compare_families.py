"""compare on the text and ranking entries of the default suite, at tiny budgets."""

from __future__ import annotations

import dataclasses

import numpy as np

from lfi_gym import agents, compare
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
    (zero_shot,) = results.runs_for("TextGen-TinyReviews-v0", "zero-shot")
    (bc,) = results.runs_for("TextGen-TinyReviews-v0", "bc")
    assert [p.expert_labels for p in zero_shot.curve] == [0]
    assert [p.expert_labels for p in bc.curve] == [24, 48]
    for run in (zero_shot, bc):
        returns = np.concatenate([p.returns for p in run.curve])
        assert ((0.0 <= returns) & (returns <= 1.0)).all()
    assert "zero-shot" in results.summary()["TextGen-TinyReviews-v0"]["agents"]
    assert "zero-shot" in compare.LABEL_FREE


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
    labels = {
        name: results.runs_for(entry.env_id, name)[0].curve[0].expert_labels
        for name in ("ppo", "ppo++", "aggrevated")
    }
    assert labels == {"ppo": 0, "ppo++": 24, "aggrevated": 24}


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
    (run,) = results.runs_for("Rank-Synthetic-v0", "bc")
    assert run.curve[0].expert_labels == 100 and run.final.return_mean > 0
