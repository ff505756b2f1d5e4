"""Evaluating any Policy on an env: episode returns with fixed seeds, NDCG on a ranking env."""

from __future__ import annotations

from collections.abc import Sequence

import gymnasium as gym
import numpy as np

from lfi_gym.envs.policies import Policy, as_policy, check_spaces


def episode_returns(
    policy: Policy,
    env: gym.Env,
    n_episodes: int = 10,
    *,
    seed: int | None = 0,
    deterministic: bool = True,
    info_key: str | None = None,
) -> np.ndarray:
    """Returns of ``n_episodes`` episodes; episode ``i`` starts from ``reset(seed=seed + i)``
    so that two policies evaluated with the same seed face the same start states.
    ``info_key`` scores each episode by that entry of its last info instead (e.g.
    ``"ndcg@10"`` on a ranking env)."""
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
            obs, reward, terminated, truncated, info = env.step(action)
            returns[episode] += reward
            start, done = False, terminated or truncated
        if info_key is not None:
            if info_key not in info:
                raise KeyError(
                    f"info_key {info_key!r} is not in the episode's last info (keys: "
                    f"{', '.join(sorted(info))})"
                )
            returns[episode] = float(info[info_key])
    return returns


def evaluate_ranker(
    policy: Policy,
    env: gym.Env,
    *,
    k: int = 10,
    queries: Sequence[int] | None = None,
    deterministic: bool = True,
) -> float:
    """Mean NDCG@k of ``policy`` over the queries of ``env``'s split (all by default),
    each run as one episode from ``reset(options={"query": q})``; queries without a
    relevant document count as 0. ``k`` must be 1, 5 or 10 (what the env reports)."""
    base = env.unwrapped
    if f"ndcg@{k}" not in ("ndcg@1", "ndcg@5", "ndcg@10"):
        raise ValueError(f"k must be 1, 5 or 10 (the cut-offs the env reports), got {k!r}")
    indices = range(base.queries.n_queries) if queries is None else queries
    total, count = 0.0, 0
    for q in indices:
        obs, _ = env.reset(options={"query": int(q)})
        done, state, start = False, None, True
        while not done:
            action, state = policy.predict(
                obs, state=state, episode_start=np.array([start]), deterministic=deterministic
            )
            obs, _, terminated, truncated, info = env.step(action)
            done, start = terminated or truncated, False
        total += info[f"ndcg@{k}"]
        count += 1
    return total / max(count, 1)
