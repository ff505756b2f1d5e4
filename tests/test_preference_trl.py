"""Preferences to and from TRL's prompt / chosen / rejected datasets: an exact round trip,
ties left out with a count, datasets written for TRL tokenized with the env's tokenizer, and
TRL's own DPOTrainer and RewardTrainer preparing and training on an exported set."""

from __future__ import annotations

import dataclasses
import json
import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch

from lfi_gym.agents.lm_policy import LMPolicy
from lfi_gym.agents.preference_exchange import HF_METADATA_KEY, ID_COLUMNS
from lfi_gym.agents.preferences import Preferences, PreferencesError, tokenizer_digest
from lfi_gym.agents.teachers import SimulatedTeacher

datasets = pytest.importorskip("datasets")

ENV_ID = "TextGen-TinyReviews-v0"


@pytest.fixture(scope="module")
def env() -> gym.Env:
    return gym.make(ENV_ID)


@pytest.fixture(scope="module")
def collected(env) -> Preferences:
    """Twelve pairs sampled from the shipped LM, labelled by B-Pref's stochastic teacher."""
    policy = LMPolicy.from_pretrained("lfi-gym/tinyreviews-lm", env=env, device="cpu")
    torch.manual_seed(0)
    teacher = SimulatedTeacher.preset("stoc", seed=0)
    return Preferences.collect(env, policy, 12, teacher, seed=0, batch_size=6)


def assert_same(first: Preferences, second: Preferences) -> None:
    for field in dataclasses.fields(Preferences):
        mine, theirs = getattr(first, field.name), getattr(second, field.name)
        if field.name in ("prompt_ids", "completion_ids_a", "completion_ids_b"):
            assert all(np.array_equal(x, y) for x, y in zip(mine, theirs, strict=True))
        elif field.name == "labels":
            np.testing.assert_array_equal(mine, theirs)
        else:
            assert mine == theirs, field.name


def test_export_then_import_gives_back_an_equal_set(env, collected, tmp_path):
    assert set(collected.labels.tolist()) == {0.0, 1.0}  # both orders occur
    dataset = collected.to_trl()
    assert dataset.column_names[:3] == ["prompt", "chosen", "rejected"]
    for i, row in enumerate(dataset):
        a_chosen = collected.labels[i] == 1.0
        assert row["prompt"] == collected.prompts[i]
        assert (
            row["chosen"] == (collected.completions_a if a_chosen else collected.completions_b)[i]
        )
        assert row["chosen_is_a"] == a_chosen
        assert row["chosen"].startswith(" ")  # TRL's explicit-prompt convention
    assert_same(Preferences.from_trl(dataset, env), collected)
    # Hugging Face's own files keep the metadata.
    dataset.save_to_disk(str(tmp_path / "prefs"))
    assert_same(
        Preferences.from_trl(datasets.load_from_disk(str(tmp_path / "prefs")), env), collected
    )


def test_ties_are_left_out_with_their_count(env, collected):
    labels = collected.labels.copy()
    labels[[0, 3, 4]] = 0.5
    with_ties = dataclasses.replace(collected, labels=labels)
    with pytest.warns(UserWarning, match="3 of 12 pairs are ties .* the dataset has the other 9"):
        dataset = with_ties.to_trl()
    assert len(dataset) == 9
    assert json.loads(dataset.info.description)[HF_METADATA_KEY]["ties_left_out"] == 3
    back = Preferences.from_trl(dataset, env)
    assert_same(back, collected.select([1, 2, 5, 6, 7, 8, 9, 10, 11]))
    all_ties = dataclasses.replace(collected, labels=np.full(12, 0.5))
    with pytest.raises(PreferencesError, match="all 12 pairs are ties"):
        all_ties.to_trl()


def test_a_dataset_written_for_trl_is_tokenized_with_the_env_tokenizer(env):
    task = env.unwrapped.task
    eos = task.eos_token_id
    long_text = " great" * task.max_new_tokens  # exactly the horizon: ended by length
    dataset = datasets.Dataset.from_dict(
        {
            "prompt": ["The film was", "Overall, the plot is"],
            "chosen": [" a great film.", long_text],
            "rejected": [" dull." + task.tokenizer.eos_token, " bad."],
        }
    )
    prefs = Preferences.from_trl(dataset, env)
    assert prefs.env_id == ENV_ID
    assert prefs.tokenizer_digest == tokenizer_digest(task.tokenizer)
    assert prefs.labels.tolist() == [1.0, 1.0]  # a = chosen
    assert prefs.teacher == {"source": "TRL dataset"}
    assert prefs.completions_b[0] == " dull."  # the EOS text is a token, not text
    np.testing.assert_array_equal(prefs.prompt_ids[0], task.encode("The film was"))
    np.testing.assert_array_equal(
        prefs.completion_ids_a[0], [*task.encode(" a great film.", special=False), eos]
    )
    np.testing.assert_array_equal(
        prefs.completion_ids_b[0], [*task.encode(" dull.", special=False), eos]
    )
    assert len(prefs.completion_ids_a[1]) == task.max_new_tokens
    assert prefs.completion_ids_a[1][-1] != eos
    teacher = SimulatedTeacher(seed=1)
    assert Preferences.from_trl(dataset, env, teacher=teacher).teacher == teacher.settings()


