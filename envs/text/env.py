"""TextGenEnv: text generation as a token-level MDP with exact restarts.

The state is the prompt plus the tokens generated so far; an action is a token id; the
transition appends it; the reward scores the finished text (0 before the end). The
transition is deterministic and known, so any prefix is a valid restart point::

    env = gym.make("TextGen-TinyReviews-v0")
    obs, info = env.reset(seed=0)
    state = env.make_state("the film was", prefix=" a")   # any prompt and prefix
    obs, info = env.reset_to(state)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.error import ResetNeeded

from lfi_gym.envs.core import RestartableEnv, rng_state
from lfi_gym.envs.text.rows import TextGenState, TextRows, as_token_ids, check_token_ids
from lfi_gym.envs.text.task import TextTask
from lfi_gym.envs.validation import check_render_mode


def text_spaces(task: TextTask) -> tuple[spaces.Dict, spaces.Discrete]:
    """Observation and action space of one row of ``task``."""
    width = task.observation_length
    observation_space = spaces.Dict(
        {
            "input_ids": spaces.Box(0, task.vocab_size - 1, (width,), dtype=np.int64),
            "attention_mask": spaces.Box(0, 1, (width,), dtype=np.int64),
        }
    )
    return observation_space, spaces.Discrete(task.vocab_size)


class TextGenEnv(RestartableEnv[dict[str, np.ndarray], int]):
    """One text-generation episode per reset; see :mod:`lfi_gym.envs.text` for the ids.

    Observation: ``{"input_ids", "attention_mask"}`` of length ``prompt_length +
    max_new_tokens`` (prompt padded left, generation padded right). Action: a token id in
    ``Discrete(vocab_size)``. The episode ends (``terminated=True``) at EOS once
    ``min_new_tokens`` were generated, or after ``max_new_tokens`` tokens; its last info
    holds the decoded ``prompt``, ``completion``, ``references``, the reward's ``scores``
    and the ``stop_reason``. ``reset(options={"sample_index": i})`` picks a prompt.
    ``gym.make(id, max_episode_steps=N)`` with N below ``max_new_tokens`` truncates an
    episode after N tokens (``truncated=True``, reward 0: no finished text to score).
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["ansi"]}
    default_id: ClassVar[str] = "TextGen-v0"
    state_version: ClassVar[int] = 1
    state_type = TextGenState

    def __init__(self, task: TextTask, render_mode: str | None = None) -> None:
        check_render_mode(render_mode, self.metadata["render_modes"], "TextGenEnv")
        self.task = task
        self.render_mode = render_mode
        self.observation_space, self.action_space = text_spaces(task)
        self._rows = TextRows(task, 1)

    @property
    def env_id(self) -> str:
        spec = self.spec
        return spec.id if spec is not None else self.task.name

    @property
    def prompt_length(self) -> int:
        return self.task.prompt_length

    @property
    def tokenizer(self) -> Any:
        return self.task.tokenizer

    # -- RestartableEnv -------------------------------------------------------------------

    def _reset(self, *, seed: int | None, options: dict[str, Any] | None):
        gym.Env.reset(self, seed=seed)  # seeds self.np_random
        self._rows.rngs[0] = self.np_random
        info = self._rows.start(0, options)
        return self._rows.observation(0), info

    def _step(self, action: int):
        rows = self._rows
        if rows.done[0]:
            raise ResetNeeded(
                f"{self.env_id}: the episode has ended; call reset() or reset_to(state)"
            )
        rewards, ended, truncated, infos = rows.append(
            np.zeros(1, np.int64), np.array([action], np.int64)
        )
        return rows.observation(0), float(rewards[0]), bool(ended[0]), bool(truncated[0]), infos[0]

    def _limit_horizon(self, max_steps: int) -> None:
        self._rows.limit_steps(max_steps)

    def _capture_state(self) -> TextGenState:
        return self._rows.capture(0, self.env_id, self.state_version)

    def _validate_state(self, state: TextGenState) -> None:
        self._rows.validate(state)

    def _restore_state(self, state: TextGenState):
        info = self._rows.restore(0, state)
        self._np_random = self._rows.rngs[0]
        return self._rows.observation(0), info

    # -- text helpers ---------------------------------------------------------------------

    def make_state(
        self,
        prompt: str | Sequence[int],
        prefix: str | Sequence[int] = "",
        references: Sequence[str] = (),
        seed: int | None = None,
    ) -> TextGenState:
        """A state at ``prompt`` followed by the generated ``prefix`` (text or token ids).

        The prompt is tokenized like the dataset's (with special tokens) but never
        truncated: a prompt over ``prompt_length`` tokens is an error. ``seed`` seeds the
        RNG that draws prompts after this episode (default: this env's current RNG).
        """
        task = self.task
        prompt_ids = (
            task.encode(prompt) if isinstance(prompt, str) else as_token_ids(prompt, task, "prompt")
        )
        if len(prompt_ids) > task.prompt_length:
            raise ValueError(
                f"{self.env_id}: the prompt has {len(prompt_ids)} tokens but this env takes "
                f"at most prompt_length={task.prompt_length}; shorten it or make the env with "
                f"gym.make({self.env_id!r}, prompt_length={len(prompt_ids)})"
            )
        if len(prompt_ids) == 0:
            raise ValueError(f"{self.env_id}: the prompt is empty; give at least one token")
        prefix_ids = as_token_ids(prefix, task, "prefix")
        if len(prefix_ids) > task.max_new_tokens:
            raise ValueError(
                f"{self.env_id}: the prefix has {len(prefix_ids)} tokens, more than "
                f"max_new_tokens={task.max_new_tokens}"
            )
        check_token_ids(prompt_ids, task, "prompt", 1, task.prompt_length)
        check_token_ids(prefix_ids, task, "prefix", 0, task.max_new_tokens)
        done = len(prefix_ids) > 0 and any(
            task.ends_episode(int(token), k + 1) for k, token in enumerate(prefix_ids)
        )
        if done and not task.ends_episode(int(prefix_ids[-1]), len(prefix_ids)):
            raise ValueError(f"{self.env_id}: the episode would end before the prefix's end")
        rng = np.random.default_rng(seed) if seed is not None else self.np_random
        for array in (prompt_ids, prefix_ids):
            array.flags.writeable = False
        return TextGenState(
            env_id=self.env_id,
            version=self.state_version,
            split=task.split,
            sample_index=-1,
            prompt_ids=prompt_ids,
            references=tuple(str(r) for r in references),
            generated_ids=prefix_ids,
            done=bool(done),
            rng=rng_state(rng),
        )

    def render(self) -> str | None:
        if self.render_mode != "ansi":
            return None
        rows = self._rows
        return (
            self.task.decode_prompt(rows.prompt_ids[0])
            + " ||| "
            + self.task.decode_completion(rows.completion_ids(0))
        )

    def make_expert(self) -> Any:
        from lfi_gym.envs.text.oracles import ReferenceOracle

        return ReferenceOracle(self)
