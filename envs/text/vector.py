"""TextGenVectorEnv: a native batched text env (no per-env objects or processes).

``gym.make_vec("TextGen-TinyReviews-v0", num_envs=64)`` returns it. All rows live in two
``(num_envs, prompt_length + max_new_tokens)`` arrays; a step writes one column per row,
and the rows whose episode ends are scored in one batched reward call. Autoreset follows
Gymnasium's default (``NEXT_STEP``): the step after a row ends, that row's action is
ignored and it starts a new prompt drawn with the row's own RNG.

    vec.reset(seed=0)
    snapshot = vec.get_state()                   # VectorState of per-row TextGenStates
    vec.reset_to([state_a, state_b, ...])        # each row from its own prompt + prefix
    vec.reset_to([state_a], indices=[3])         # only row 3

``gym.make_vec(id, num_envs=n, max_episode_steps=N)`` truncates each row after N tokens,
counted from the episode's start (a restored prefix counts), as the single env does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from lfi_gym.envs.core import State
from lfi_gym.envs.text.env import TextGenEnv
from lfi_gym.envs.text.rows import TextRows
from lfi_gym.envs.text.task import TextTask
from lfi_gym.envs.validation import check_positive_int
from lfi_gym.envs.vector import VectorState, plan_restart


class TextGenVectorEnv(VectorEnv):
    """``num_envs`` text episodes stepped as arrays; see the module docstring."""

    state_version = 1

    def __init__(
        self, task: TextTask, num_envs: int = 1, max_episode_steps: int | None = None
    ) -> None:
        self.num_envs = check_positive_int(num_envs, "num_envs")
        self.task = task
        # One single env sharing the task checks row states exactly as gym.make(id) does.
        self._checker = TextGenEnv(task)
        self.single_observation_space = self._checker.observation_space
        self.single_action_space = self._checker.action_space
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self.metadata = {"autoreset_mode": AutoresetMode.NEXT_STEP, "render_modes": []}
        self.render_mode = None
        self._rows = TextRows(task, self.num_envs)
        if max_episode_steps not in (None, -1):  # -1: no limit, as gym.make reads it
            # The rows count their tokens from a restored state's prefix: a restart keeps
            # the right remaining steps, as in the single env.
            self._checker.adopt_time_limit(max_episode_steps)
            self._rows.limit_steps(max_episode_steps)
        self._autoreset = np.zeros(self.num_envs, dtype=bool)
        self._has_reset = False

    @property
    def env_id(self) -> str:
        return self.task.name

    @property
    def prompt_length(self) -> int:
        return self.task.prompt_length

    @property
    def tokenizer(self) -> Any:
        return self.task.tokenizer

    # -- Gymnasium VectorEnv --------------------------------------------------------------

    def reset(
        self, *, seed: int | Sequence[int | None] | None = None, options: dict | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Start every row; ``seed`` seeds row ``i`` with ``seed + i`` (or a list of seeds),
        so row ``i`` matches ``gym.make(id).reset(seed=seed + i)``."""
        if options is not None and "state" in options:
            if seed is not None:
                raise ValueError("reset() got both seed and options['state']; pass only one")
            return self.reset_to(options["state"])
        seeds = self._row_seeds(seed)
        infos: dict[str, Any] = {}
        for row, row_seed in enumerate(seeds):
            if row_seed is not None or not self._has_reset:
                self._rows.rngs[row] = seeding.np_random(row_seed)[0]
            infos = self._add_info(infos, self._rows.start(row, options), row)
        self._autoreset[:] = False
        self._has_reset = True
        return self._observations(), infos

    def step(
        self, actions: Any
    ) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        if not self._has_reset:
            raise RuntimeError(f"{self.env_id}: call reset() or reset_to(states) before step()")
        tokens = self._check_actions(actions)
        rows = self._rows
        rewards = np.zeros(self.num_envs, dtype=np.float64)
        terminated = np.zeros(self.num_envs, dtype=bool)
        truncated = np.zeros(self.num_envs, dtype=bool)
        infos: dict[str, Any] = {}
        restarts = self._autoreset | rows.done
        for row in np.flatnonzero(restarts):
            infos = self._add_info(infos, rows.start(int(row)), int(row))
        stepping = np.flatnonzero(~restarts)
        if len(stepping):
            step_rewards, ended, cut, step_infos = rows.append(stepping, tokens[stepping])
            rewards[stepping] = step_rewards
            terminated[stepping] = ended
            truncated[stepping] = cut
            for k in np.flatnonzero(ended):
                infos = self._add_info(infos, step_infos[k], int(stepping[k]))
        self._autoreset = terminated | truncated
        return self._observations(), rewards, terminated, truncated, infos

    def _check_actions(self, actions: Any) -> np.ndarray:
        tokens = np.asarray(actions)
        if tokens.shape != (self.num_envs,) or not np.issubdtype(tokens.dtype, np.integer):
            raise ValueError(
                f"{self.env_id}: actions must be {self.num_envs} integer token ids, one per "
                f"row; got {actions!r}"
            )
        bad = np.flatnonzero((tokens < 0) | (tokens >= self.task.vocab_size))
        if len(bad):
            raise ValueError(
                f"{self.env_id}: token ids outside the vocabulary [0, {self.task.vocab_size}) "
                f"in rows {bad[:5].tolist()}: {tokens[bad[:5]].tolist()}"
            )
        return tokens.astype(np.int64, copy=False)

    def _observations(self) -> dict[str, np.ndarray]:
        return {
            "input_ids": self._rows.input_ids.copy(),
            "attention_mask": self._rows.attention_mask.copy(),
        }

    def _row_seeds(self, seed: int | Sequence[int | None] | None) -> list[int | None]:
        if seed is None:
            return [None] * self.num_envs
        if isinstance(seed, (int, np.integer)):
            return [int(seed) + row for row in range(self.num_envs)]
        seeds = list(seed)
        if len(seeds) != self.num_envs:
            raise ValueError(f"got {len(seeds)} seeds for {self.num_envs} rows")
        return seeds

    # -- restart contract -----------------------------------------------------------------

    def make_row_experts(self) -> list[Any]:
        """The reference oracle of each row (``ReferenceOracle(self, row=r)``): what a
        guided agent rolls in or out with when its guide is this task's oracle."""
        from lfi_gym.envs.text.oracles import ReferenceOracle

        return [ReferenceOracle(self, row=r) for r in range(self.num_envs)]

    def get_state(self) -> VectorState:
        """Snapshot of every row and of the pending autoresets."""
        if not self._has_reset:
            raise RuntimeError(f"{self.env_id}: call reset() before get_state()")
        return VectorState(
            env_id=self.env_id,
            version=self.state_version,
            states=tuple(
                self._rows.capture(row, self.env_id, TextGenEnv.state_version)
                for row in range(self.num_envs)
            ),
            autoreset=tuple(bool(flag) for flag in self._autoreset),
        )

    def reset_to(
        self, states: VectorState | Sequence[State], indices: Sequence[int] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Restore a VectorState exactly, or restart rows from single-env States.

        With ``indices``, ``states[k]`` goes to row ``indices[k]`` and the other rows keep
        their episodes. Every state is checked before any row changes.
        """
        rows, row_states, autoreset = plan_restart(
            states, indices, num_envs=self.num_envs, env_id=self.env_id, version=self.state_version
        )
        if autoreset is None:  # single-env states: a finished row restarts at the next step
            autoreset = [bool(getattr(state, "done", False)) for state in row_states]
        for state in row_states:
            self._checker.check_state(state)
        infos: dict[str, Any] = {}
        for row, state, pending in zip(rows, row_states, autoreset, strict=True):
            infos = self._add_info(infos, self._rows.restore(row, state), row)
            self._autoreset[row] = pending
        self._has_reset = True
        return self._observations(), infos
