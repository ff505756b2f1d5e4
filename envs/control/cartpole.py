"""Control-CartPole-v0: Gymnasium's CartPole dynamics under the restart contract."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
from gymnasium.envs.classic_control.cartpole import CartPoleEnv

from lfi_gym.envs.core import RestartableEnv, State, StateError, generator_from_state, rng_state
from lfi_gym.envs.validation import check_positive_int, is_int


@dataclasses.dataclass(frozen=True, eq=False)
class CartPoleState(State):
    """Physics (x, x_dot, theta, theta_dot) in float64, RNG, step index and end-of-episode
    bookkeeping: everything that decides what the next steps and resets return."""

    physics: tuple[float, float, float, float]
    steps_beyond_terminated: int | None
    step: int
    horizon: int
    rng: str


class ControlCartPoleEnv(RestartableEnv[np.ndarray, np.int64], CartPoleEnv):
    """CartPole-v1 dynamics and reward with a horizon (default 500) owned by the env;
    ``gym.make(id, max_episode_steps=N)`` lowers it to N (:meth:`adopt_time_limit`).

    Observation ``Box(4,)`` float32 (cart position, cart velocity, pole angle, pole angular
    velocity); action ``Discrete(2)`` (push left, push right); reward 1 per step.
    ``lfi_gym.envs.make_expert(env)`` returns an LQR controller that balances for the full horizon.
    """

    default_id = "Control-CartPole-v0"
    state_type = CartPoleState
    state_version = 2  # 2: the horizon became part of the state

    def __init__(self, horizon: int = 500, render_mode: str | None = None) -> None:
        # Named horizon, not max_episode_steps: gym.make intercepts that name for TimeLimit.
        check_positive_int(horizon, "horizon")
        CartPoleEnv.__init__(self, render_mode=render_mode)
        self.horizon = int(horizon)
        self._elapsed_steps = 0

    def _reset(self, *, seed: int | None, options: dict[str, Any] | None):
        observation, info = CartPoleEnv.reset(self, seed=seed, options=options)
        self._elapsed_steps = 0
        return observation, info

    def _step(self, action):
        observation, reward, terminated, _, info = CartPoleEnv.step(self, action)
        self._elapsed_steps += 1
        truncated = self._elapsed_steps >= self.horizon
        return observation, float(reward), bool(terminated), truncated, info

    def _limit_horizon(self, max_steps: int) -> None:
        self.horizon = min(self.horizon, max_steps)

    def _capture_state(self) -> CartPoleState:
        return CartPoleState(
            env_id=self.env_id,
            version=self.state_version,
            physics=tuple(float(v) for v in self.state),
            steps_beyond_terminated=self.steps_beyond_terminated,
            step=self._elapsed_steps,
            horizon=self.horizon,
            rng=rng_state(self.np_random),
        )

    def _validate_state(self, state: CartPoleState) -> None:
        physics = state.physics
        if not (isinstance(physics, tuple) and len(physics) == 4):
            raise StateError(f"physics must be a tuple of 4 floats, got {physics!r}")
        if not all(isinstance(v, float) and math.isfinite(v) for v in physics):
            raise StateError(f"physics must hold 4 finite floats, got {physics!r}")
        beyond = state.steps_beyond_terminated
        if beyond is not None and not (is_int(beyond) and beyond >= 0):
            raise StateError(f"steps_beyond_terminated must be None or an int >= 0, got {beyond!r}")
        if not (is_int(state.step) and 0 <= state.step):
            raise StateError(f"step must be an int >= 0, got {state.step!r}")
        if not (is_int(state.horizon) and state.step <= state.horizon):
            raise StateError(f"step {state.step!r} lies beyond the horizon {state.horizon!r}")
        if state.horizon != self.horizon:
            raise StateError(
                f"state was taken with horizon {state.horizon!r}, this env has horizon "
                f"{self.horizon}; make the env with gym.make(id, horizon={state.horizon!r}), "
                f"or with max_episode_steps={state.horizon!r} and restore through "
                "reset(options={'state': state})"
            )
        generator_from_state(state.rng)

    def _restore_state(self, state: CartPoleState):
        generator = generator_from_state(state.rng)
        self.state = np.array(state.physics, dtype=np.float64)
        self.steps_beyond_terminated = state.steps_beyond_terminated
        self._elapsed_steps = state.step
        self._np_random = generator
        if self.render_mode == "human":
            self.render()
        return np.array(self.state, dtype=np.float32), {}

    def make_expert(self):
        from lfi_gym.envs.control.oracles import CartPoleOracle

        return CartPoleOracle(self)
