"""The kinds of env an agent is given: one Gymnasium env, a Gymnasium vector env, or an SB3
VecEnv (``DummyVecEnv``, ``make_vec_env``'s result), and one row's spaces whatever the kind.

Agents that only read the spaces (BC) or roll out a batch themselves (PPO and the guided
algorithms) take every kind; agents that drive one env step by step (DAgger, PGRank) or
copy the env themselves (DRIL) take a single env and refuse a vector env, naming the
single env to pass instead.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import gymnasium as gym
from stable_baselines3.common.vec_env import VecEnv


def is_vector_env(env: Any) -> bool:
    """Whether ``env`` is a batch of envs: a Gymnasium ``VectorEnv`` or an SB3 ``VecEnv``."""
    return isinstance(env, (gym.vector.VectorEnv, VecEnv))


def single_spaces(env: Any) -> tuple[gym.Space, gym.Space]:
    """One row's observation and action spaces. A Gymnasium vector env declares them as
    ``single_*_space`` (its own spaces are batched); an SB3 VecEnv as its spaces."""
    if isinstance(env, gym.vector.VectorEnv):
        return env.single_observation_space, env.single_action_space
    return env.observation_space, env.action_space


def row_spaces(env: Any) -> SimpleNamespace:
    """An object with one row's ``observation_space`` / ``action_space``, for the space checks
    (:func:`lfi_gym.envs.policies.check_spaces`) that read them from an env."""
    observation_space, action_space = single_spaces(env)
    return SimpleNamespace(observation_space=observation_space, action_space=action_space)


def row_env(env: Any) -> Any:
    """A single env standing for ``env``'s rows where one is at hand (an SB3 ``DummyVecEnv``
    holds its rows; a Gymnasium vector env and a single env stand for themselves)."""
    if isinstance(env, VecEnv):
        rows = getattr(env, "envs", None)
        return rows[0] if rows else env
    return env


def text_task(env: Any, refusal: str, error: type[Exception] = ValueError) -> Any:
    """The ``TextTask`` of a text env: an env id, a single env (through wrappers), a
    Gymnasium vector env or an SB3 ``DummyVecEnv`` of text envs. Any other env raises
    ``error`` with ``refusal`` (what needs a text env) and the env's class."""
    if isinstance(env, str):
        env = gym.make(env)
    base = getattr(row_env(env), "unwrapped", env)
    task = getattr(base, "task", None)
    if task is None or not hasattr(task, "tokenizer"):
        raise error(f"{refusal} (TextGen-*); got {type(base).__name__}")
    return task


def refuse_vector_env(agent: str, env: Any, reason: str) -> None:
    """Raise a TypeError if ``env`` is a vector env: ``agent`` takes a single one because of
    ``reason``; the message names the single env to pass instead."""
    if not is_vector_env(env):
        return
    env_id = _env_id(env)
    single = f"gym.make({env_id!r})" if env_id else "gym.make(env_id)"
    raise TypeError(
        f"{agent} takes a single env, not a vector env ({type(env).__name__}): {reason}. "
        f"Pass {single} instead"
    )


def _env_id(env: Any) -> str | None:
    """The registered id of ``env``'s rows, if known."""
    rows = row_env(env)
    spec = getattr(rows, "spec", None)
    if spec is not None:
        return spec.id
    return getattr(rows, "env_id", None)
