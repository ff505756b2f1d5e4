"""Computational oracles for the Atari envs: RAM-reading controllers and lookahead search.

No pretrained Atari expert can be downloaded here, and DAgger needs an expert it can ask
at any state anyway. These oracles read the bound env's emulator (privileged): they label
the situation the env is in *now*, whatever observation they are handed.

- ``ControllerSearchOracle`` (Pong, Breakout): a family of RAM controllers (track the ball
  with a paddle offset); at each decision it tries every controller on a cloned emulator
  until the next point is won or lost and follows the best one. The plan is kept while
  the env stays on it (checked by RAM), so the search runs once per rally, not per step.
- ``ActionSearchOracle`` (the other games): for every action, repeat it ``depth`` agent
  steps on a cloned emulator; pick the action with the best return, a lost life costing
  ``life_penalty``. Its cost per action is ``n_actions * depth * 4`` emulator frames.
- ``MinAtarSearchOracle``: the same search over a copy of a MinAtar game.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from lfi_gym.envs.policies import OraclePolicy
from lfi_gym.envs.validation import check_positive_int

FRAME_SKIP = 4

# RAM addresses (AtariARI's table, checked by experiment in tests/test_atari.py).
PONG_PLAYER_Y, PONG_BALL_X, PONG_BALL_Y = 51, 49, 54
BREAKOUT_PADDLE_X, BREAKOUT_BALL_X, BREAKOUT_BALL_Y = 72, 99, 101

Controller = Callable[[np.ndarray], int]


class _BoundOracle(OraclePolicy):
    """Reads the bound env; a batch of more than one observation cannot be labelled."""

    privileged = True

    def act(self, observations: Any) -> np.ndarray:
        if len(observations) != 1:
            raise ValueError(
                f"{type(self).__name__} reads its env's emulator, so it labels one situation "
                f"at a time; got a batch of {len(observations)} (use a single env, or "
                "one oracle per sub-env)"
            )
        return np.array([self.choose()], dtype=np.int64)

    def choose(self) -> int:
        raise NotImplementedError


class ControllerSearchOracle(_BoundOracle):
    """Lookahead over a family of RAM controllers (see the module docstring).

    ``horizon`` caps each rollout in agent steps (the search budget); ``replan_every``
    bounds how long a plan that expects no point is followed before searching again.
    """

    def __init__(
        self,
        env,
        controllers: Sequence[Controller],
        *,
        horizon: int = 400,
        replan_every: int = 30,
        life_penalty: float = 1.0,
    ) -> None:
        super().__init__(env)
        self.base = env.unwrapped
        self.controllers = list(controllers)
        self.horizon = check_positive_int(horizon, "horizon")
        self.replan_every = check_positive_int(replan_every, "replan_every")
        self.life_penalty = float(life_penalty)
        self._plan: list[bytes] = []  # RAM at each planned step
        self._plan_start = -1
        self._controller = 0
        self.frames_searched = 0

    def _rollout(self, controller: Controller) -> tuple[float, list[bytes]]:
        ale, actions = self.base.ale, self.base._actions
        lives, total, rams = ale.lives(), 0.0, []
        for _ in range(self.horizon):
            ram = ale.getRAM()
            rams.append(ram.tobytes())
            action = actions[controller(ram)]
            reward = 0.0
            for _ in range(FRAME_SKIP):
                reward += ale.act(action)
            self.frames_searched += FRAME_SKIP
            total += reward
            lost = ale.lives() < lives or (ale.game_over() and reward <= 0)
            if lost:
                return total - self.life_penalty, rams
            if reward or ale.game_over():  # winning the last point ends Pong: not a loss
                return total, rams
        return total, rams

    def _search(self) -> None:
        ale = self.base.ale
        start = ale.cloneState(include_rng=True)
        best = None
        for index, controller in enumerate(self.controllers):
            value, rams = self._rollout(controller)
            ale.restoreState(start)
            # Sooner points are better, later losses are better.
            key = (value, -len(rams) if value > 0 else len(rams))
            if best is None or key > best[0]:
                best = (key, index, rams)
        assert best is not None
        _, self._controller, rams = best
        self._plan = rams if best[0][0] > 0 else rams[: self.replan_every]
        self._plan_start = ale.getEpisodeFrameNumber()

    def choose(self) -> int:
        ale = self.base.ale
        ram = ale.getRAM()
        offset = (ale.getEpisodeFrameNumber() - self._plan_start) // FRAME_SKIP
        on_plan = 0 <= offset < len(self._plan) and self._plan[offset] == ram.tobytes()
        if not on_plan:
            self._search()
            ram = ale.getRAM()
        return int(self.controllers[self._controller](ram))


def pong_controllers(env, offsets: Sequence[int] = tuple(range(-6, 10))) -> list[Controller]:
    """Paddle tracks the ball's height plus an offset (which part of the paddle hits)."""
    meanings = env.unwrapped.action_meanings
    up, down, noop = meanings.index("RIGHT"), meanings.index("LEFT"), meanings.index("NOOP")

    def make(offset: int) -> Controller:
        def control(ram: np.ndarray) -> int:
            ball_y = int(ram[PONG_BALL_Y])
            if ball_y == 0:  # no ball in play
                return noop
            gap = int(ram[PONG_PLAYER_Y]) + offset - ball_y
            return up if gap > 2 else down if gap < -2 else noop

        return control

    return [make(o) for o in offsets]


