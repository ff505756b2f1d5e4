"""Evaluating any Policy on an env: episode returns with fixed seeds."""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from lfi_gym.agents.policies import Policy, as_policy, check_spaces


def episode_returns(
    policy: Policy,
    env: gym.Env,
    n_episodes: int = 10,
    *,
    seed: int | None = 0,
    deterministic: bool = True,
) -> np.ndarray:
    """Returns of ``n_episodes`` episodes; episode ``i`` starts from ``reset(seed=seed + i)``
    so that two policies evaluated with the same seed face the same start states."""
    if n_episodes <= 0:
        raise ValueError(f"n_episodes must be positive, got {n_episodes}")
    policy = as_policy(policy)
    check_spaces(policy, env)
    returns = np.zeros(n_episodes)
    for episode in range(n_episodes):
        obs, _ = env.reset(seed=None if seed is None else seed + episode)
        state, start, done = None, True, False
        while not done:
            action, state = policy.predict(
                obs, state=state, episode_start=np.array([start]), deterministic=deterministic
            )
            obs, reward, terminated, truncated, _ = env.step(action)
            returns[episode] += reward
            start, done = False, terminated or truncated
    return returns
