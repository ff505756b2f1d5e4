"""The text envs: the token-level MDP, restarts from prefixes, the batched vector env, hub
loading on local fixtures, and errors on bad input."""

from __future__ import annotations

import time

import gymnasium as gym
import numpy as np
import pytest

from lfi_gym import envs
from lfi_gym.envs import StateError
from lfi_gym.envs.text import TextGenEnv, TextGenVectorEnv, TextSample, TextTask

TINY = "TextGen-TinyReviews-v0"


@pytest.fixture(scope="module")
def tiny() -> TextGenEnv:
    return gym.make(TINY)


def _prompt_and_generated(env: TextGenEnv, obs: dict) -> tuple[np.ndarray, np.ndarray]:
    p = env.unwrapped.prompt_length
    ids, mask = obs["input_ids"], obs["attention_mask"]
    return ids[:p][mask[:p] == 1], ids[p:][mask[p:] == 1]


def test_observation_layout_and_transition(tiny: TextGenEnv) -> None:
    obs, info = tiny.reset(seed=0)
    task = tiny.unwrapped.task
    width = task.prompt_length + task.max_new_tokens
    assert obs["input_ids"].shape == obs["attention_mask"].shape == (width,)
    prompt, generated = _prompt_and_generated(tiny, obs)
    assert len(generated) == 0
    assert np.array_equal(prompt, task.prompt_ids(info["sample_index"]))
    # The prompt is padded on the left: its last token sits just before the generation.
    assert obs["attention_mask"][task.prompt_length - 1] == 1
    tokens = [5, 17, 9]
    for token in tokens:
        obs, reward, terminated, truncated, _ = tiny.step(token)
        assert reward == 0.0 and not terminated and not truncated
    assert _prompt_and_generated(tiny, obs)[1].tolist() == tokens


def test_episode_ends_at_the_horizon_with_the_final_info(tiny: TextGenEnv) -> None:
    tiny.reset(seed=1)
    task = tiny.unwrapped.task
    eos = task.eos_token_id
    word = next(t for t in range(task.vocab_size) if t != eos)
    for step in range(task.max_new_tokens):
        _, reward, terminated, truncated, info = tiny.step(word)
        assert terminated == (step == task.max_new_tokens - 1) and not truncated
    assert info["stop_reason"] == "length"
    assert set(info) >= {"prompt", "completion", "references", "scores", "sample_index"}
    assert info["scores"] == {"lexicon-sentiment": reward}
    assert 0.0 <= reward <= 1.0
    with pytest.raises(gym.error.ResetNeeded, match="ended"):
        tiny.step(word)


def test_eos_ends_the_episode(tiny: TextGenEnv) -> None:
    tiny.reset(seed=2)
    tiny.step(7)
    _, _, terminated, _, info = tiny.step(tiny.unwrapped.task.eos_token_id)
    assert terminated and info["stop_reason"] == "eos"


def test_min_new_tokens_keeps_eos_from_ending_the_episode(text_assets) -> None:
    env = gym.make("TextGen-IMDB-v0", **text_assets.env_kwargs("TextGen-IMDB-v0"))
    task = env.unwrapped.task
    assert task.min_new_tokens == task.max_new_tokens == 8
    env.reset(seed=0)
    for _ in range(task.max_new_tokens - 1):
        _, _, terminated, _, _ = env.step(task.eos_token_id)
        assert not terminated
    _, reward, terminated, _, info = env.step(task.eos_token_id)
    assert terminated and info["stop_reason"] == "length"
    assert 0.0 <= reward <= 1.0 and list(info["scores"]) == ["sequence-classifier"]


def test_reset_to_a_prompt_and_prefix(tiny: TextGenEnv) -> None:
    env = tiny.unwrapped
    tiny.reset(seed=3)
    state = env.make_state("the film was", prefix=" really", references=("great fun",))
    obs, _ = tiny.reset_to(state)
    prompt, generated = _prompt_and_generated(tiny, obs)
    assert env.tokenizer.decode(prompt) == "the film was"
    assert env.tokenizer.decode(generated) == " really"
    assert tiny.get_state() == state
    # The horizon counts the prefix: fewer steps remain.
    steps = 0
    terminated = False
    while not terminated:
        _, _, terminated, _, info = tiny.step(5)
        steps += 1
    assert steps == env.task.max_new_tokens - len(generated)
    assert info["references"] == ["great fun"] and info["sample_index"] == -1