def breakout_controllers(env, offsets: Sequence[int] = (-6, -3, 0, 3, 6, 9)) -> list[Controller]:
    """Paddle follows the ball's x plus an offset; FIRE serves when no ball is in play."""
    meanings = env.unwrapped.action_meanings
    fire, right, left = meanings.index("FIRE"), meanings.index("RIGHT"), meanings.index("LEFT")
    noop = meanings.index("NOOP")

    def make(offset: int) -> Controller:
        def control(ram: np.ndarray) -> int:
            if int(ram[BREAKOUT_BALL_Y]) == 0:
                return fire
            gap = int(ram[BREAKOUT_BALL_X]) + offset - int(ram[BREAKOUT_PADDLE_X])
            return right if gap > 3 else left if gap < -3 else noop

        return control

    return [make(o) for o in offsets]


class ActionSearchOracle(_BoundOracle):
    """Repeat-each-action lookahead on cloned emulator states (see the module docstring)."""

    def __init__(self, env, *, depth: int = 10, life_penalty: float = 1000.0) -> None:
        super().__init__(env)
        self.base = env.unwrapped
        self.depth = check_positive_int(depth, "depth")
        self.life_penalty = float(life_penalty)
        self.frames_searched = 0

    def choose(self) -> int:
        ale, actions = self.base.ale, self.base._actions
        start = ale.cloneState(include_rng=True)
        lives = ale.lives()
        best_value, best = -np.inf, 0
        for index, action in enumerate(actions):
            value = 0.0
            for step in range(self.depth):
                for _ in range(FRAME_SKIP):
                    value += ale.act(action)
                self.frames_searched += FRAME_SKIP
                if ale.game_over() or ale.lives() < lives:
                    value -= self.life_penalty * (self.depth - step)
                    break
            ale.restoreState(start)
            if value > best_value:
                best_value, best = value, index
        return best


def make_atari_oracle(env, **kwargs: Any) -> _BoundOracle:
    """The oracle of an AtariImitation env: controller search for Pong and Breakout,
    action search elsewhere. ``kwargs`` go to the oracle (its search budget)."""
    game = env.unwrapped.game
    if game == "pong":
        return ControllerSearchOracle(env, pong_controllers(env), **kwargs)
    if game == "breakout":
        kwargs.setdefault("life_penalty", 100.0)
        return ControllerSearchOracle(env, breakout_controllers(env), **kwargs)
    kwargs.setdefault("depth", SEARCH_DEPTH.get(game, 10))
    return ActionSearchOracle(env, **kwargs)


#: Default lookahead (agent steps) per game where 10 is too short: Space Invaders shows a
#: hit only after its death animation starts, ~100 frames later; Ms. Pac-Man needs to see
#: a ghost coming around a corner.
SEARCH_DEPTH = {"space_invaders": 30, "qbert": 30, "ms_pacman": 25}


def _minatar_heuristic(game: str, core: Any) -> float:
    """Progress that the game's reward shows too late for a short lookahead."""
    if game == "breakout":  # keep the paddle under the ball
        return -0.05 * abs(int(core.ball_x) - int(core.pos))
    if game == "freeway":  # climb (pos 9 is the bottom, 0 the top)
        return -0.1 * int(core.pos)
    return 0.0


class MinAtarSearchOracle(_BoundOracle):
    """For every action, repeat it ``depth`` steps on a copy of the game (RNG included);
    a terminal state costs ``terminal_penalty``, and a small game-specific heuristic
    (paddle under the ball, height climbed) scores the end of each rollout.
    Cost: ``n_actions * depth`` game steps."""

    def __init__(self, env, *, depth: int = 6, terminal_penalty: float = 100.0) -> None:
        super().__init__(env)
        self.base = env.unwrapped
        self.depth = check_positive_int(depth, "depth")
        self.terminal_penalty = float(terminal_penalty)

    def choose(self) -> int:
        core = self.base.core
        # An in-memory copy of our own live game (pickle round trips copy it faster than
        # deepcopy); nothing read from a file is ever unpickled.
        snapshot = pickle.dumps(core, protocol=5)
        best_value, best = -np.inf, 0
        for index, action in enumerate(self.base._actions):
            game = pickle.loads(snapshot)
            value = 0.0
            for step in range(self.depth):
                reward, terminal = game.act(action)
                value += reward * (0.97**step)
                if terminal:
                    value -= self.terminal_penalty * (self.depth - step)
                    break
            value += _minatar_heuristic(self.base.game, game)
            if value > best_value + 1e-9:
                best_value, best = value, index
        return best


__all__ = [
    "ActionSearchOracle",
    "ControllerSearchOracle",
    "MinAtarSearchOracle",
    "breakout_controllers",
    "make_atari_oracle",
    "pong_controllers",
]
