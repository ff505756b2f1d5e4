"""MinAtarImitation-{Game}-v0: the MinAtar games (10x10 grids) under the restart contract.

MinAtar keeps Atari's game mechanics on a 10x10 grid in plain Python, so imitation
experiments that take hours on ALE take a minute here. The game object's attributes and
its RandomState are the whole situation; the State holds them pickled, with the step
counter of the env's own horizon.
"""

from __future__ import annotations

import dataclasses
import importlib
import pickle
from typing import Any

import gymnasium as gym
import numpy as np

from lfi_gym.envs.core import RestartableEnv, State, StateError
from lfi_gym.envs.validation import check_positive_int


@dataclasses.dataclass(frozen=True, eq=False)
class MinAtarState(State):
    """The game's attributes and RandomState (pickled), the step index and horizon."""

    game: str
    payload: bytes  # pickle of (game attributes without the RNG, RandomState.get_state())
    step: int
    horizon: int


class MinAtarImitationEnv(RestartableEnv[np.ndarray, np.int64]):
    """One MinAtar game, no sticky actions, difficulty ramping on (MinAtar's default).

    Observation ``Box(0, 1, (10, 10, channels), uint8)`` (one binary channel per object
    kind); action ``Discrete(n)`` over the game's minimal action set; reward the game's.
    Episodes end when the game does or after ``horizon`` steps (default 1000), whichever
    comes first; ``gym.make(id, max_episode_steps=N)`` lowers the horizon to N.
    """

    metadata = {"render_modes": []}
    state_type = MinAtarState
    state_version = 1
    default_id = "MinAtarImitation-Breakout-v0"

    def __init__(self, game: str = "breakout", *, horizon: int = 1000) -> None:
        try:
            module = importlib.import_module(f"minatar.environments.{game}")
        except ModuleNotFoundError:
            raise ValueError(
                f"unknown MinAtar game {game!r}; choose breakout, freeway, asterix, seaquest "
                "or space_invaders"
            ) from None
        self.horizon = check_positive_int(horizon, "horizon")
        self.game = game
        if self.spec is None:
            self.default_id = f"MinAtarImitation-{game.title().replace('_', '')}-v0"
        self.core = module.Env(ramping=True)
        self._actions = [int(a) for a in self.core.minimal_action_set()]
        self.action_meanings = [self.core.action_map[a] for a in self._actions]
        self.action_space = gym.spaces.Discrete(len(self._actions))
        self.observation_space = gym.spaces.Box(
            0, 1, tuple(self.core.state_shape()), dtype=np.uint8
        )
        self._keys = sorted(k for k in vars(self.core) if k != "random")
        self._steps = 0

    def _limit_horizon(self, max_steps: int) -> None:
        self.horizon = min(self.horizon, max_steps)

    def _observation(self) -> np.ndarray:
        return self.core.state().astype(np.uint8)

    def _reset(self, *, seed: int | None, options: dict[str, Any] | None):
        if seed is not None:
            self._np_random = np.random.Generator(np.random.PCG64(seed))
            self.core.random = np.random.RandomState(int(self.np_random.integers(0, 2**31 - 1)))
        self.core.reset()
        self._steps = 0
        return self._observation(), {}

    def _step(self, action):
        reward, terminal = self.core.act(self._actions[int(action)])
        self._steps += 1
        terminated = bool(terminal)
        truncated = not terminated and self._steps >= self.horizon
        return self._observation(), float(reward), terminated, truncated, {}

    def _capture_state(self) -> MinAtarState:
        attributes = {k: getattr(self.core, k) for k in self._keys}
        payload = pickle.dumps((attributes, self.core.random.get_state()), protocol=5)
        return MinAtarState(
            env_id=self.env_id,
            version=self.state_version,
            game=self.game,
            payload=payload,
            step=self._steps,
            horizon=self.horizon,
        )

    def _decode(self, state: MinAtarState) -> tuple[dict[str, Any], tuple]:
        if state.game != self.game:
            raise StateError(f"state is of the MinAtar game {state.game!r}, not {self.game!r}")
        if not isinstance(state.payload, bytes):
            raise StateError("payload must be the bytes get_state() wrote")
        attributes, random_state = pickle.loads(state.payload)
        if not isinstance(attributes, dict) or sorted(attributes) != self._keys:
            raise StateError(f"payload does not hold the attributes of MinAtar {self.game}")
        return attributes, random_state

    def _validate_state(self, state: MinAtarState) -> None:
        for name in ("step", "horizon"):
            value = getattr(state, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise StateError(f"{name} must be an int >= 0, got {value!r}")
        if state.horizon != self.horizon:
            raise StateError(
                f"state was taken with horizon {state.horizon}, this env has {self.horizon}; "
                f"make the env with gym.make(id, horizon={state.horizon}), or with "
                f"max_episode_steps={state.horizon} and restore through "
                "reset(options={'state': state})"
            )
        if state.step > state.horizon:
            raise StateError(f"step {state.step} lies beyond the horizon {state.horizon}")
        _, random_state = self._decode(state)
        np.random.RandomState().set_state(random_state)

    def _restore_state(self, state: MinAtarState):
        attributes, random_state = self._decode(state)
        for key, value in attributes.items():
            setattr(self.core, key, value)
        self.core.random.set_state(random_state)
        self._steps = state.step
        return self._observation(), {}

    def make_expert(self, **kwargs: Any):
        from lfi_gym.envs.atari.oracles import MinAtarSearchOracle

        return MinAtarSearchOracle(self, **kwargs)
