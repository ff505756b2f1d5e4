"""The Preferences set: validation, selection, splits, and the env / tokenizer check."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from lfi_gym.agents.preferences import Preferences, PreferencesError, tokenizer_digest

ENV_ID = "TextGen-TinyReviews-v0"


@pytest.fixture(scope="module")
def env() -> gym.Env:
    return gym.make(ENV_ID)


def _rows(env, n: int, labels=None) -> Preferences:
    task = env.unwrapped.task
    texts_a = [f"a fine film {i}." for i in range(n)]
    texts_b = [f"a dull film {i}." for i in range(n)]
    return Preferences(
        env_id=ENV_ID,
        tokenizer_digest=tokenizer_digest(task.tokenizer),
        prompts=[f"review {i}:" for i in range(n)],
        completions_a=texts_a,
        completions_b=texts_b,
        prompt_ids=[task.encode(f"review {i}:") for i in range(n)],
        completion_ids_a=[task.continuation_ids(t) for t in texts_a],
        completion_ids_b=[task.continuation_ids(t) for t in texts_b],
        labels=np.ones(n) if labels is None else labels,
        teacher={"name": "test"},
    )


def test_select_split_and_concatenate_keep_rows_aligned(env):
    prefs = _rows(env, 10, labels=[1, 0, 0.5, 1, 1, 0, 1, 0, 1, 1])
    picked = prefs.select([3, 1])
    assert picked.prompts == ("review 3:", "review 1:")
    assert picked.labels.tolist() == [1.0, 0.0]
    assert picked.completions_b[1] == "a dull film 1."
    train, held = prefs.split(0.3, seed=0)
    assert (len(train), len(held)) == (7, 3)
    assert sorted(train.prompts + held.prompts) == sorted(prefs.prompts)
    assert prefs.split(0.3, seed=0)[1].prompts == held.prompts  # seeded
    both = train.concatenate(held)
    assert len(both) == 10 and both.teacher == {"parts": [{"name": "test"}, {"name": "test"}]}
    assert "a preferred 6, b preferred 3, equal 1" in repr(prefs)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"labels": [1.0, 2.0]}, r"labels must be 1 \(a preferred\), 0 \(b preferred\) or 0.5"),
        ({"labels": [1.0]}, "labels has 1 values for 2 rows"),
        ({"completions_b": ["x"]}, "completions_b has 1 rows, prompts 2"),
        ({"completion_ids_a": [[1, -2], [3]]}, "completion_ids_a must be a 1-D list of token ids"),
        ({"prompts": ["x", 3]}, r"prompts\[1\] must be a str"),
    ],
)
def test_malformed_rows_are_refused_naming_the_problem(env, change, message):
    import dataclasses

    prefs = _rows(env, 2)
    fields = {f.name: getattr(prefs, f.name) for f in dataclasses.fields(prefs)}
    with pytest.raises(PreferencesError, match=message):
        Preferences(**{**fields, **change})


def test_an_empty_set_is_refused(env):
    with pytest.raises(PreferencesError, match="at least one labelled pair"):
        _rows(env, 0)


def test_another_env_or_tokenizer_is_refused(env):
    prefs = _rows(env, 2)
    prefs.check_env(env)
    prefs.check_env(gym.make_vec(ENV_ID, num_envs=2))
    with pytest.raises(PreferencesError, match="come from TextGen-TinyReviews-v0, the env is"):
        prefs.check_env(gym.make("TextGen-TinyConcepts-v0"))
    import dataclasses

    other = dataclasses.replace(prefs, tokenizer_digest="0" * 64)
    with pytest.raises(PreferencesError, match="another tokenizer"):
        other.check_env(env)
    with pytest.raises(PreferencesError, match="for text envs"):
        prefs.check_env(gym.make("Control-CartPole-v0"))
