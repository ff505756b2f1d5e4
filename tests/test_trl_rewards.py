"""Text rewards follow TRL's reward-function contract, in both directions.

TRL's GRPOTrainer calls a reward with keywords (``prompts=``, ``completions=``,
``completion_ids=``, every dataset column, ``trainer_state=``, ``log_extra=``,
``log_metric=``) and users write ``def reward(completions, **kwargs)``. The env calls
rewards the same way, so a TRL reward drives an env unchanged and our built-in rewards
train in GRPOTrainer without an adapter.
"""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np
import pytest

from lfi_gym import envs  # noqa: F401  (registers the env ids)
from lfi_gym.envs.text import TextSample, TextTask
from lfi_gym.envs.text.rewards import (
    BLEUReward,
    CIDErDReward,
    LexiconSentimentReward,
    RewardError,
    make_reward,
    reward_keywords,
)
from lfi_gym.envs.text.tinyreviews import ASSET_DIR

TINY = "TextGen-TinyReviews-v0"
GREAT_FILM = [258, 911, 329]  # " a great film" in the shipped tokenizer
EOS = 0

# Everything TRL 1.16's GRPOTrainer passes besides prompts and completions.
TRL_EXTRAS: dict[str, Any] = {
    "completion_ids": [[1, 2], [3]],
    "label": [1, 0],
    "trainer_state": object(),
    "log_extra": lambda *args, **kwargs: None,
    "log_metric": lambda *args, **kwargs: None,
}


def _play(env: gym.Env, sample_index: int, actions: list[int]) -> tuple[float, dict]:
    env.reset(seed=0, options={"sample_index": sample_index})
    for action in actions:
        _, reward, terminated, truncated, info = env.step(action)
        if terminated or truncated:
            return reward, info
    raise AssertionError("the episode did not end")


# -- the env calls a TRL-style reward with keywords -----------------------------------------


def test_a_trl_reward_function_drives_a_tinyreviews_episode() -> None:
    calls: list[dict[str, Any]] = []

    def reward(completions, **kwargs):  # the signature TRL's docs use
        calls.append({"completions": completions, **kwargs})
        ids, labels = kwargs["completion_ids"], kwargs["label"]
        return [len(row) / 8 + label for row, label in zip(ids, labels, strict=True)]

    env = gym.make(TINY, reward=reward)
    task = env.unwrapped.task
    env_reward, info = _play(env, 3, [*GREAT_FILM, EOS])

    assert len(calls) == 1
    call = calls[0]
    assert set(call) == {"prompts", "completions", "completion_ids", "references", "label"}
    sample = task.samples[3]
    assert call["prompts"] == [sample.prompt] == [info["prompt"]]
    assert call["completion_ids"] == [[*GREAT_FILM, EOS]]
    assert all(isinstance(token, int) for token in call["completion_ids"][0])
    decoded = task.tokenizer.decode(call["completion_ids"][0], skip_special_tokens=True)
    assert call["completions"] == [decoded] == [info["completion"]] == [" a great film"]
    assert call["references"] == [list(sample.references)]
    assert call["label"] == [sample.label]
    assert env_reward == 4 / 8 + sample.label
    assert info["scores"] == {"reward": env_reward}


def test_a_reward_naming_its_keywords_gets_only_those_and_a_given_prompt_has_no_label() -> None:
    calls: list[dict[str, Any]] = []

    def reward(prompts, completions, label):  # no **kwargs: only these three are passed
        calls.append({"prompts": prompts, "completions": completions, "label": label})
        return [float(len(p) + len(c)) for p, c in zip(prompts, completions, strict=True)]

    env = gym.make(TINY, reward=reward, max_new_tokens=3)
    state = env.unwrapped.make_state("the film was", prefix=GREAT_FILM[:2])
    env.unwrapped.reset_to(state)
    _, env_reward, terminated, _, _ = env.step(GREAT_FILM[2])
    assert terminated
    assert calls == [
        {"prompts": ["the film was"], "completions": [" a great film"], "label": [None]}
    ]
    assert env_reward == len("the film was") + len(" a great film")


