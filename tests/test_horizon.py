"""Gymnasium's ``max_episode_steps`` and restarts: a restart keeps the remaining horizon.

``gym.make(id, max_episode_steps=N)`` wraps the env in a TimeLimit whose count restarts at
every reset, ``reset(options={"state": s})`` included. The env adopts N as its own horizon,
so an episode restarted at step k is truncated after exactly N - k more steps.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from lfi_gym import envs
from lfi_gym.envs import StateError

CARTPOLE = "Control-CartPole-v0"


def _steps_until_the_end(env: gym.Env, policy, obs, limit: int) -> tuple[int, bool, bool]:
    """Step ``policy`` until the episode ends (at most ``limit`` steps): (steps, terminated,
    truncated) of the last step."""
    for step in range(1, limit + 1):
        obs, _, terminated, truncated, _ = env.step(policy(obs))
        if terminated or truncated:
            return step, terminated, truncated
    return limit, False, False


def _cartpole_at_step_30(env: gym.Env) -> tuple[envs.State, object, np.ndarray]:
    """Balance ``env`` (made with max_episode_steps=50) for 30 steps with the LQR oracle;
    its state and observation then, and the oracle as a function of the observation."""
    expert = envs.make_expert(env)

    def policy(obs):
        return expert.predict(obs)[0]

    obs, _ = env.reset(seed=0)
    for _ in range(30):
        obs, _, terminated, truncated, _ = env.step(policy(obs))
        assert not (terminated or truncated)
    return env.unwrapped.get_state(), policy, obs


def test_gym_make_max_episode_steps_keeps_the_remaining_steps_after_a_restart() -> None:
    env = gym.make(CARTPOLE, max_episode_steps=50)
    assert isinstance(env, gym.wrappers.TimeLimit) and env.spec.max_episode_steps == 50
    # Gymnasium hands N to its wrapper only: the env cannot read it from its own spec.
    assert env.unwrapped.spec.max_episode_steps is None
    state, policy, obs = _cartpole_at_step_30(env)
    assert state.step == 30 and state.horizon == 50

    # Elsewhere first: on in this episode, then a fresh one.
    for _ in range(5):
        obs = env.step(policy(obs))[0]
    obs, _ = env.reset(seed=1)
    for _ in range(10):
        obs = env.step(policy(obs))[0]

    obs, _ = env.reset(options={"state": state})
    for step in range(1, 21):
        obs, _, terminated, truncated, _ = env.step(policy(obs))
        assert not terminated
        assert truncated == (step == 20), f"truncated={truncated} at step {step} of 20"

    # An env made the same way restores it on its first reset, with the same 20 steps.
    again = gym.make(CARTPOLE, max_episode_steps=50)
    obs, _ = again.reset(options={"state": state})
    assert _steps_until_the_end(again, policy, obs, 50) == (20, False, True)


def test_the_smaller_of_the_two_horizons_decides() -> None:
    env = gym.make(CARTPOLE, horizon=40, max_episode_steps=50)
    env.reset(seed=0)
    assert env.unwrapped.horizon == 40
    policy = envs.make_expert(env)
    obs, _ = env.reset(seed=0)
    assert _steps_until_the_end(env, lambda o: policy.predict(o)[0], obs, 100) == (40, False, True)


def test_a_state_of_another_limit_names_the_fix() -> None:
    env = gym.make(CARTPOLE, max_episode_steps=50)
    state, _, _ = _cartpole_at_step_30(env)
    plain = gym.make(CARTPOLE)
    with pytest.raises(
        StateError, match=r"horizon 50, this env has horizon 500.*max_episode_steps=50"
    ):
        plain.reset(options={"state": state})
    with pytest.raises(StateError, match="horizon 50, this env has horizon 60"):
        gym.make(CARTPOLE, max_episode_steps=60).reset(options={"state": state})


def test_make_vec_max_episode_steps_keeps_the_remaining_steps_after_a_restart() -> None:
    vec = gym.make_vec(CARTPOLE, num_envs=2, max_episode_steps=50)
    single = gym.make(CARTPOLE)
    expert = envs.make_expert(single)

    def policy(obs):
        return np.array([expert.predict(row)[0] for row in obs])

    obs, _ = vec.reset(seed=0)
    for _ in range(30):
        obs, _, terminated, truncated, _ = vec.step(policy(obs))
        assert not (terminated | truncated).any()
    state = vec.get_state()
    assert [row.step for row in state.states] == [30, 30]
    for _ in range(5):
        obs = vec.step(policy(obs))[0]
    obs, _ = vec.reset(seed=3)

    def check_twenty_more(vec, obs) -> None:
        for step in range(1, 21):
            obs, _, terminated, truncated, _ = vec.step(policy(obs))
            assert not terminated.any()
            assert truncated.tolist() == [step == 20] * 2, f"step {step}: {truncated}"

    obs, _ = vec.reset_to(state)
    check_twenty_more(vec, obs)
    obs, _ = vec.reset(options={"state": state.states[0]})  # each row restarts from row 0
    check_twenty_more(vec, obs)
    fresh = gym.make_vec(CARTPOLE, num_envs=2, max_episode_steps=50)
    obs, _ = fresh.reset_to(list(state.states))  # a vector env made the same way
    check_twenty_more(fresh, obs)


def test_minatar_keeps_the_remaining_steps_after_a_restart() -> None:
    # Freeway runs for 2,500 frames whatever the actions: only the limit ends these episodes.
    env = gym.make("MinAtarImitation-Freeway-v0", max_episode_steps=40)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    for _ in range(25):
        assert not any(env.step(int(rng.integers(env.action_space.n)))[2:4])
    state = env.unwrapped.get_state()
    assert (state.step, state.horizon) == (25, 40)
    env.reset(seed=1)
    obs, _ = env.reset(options={"state": state})
    assert _steps_until_the_end(env, lambda _: 0, obs, 40) == (15, False, True)
    with pytest.raises(StateError, match="max_episode_steps=40"):
        gym.make("MinAtarImitation-Freeway-v0").reset(options={"state": state})


def _non_eos_token(env: gym.Env | gym.vector.VectorEnv) -> int:
    return 5 if env.unwrapped.task.eos_token_id != 5 else 6


def test_text_keeps_the_remaining_steps_after_a_restart() -> None:
    env = gym.make("TextGen-TinyReviews-v0", max_episode_steps=12)
    assert env.unwrapped.task.max_new_tokens == 32
    token = _non_eos_token(env)
    env.reset(seed=0)
    for _ in range(7):
        env.step(token)
    state = env.unwrapped.get_state()
    assert len(state.generated_ids) == 7
    env.reset(seed=1)
    env.reset(options={"state": state})
    for step in range(1, 6):
        _, reward, terminated, truncated, _ = env.step(token)
        assert not terminated and reward == 0.0  # cut, not finished: nothing is scored
        assert truncated == (step == 5)
    with pytest.raises(gym.error.ResetNeeded):
        env.step(token)
    assert env.unwrapped.get_state().done

    too_long = gym.make("TextGen-TinyReviews-v0", max_episode_steps=5)
    with pytest.raises(
        StateError, match="7 generated tokens, beyond this env's max_episode_steps=5"
    ):
        too_long.reset(options={"state": state})


def test_text_vector_env_keeps_the_remaining_steps_after_a_restart() -> None:
    vec = gym.make_vec("TextGen-TinyReviews-v0", num_envs=2, max_episode_steps=12)
    tokens = np.full(2, _non_eos_token(vec), dtype=np.int64)
    vec.reset(seed=0)
    for _ in range(7):
        vec.step(tokens)
    state = vec.get_state()
    vec.step(tokens)
    vec.reset(seed=4)
    vec.reset_to(state)
    for step in range(1, 6):
        _, _, terminated, truncated, _ = vec.step(tokens)
        assert not terminated.any()
        assert truncated.tolist() == [step == 5] * 2


def test_ranking_is_truncated_by_max_episode_steps_counted_from_the_state() -> None:
    env = gym.make("Rank-Synthetic-v0", max_episode_steps=4)
    expert = envs.make_expert(env)
    obs, _ = env.reset(seed=0)
    for _ in range(2):
        obs = env.step(expert.predict(obs)[0])[0]
    state = env.unwrapped.get_state()
    env.reset(seed=1)
    obs, _ = env.reset(options={"state": state})
    obs, _, terminated, truncated, info = env.step(expert.predict(obs)[0])
    assert not (terminated or truncated) and info == {}
    obs, _, terminated, truncated, info = env.step(expert.predict(obs)[0])
    assert truncated and not terminated
    assert len(env.unwrapped.placed) == 4 and "ndcg@10" in info  # the partial list's score
    assert not obs["mask"].any()


def test_without_max_episode_steps_nothing_changes() -> None:
    env = gym.make(CARTPOLE)
    env.reset(seed=0)
    assert not isinstance(env, gym.wrappers.TimeLimit) and env.horizon == 500
    ranking = gym.make("Rank-Synthetic-v0")
    ranking.reset(seed=0)
    assert ranking._step_limit is None
