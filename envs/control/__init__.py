"""Control-*: classic control with oracles, a fast sanity suite."""

from typing import Any

from lfi_gym.envs.control.cartpole import CartPoleState, ControlCartPoleEnv
from lfi_gym.envs.vector import RestartableSyncVectorEnv, restartable_sync_vector_env

__all__ = ["CartPoleState", "ControlCartPoleEnv", "make_cartpole_vector"]


def make_cartpole_vector(num_envs: int = 1, **kwargs: Any) -> RestartableSyncVectorEnv:
    """``gym.make_vec("Control-CartPole-v0", num_envs=n)``'s vector entry point."""
    return restartable_sync_vector_env("Control-CartPole-v0", num_envs, **kwargs)
