"""The episodes of a batch of text-generation rows, as arrays.

:class:`TextRows` is the one implementation of the token-level MDP: the single env is a
batch of one row, the native vector env a batch of many, so both step, restart and score
identically. A row's observation is the RL4LMs layout: the prompt padded on the left to
``prompt_length``, then the generated tokens, padded on the right to ``max_new_tokens``::

    input_ids      = [pad pad p0 p1 p2 | g0 g1 pad pad ...]
    attention_mask = [ 0   0  1  1  1  |  1  1  0   0  ...]

so the real tokens of a row are always one contiguous block ending at the newest token.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

from lfi_gym.envs.core import State, generator_from_state, rng_state
from lfi_gym.envs.text.task import TextTask


@dataclasses.dataclass(frozen=True, eq=False)
class TextGenState(State):
    """A prompt, the tokens generated after it, and the RNG that draws the next prompt.

    ``sample_index`` is the prompt's row in the split, or -1 for a prompt given to
    ``make_state``. ``done`` is set once the episode has ended (EOS or horizon) or was
    truncated at Gymnasium's ``max_episode_steps``.
    """

    split: str
    sample_index: int
    prompt_ids: np.ndarray
    references: tuple[str, ...]
    generated_ids: np.ndarray
    done: bool
    rng: str


class TextRows:
    """``n`` text episodes stepped together; observations are views of two arrays."""

    def __init__(self, task: TextTask, n: int) -> None:
        self.task = task
        self.n = n
        width = task.observation_length
        self.input_ids = np.full((n, width), task.pad_token_id, dtype=np.int64)
        self.attention_mask = np.zeros((n, width), dtype=np.int64)
        self.prompt_ids: list[np.ndarray] = [np.zeros(0, np.int64)] * n
        self.generated = np.zeros(n, dtype=np.int64)
        self.sample_index = np.full(n, -1, dtype=np.int64)
        self.references: list[tuple[str, ...]] = [()] * n
        self.done = np.zeros(n, dtype=bool)
        self.rngs: list[np.random.Generator] = [np.random.default_rng(0) for _ in range(n)]
        #: Gymnasium's max_episode_steps, if given: truncate (unscored) after this many
        #: tokens when the episode has not ended by then.
        self.step_limit: int | None = None

    def limit_steps(self, max_steps: int) -> None:
        """Truncate episodes after at most ``max_steps`` generated tokens."""
        self.step_limit = max_steps if self.step_limit is None else min(self.step_limit, max_steps)

    # -- starting and restoring rows ------------------------------------------------------

    def start(self, row: int, options: dict[str, Any] | None = None) -> dict[str, Any]:
        """Begin a new episode in ``row`` on a prompt drawn with the row's RNG (or
        ``options["sample_index"]``); returns the reset info."""
        task = self.task
        index = None if options is None else options.get("sample_index")
        if index is None:
            index = int(self.rngs[row].integers(len(task.samples)))
        elif not isinstance(index, (int, np.integer)) or not 0 <= index < len(task.samples):
            raise ValueError(
                f"{task.name}: options['sample_index'] must be an integer in "
                f"[0, {len(task.samples)}) for the {task.split!r} split, got {index!r}"
            )
        self.write(row, int(index), task.prompt_ids(int(index)), task.samples[index].references)
        return self.reset_info(row)

    def write(
        self,
        row: int,
        sample_index: int,
        prompt_ids: np.ndarray,
        references: tuple[str, ...],
        generated_ids: np.ndarray | None = None,
        done: bool = False,
    ) -> None:
        """Put a prompt and generated prefix into ``row`` (assumed valid)."""
        task = self.task
        p, g = len(prompt_ids), 0 if generated_ids is None else len(generated_ids)
        ids, mask = self.input_ids[row], self.attention_mask[row]
        ids.fill(task.pad_token_id)
        mask.fill(0)
        ids[task.prompt_length - p : task.prompt_length] = prompt_ids
        if g:
            ids[task.prompt_length : task.prompt_length + g] = generated_ids
        mask[task.prompt_length - p : task.prompt_length + g] = 1
        self.prompt_ids[row] = prompt_ids
        self.generated[row] = g
        self.sample_index[row] = sample_index
        self.references[row] = tuple(references)
        self.done[row] = done

    def restore(self, row: int, state: TextGenState) -> dict[str, Any]:
        self.write(
            row,
            state.sample_index,
            state.prompt_ids,
            state.references,
            state.generated_ids,
            state.done,
        )
        self.rngs[row] = generator_from_state(state.rng)
        return self.reset_info(row)

    def capture(self, row: int, env_id: str, version: int) -> TextGenState:
        task = self.task
        start = task.prompt_length
        return TextGenState(
            env_id=env_id,
            version=version,
            split=task.split,
            sample_index=int(self.sample_index[row]),
            prompt_ids=self.prompt_ids[row],
            references=self.references[row],
            generated_ids=self.input_ids[row, start : start + self.generated[row]],
            done=bool(self.done[row]),
            rng=rng_state(self.rngs[row]),
        )

    def validate(self, state: TextGenState) -> None:
        """Raise if ``state``'s payload cannot be restored into these rows."""
        task = self.task
        if state.split != task.split:
            raise ValueError(
                f"state is from the {state.split!r} split, this env serves {task.split!r}"
            )
        if not isinstance(state.sample_index, int) or not (
            -1 <= state.sample_index < len(task.samples)
        ):
            raise ValueError(
                f"sample_index must be -1 or in [0, {len(task.samples)}), "
                f"got {state.sample_index!r}"
            )
        check_token_ids(state.prompt_ids, task, "prompt_ids", 1, task.prompt_length)
        check_token_ids(state.generated_ids, task, "generated_ids", 0, task.max_new_tokens)
        if not (
            isinstance(state.references, tuple)
            and all(isinstance(r, str) for r in state.references)
        ):
            raise ValueError("references must be a tuple of strings")
        if not isinstance(state.done, bool):
            raise ValueError(f"done must be a bool, got {state.done!r}")
        if self.step_limit is not None and len(state.generated_ids) > self.step_limit:
            raise ValueError(
                f"the state has {len(state.generated_ids)} generated tokens, beyond this "
                f"env's max_episode_steps={self.step_limit}"
            )
        generator_from_state(state.rng)

    # -- stepping -------------------------------------------------------------------------

    def append(
        self, rows: np.ndarray, tokens: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[dict[str, Any]]]:
        """Append ``tokens[k]`` to row ``rows[k]``; score the rows whose episode ends.

        Returns (rewards, ended, truncated, infos) aligned with ``rows``; the reward
        function is called once for all ending rows. ``truncated`` marks the rows cut at
        ``step_limit`` before their end (not scored).
        """
        task = self.task
        position = task.prompt_length + self.generated[rows]
        self.input_ids[rows, position] = tokens
        self.attention_mask[rows, position] = 1
        self.generated[rows] += 1
        n_new = self.generated[rows]
        ended = n_new >= task.max_new_tokens
        ended |= (tokens == task.eos_token_id) & (n_new >= max(task.min_new_tokens, 1))
        truncated = np.zeros(len(rows), dtype=bool)
        if self.step_limit is not None:
            truncated = ~ended & (n_new >= self.step_limit)
        self.done[rows] = ended | truncated
        rewards = np.zeros(len(rows), dtype=np.float64)
        infos: list[dict[str, Any]] = [{} for _ in rows]
        finished = np.flatnonzero(ended)
        if len(finished):
            ending = rows[finished]
            prompts = [task.decode_prompt(self.prompt_ids[r]) for r in ending]
            completion_ids = [self.completion_ids(r) for r in ending]
            completions = [task.decode_completion(ids) for ids in completion_ids]
            references = [list(self.references[r]) for r in ending]
            scores = task.score(
                prompts=prompts,
                completions=completions,
                completion_ids=[ids.tolist() for ids in completion_ids],
                references=references,
                **task.column_values(self.sample_index[ending].tolist()),
            )
            for k, r, prompt, completion, score in zip(
                finished, ending, prompts, completions, scores, strict=True
            ):
                rewards[k] = score
                infos[k] = {
                    "prompt": prompt,
                    "completion": completion,
                    "references": list(self.references[r]),
                    "scores": {task.reward_name: float(score)},
                    "stop_reason": "length" if self.generated[r] >= task.max_new_tokens else "eos",
                    "sample_index": int(self.sample_index[r]),
                }
        return rewards, ended, truncated, infos

    def completion_ids(self, row: int) -> np.ndarray:
        start = self.task.prompt_length
        return self.input_ids[row, start : start + self.generated[row]]

    def reset_info(self, row: int) -> dict[str, Any]:
        return {"sample_index": int(self.sample_index[row])}

    def observation(self, row: int) -> dict[str, np.ndarray]:
        return {
            "input_ids": self.input_ids[row].copy(),
            "attention_mask": self.attention_mask[row].copy(),
        }


