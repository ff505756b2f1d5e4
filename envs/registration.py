"""Registering lfi-gym envs with Gymnasium so that ``gym.make(id)`` keeps the contract."""

from __future__ import annotations

from typing import Any

import gymnasium as gym

_REGISTERED: list[str] = []

#: Env families by id prefix; agents declare which of them they run on.
FAMILIES: dict[str, str] = {
    "Control-": "control",
    "TextGen-": "text",
    "Rank-": "ranking",
    "AtariImitation-": "atari",
    "MinAtarImitation-": "atari",
}


def register_restartable(
    id: str,
    *,
    entry_point: str,
    vector_entry_point: str,
    **kwargs: Any,
) -> None:
    """Register an env that subclasses :class:`lfi_gym.envs.core.RestartableEnv`.

    Both entry points are import paths (``"module:attr"``), never callables, so that
    ``gym.spec(id).to_json()`` works (Minari stores it) and ``EnvSpec.from_json`` rebuilds
    a spec that ``gym.make`` / ``gym.make_vec`` accept in a fresh process.
    ``gym.make_vec(id, num_envs=n)`` returns ``vector_entry_point``'s vector env: a
    :class:`lfi_gym.envs.vector.RestartableSyncVectorEnv` built by
    :func:`lfi_gym.envs.vector.restartable_sync_vector_env`, or a family's native batched env.

    Gymnasium 1.x wrappers do not forward unknown attributes, so ``gym.make`` must return
    the env itself for ``get_state`` / ``reset_to`` to be callable on what it returns.
    The env enforces reset-before-step itself, the horizon is the env's own (no
    ``TimeLimit``), and the conformance tests run Gymnasium's checker on every id.
    """
    for name, value in (("entry_point", entry_point), ("vector_entry_point", vector_entry_point)):
        if not (isinstance(value, str) and value.count(":") == 1):
            raise TypeError(
                f"{id}: {name} must be an import path 'module:attr' (a spec holding a "
                f"callable cannot be written as JSON); got {value!r}"
            )
    gym.register(
        id=id,
        entry_point=entry_point,
        order_enforce=False,
        disable_env_checker=True,
        max_episode_steps=None,
        vector_entry_point=vector_entry_point,
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


def env_family(env_id: str) -> str:
    """The family of an lfi-gym env id: ``control``, ``text``, ``ranking`` or ``atari``
    (ALE and MinAtar)."""
    for prefix, family in FAMILIES.items():
        if env_id.startswith(prefix):
            return family
    raise ValueError(f"{env_id!r} is not an lfi-gym env id; ids start with {', '.join(FAMILIES)}")