def test_the_reference_oracle_writes_the_reference(tiny: TextGenEnv) -> None:
    expert = envs.make_expert(tiny)
    obs, info = tiny.reset(seed=4)
    task = tiny.unwrapped.task
    reference = task.samples[info["sample_index"]].references[0]
    done = False
    while not done:
        action, _ = expert.predict(obs)
        obs, _, done, _, info = tiny.step(action)
    expected = task.tokenizer.decode(task.continuation_ids(reference)[: task.max_new_tokens])
    assert info["completion"] == expected.strip() or info["completion"] == expected


def test_vector_env_is_native_and_scores_rows_in_one_call() -> None:
    calls = []

    def counting_reward(prompts, completions, references):
        calls.append(len(completions))
        return [float(len(c)) for c in completions]

    vec = gym.make_vec(
        TINY, num_envs=6, vectorization_mode="vector_entry_point", reward=counting_reward
    )
    assert isinstance(vec, TextGenVectorEnv)
    assert isinstance(gym.make_vec(TINY, num_envs=2), TextGenVectorEnv)  # the default mode
    vec.reset(seed=0)
    task = vec.task
    for _ in range(task.max_new_tokens):
        _, rewards, terminated, _, infos = vec.step(np.full(6, 5))
    assert terminated.all() and len(calls) == 1 and calls[0] == 6
    assert rewards.tolist() == [float(len(c)) for c in infos["completion"]]


def test_vector_rows_match_single_envs_seeded_alike() -> None:
    vec = gym.make_vec(TINY, num_envs=3)
    obs, _ = vec.reset(seed=10)
    for row in range(3):
        single_obs, _ = gym.make(TINY).reset(seed=10 + row)
        assert np.array_equal(obs["input_ids"][row], single_obs["input_ids"])


def test_vector_restart_from_prefixes(tiny: TextGenEnv) -> None:
    env = tiny.unwrapped
    tiny.reset(seed=0)
    states = [env.make_state("a movie", prefix=[5] * k) for k in (0, 3, 6)]
    vec = gym.make_vec(TINY, num_envs=3)
    vec.reset(seed=0)
    obs, _ = vec.reset_to(states)
    p = vec.prompt_length
    assert obs["attention_mask"][:, p:].sum(1).tolist() == [0, 3, 6]


# -- bad input -----------------------------------------------------------------------------


def test_token_ids_outside_the_vocabulary(tiny: TextGenEnv) -> None:
    tiny.reset(seed=0)
    n = tiny.unwrapped.task.vocab_size
    with pytest.raises(ValueError, match="not in the action space"):
        tiny.step(n)
    vec = gym.make_vec(TINY, num_envs=2)
    vec.reset(seed=0)
    with pytest.raises(ValueError, match=r"outside the vocabulary.*rows \[1\]"):
        vec.step(np.array([3, n + 4]))
    with pytest.raises(ValueError, match="prefix holds token ids outside"):
        tiny.unwrapped.make_state("a movie", prefix=[-1])


def test_a_state_from_another_text_env_is_refused(tiny: TextGenEnv, text_assets) -> None:
    imdb = gym.make("TextGen-IMDB-v0", **text_assets.env_kwargs("TextGen-IMDB-v0"))
    imdb.reset(seed=0)
    tiny.reset(seed=0)
    before = tiny.get_state()
    with pytest.raises(StateError, match="TextGen-IMDB-v0"):
        tiny.reset_to(imdb.get_state())
    assert tiny.get_state() == before
    validation = gym.make(TINY, split="validation")
    validation.reset(seed=0)
    with pytest.raises(StateError, match="split"):
        tiny.reset_to(validation.get_state())


def test_a_prompt_longer_than_the_limit(tiny: TextGenEnv) -> None:
    with pytest.raises(ValueError, match=r"prompt has \d+ tokens.*prompt_length=32"):
        tiny.unwrapped.make_state("great " * 40)
    with pytest.raises(ValueError, match="prefix has"):
        tiny.unwrapped.make_state("a film", prefix=[5] * 100)


def test_an_empty_dataset(text_assets) -> None:
    from datasets import Dataset, DatasetDict

    empty = Dataset.from_dict({"text": [], "label": []})
    kwargs = {
        **text_assets.env_kwargs("TextGen-IMDB-v0"),
        "dataset": DatasetDict({"train": empty, "test": empty}),
    }
    with pytest.raises(ValueError, match="'train' split has no rows"):
        gym.make("TextGen-IMDB-v0", **kwargs)


