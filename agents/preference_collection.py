"""Collecting preferences: two sampled completions of one prompt, labelled by a teacher.

:func:`collect_fields` (behind ``Preferences.collect``) runs a native text vector env
of ``2 k`` rows, each prompt seeded into two neighbouring rows, so rows ``2j`` and
``2j + 1`` share a prompt and the policy samples two completions of it in one batch (the RLHF data
step of Stiennon et al. 2020 and Ouyang et al. 2022, with a simulated labeller). The teacher
compares the two episodes' per-step env rewards (the gold reward); a skipped pair costs a
query and is not kept.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lfi_gym.agents.env_kinds import text_task
from lfi_gym.agents.preference_common import PreferencesError, set_fields, tokenizer_digest
from lfi_gym.agents.rollouts import LEARNER, EpisodePlan, Segment, run_wave
from lfi_gym.agents.teachers import SimulatedTeacher
from lfi_gym.envs.text.vector import TextGenVectorEnv
from lfi_gym.envs.validation import check_positive_int, is_int


def collect_fields(
    env: Any,
    policy: Any,
    n_pairs: int,
    teacher: SimulatedTeacher,
    seed: int | None = None,
    batch_size: int = 16,
) -> dict[str, Any]:
    """The fields of a :class:`~lfi_gym.agents.preferences.Preferences` set of ``n_pairs``
    labelled pairs of ``policy``'s completions on ``env``'s prompts
    (``Preferences.collect``; lfi_gym.agents.preferences imports this module, so it does
    not import that one).

    ``env`` is a text env (id, single or vector env): its task (prompts of its split,
    tokenizer, horizon and reward) is used by a fresh vector env of ``2 * batch_size`` rows.
    ``policy`` is an ``LMPolicy`` or anything with the policy protocol
    (``predict(observations, state) -> (tokens, state)``). Stops at exactly ``n_pairs``
    labelled pairs, or earlier when the teacher's query budget ends (then it returns what was
    labelled; nothing labelled is an error). Prompts are drawn with ``seed``; the policy
    samples with torch's global generator, so the same ``seed`` and torch seed give the same
    set. ``Preferences.teacher`` records the teacher's settings, the queries this collection
    used, the pairs it skipped and ``tokens``, the completion tokens sampled (every sampled
    pair's, labelled or not).
    """
    n_pairs = check_positive_int(n_pairs, "n_pairs")
    batch_size = check_positive_int(batch_size, "batch_size")
    if seed is not None and not is_int(seed):
        raise ValueError(f"seed must be an int or None, got {seed!r}")
    if not callable(getattr(teacher, "label", None)):
        raise TypeError(
            f"teacher must answer label(rewards_a, rewards_b) (a SimulatedTeacher); got "
            f"{type(teacher).__name__}"
        )
    task = text_task(env, "preferences are collected on text envs")
    digest = tokenizer_digest(task.tokenizer)
    policy_tokenizer = getattr(policy, "tokenizer", None)
    if policy_tokenizer is not None and tokenizer_digest(policy_tokenizer) != digest:
        raise ValueError(
            f"the policy's tokenizer differs from {task.name}'s, so its token ids would be read "
            "as other text; load the policy with the env (LMPolicy.from_pretrained(name, env=env))"
        )

    rng = np.random.default_rng(seed)
    rows: dict[str, list[Any]] = {
        key: [] for key in ("prompts", "a", "b", "prompt_ids", "ids_a", "ids_b", "labels")
    }
    queries_before = teacher.queries_used
    skipped = tokens = 0
    vector_env: TextGenVectorEnv | None = None
    while len(rows["labels"]) < n_pairs:
        left = teacher.queries_left
        if left == 0:
            break
        # Never sample more pairs than can still be labelled and asked for.
        k = min(batch_size, n_pairs - len(rows["labels"]), batch_size if left is None else left)
        if vector_env is None or vector_env.num_envs != 2 * k:
            vector_env = TextGenVectorEnv(task, num_envs=2 * k)
        prompt_seeds = rng.integers(0, 2**31 - 1, size=k)
        wave = run_wave(
            vector_env,
            {LEARNER: policy},
            [EpisodePlan(LEARNER, LEARNER, 0)] * (2 * k),
            [int(s) for s in np.repeat(prompt_seeds, 2)],
        )
        tokens += wave.steps
        for j in range(k):
            first, second = wave.segments[2 * j], wave.segments[2 * j + 1]
            label = teacher.label(first.rewards, second.rewards)
            if label is None:
                skipped += 1
                continue
            prompt_ids = segment_prompt_ids(first, task.prompt_length)
            ids_a, ids_b = _completion_ids(first), _completion_ids(second)
            rows["prompts"].append(task.decode_prompt(prompt_ids))
            rows["a"].append(task.decode_completion(ids_a))
            rows["b"].append(task.decode_completion(ids_b))
            rows["prompt_ids"].append(prompt_ids)
            rows["ids_a"].append(ids_a)
            rows["ids_b"].append(ids_b)
            rows["labels"].append(label)
            if len(rows["labels"]) == n_pairs:
                break
    queries = teacher.queries_used - queries_before
    if not rows["labels"]:
        if queries == 0:
            reason = (
                f"the teacher's query budget was already spent ({teacher.queries_used} of "
                f"max_queries={getattr(teacher, 'max_queries', None)} used)"
            )
        else:
            reason = f"the teacher skipped all {queries} pairs it was asked about"
        raise PreferencesError(
            f"no labelled pair was collected: {reason}; give the teacher more queries or a "
            "lower skip_threshold"
        )
    settings = teacher.settings() if callable(getattr(teacher, "settings", None)) else {}
    return set_fields(
        task.name,
        digest,
        rows,
        {
            **settings,
            "queries": queries,
            "skipped": skipped,
            "tokens": tokens,
            "collection_seed": seed,
        },
    )


def segment_prompt_ids(segment: Segment, prompt_length: int) -> np.ndarray:
    """The prompt's tokens of a text episode's segment: the left-padded prompt part of its
    first observation."""
    observation = segment.observations[0]
    ids = np.asarray(observation["input_ids"][:prompt_length], dtype=np.int64)
    mask = np.asarray(observation["attention_mask"][:prompt_length])
    return ids[mask == 1]


def _completion_ids(segment: Segment) -> np.ndarray:
    """The generated tokens (EOS included where the episode ended on it)."""
    return np.asarray([int(token) for token in segment.actions], dtype=np.int64)