def test_a_set_from_another_tokenizer_is_tokenized_again(env, collected):
    """Stored ids are used only under the same tokenizer; otherwise the texts are."""
    task = env.unwrapped.task
    dataset = dataclasses.replace(collected, tokenizer_digest="0" * 64).to_trl()
    again = Preferences.from_trl(dataset, env)
    assert again.tokenizer_digest == tokenizer_digest(task.tokenizer)
    assert again.prompts == collected.prompts
    texts_only = dataset.remove_columns([*ID_COLUMNS, "chosen_is_a"])
    plain = Preferences.from_trl(texts_only, env)
    checked = 0
    for i in range(len(collected)):
        for text, ids, tokenized in (
            (collected.completions_a[i], collected.completion_ids_a[i], again.completion_ids_a[i]),
            (collected.completions_b[i], collected.completion_ids_b[i], again.completion_ids_b[i]),
        ):
            content = ids[:-1] if ids[-1] == task.eos_token_id else ids
            if not np.array_equal(task.encode(text, special=False), content):
                continue  # sampled tokens that are not the text's usual tokenization
            checked += 1
            np.testing.assert_array_equal(tokenized, ids)
    assert checked >= 0.8 * 2 * len(collected)
    assert plain.labels.tolist() == [1.0] * len(collected)


@pytest.mark.parametrize(
    ("columns", "error", "message"),
    [
        (
            {"chosen": ["The film was great."], "rejected": ["The film was bad."]},
            PreferencesError,
            "implicit prompt",
        ),
        ({"prompt": ["x"], "chosen": [" y"]}, PreferencesError, "lacks rejected"),
        (
            {
                "prompt": [[{"role": "user", "content": "x"}]],
                "chosen": [[{"role": "assistant", "content": "y"}]],
                "rejected": [[{"role": "assistant", "content": "z"}]],
            },
            PreferencesError,
            "conversational",
        ),
        (
            {"prompt": ["The film was"], "chosen": [" great" * 40], "rejected": [" bad."]},
            PreferencesError,
            r"row 0: 'chosen' has 40 tokens, more than .*max_new_tokens=32",
        ),
        (
            {"prompt": [" film" * 40], "chosen": [" great"], "rejected": [" bad."]},
            PreferencesError,
            "the prompt has 40 tokens, more than .*prompt_length=32",
        ),
    ],
)
def test_datasets_that_are_not_text_preferences_of_this_env_are_refused(
    env, columns, error, message
):
    with pytest.raises(error, match=message):
        Preferences.from_trl(datasets.Dataset.from_dict(columns), env)


def test_a_dataset_dict_is_refused_naming_its_splits(env):
    split = datasets.Dataset.from_dict({"prompt": ["a"], "chosen": [" b"], "rejected": [" c"]})
    with pytest.raises(TypeError, match=r"splits \['train'\]; pass one split"):
        Preferences.from_trl(datasets.DatasetDict({"train": split}), env)


def _trl_config(config_class, tmp_path, **kwargs):
    return config_class(
        output_dir=str(tmp_path),
        per_device_train_batch_size=4,
        max_steps=1,
        learning_rate=1e-5,
        logging_steps=1,
        report_to="none",
        use_cpu=True,
        bf16=False,
        save_strategy="no",
        disable_tqdm=True,
        seed=0,
        **kwargs,
    )


def test_trl_prepares_and_trains_on_an_exported_set(collected, tmp_path):
    """TRL's DPOTrainer and RewardTrainer take the exported dataset as TRL users pass theirs;
    their own tokenization gives our token ids (TRL appends EOS to every completion)."""
    pytest.importorskip("trl")
    from transformers import (
        AutoModelForCausalLM,
        AutoModelForSequenceClassification,
        AutoTokenizer,
    )
    from trl import DPOConfig, DPOTrainer, RewardConfig, RewardTrainer

    from lfi_gym.envs.text.tinyreviews import ASSET_DIR

    dataset = collected.to_trl()
    eos = AutoTokenizer.from_pretrained(ASSET_DIR).eos_token_id

    def with_eos(ids: list[int]) -> list[int]:
        return ids if ids[-1] == eos else [*ids, eos]

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # transformers' renames, not ours
        dpo = DPOTrainer(
            model=AutoModelForCausalLM.from_pretrained(ASSET_DIR),
            args=_trl_config(DPOConfig, tmp_path / "dpo"),
            train_dataset=dataset,
            processing_class=AutoTokenizer.from_pretrained(ASSET_DIR),
        )
        prepared = dpo.train_dataset
        matches = sum(
            prepared[i]["prompt_ids"] == dataset[i]["prompt_token_ids"]
            and prepared[i]["chosen_ids"] == with_eos(dataset[i]["chosen_token_ids"])
            and prepared[i]["rejected_ids"] == with_eos(dataset[i]["rejected_token_ids"])
            for i in range(len(dataset))
        )
        assert matches >= 0.8 * len(dataset)
        dpo.train()
        assert dpo.state.global_step == 1
        logged = dpo.state.log_history[0]
        assert logged["loss"] == pytest.approx(np.log(2), abs=1e-4)  # policy = reference

        model = AutoModelForSequenceClassification.from_pretrained(ASSET_DIR, num_labels=1)
        model.config.pad_token_id = eos
        rewards = RewardTrainer(
            model=model,
            args=_trl_config(RewardConfig, tmp_path / "rm"),
            train_dataset=dataset,
            processing_class=AutoTokenizer.from_pretrained(ASSET_DIR),
        )
        # Our id columns are not TRL's chosen_ids: RewardTrainer tokenized prompt + chosen.
        prepared = rewards.train_dataset
        matches = sum(
            prepared[i]["chosen_ids"]
            == dataset[i]["prompt_token_ids"] + with_eos(dataset[i]["chosen_token_ids"])
            for i in range(len(dataset))
        )
        assert matches >= 0.8 * len(dataset)
        rewards.train()
        assert rewards.state.global_step == 1
        assert np.isfinite(rewards.state.log_history[0]["loss"])
