"""Control-*: classic control with oracles, a fast sanity suite."""

from lfi_gym.envs.control.cartpole import CartPoleState, ControlCartPoleEnv

__all__ = ["CartPoleState", "ControlCartPoleEnv"]
