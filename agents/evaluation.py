"""Evaluating any Policy on an env: episode returns with fixed seeds, NDCG on a ranking env,
and the return of a roll-out from a saved state (what labelling rules compare actions by)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np

from lfi_gym.envs.policies import Policy, as_policy, check_spaces
from lfi_gym.envs.validation import check_positive_int


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


def rollout_return(
    env: gym.Env,
    policy: Policy,
    state: Any,
    *,
    first_action: Any = None,
    max_steps: int | None = None,
    deterministic: bool = True,
) -> float:
    """The summed reward of a roll-out from ``state`` (a State from ``env.get_state()``).

    Restores ``env`` to ``state`` (``env.reset(options={"state": state})``, through any
    wrappers), takes ``first_action`` if given, then lets ``policy`` act until the episode
    terminates or is truncated, or ``max_steps`` steps were taken in all (``first_action``
    counts as one). Returns the sum of every reward received, ``first_action``'s included.
    ``policy``'s recurrent state starts fresh at ``state``.

    The env is left where the roll-out ended: restore it yourself when you need it back
    (:class:`lfi_gym.agents.LabelDrivenAgent` does so after every ``label`` call).
    """
    policy = as_policy(policy)
    if max_steps is not None:
        check_positive_int(max_steps, "max_steps")
    obs, _ = env.reset(options={"state": state})
    total, steps, done = 0.0, 0, False
    if first_action is not None:
        obs, reward, terminated, truncated, _ = env.step(first_action)
        total, steps, done = float(reward), 1, terminated or truncated
    policy_state, start = None, True
    while not done and (max_steps is None or steps < max_steps):
        action, policy_state = policy.predict(
            obs, state=policy_state, episode_start=np.array([start]), deterministic=deterministic
        )
        obs, reward, terminated, truncated, _ = env.step(action)
        total += float(reward)
        steps, start, done = steps + 1, False, terminated or truncated
    return total
