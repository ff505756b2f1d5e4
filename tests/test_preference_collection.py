"""Preferences.collect on TinyReviews with the shipped LM: two completions of one prompt,
labelled from the env's own reward, the exact pair count, the teacher's budget, skips,
the tokens spent, and seeding."""

from __future__ import annotations

import dataclasses
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch

from lfi_gym.agents.lm_policy import LMPolicy
from lfi_gym.agents.preferences import Preferences, PreferencesError
from lfi_gym.agents.teachers import SimulatedTeacher

ENV_ID = "TextGen-TinyReviews-v0"


@pytest.fixture(scope="module")
def env() -> gym.Env:
    return gym.make(ENV_ID)


@pytest.fixture(scope="module")
def policy(env) -> LMPolicy:
    torch.set_num_threads(1)
    return LMPolicy.from_pretrained("lfi-gym/tinyreviews-lm", env=env, device="cpu")


def _collect(env, policy, n_pairs, teacher, seed=0, torch_seed=0, **kwargs) -> Preferences:
    torch.manual_seed(torch_seed)
    return Preferences.collect(env, policy, n_pairs, teacher, seed=seed, **kwargs)


def _rescore(task, prompt: str, completion: str, ids: np.ndarray) -> float:
    """The env's reward of one completion, called as the env calls it."""
    return float(
        task.score(
            prompts=[prompt],
            completions=[completion],
            completion_ids=[ids.tolist()],
            references=[[]],
            **task.column_values([-1]),
        )[0]
    )


def _completion_tokens(prefs: Preferences) -> int:
    return sum(len(ids) for ids in prefs.completion_ids_a + prefs.completion_ids_b)


class FirstObservations:
    """A policy that records the first batch it is shown (one row per episode)."""

    def __init__(self, policy: Any) -> None:
        self.policy, self.first = policy, None

    def predict(self, observations, state=None):
        if self.first is None:
            self.first = observations["input_ids"].copy()
        return self.policy.predict(observations, state)


def test_pairs_share_a_prompt_and_labels_follow_the_env_reward(env, policy):
    task = env.unwrapped.task
    recording = FirstObservations(policy)
    prefs = _collect(env, recording, 6, SimulatedTeacher(seed=0), batch_size=3)
    assert len(prefs) == 6 and prefs.env_id == ENV_ID
    rows = recording.first  # the first wave: 3 pairs, 6 rows
    assert rows.shape[0] == 6
    for j in range(3):
        np.testing.assert_array_equal(rows[2 * j], rows[2 * j + 1])
    assert not np.array_equal(rows[0], rows[2])  # different prompts across pairs
    for i in range(len(prefs)):
        prompt_ids = prefs.prompt_ids[i]
        assert prefs.prompts[i] == task.decode_prompt(prompt_ids)
        for text, ids in (
            (prefs.completions_a[i], prefs.completion_ids_a[i]),
            (prefs.completions_b[i], prefs.completion_ids_b[i]),
        ):
            assert text == task.decode_completion(ids)
            assert 1 <= len(ids) <= task.max_new_tokens
            # EOS only as the last token, and present unless the horizon ended the episode.
            assert task.eos_token_id not in ids[:-1].tolist()
            assert ids[-1] == task.eos_token_id or len(ids) == task.max_new_tokens
        score_a = _rescore(
            task, prefs.prompts[i], prefs.completions_a[i], prefs.completion_ids_a[i]
        )
        score_b = _rescore(
            task, prefs.prompts[i], prefs.completions_b[i], prefs.completion_ids_b[i]
        )
        assert score_a != score_b
        assert prefs.labels[i] == (1.0 if score_a > score_b else 0.0)  # the oracle


def test_the_pair_count_the_teacher_record_and_the_tokens(env, policy):
    teacher = SimulatedTeacher(seed=0)
    prefs = _collect(env, policy, 7, teacher, batch_size=4)
    assert len(prefs) == 7 and teacher.queries_used == 7
    record = prefs.teacher
    assert {k: record[k] for k in ("queries", "skipped", "collection_seed")} == {
        "queries": 7,
        "skipped": 0,
        "collection_seed": 0,
    }
    assert record["beta"] == "inf" and record["kind"] == "SimulatedTeacher"
    # No pair is sampled that is not asked about: the tokens are the completions'.
    assert record["tokens"] == _completion_tokens(prefs)


def test_the_budget_ends_the_collection_and_skipped_pairs_cost_queries(env, policy):
    teacher = SimulatedTeacher(max_queries=5, seed=0)
    prefs = _collect(env, policy, 10, teacher, batch_size=4)
    assert len(prefs) == 5 and teacher.queries_left == 0 and prefs.teacher["queries"] == 5

    # The median return as the skip threshold: some pairs are skipped and still charged.
    skipping = SimulatedTeacher(skip_threshold=0.5, max_queries=12, seed=0)
    prefs = _collect(env, policy, 12, skipping, batch_size=6)
    skipped = prefs.teacher["skipped"]
    assert skipped > 0 and len(prefs) + skipped == 12 == skipping.queries_used
    assert prefs.teacher["tokens"] > _completion_tokens(prefs)  # the skipped pairs were sampled too


def test_an_empty_collection_says_why(env, policy):
    with pytest.raises(PreferencesError, match="skipped all 4 pairs it was asked about"):
        _collect(env, policy, 3, SimulatedTeacher(skip_threshold=1.0, max_queries=4), batch_size=2)
    with pytest.raises(PreferencesError, match="query budget was already spent"):
        _collect(env, policy, 3, SimulatedTeacher(max_queries=0))


def test_the_same_seeds_give_the_same_set(env, policy):
    first = _collect(env, policy, 5, SimulatedTeacher(beta=1.0, seed=3), seed=11, batch_size=2)
    again = _collect(env, policy, 5, SimulatedTeacher(beta=1.0, seed=3), seed=11, batch_size=2)
    for field in dataclasses.fields(Preferences):
        mine, theirs = getattr(first, field.name), getattr(again, field.name)
        if field.name in ("prompt_ids", "completion_ids_a", "completion_ids_b"):
            assert all(np.array_equal(x, y) for x, y in zip(mine, theirs, strict=True))
        elif field.name == "labels":
            np.testing.assert_array_equal(mine, theirs)
        else:
            assert mine == theirs, field.name
    other = _collect(env, policy, 5, SimulatedTeacher(beta=1.0, seed=3), seed=12, batch_size=2)
    assert other.prompts != first.prompts


def test_bad_input_is_refused(env, policy):
    teacher = SimulatedTeacher()
    with pytest.raises(ValueError, match="n_pairs must be a positive int"):
        Preferences.collect(env, policy, 0, teacher)
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        Preferences.collect(env, policy, 2, teacher, batch_size=0)
    with pytest.raises(ValueError, match="collected on text envs"):
        Preferences.collect(gym.make("Control-CartPole-v0"), policy, 2, teacher)
    with pytest.raises(TypeError, match="teacher must answer label"):
        Preferences.collect(env, policy, 2, object())
    concepts = gym.make("TextGen-TinyConcepts-v0")
    with pytest.raises(
        ValueError, match="the policy's tokenizer differs from TextGen-TinyConcepts"
    ):
        Preferences.collect(concepts, policy, 2, teacher)
    assert teacher.queries_used == 0
