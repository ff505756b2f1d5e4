"""Control-CartPole-v0 specifics: Gymnasium's dynamics, the env-owned horizon, the oracle."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from lfi_gym import envs
from lfi_gym.envs import StateError


def test_dynamics_and_rewards_match_gymnasium_cartpole() -> None:
    ours, theirs = gym.make("Control-CartPole-v0"), gym.make("CartPole-v1")
    obs_a, _ = ours.reset(seed=3)
    obs_b, _ = theirs.reset(seed=3)
    np.testing.assert_array_equal(obs_a, obs_b)
    actions = np.random.default_rng(0).integers(0, 2, size=200)
    for action in actions:
        a, b = ours.step(int(action)), theirs.step(int(action))
        np.testing.assert_array_equal(a[0], b[0])
        assert a[1:3] == b[1:3]
        if a[2]:
            break


def test_restart_mid_episode_keeps_the_remaining_horizon() -> None:
    env = gym.make("Control-CartPole-v0", horizon=50)
    expert = envs.make_expert(env)
    obs, _ = env.reset(seed=0)
    for _ in range(30):
        obs, *_ = env.step(expert.predict(obs)[0])
    state = env.get_state()
    other = gym.make("Control-CartPole-v0", horizon=50)
    obs, _ = other.reset_to(state)
    steps, truncated = 0, False
    while not truncated:
        obs, _, terminated, truncated, _ = other.step(expert.predict(obs)[0])
        assert not terminated
        steps += 1
    assert steps == 20  # 50 - 30: the step counter travels with the state


def test_state_of_another_horizon_is_refused() -> None:
    env = gym.make("Control-CartPole-v0", horizon=50)
    env.reset(seed=0)
    with pytest.raises(StateError, match="horizon=50"):
        gym.make("Control-CartPole-v0").reset_to(env.get_state())


@pytest.mark.parametrize("horizon", [0, -3, 2.5, "500"])
def test_bad_horizon(horizon) -> None:
    with pytest.raises(ValueError, match="horizon"):
        gym.make("Control-CartPole-v0", horizon=horizon)


def test_oracle_pushes_towards_upright() -> None:
    env = gym.make("Control-CartPole-v0")
    expert = envs.make_expert(env)
    leaning_right = np.array([0.0, 0.0, 0.1, 0.0], dtype=np.float32)
    leaning_left = -leaning_right
    # Pole leaning right: push the cart right (action 1) to get under it, and vice versa.
    np.testing.assert_array_equal(
        expert.predict(np.stack([leaning_right, leaning_left]))[0], [1, 0]
    )
