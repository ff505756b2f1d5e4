"""AtariImitation-{Game}-v0: the DRIL Atari setting with the preprocessing inside the env.

Gymnasium's ``AtariPreprocessing`` + ``FrameStackObservation`` keep part of the situation
(frame stack, noop and life bookkeeping) in wrappers that a restart cannot reach, and the
ALE's ``cloneState`` leaves out the screen. Doing the same preprocessing inside one env
puts all of it in one State, and skips four wrapper layers per step.

Preprocessing (DRIL / ``*NoFrameskip-v4`` semantics): no sticky actions, 1..``noop_max``
random no-ops at reset, each action repeated 4 frames with a max-pool over the last two,
84x84 grayscale by area averaging, the last 4 frames stacked (channel first). Episodic
life, fire reset and reward clipping are options for training; ``info["raw_reward"]``
and ``info["score"]`` always hold the unclipped game score for evaluation.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import ale_py
import gymnasium as gym
import numpy as np

from lfi_gym.envs.core import RestartableEnv, State, StateError, generator_from_state, rng_state
from lfi_gym.envs.validation import check_non_negative_int, check_render_mode

SCREEN_SIZE = 84
STACK = 4
FRAME_SKIP = 4

ale_py.ALEInterface.setLoggerMode(ale_py.LoggerMode.Error)


@dataclasses.dataclass(frozen=True, eq=False)
class AtariState(State):
    """Emulator (with RNG) plus everything the preprocessing keeps between steps."""

    game: str
    ale: bytes  # ALEState.serialize() of cloneState(include_rng=True)
    frames: np.ndarray  # (4, 84, 84) uint8, the stacked observation
    lives: int
    real_done: bool  # episodic life: the last episode end was a real game over
    step: int  # agent steps since the last real reset (the frame cap counts these)
    score: float  # raw game score since the last real reset
    last_action: int
    rng: str  # numpy Generator (noop counts, ALE reseeding)


def _area_taps(n_in: int, n_out: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Area-averaging downscale (what OpenCV's INTER_AREA does) as a few (index, weight)
    taps: output cell i = sum over taps of weight[i] * input[index[i]].

    Taps rather than a dense matrix product: a BLAS call this small is slower than a few
    gathers, and a multi-threaded BLAS fights the emulator for the CPU.
    """
    scale = n_in / n_out
    rows: list[list[tuple[int, float]]] = []
    for i in range(n_out):
        lo, hi = i * scale, (i + 1) * scale
        cells = [
            (j, min(hi, j + 1) - max(lo, j))
            for j in range(int(np.floor(lo)), min(int(np.ceil(hi)), n_in))
        ]
        total = sum(w for _, w in cells)
        rows.append([(j, w / total) for j, w in cells if w > 1e-9])
    n_taps = max(len(r) for r in rows)
    taps = []
    for k in range(n_taps):
        index = np.array([r[k][0] if k < len(r) else r[0][0] for r in rows], dtype=np.intp)
        weight = np.array([r[k][1] if k < len(r) else 0.0 for r in rows], dtype=np.float32)
        taps.append((index, weight))
    return taps


def _downscale(image: np.ndarray, row_taps, col_taps) -> np.ndarray:
    rows = sum(w[:, None] * image[i] for i, w in row_taps)
    return sum(w[None, :] * rows[:, i] for i, w in col_taps)