def test_the_vector_env_passes_one_list_entry_per_finishing_row() -> None:
    seen: list[dict[str, Any]] = []

    def reward(prompts, completions, completion_ids, **kwargs):
        seen.append({"prompts": prompts, "ids": completion_ids, **kwargs})
        return [float(ids[0]) for ids in completion_ids]

    vec = gym.make_vec(TINY, num_envs=3, vectorization_mode="vector_entry_point", reward=reward)
    vec.reset(seed=0, options={"sample_index": 5})
    vec.step(np.array([258, 911, 329]))
    _, rewards, terminated, _, _ = vec.step(np.array([EOS, EOS, EOS]))
    assert terminated.all()
    assert len(seen) == 1
    call = seen[0]
    assert call["ids"] == [[258, EOS], [911, EOS], [329, EOS]]
    assert set(call) == {"prompts", "ids", "references", "label"}
    assert len(call["prompts"]) == len(call["references"]) == len(call["label"]) == 3
    np.testing.assert_array_equal(rewards, [258.0, 911.0, 329.0])


# -- bad reward functions: clear errors ------------------------------------------------------


def test_a_reward_requiring_a_keyword_the_env_does_not_pass_is_refused_at_make() -> None:
    def reward(completions, tokenizer, **kwargs):
        return [0.0] * len(completions)

    with pytest.raises(RewardError, match=r"requires the parameters \['tokenizer'\]") as error:
        gym.make(TINY, reward=reward)
    message = str(error.value)
    assert TINY in message
    for keyword in ("prompts=", "completions=", "completion_ids=", "references=", "label="):
        assert keyword in message
    assert "def reward(completions, **kwargs)" in message


@pytest.mark.parametrize(
    ("reward", "match"),
    [
        (lambda p, c, r: [0.0] * len(c), r"requires the parameters \['p', 'c', 'r'\]"),
        (lambda completions, /, **kwargs: [0.0], r"requires the parameters \['completions'\]"),
        (lambda *args: [0.0], "takes none of the keywords"),
    ],
    ids=["positional-names", "positional-only", "no-keywords"],
)
def test_rewards_that_cannot_take_keywords_are_refused(reward, match) -> None:
    with pytest.raises(RewardError, match=match):
        gym.make(TINY, reward=reward)


def test_a_task_without_labels_does_not_offer_label() -> None:
    from transformers import AutoTokenizer

    def reward(completions, label):
        return [float(x) for x in label]

    with pytest.raises(RewardError, match=r"\['label'\].*prompts=, completions=, completion_ids="):
        TextTask(
            name="unlabelled",
            tokenizer=AutoTokenizer.from_pretrained(ASSET_DIR),
            samples=[TextSample("a film", ("ok",))],
            reward_fn=reward,
            prompt_length=4,
            max_new_tokens=2,
        )


def test_a_reward_returning_none_is_an_error_in_the_env() -> None:
    # TRL reads None as "not applicable"; an episode always needs a reward.
    env = gym.make(TINY, reward=lambda completions, **kwargs: [None] * len(completions))
    with pytest.raises(RewardError, match=r"'<lambda>' returned None at rows \[0\]"):
        _play(env, 0, [*GREAT_FILM, EOS])


def test_reward_keywords_filters_only_functions_without_var_keywords() -> None:
    offered = ("prompts", "completions", "completion_ids", "references")

    def named(prompts, completions, references=None):
        return []

    def trl_style(completions, **kwargs):
        return []

    assert reward_keywords(named, offered) == {"prompts", "completions", "references"}
    assert reward_keywords(trl_style, offered) is None
    assert reward_keywords(LexiconSentimentReward(), offered) is None