def check_token_ids(ids: Any, task: TextTask, name: str, min_length: int, max_length: int) -> None:
    """Raise a ValueError unless ``ids`` is a 1-D int64 array of vocabulary ids whose
    length lies in [min_length, max_length]."""
    if not isinstance(ids, np.ndarray) or ids.ndim != 1 or ids.dtype != np.int64:
        raise ValueError(f"{name} must be a 1-D int64 array, got {ids!r}")
    if not min_length <= len(ids) <= max_length:
        raise ValueError(f"{name} must hold {min_length} to {max_length} tokens, got {len(ids)}")
    outside = ids[(ids < 0) | (ids >= task.vocab_size)]
    if len(outside):
        raise ValueError(
            f"{name} holds token ids outside the vocabulary [0, {task.vocab_size}): "
            f"{outside[:5].tolist()}"
        )


def as_token_ids(value: str | Sequence[int] | np.ndarray, task: TextTask, name: str) -> np.ndarray:
    """Token ids from text (tokenized without special tokens) or from a sequence of ids."""
    if isinstance(value, str):
        return task.encode(value, special=False) if value else np.zeros(0, np.int64)
    ids = np.asarray(value)
    if ids.size and not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"{name} must be text or a sequence of token ids, got {value!r}")
    return ids.astype(np.int64).reshape(-1)
