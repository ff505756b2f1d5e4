"""What a text-generation env generates for: prompts, references, tokenizer, reward.

A :class:`TextTask` is shared by the single env and the native vector env of one id, so
both tokenize and score in exactly the same way; the reward is called as TRL calls its
reward functions, with keywords (see :mod:`lfi_gym.envs.text.rewards`).
:mod:`lfi_gym.envs.text.sources` builds the task of each registered id (TinyReviews
offline, IMDB and CommonGen from the hub or a local copy).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from lfi_gym.envs.validation import check_choice, check_positive_int

#: Splits every text task offers.
SPLITS = ("train", "validation", "test")
#: The optional fields of a :class:`TextSample` that become reward keywords when set.
OPTIONAL_COLUMNS = ("label", "concepts")


@dataclasses.dataclass(frozen=True)
class TextSample:
    """One prompt of a dataset split, with its reference texts and optional per-row
    fields that rewards receive as keywords: ``label`` (a review's class) and ``concepts``
    (the words a concept-to-text target must use)."""

    prompt: str
    references: tuple[str, ...]
    label: int | None = None
    concepts: tuple[str, ...] | None = None


class TextTask:
    """Tokenized prompts of one split, the generation limits and the reward function.

    ``prompt_length`` is the token limit of a prompt: dataset prompts are truncated to it
    on ``truncation_side`` (GRUE IMDB keeps the end of the prompt), while a prompt given
    by the user (``make_state``) that exceeds it is an error. Episodes end at EOS (once
    ``min_new_tokens`` tokens were generated) or after ``max_new_tokens`` tokens; both
    ends are terminal (``terminated=True``): the reward is given then and nothing follows,
    so value targets must not bootstrap past it.

    ``reward_fn`` follows TRL's reward-function contract: :meth:`score` calls it with the
    keywords ``prompts``, ``completions``, ``completion_ids``, ``references`` and the
    task's :attr:`columns` (``label``, ``concepts``: those the samples carry), each a list with one
    entry per row, and it returns one float per row. A function without ``**kwargs`` gets
    only the keywords it names; one that requires another is refused here. A reward with
    a ``check_task(task)`` method is called with the task once it is built, and may raise
    to refuse it (a reward model trained with another tokenizer does).

    ``policy_model`` names the LM a policy for this task starts from when none is given
    (``LMPolicy`` learners built by ``make_learner``): the shipped LM offline, a hub name
    otherwise.
    """

    def __init__(
        self,
        *,
        name: str,
        tokenizer: Any,
        samples: Sequence[TextSample],
        reward_fn: Callable[..., Sequence[float]],
        prompt_length: int,
        max_new_tokens: int,
        min_new_tokens: int = 0,
        truncation_side: str = "left",
        seq2seq: bool = False,
        split: str = "train",
        vocab_size: int | None = None,
        reward_name: str | None = None,
        policy_model: str | None = None,
    ) -> None:
        from lfi_gym.envs.text.rewards import REWARD_KEYWORDS, RewardError, reward_keywords
        from lfi_gym.envs.text.rewards import reward_name as default_reward_name

        check_positive_int(prompt_length, "prompt_length")
        check_positive_int(max_new_tokens, "max_new_tokens")
        if not isinstance(min_new_tokens, (int, np.integer)) or not (
            0 <= min_new_tokens <= max_new_tokens
        ):
            raise ValueError(
                f"min_new_tokens must be an integer in [0, max_new_tokens={max_new_tokens}], "
                f"got {min_new_tokens!r}"
            )
        check_choice(truncation_side, ("left", "right"), "truncation_side")
        if len(samples) == 0:
            raise ValueError(
                f"{name}: the {split!r} split has no rows; pass a dataset whose {split!r} split "
                "holds at least one example"
            )
        if tokenizer.eos_token_id is None:
            raise ValueError(f"{name}: the tokenizer has no eos token; set tokenizer.eos_token")
        if not callable(reward_fn):
            raise TypeError(f"{name}: reward must be callable, got {type(reward_fn).__name__}")
        self.name = name
        self.policy_model = policy_model
        self.tokenizer = tokenizer
        self.samples = tuple(samples)
        self.reward_fn = reward_fn
        self.reward_name = reward_name or default_reward_name(reward_fn)
        #: Per-row fields of the samples passed to the reward besides prompts and references.
        self.columns: tuple[str, ...] = tuple(
            column
            for column in OPTIONAL_COLUMNS
            if any(getattr(sample, column) is not None for sample in self.samples)
        )
        try:
            self._reward_keywords = reward_keywords(reward_fn, REWARD_KEYWORDS + self.columns)
        except RewardError as error:
            raise RewardError(f"{name}: {error}") from None
        self.prompt_length = int(prompt_length)
        self.max_new_tokens = int(max_new_tokens)
        self.min_new_tokens = int(min_new_tokens)
        self.truncation_side = truncation_side
        self.seq2seq = seq2seq
        self.split = split
        self.eos_token_id = int(tokenizer.eos_token_id)
        pad = tokenizer.pad_token_id
        self.pad_token_id = int(self.eos_token_id if pad is None else pad)
        self.vocab_size = int(vocab_size if vocab_size is not None else len(tokenizer))
        self._prompt_ids: dict[int, np.ndarray] = {}
        self._reference_ids: dict[int, np.ndarray] = {}
        # A learned reward (a reward model) scores token ids of its own tokenizer: it may
        # refuse a task it cannot score here, at gym.make, rather than score nonsense later.
        check_task = getattr(reward_fn, "check_task", None)
        if callable(check_task):
            check_task(self)

    @property
    def observation_length(self) -> int:
        return self.prompt_length + self.max_new_tokens

    def prompt_ids(self, index: int) -> np.ndarray:
        """Token ids of sample ``index``'s prompt, truncated to ``prompt_length`` (cached)."""
        ids = self._prompt_ids.get(index)
        if ids is None:
            ids = self.encode(self.samples[index].prompt)
            if len(ids) > self.prompt_length:
                keep = self.prompt_length
                ids = ids[-keep:] if self.truncation_side == "left" else ids[:keep]
            ids.flags.writeable = False
            self._prompt_ids[index] = ids
        return ids

    def reference_ids(self, index: int) -> np.ndarray:
        """Token ids of the first reference as a continuation of the prompt (for oracles)."""
        ids = self._reference_ids.get(index)
        if ids is None:
            references = self.samples[index].references
            ids = self.continuation_ids(references[0] if references else "")
            ids.flags.writeable = False
            self._reference_ids[index] = ids
        return ids

    def continuation_ids(self, text: str) -> np.ndarray:
        """Token ids of ``text`` as generated after the prompt."""
        if not text:
            return np.zeros(0, np.int64)
        # A causal LM continues the prompt's words: the continuation starts with a space.
        return self.encode(text if self.seq2seq else " " + text, special=False)

    def encode(self, text: str, special: bool = True) -> np.ndarray:
        ids = self.tokenizer(text, add_special_tokens=special)["input_ids"]
        return np.asarray(ids, dtype=np.int64)

    def decode_completion(self, generated: np.ndarray) -> str:
        return self.tokenizer.decode(generated, skip_special_tokens=True)

    def decode_prompt(self, prompt_ids: np.ndarray) -> str:
        return self.tokenizer.decode(prompt_ids, skip_special_tokens=True)

    def column_values(self, sample_indices: Sequence[int]) -> dict[str, list[Any]]:
        """The task's :attr:`columns` for rows of the split (``-1``: a prompt given to
        ``make_state``, whose columns are None), TRL-style: one list per column."""
        samples = [self.samples[i] if i >= 0 else None for i in sample_indices]
        return {
            column: [None if sample is None else getattr(sample, column) for sample in samples]
            for column in self.columns
        }

    def score(
        self,
        *,
        prompts: list[str],
        completions: list[str],
        completion_ids: list[list[int]],
        references: list[list[str]],
        **columns: list[Any],
    ) -> np.ndarray:
        """One batched reward call with TRL's keywords, checked for length and finiteness.

        ``columns`` are the task's :attr:`columns` (see :meth:`column_values`).
        """
        from lfi_gym.envs.text.rewards import check_rewards

        if set(columns) != set(self.columns):
            raise ValueError(
                f"{self.name}: score() takes the task's columns {list(self.columns)} as keywords, "
                f"got {sorted(columns)}"
            )
        arguments = {
            "prompts": prompts,
            "completions": completions,
            "completion_ids": completion_ids,
            "references": references,
            **columns,
        }
        if self._reward_keywords is not None:
            arguments = {k: v for k, v in arguments.items() if k in self._reward_keywords}
        values = self.reward_fn(**arguments)
        return check_rewards(values, len(completions), self.reward_name)

    def ends_episode(self, token: int, n_generated: int) -> bool:
        """Whether appending ``token`` as the ``n_generated``-th new token ends the episode."""
        if n_generated >= self.max_new_tokens:
            return True
        return token == self.eos_token_id and n_generated >= max(self.min_new_tokens, 1)


def split_words(text: str, fraction: float = 0.5) -> tuple[str, str]:
    """The first ``fraction`` of the whitespace words of ``text``, and the rest."""
    words = text.split()
    cut = max(1, math.floor(len(words) * fraction)) if words else 0
    return " ".join(words[:cut]), " ".join(words[cut:])


def check_split(split: str, env_name: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"{env_name}: unknown split {split!r}; use one of {', '.join(SPLITS)}")
