"""The Plackett-Luce policy and the ranking agents: BC, DAgger and PGRank learn; files."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

from lfi_gym import agents, envs
from lfi_gym.agents.evaluation import evaluate_ranker
from lfi_gym.agents.pgrank import PGRank
from lfi_gym.agents.plackett_luce import PlackettLucePolicy

KWARGS = {"n_queries": (150, 20, 40), "max_candidates": 12, "n_features": 6, "k_positions": 5}


@pytest.fixture
def train_env() -> gym.Env:
    return gym.make("Rank-Synthetic-v0", **KWARGS)


@pytest.fixture
def test_env() -> gym.Env:
    return gym.make("Rank-Synthetic-v0", split="test", **KWARGS)


def _policy(env: gym.Env, **kwargs) -> PlackettLucePolicy:
    torch.manual_seed(0)
    return PlackettLucePolicy(env.observation_space, env.action_space, **kwargs)


def _random_ndcg(env: gym.Env) -> float:
    """A uniformly random ranker (a zero scorer: every allowed slot equally likely)."""
    policy = _policy(env, net_arch=(4,))
    for p in policy.scorer.parameters():
        torch.nn.init.zeros_(p)
    torch.manual_seed(1)
    return evaluate_ranker(policy, env, deterministic=False)


def test_policy_never_picks_a_masked_slot_and_scores_are_masked(train_env) -> None:
    policy = _policy(train_env)
    obs, _ = train_env.reset(seed=0)
    obs["mask"][:] = 0
    obs["mask"][[2, 5]] = 1
    torch.manual_seed(0)
    picks = {int(policy.predict(obs)[0]) for _ in range(50)}
    assert picks <= {2, 5} and len(picks) == 2
    batch, _ = policy.obs_to_tensor(obs)
    values, log_prob, entropy = policy.evaluate_actions(batch, torch.tensor([2]))
    probs = policy.get_distribution(batch).probs[0]
    assert probs[[2, 5]].sum().item() == pytest.approx(1.0)
    assert values.shape == (1, 1) and torch.isfinite(log_prob).all() and entropy.item() > 0
    obs["mask"][:] = 0  # episode over: still a defined action, no NaN
    assert 0 <= policy.predict(obs, deterministic=True)[0] < 12


def test_policy_accepts_any_scorer_and_rejects_other_spaces(train_env) -> None:
    linear = torch.nn.Linear(6, 1)
    policy = _policy(train_env, scorer=linear, value_head=False)
    obs, _ = train_env.reset(seed=0)
    n = int(obs["mask"].sum())
    expected = np.argmax(linear(torch.as_tensor(obs["features"][:n])).detach().numpy().ravel())
    assert policy.predict(obs, deterministic=True)[0] == expected
    assert policy.evaluate_actions(policy.obs_to_tensor(obs)[0], torch.tensor([0]))[0] is None
    with pytest.raises(ValueError, match="ranking env"):
        PlackettLucePolicy(gym.spaces.Box(0, 1, (3,)), gym.spaces.Discrete(3))


@pytest.mark.slow
def test_bc_and_dagger_train_the_policy_in_place(train_env, test_env) -> None:
    random_ndcg = _random_ndcg(test_env)
    demos = agents.Demonstrations.collect(
        train_env, envs.make_expert(train_env), n_steps=600, seed=0
    )
    policy = _policy(train_env)
    bc = agents.BC(train_env, demos, policy=policy, seed=0)
    bc.learn(10 * len(demos))
    assert bc.policy is policy
    bc_ndcg = evaluate_ranker(bc.policy, test_env)
    dagger = agents.DAgger(
        train_env,
        envs.make_expert(train_env),
        policy=_policy(train_env),
        seed=0,
        steps_per_round=200,
        n_epochs=10,
    )
    dagger.learn(600)
    dagger_ndcg = evaluate_ranker(dagger.policy, test_env)
    assert bc_ndcg > random_ndcg + 0.2, (random_ndcg, bc_ndcg)
    assert dagger_ndcg > random_ndcg + 0.2, (random_ndcg, dagger_ndcg)


@pytest.mark.slow
def test_pgrank_learns(train_env, test_env) -> None:
    random_ndcg = _random_ndcg(test_env)
    agent = PGRank(train_env, _policy(train_env), seed=0, learning_rate=3e-3)
    agent.learn(6000)
    trained = evaluate_ranker(agent.policy, test_env)
    assert trained > random_ndcg + 0.15, (random_ndcg, trained)


@pytest.mark.parametrize("algorithm", ["ppo++", "aggrevated"])
def test_guided_agents_train_the_ranking_policy_with_the_oracle_as_guide(
    algorithm, train_env, test_env
) -> None:
    """PPO++ (the ideal ranking rolls in) and AggreVaTeD (it completes the list) train the
    Plackett-Luce policy through the same classes as the language models."""
    random_ndcg = _random_ndcg(test_env)
    guide = envs.make_expert(train_env)
    agent = agents.agent_class(algorithm)(
        train_env,
        _policy(train_env),
        guide=guide,
        beta=0.5,
        kl_coef=0.0,
        learning_rate=3e-3,
        n_envs=8,
        n_steps=400,
        batch_size=100,
        n_epochs=4,
        seed=0,
    )
    agent.learn(6000)
    trained = evaluate_ranker(agent.policy, test_env)
    assert trained > random_ndcg + 0.15, (random_ndcg, trained)


def test_pgrank_save_load_resumes_exactly(train_env, tmp_path: Path) -> None:
    straight = PGRank(train_env, _policy(train_env), seed=3, queries_per_update=2, n_samples=3)
    straight.learn(300)
    straight.learn(300, reset_num_timesteps=False)

    other_env = gym.make("Rank-Synthetic-v0", **KWARGS)
    first = PGRank(other_env, _policy(other_env), seed=3, queries_per_update=2, n_samples=3)
    first.learn(300)
    path = first.save(tmp_path / "pgrank")
    resumed_env = gym.make("Rank-Synthetic-v0", **KWARGS)
    resumed = PGRank.load(path, env=resumed_env)
    assert resumed.num_timesteps == first.num_timesteps and resumed.n_samples == 3
    resumed.learn(300, reset_num_timesteps=False)
    for a, b in zip(
        straight.policy.state_dict().values(), resumed.policy.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b)
    obs, _ = train_env.reset(seed=0)
    assert (
        straight.predict(obs, deterministic=True)[0] == resumed.predict(obs, deterministic=True)[0]
    )


def test_pgrank_bad_arguments(train_env) -> None:
    with pytest.raises(ValueError, match="n_samples must be >= 2"):
        PGRank(train_env, n_samples=1)
    with pytest.raises(ValueError, match="learning_rate"):
        PGRank(train_env, learning_rate=-1)
    with pytest.raises(TypeError, match="PlackettLucePolicy"):
        PGRank(train_env, policy="MlpPolicy")
    assert agents.agent_class("pgrank") is PGRank