class AtariImitationEnv(RestartableEnv[np.ndarray, np.int64]):
    """One ALE game under the DRIL preprocessing and the restart contract.

    Observation ``Box(0, 255, (4, 84, 84), uint8)``; action ``Discrete(n)`` over the game's
    minimal action set. The horizon is ``max_frames`` emulator frames (100,000 by default,
    the DRIL cap), owned by the env so that a restart keeps the remaining horizon;
    ``gym.make(id, max_episode_steps=N)`` lowers it to N agent steps (4N frames).
    """

    metadata = {"render_modes": ["rgb_array"]}
    state_type = AtariState
    state_version = 1
    default_id = "AtariImitation-Pong-v0"
    #: Read by tests/test_conformance.py: an emulator step costs ~50x a CartPole step, so
    #: the property tests draw this fraction of their usual number of examples.
    conformance_examples_scale = 0.2

    def __init__(
        self,
        game: str = "pong",
        *,
        noop_max: int = 30,
        episodic_life: bool = False,
        fire_reset: bool = False,
        clip_rewards: bool = False,
        max_frames: int = 100_000,
        render_mode: str | None = None,
    ) -> None:
        if game not in ale_py.roms.get_all_rom_ids():
            raise ValueError(f"unknown ALE game {game!r}; ale-py ships e.g. pong, breakout, qbert")
        check_non_negative_int(noop_max, "noop_max")
        check_non_negative_int(max_frames, "max_frames")
        if max_frames < FRAME_SKIP:
            raise ValueError(f"max_frames must be at least {FRAME_SKIP}, got {max_frames}")
        self.game = game
        self.noop_max = noop_max
        self.episodic_life = bool(episodic_life)
        self.fire_reset = bool(fire_reset)
        self.clip_rewards = bool(clip_rewards)
        self.max_steps = max_frames // FRAME_SKIP
        check_render_mode(render_mode, self.metadata["render_modes"], "AtariImitationEnv")
        self.render_mode = render_mode
        if self.spec is None:
            self.default_id = f"AtariImitation-{_id_suffix(game)}-v0"

        self.ale = ale_py.ALEInterface()
        self.ale.setFloat("repeat_action_probability", 0.0)
        self.ale.setInt("frame_skip", 1)
        self.ale.setInt("random_seed", 0)
        self._rom = ale_py.roms.get_rom_path(game)
        self._load_rom()
        self._actions = list(self.ale.getMinimalActionSet())
        self.action_meanings = [a.name for a in self._actions]
        if self.fire_reset and "FIRE" not in self.action_meanings:
            raise ValueError(f"fire_reset=True, but {game} has no FIRE action")
        self.action_space = gym.spaces.Discrete(len(self._actions))
        self.observation_space = gym.spaces.Box(
            0, 255, (STACK, SCREEN_SIZE, SCREEN_SIZE), dtype=np.uint8
        )
        height, width = self.ale.getScreenDims()
        self._row_taps = _area_taps(height, SCREEN_SIZE)
        self._col_taps = _area_taps(width, SCREEN_SIZE)
        self._screens = np.zeros((2, height, width), dtype=np.uint8)
        self._frames = np.zeros((STACK, SCREEN_SIZE, SCREEN_SIZE), dtype=np.uint8)
        self._lives = 0
        self._real_done = True
        self._steps = 0
        self._score = 0.0
        self._last_action = 0

    def _load_rom(self) -> None:
        self.ale.loadROM(self._rom)
        # Until the emulator has run one frame, some ROMs (Qbert) diverge after restoreState
        # (state outside cloneState that the first frame sets up): run it once here.
        self.ale.act(self.ale.getMinimalActionSet()[0])

    # -- preprocessing -----------------------------------------------------------------

    def _frame(self) -> np.ndarray:
        pooled = np.maximum(self._screens[0], self._screens[1]).astype(np.float32)
        small = _downscale(pooled, self._row_taps, self._col_taps)
        return np.rint(small).astype(np.uint8)

    def _push(self, frame: np.ndarray) -> np.ndarray:
        self._frames[:-1] = self._frames[1:]
        self._frames[-1] = frame
        return self._frames.copy()

    def _act(self, action: int) -> tuple[float, bool]:
        """Repeat ``action`` for FRAME_SKIP frames; returns (raw reward, game over)."""
        ale, ale_action, reward = self.ale, self._actions[action], 0.0
        for t in range(FRAME_SKIP):
            reward += ale.act(ale_action)
            if ale.game_over():
                ale.getScreenGrayscale(self._screens[0])
                if t < FRAME_SKIP - 1:
                    self._screens[1] = self._screens[0]
                return reward, True
            if t >= FRAME_SKIP - 2:
                ale.getScreenGrayscale(self._screens[FRAME_SKIP - 1 - t])
        return reward, False

    def _info(self, raw_reward: float = 0.0) -> dict[str, Any]:
        return {
            "lives": self._lives,
            "raw_reward": raw_reward,
            "score": self._score,
            "frame_number": self._steps * FRAME_SKIP,
        }

    # -- RestartableEnv ------------------------------------------------------------------

    def _reset(self, *, seed: int | None, options: dict[str, Any] | None):
        if seed is not None:
            self._np_random = np.random.Generator(np.random.PCG64(seed))
        rng = self.np_random
        if seed is not None:  # reseed the emulator too (it reloads the ROM, ~1 ms)
            self.ale.setInt("random_seed", int(rng.integers(0, 2**31 - 1)))
            self._load_rom()
        if self.episodic_life and not self._real_done and seed is None:
            # Lost a life only: continue the same game, as DeepMind's EpisodicLifeEnv does.
            _, over = self._act(0)
            if over:
                self.ale.reset_game()
        else:
            self.ale.reset_game()
            self._steps, self._score = 0, 0.0
            noops = int(rng.integers(1, self.noop_max + 1)) if self.noop_max else 0
            for _ in range(noops):
                self.ale.act(self._actions[0])
                if self.ale.game_over():
                    self.ale.reset_game()
            self.ale.getScreenGrayscale(self._screens[0])
            self._screens[1] = 0
        if self.fire_reset:
            self._act(self.action_meanings.index("FIRE"))
        self._lives = self.ale.lives()
        self._real_done = False
        self._last_action = 0
        self._frames[:] = self._frame()
        return self._frames.copy(), self._info()

    def _step(self, action):
        action = int(action)
        raw, over = self._act(action)
        self._last_action = action
        self._steps += 1
        self._score += raw
        lives = self.ale.lives()
        life_lost = lives < self._lives
        self._lives = lives
        self._real_done = over
        terminated = over or (self.episodic_life and life_lost)
        truncated = not terminated and self._steps >= self.max_steps
        if truncated:
            self._real_done = True
        reward = float(np.sign(raw)) if self.clip_rewards else float(raw)
        return self._push(self._frame()), reward, terminated, truncated, self._info(raw)

    def _limit_horizon(self, max_steps: int) -> None:
        self.max_steps = min(self.max_steps, max_steps)

    def _capture_state(self) -> AtariState:
        return AtariState(
            env_id=self.env_id,
            version=self.state_version,
            game=self.game,
            ale=bytes(self.ale.cloneState(include_rng=True).serialize()),
            frames=self._frames,
            lives=self._lives,
            real_done=self._real_done,
            step=self._steps,
            score=self._score,
            last_action=self._last_action,
            rng=rng_state(self.np_random),
        )

    def _validate_state(self, state: AtariState) -> None:
        if state.game != self.game:
            raise StateError(
                f"state is of the game {state.game!r}, this env plays {self.game!r}; restore "
                f"it into gym.make('AtariImitation-{_id_suffix(str(state.game))}-v0')"
            )
        if not isinstance(state.ale, bytes) or len(state.ale) < 64:
            raise StateError("ale must be the bytes of an ALE state from get_state()")
        frames = state.frames
        if not (
            isinstance(frames, np.ndarray)
            and frames.dtype == np.uint8
            and frames.shape == self.observation_space.shape
        ):
            raise StateError(f"frames must be a uint8 array of shape {self._frames.shape}")
        for name in ("lives", "step", "last_action"):
            value = getattr(state, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise StateError(f"{name} must be an int >= 0, got {value!r}")
        if state.step > self.max_steps:
            raise StateError(f"step {state.step} lies beyond the horizon of {self.max_steps}")
        if state.last_action >= self.action_space.n:
            raise StateError(f"last_action {state.last_action} is not an action of {self.game}")
        if not isinstance(state.real_done, bool):
            raise StateError(f"real_done must be a bool, got {state.real_done!r}")
        if not isinstance(state.score, float) or not abs(state.score) < 1e9:
            raise StateError(f"score must be a float game score, got {state.score!r}")
        ale_py.ALEState(state.ale)
        generator_from_state(state.rng)

    def _restore_state(self, state: AtariState):
        self.ale.restoreState(ale_py.ALEState(state.ale))
        self._frames[:] = state.frames
        self._lives = state.lives
        self._real_done = state.real_done
        self._steps = state.step
        self._score = state.score
        self._last_action = state.last_action
        self._np_random = generator_from_state(state.rng)
        return self._frames.copy(), self._info()

    def render(self) -> np.ndarray | None:
        """The current RGB screen (``render_mode="rgb_array"``)."""
        if self.render_mode == "rgb_array":
            return self.ale.getScreenRGB()
        return None

    def get_action_meanings(self) -> list[str]:
        """ALE names of the actions, as Gymnasium's AtariEnv gives them."""
        return list(self.action_meanings)

    def make_expert(self, **kwargs: Any):
        from lfi_gym.envs.atari.oracles import make_atari_oracle

        return make_atari_oracle(self, **kwargs)


def _id_suffix(game: str) -> str:
    return "".join(part.capitalize() for part in game.split("_"))
