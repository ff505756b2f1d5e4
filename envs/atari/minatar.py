"""MinAtarImitation-{Game}-v0: the MinAtar games (10x10 grids) under the restart contract.

MinAtar keeps Atari's game mechanics on a 10x10 grid in plain Python, so imitation
experiments that take hours on ALE take a minute here. The game object's attributes and
its RandomState are the whole situation; the State holds them as plain data (the
attributes as a JSON tree of :mod:`lfi_gym.envs.codec`, the RandomState's MT19937 key and
position), with the step counter of the env's own horizon. Nothing is pickled, so restoring
a State can never run code.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
from typing import Any

import gymnasium as gym
import numpy as np

from lfi_gym.envs.codec import from_tree, to_tree
from lfi_gym.envs.core import RestartableEnv, State, StateError
from lfi_gym.envs.validation import check_positive_int


@dataclasses.dataclass(frozen=True, eq=False)
class MinAtarState(State):
    """The game's attributes and RandomState as plain data, the step index and horizon."""

    game: str
    attributes: str  # JSON tree of the game's attributes (its RNG aside)
    arrays: tuple[np.ndarray, ...]  # the arrays that tree refers to (e.g. the brick map)
    rng_key: np.ndarray  # the RandomState's MT19937 key, 624 uint32
    rng_position: int
    rng_gauss: tuple[int, float]  # whether a Gaussian is cached, and its value
    step: int
    horizon: int


def _kind(value: Any) -> Any:
    """What a game attribute must keep across a restore (numbers may change type: the
    games mix Python and numpy ints)."""
    if isinstance(value, np.ndarray):
        return ("array", value.shape, value.dtype.str)
    if isinstance(value, (bool, int, float, np.number, np.bool_)):
        return "number"
    return type(value)


class MinAtarImitationEnv(RestartableEnv[np.ndarray, np.int64]):
    """One MinAtar game, no sticky actions, difficulty ramping on (MinAtar's default).

    Observation ``Box(0, 1, (10, 10, channels), uint8)`` (one binary channel per object
    kind); action ``Discrete(n)`` over the game's minimal action set; reward the game's.
    Episodes end when the game does or after ``horizon`` steps (default 1000), whichever
    comes first; ``gym.make(id, max_episode_steps=N)`` lowers the horizon to N.
    """

    metadata = {"render_modes": []}
    state_type = MinAtarState
    state_version = 2  # 2: plain data instead of a pickle
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
        tree, arrays = to_tree({k: getattr(self.core, k) for k in self._keys})
        _, key, position, has_gauss, gauss = self.core.random.get_state()
        return MinAtarState(
            env_id=self.env_id,
            version=self.state_version,
            game=self.game,
            attributes=json.dumps(tree, separators=(",", ":")),
            arrays=tuple(np.array(a, copy=True) for a in arrays),  # the game mutates its own
            rng_key=key,
            rng_position=int(position),
            rng_gauss=(int(has_gauss), float(gauss)),
            step=self._steps,
            horizon=self.horizon,
        )

    def _decode(self, state: MinAtarState) -> tuple[dict[str, Any], tuple]:
        """The game attributes and the RandomState tuple of ``state``; raises on any
        malformed field."""
        if state.game != self.game:
            raise StateError(f"state is of the MinAtar game {state.game!r}, not {self.game!r}")
        if not isinstance(state.attributes, str) or not isinstance(state.arrays, tuple):
            raise StateError(
                "attributes must be the JSON text and arrays the tuple get_state() wrote"
            )
        if not all(isinstance(a, np.ndarray) and a.dtype.kind in "biuf" for a in state.arrays):
            raise StateError("arrays must hold the numeric arrays get_state() wrote")
        arrays = [np.array(a, copy=True) for a in state.arrays]  # writable, owned by the game
        attributes = from_tree(json.loads(state.attributes), arrays)
        if not isinstance(attributes, dict) or sorted(attributes) != self._keys:
            raise StateError(f"the attributes are not those of MinAtar {self.game}")
        for key, value in attributes.items():
            # The game's code trusts its attributes' kinds: a number stays a number, an
            # array keeps its shape and dtype.
            if _kind(value) != _kind(getattr(self.core, key)):
                raise StateError(f"attribute {key!r} does not have the game's type")
        key = state.rng_key
        if not (isinstance(key, np.ndarray) and key.dtype == np.uint32 and key.shape == (624,)):
            raise StateError("rng_key must be the 624 uint32 words of an MT19937 key")
        has_gauss, gauss = state.rng_gauss
        random_state = ("MT19937", key, int(state.rng_position), int(has_gauss), float(gauss))
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