@pytest.mark.parametrize(
    ("reward", "match"),
    [
        (lambda completions, **kwargs: [0.5] * (len(completions) + 1), "2 value.*for 1 rows"),
        (lambda completions, **kwargs: [float("nan")] * len(completions), "NaN"),
    ],
    ids=["wrong-length", "nan"],
)
def test_a_bad_reward_function_is_named(reward, match) -> None:
    from lfi_gym.envs.text.rewards import RewardError

    env = gym.make(TINY, reward=reward, max_new_tokens=2)
    env.reset(seed=0)
    env.step(5)
    with pytest.raises(RewardError, match=match):
        env.step(5)


def test_missing_hub_assets_fail_at_once(monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from lfi_gym.envs.text import hub

    hub.reset_hub_cache()
    start = time.perf_counter()
    with pytest.raises(FileNotFoundError) as error:
        gym.make("TextGen-IMDB-v0")
    assert time.perf_counter() - start < 10
    message = str(error.value)
    assert "gpt2" in message and "policy_tokenizer" in message and TINY in message
    hub.reset_hub_cache()


# -- the hub-loading path on local fixtures ------------------------------------------------


def test_imdb_loads_local_assets_with_grue_splits(text_assets) -> None:
    kwargs = text_assets.env_kwargs("TextGen-IMDB-v0")
    sizes = {
        split: len(gym.make("TextGen-IMDB-v0", split=split, **kwargs).unwrapped.task.samples)
        for split in ("train", "validation", "test")
    }
    assert sizes == {"train": 32, "validation": 8, "test": 20}  # 80/20 of 40; test <= 5000
    env = gym.make("TextGen-IMDB-v0", **kwargs)
    _, info = env.reset(seed=0)
    sample = env.unwrapped.task.samples[info["sample_index"]]
    # Prompt = first half of the words, reference = the rest.
    full = len(sample.prompt.split()) + len(sample.references[0].split())
    assert len(sample.prompt.split()) == full // 2


def test_commongen_groups_references_per_concept_set(text_assets) -> None:
    env = gym.make("TextGen-CommonGen-v0", **text_assets.env_kwargs("TextGen-CommonGen-v0"))
    task = env.unwrapped.task
    assert task.seq2seq and task.reward_name in ("cider-d", "spider")
    assert all(s.prompt.startswith("generate a sentence with: ") for s in task.samples)
    assert any(len(s.references) > 1 for s in task.samples)
    assert len({s.prompt for s in task.samples}) == len(task.samples)
    obs, _ = env.reset(seed=0)
    done = False
    expert = envs.make_expert(env)
    while not done:
        action, _ = expert.predict(obs)
        obs, reward, done, _, _ = env.step(action)
    # Writing a reference scores higher than writing nonsense.
    env.reset(seed=0)
    for _ in range(task.max_new_tokens):
        _, nonsense, done, _, _ = env.step(5)
        if done:
            break
    assert reward > nonsense


@pytest.mark.parametrize(
    ("limits", "match"),
    [
        ({"max_new_tokens": 0}, "max_new_tokens"),
        ({"max_new_tokens": 2, "min_new_tokens": 3}, "min_new_tokens"),
    ],
)
def test_text_tasks_refuse_bad_settings(limits, match) -> None:
    from transformers import AutoTokenizer

    from lfi_gym.envs.text.tinyreviews import ASSET_DIR

    tokenizer = AutoTokenizer.from_pretrained(ASSET_DIR)
    with pytest.raises(ValueError, match=match):
        TextTask(
            name="x",
            tokenizer=tokenizer,
            samples=[TextSample("a film", ("ok",))],
            reward_fn=len,
            prompt_length=4,
            **limits,
        )


def test_the_tinyreviews_reward_separates_positive_from_negative_reviews(tiny) -> None:
    """Scored as the env scores an episode: prompt (first half) + reference (the rest)."""
    task = tiny.unwrapped.task
    test = gym.make(TINY, split="test").unwrapped.task
    samples = test.samples[:400]
    rewards = task.score(
        prompts=[s.prompt for s in samples],
        completions=[" " + s.references[0] for s in samples],
        completion_ids=[task.continuation_ids(s.references[0]).tolist() for s in samples],
        references=[list(s.references) for s in samples],
        label=[s.label for s in samples],
    )
    labels = np.array([s.label for s in samples])
    gap = rewards[labels == 1].mean() - rewards[labels == 0].mean()
    assert gap > 0.4, gap