# -- built-in rewards take TRL's keywords and score as before --------------------------------


def _vader(valence: float) -> float:
    """VADER's compound score of one lexicon word (x / sqrt(x^2 + 15), which VADER rounds to
    4 decimals), mapped to [0, 1]: good 0.4404 -> 0.7202, bad -0.5423 -> 0.22885."""
    return (round(valence / math.sqrt(valence**2 + 15), 4) + 1) / 2


def test_lexicon_sentiment_ignores_trl_keywords_and_keeps_its_values() -> None:
    reward = make_reward("lexicon-sentiment", score_on="completion")
    prompts, completions = ["", ""], ["a good film", "a bad film"]
    expected = [_vader(1.9), _vader(-2.5)]  # lexicon valences: good 1.9, bad -2.5
    np.testing.assert_allclose(reward(prompts, completions), expected, atol=1e-12)
    with_extras = reward(prompts=prompts, completions=completions, **TRL_EXTRAS)
    np.testing.assert_allclose(with_extras, expected, atol=1e-12)
    assert isinstance(with_extras, list) and all(type(v) is float for v in with_extras)


def test_reference_rewards_ignore_trl_keywords_and_keep_their_values() -> None:
    prompts = ["", ""]
    completions = ["a cat sits on the mat", "dogs run in the park"]
    references = [["a cat sits on the mat"], ["birds fly high"]]
    corpus = [["a cat sits on the mat"], ["birds fly high"], ["the sun is hot"]]
    for reward in (CIDErDReward(corpus), BLEUReward()):
        before = reward(prompts, completions, references)
        after = reward(
            prompts=prompts, completions=completions, references=references, **TRL_EXTRAS
        )
        assert after == before
        # Row 0 repeats its reference, row 1 shares no word with its own.
        assert before[0] > 0.0 and before[1] == 0.0
    assert BLEUReward()(prompts, completions, references)[0] == pytest.approx(1.0)


def test_builtin_rewards_are_named_for_trl_logs() -> None:
    # TRL logs rewards/<__name__>/mean; ours use their registry names.
    assert make_reward("lexicon-sentiment").__name__ == "lexicon-sentiment"
    assert CIDErDReward().__name__ == "cider-d"
    assert LexiconSentimentReward.__name__ == "LexiconSentimentReward"


# -- our rewards inside TRL's GRPOTrainer ----------------------------------------------------


def test_builtin_rewards_train_in_trl_grpo_without_an_adapter(tmp_path) -> None:
    pytest.importorskip("trl")
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    task = gym.make(TINY).unwrapped.task
    samples = task.samples[:4]
    # Extra columns (label, references) reach every reward as keywords, as TRL passes them.
    dataset = Dataset.from_dict(
        {
            "prompt": [s.prompt for s in samples],
            "label": [s.label for s in samples],
            "references": [list(s.references) for s in samples],
        }
    )
    config = GRPOConfig(
        output_dir=str(tmp_path),
        per_device_train_batch_size=4,
        num_generations=2,
        max_completion_length=8,
        max_steps=1,
        logging_steps=1,
        learning_rate=1e-5,
        report_to="none",
        use_cpu=True,
        bf16=False,
        save_strategy="no",
        disable_tqdm=True,
        seed=0,
    )
    trainer = GRPOTrainer(
        model=AutoModelForCausalLM.from_pretrained(ASSET_DIR),
        reward_funcs=[make_reward("lexicon-sentiment"), make_reward("cider-d")],
        args=config,
        train_dataset=dataset,
        processing_class=AutoTokenizer.from_pretrained(ASSET_DIR),
    )
    trainer.train()
    assert trainer.state.global_step == 1
    logged = trainer.state.log_history[0]
    assert 0.0 <= logged["rewards/lexicon-sentiment/mean"] <= 1.0
    assert logged["rewards/cider-d/mean"] >= 0.0
    assert math.isfinite(logged["reward"])
