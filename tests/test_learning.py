"""Learning tests on Control-CartPole-v0: the oracle is strong, BC and DAgger learn, and
DAgger beats BC at an equal number of expert labels when demonstrations are few and short.
Seeds are fixed; thresholds leave a margin below the measured values."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from lfi_gym import envs
from lfi_gym.agents import BC, DAgger, Demonstrations, episode_returns

ENV_ID = "Control-CartPole-v0"


def test_oracle_balances_for_the_whole_horizon() -> None:
    env = gym.make(ENV_ID)
    returns = episode_returns(envs.make_expert(env), env, n_episodes=20, seed=0)
    assert returns.mean() >= 475, returns


@pytest.mark.slow
def test_bc_learns_from_oracle_demonstrations() -> None:
    env = gym.make(ENV_ID)
    demos = Demonstrations.collect(env, envs.make_expert(env), n_episodes=4, seed=0)
    held_out = Demonstrations.collect(env, envs.make_expert(env), n_episodes=1, seed=50)
    bc = BC(env, demos, seed=0)
    loss_before = bc.loss()
    bc.learn(total_timesteps=20 * len(demos))
    assert bc.loss() < 0.5 * loss_before
    agreement = np.mean(
        bc.predict(held_out.observations, deterministic=True)[0] == held_out.actions
    )
    assert agreement >= 0.95
    returns = episode_returns(bc, gym.make(ENV_ID), n_episodes=10, seed=100)
    assert returns.mean() >= 475, returns
    assert bc.expert_labels == len(demos) == 2000


@pytest.mark.slow
def test_dagger_learns_with_the_oracle() -> None:
    env = gym.make(ENV_ID)
    dagger = DAgger(
        env, envs.make_expert(env), steps_per_round=100, beta_rounds=1, n_epochs=20, seed=0
    )
    dagger.learn(total_timesteps=500)
    assert dagger.expert_labels == 500 and dagger.round == 5
    returns = episode_returns(dagger, gym.make(ENV_ID), n_episodes=10, seed=100)
    assert returns.mean() >= 475, returns


@pytest.mark.slow
def test_dagger_beats_bc_at_equal_expert_labels() -> None:
    """200 labels: BC sees only the first 200 steps of one expert episode and drifts off
    later in its own episodes; DAgger spends the same labels on states it visits itself."""
    budget, bc_returns, dagger_returns = 200, [], []
    for seed in range(3):
        env = gym.make(ENV_ID)
        expert = envs.make_expert(env)
        demos = Demonstrations.collect(env, expert, n_steps=budget, seed=seed)
        bc = BC(env, demos, seed=seed).learn(100 * budget)
        dagger = DAgger(
            env, expert, steps_per_round=50, beta_rounds=1, n_epochs=25, seed=seed
        ).learn(budget)
        assert bc.expert_labels == dagger.expert_labels == budget
        eval_seed = 1000 + seed
        bc_returns.append(episode_returns(bc, gym.make(ENV_ID), 10, seed=eval_seed).mean())
        dagger_returns.append(episode_returns(dagger, gym.make(ENV_ID), 10, seed=eval_seed).mean())
    bc_mean, dagger_mean = np.mean(bc_returns), np.mean(dagger_returns)
    assert dagger_mean >= 400, dagger_returns
    assert dagger_mean >= bc_mean + 100, (bc_returns, dagger_returns)


def test_dagger_executes_expert_with_probability_beta() -> None:
    """Round 0 of the linear schedule is pure expert (beta = 1): the collected episode is
    the expert's own, so it lasts the whole round; beta then decays to 0 over 15 rounds."""
    env = gym.make(ENV_ID)
    dagger = DAgger(env, envs.make_expert(env), steps_per_round=300, n_epochs=1, seed=0)
    assert [dagger.beta(i) for i in (0, 5, 15, 20)] == pytest.approx([1.0, 2 / 3, 0.0, 0.0])
    dagger.learn(300)
    # With beta = 1 the expert acted at every step: no episode ended before the cut.
    assert dagger.demonstrations.n_episodes == 1
    expo = DAgger(env, envs.make_expert(env), beta_schedule="exponential", beta_decay=0.5)
    assert [expo.beta(i) for i in range(4)] == pytest.approx([1, 0.5, 0.25, 0.125])
    custom = DAgger(env, envs.make_expert(env), beta_schedule=lambda i: 2.0)
    with pytest.raises(ValueError, match="probability"):
        custom.learn(10)


def test_dagger_labels_every_visited_state_with_the_expert() -> None:
    env = gym.make(ENV_ID)
    expert = envs.make_expert(env)
    dagger = DAgger(env, expert, steps_per_round=100, beta_rounds=1, n_epochs=1, seed=0)
    dagger.learn(300)
    data = dagger.demonstrations
    assert len(data) == 300
    labels, _ = expert.predict(np.asarray(data.observations))
    np.testing.assert_array_equal(data.actions, labels)
    # After round 0 the learner acted (beta = 0): its visited states differ from the
    # expert's own trajectory, so failures (terminations) show up in the data.
    assert data.terminated[100:].any()
