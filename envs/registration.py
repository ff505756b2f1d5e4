"""Registering lfi-gym envs with Gymnasium so that ``gym.make(id)`` keeps the contract."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium as gym

from lfi_gym.envs.vector import sync_vector_entry_point

_REGISTERED: list[str] = []


def register_restartable(
    id: str,
    entry_point: str,
    vector_entry_point: str | Callable[..., Any] | None = None,
    **kwargs: Any,
) -> None:
    """Register an env that subclasses :class:`lfi_gym.envs.core.RestartableEnv`.

    ``gym.make_vec(id, num_envs=n)`` then returns ``vector_entry_point``'s vector env, by
    default a :class:`lfi_gym.envs.vector.RestartableSyncVectorEnv` (families with a native batched
    env pass their own).

    Gymnasium 1.x wrappers do not forward unknown attributes, so ``gym.make`` must return
    the env itself for ``get_state`` / ``reset_to`` to be callable on what it returns.
    The env enforces reset-before-step itself, the horizon is the env's own (no
    ``TimeLimit``), and the conformance tests run Gymnasium's checker on every id.
    """
    gym.register(
        id=id,
        entry_point=entry_point,
        order_enforce=False,
        disable_env_checker=True,
        max_episode_steps=None,
        vector_entry_point=vector_entry_point or sync_vector_entry_point(id),
        **kwargs,
    )
    _REGISTERED.append(id)


def registered_ids() -> list[str]:
    """Every env id lfi-gym registers, in registration order."""
    return list(_REGISTERED)


def check_env_id(env_id: str) -> None:
    """Raise a ValueError listing the valid ids if ``env_id`` is not an lfi-gym env."""
    if env_id not in _REGISTERED:
        raise ValueError(f"unknown env id {env_id!r}; lfi-gym registers: {', '.join(_REGISTERED)}")
