"""Bradley-Terry reward models: the loss, learning a toy preference, scoring at the last
real token, the env reward contract, centring, save / load / resume and bad input."""

from __future__ import annotations

import dataclasses
import json
import math

import gymnasium as gym
import numpy as np
import pytest
import torch
from scipy.stats import binom

from lfi_gym.agents import RewardModel
from lfi_gym.agents.lm_policy import TINYREVIEWS_LM, LMPolicy
from lfi_gym.agents.preferences import Preferences, PreferencesError, tokenizer_digest
from lfi_gym.agents.reward_model import (
    SETTINGS_FILE,
    RewardModelError,
    bradley_terry_loss,
)

ENV_ID = "TextGen-TinyReviews-v0"


@pytest.fixture(scope="module")
def env() -> gym.Env:
    return gym.make(ENV_ID)


@pytest.fixture(scope="module")
def policy(env) -> LMPolicy:
    return LMPolicy.from_pretrained(TINYREVIEWS_LM, env=env, device="cpu")


def _toy(env, n: int, seed: int, shuffle_labels: bool = False) -> Preferences:
    """Pairs of completions of TinyReviews prompts that differ in one word: the preferred
    one says "great" where the other says "awful" (a first in a random half of the rows),
    each ending with EOS as an episode that stopped there."""
    task = env.unwrapped.task
    rng = np.random.default_rng(seed)
    prompts, texts_a, texts_b, labels = [], [], [], []
    for index in rng.choice(len(task.samples), n, replace=False):
        sample = task.samples[index]
        words = sample.references[0].split()[:6]
        cut = int(rng.integers(0, len(words) + 1))
        good = " ".join([*words[:cut], "great", *words[cut:]])
        bad = " ".join([*words[:cut], "awful", *words[cut:]])
        a_is_good = bool(rng.random() < 0.5)
        prompts.append(sample.prompt)
        texts_a.append(good if a_is_good else bad)
        texts_b.append(bad if a_is_good else good)
        labels.append(1.0 if a_is_good else 0.0)
    labels = rng.permutation(labels) if shuffle_labels else np.array(labels)
    eos = [task.eos_token_id]
    return Preferences(
        env_id=ENV_ID,
        tokenizer_digest=tokenizer_digest(task.tokenizer),
        prompts=prompts,
        completions_a=texts_a,
        completions_b=texts_b,
        prompt_ids=[task.encode(p) for p in prompts],
        completion_ids_a=[np.concatenate([task.continuation_ids(t), eos]) for t in texts_a],
        completion_ids_b=[np.concatenate([task.continuation_ids(t), eos]) for t in texts_b],
        labels=labels,
        teacher={"name": "great-over-awful"},
    )


def _parameters(rm: RewardModel) -> list[torch.Tensor]:
    return [p.detach().clone() for p in rm.parameters()]


# -- the loss ---------------------------------------------------------------------------------


def test_bradley_terry_loss_and_gradients_match_a_hand_computation():
    e = math.e
    ra = torch.tensor([1.0, 1.0, 1.0], dtype=torch.float64, requires_grad=True)
    rb = torch.tensor([0.0, 0.0, 0.0], dtype=torch.float64, requires_grad=True)
    loss = bradley_terry_loss(ra, rb, [1.0, 0.5, 0.0])
    loss.backward()
    # y = 1: log(1 + e^-1); y = 0: log(1 + e); y = 0.5: the mean of the two.
    per_pair = [math.log1p(1 / e), (math.log1p(1 / e) + math.log1p(e)) / 2, math.log1p(e)]
    assert float(loss.detach()) == pytest.approx(sum(per_pair) / 3, abs=1e-12)
    # d loss_i / d ra_i = sigma(ra - rb) - y: -1 / (1 + e), e / (1 + e) - 0.5, e / (1 + e).
    sigma = e / (1 + e)
    expected = torch.tensor([-1 / (1 + e), sigma - 0.5, sigma], dtype=torch.float64) / 3
    torch.testing.assert_close(ra.grad, expected, rtol=0, atol=1e-12)
    torch.testing.assert_close(rb.grad, -expected, rtol=0, atol=1e-12)


def test_a_tie_pulls_the_rewards_together_and_large_margins_stay_finite():
    ra = torch.tensor([2.0, -3.0], requires_grad=True)
    rb = torch.tensor([2.0, 1.0], requires_grad=True)
    bradley_terry_loss(ra, rb, [0.5, 0.5]).backward()
    assert ra.grad[0] == 0.0  # equal rewards: nothing to pull
    assert ra.grad[1] < 0 < rb.grad[1]  # descent raises ra and lowers rb towards each other
    big = torch.tensor([1000.0])
    assert float(bradley_terry_loss(big, torch.zeros(1), [1.0])) == 0.0
    assert float(bradley_terry_loss(big, torch.zeros(1), [0.0])) == pytest.approx(1000.0)


@pytest.mark.parametrize(
    ("ra", "rb", "labels", "message"),
    [
        ([1.0, 2.0], [1.0], [1.0], "of one shape"),
        ([1.0], [0.0], [1.5], r"each must be in \[0, 1\]"),
        ([1.0], [0.0], [1.0, 0.0], "2 labels for 1 pairs"),
        ([], [], [], "at least one pair"),
    ],
)
def test_bradley_terry_loss_refuses_bad_input(ra, rb, labels, message):
    with pytest.raises(ValueError, match=message):
        bradley_terry_loss(torch.tensor(ra), torch.tensor(rb), labels)


# -- learning -----------------------------------------------------------------------------------


def test_learns_a_separable_preference_and_not_shuffled_labels(env, policy):
    # 128 training pairs, 200 held out; 3 epochs at the defaults' rate and batch size.
    train, held = _toy(env, 128, seed=0), _toy(env, 200, seed=1)
    rm = RewardModel.from_policy(policy, env, seed=0)
    assert rm.accuracy(held) < 0.5  # untrained, its random head happens to rank them wrong
    rm.fit(train, epochs=3, seed=0, held_out=held)
    assert rm.accuracy(held) > 0.95
    assert rm.history[-1]["held_out_accuracy"] == rm.accuracy(held)
    assert rm.history[-1]["loss"] < rm.history[0]["loss"]
    # Control: the same pairs with their labels shuffled (train and held-out) carry no
    # signal, so held-out accuracy is Binomial(200, 0.5) / 200 whatever the model learns;
    # the test allows its central 99.9% interval, [0.385, 0.615].
    low, high = (k / 200 for k in binom.interval(0.999, 200, 0.5))
    noise_train = _toy(env, 128, seed=0, shuffle_labels=True)
    noise_held = _toy(env, 200, seed=1, shuffle_labels=True)
    control = RewardModel.from_policy(policy, env, seed=0)
    control.fit(noise_train, epochs=3, seed=0)
    assert low <= control.accuracy(noise_held) <= high


def test_an_ensemble_averages_its_members_and_reports_their_spread(env, policy):
    prefs = _toy(env, 16, seed=2)
    rm = RewardModel.from_policy(policy, env, n_models=2, seed=5, bootstrap=True)
    assert not np.array_equal(rm._member_rows(0, 16), rm._member_rows(1, 16))
    rm.fit(prefs, epochs=1)
    members = rm.member_rewards(prefs.prompt_ids, prefs.completion_ids_a)
    assert members.shape == (2, 16) and not np.allclose(members[0], members[1])
    rewards = rm(prompts=list(prefs.prompts), completion_ids=prefs.completion_ids_a)
    np.testing.assert_allclose(rewards, members.mean(0), atol=1e-12)
    spread = rm.disagreement(prompt_ids=prefs.prompt_ids, completion_ids=prefs.completion_ids_a)
    np.testing.assert_allclose(spread, np.abs(members[0] - members[1]) / 2, atol=1e-12)
    single = RewardModel.from_policy(policy, env)
    assert single.disagreement(prompt_ids=prefs.prompt_ids[:2], completion_ids=[[5], [6]]) == [0, 0]


def test_building_from_the_policy_leaves_the_global_torch_rng_alone(env, policy):
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    RewardModel.from_policy(policy, env, n_models=2)
    assert torch.equal(torch.rand(3), expected)


# -- scoring --------------------------------------------------------------------------------


def test_an_eos_terminated_completion_is_scored_at_its_eos(env, policy):
    task = env.unwrapped.task
    rm = RewardModel.from_policy(policy, env, seed=1)
    prompt = task.encode("the film was")
    ending = np.concatenate([task.continuation_ids("a great ride ."), [task.eos_token_id]])
    longer = task.continuation_ids("an awful mess from start to end , truly .")
    model = rm.models[0]
    with torch.inference_mode():
        full = torch.from_numpy(np.concatenate([prompt, ending]))[None]
        hidden = model.transformer(input_ids=full).last_hidden_state[0]
        at_eos, before_eos = model.score(hidden[-1]).item(), model.score(hidden[-2]).item()
    assert task.eos_token_id == task.pad_token_id  # why pooling by pad id would be wrong
    assert abs(at_eos - before_eos) > 1e-3
    # Batched with a longer row, so that this one is padded.
    scores = rm.member_rewards([prompt, prompt], [ending, longer])[0]
    assert scores[0] == pytest.approx(at_eos, abs=1e-5)


def test_the_env_pays_the_reward_models_scores(env, policy):
    rm = RewardModel.from_policy(policy, env, seed=1)
    task = env.unwrapped.task
    words = np.concatenate([task.continuation_ids("it was great ."), [task.eos_token_id]])
    single = gym.make(ENV_ID, reward=rm)
    obs, _ = single.reset(seed=3)
    prompt_ids = obs["input_ids"][obs["attention_mask"] == 1]
    for token in words:
        obs, reward, terminated, _, info = single.step(int(token))
    assert terminated and info["stop_reason"] == "eos"
    expected = rm.rewards([prompt_ids], [words])[0]
    assert reward == pytest.approx(expected, abs=1e-6)
    assert info["scores"] == {"reward-model": reward}
    vec = gym.make_vec(ENV_ID, num_envs=2, reward=rm)
    obs, _ = vec.reset(seed=[3, 4])
    prompts = [obs["input_ids"][r][obs["attention_mask"][r] == 1] for r in range(2)]
    for token in words:
        obs, rewards, terminated, _, _ = vec.step(np.array([token, token]))
    assert terminated.all()
    np.testing.assert_allclose(rewards, rm.rewards(prompts, [words, words]), atol=1e-6)


def test_centring_sets_the_mean_reward_over_given_outputs_to_zero(env, policy):
    prefs = _toy(env, 12, seed=3)
    rm = RewardModel.from_policy(policy, env, seed=1)
    before = np.array(rm(prompts=list(prefs.prompts), completion_ids=prefs.completion_ids_a))
    offset = rm.center(prompts=list(prefs.prompts), completion_ids=prefs.completion_ids_a)
    after = np.array(rm(prompts=list(prefs.prompts), completion_ids=prefs.completion_ids_a))
    assert offset == pytest.approx(before.mean()) and abs(before.mean()) > 1e-3
    assert abs(after.mean()) < 1e-9
    np.testing.assert_allclose(after, before - offset, atol=1e-12)  # a shift, nothing else


def test_center_on_centres_on_the_policys_own_episodes(env, policy, monkeypatch):
    rm = RewardModel.from_policy(policy, env, seed=1)
    task = env.unwrapped.task
    seen = {}
    center = rm.center

    def spy(**kwargs):
        seen.update(kwargs)
        return center(**kwargs)

    monkeypatch.setattr(rm, "center", spy)
    offset = rm.center_on(policy, env, n=6, seed=0, num_envs=4)
    prompts, completions = seen["prompt_ids"], seen["completion_ids"]
    assert len(prompts) == len(completions) == 6
    for ids in completions:  # whole episodes: ended at EOS or at the length limit
        assert 1 <= len(ids) <= task.max_new_tokens
        assert ids[-1] == task.eos_token_id or len(ids) == task.max_new_tokens
    first = gym.make(ENV_ID).reset(seed=0)[0]  # row 0 of the first wave is seeded 0
    np.testing.assert_array_equal(prompts[0], first["input_ids"][first["attention_mask"] == 1])
    assert rm.offset == offset
    assert abs(np.mean(rm.rewards(prompts, completions))) < 1e-9


# -- saving and loading ------------------------------------------------------------------------


def test_save_load_round_trip_and_exact_resume(env, policy, tmp_path):
    prefs, held = _toy(env, 24, seed=4), _toy(env, 8, seed=5)
    straight = RewardModel.from_policy(policy, env, n_models=2, seed=7, bootstrap=True)
    straight.fit(prefs, epochs=2, learning_rate=3e-4, batch_size=8, seed=1)

    first = RewardModel.from_policy(policy, env, n_models=2, seed=7, bootstrap=True)
    first.fit(prefs, epochs=1, learning_rate=3e-4, batch_size=8, seed=1, held_out=held)
    first.center(prompt_ids=held.prompt_ids, completion_ids=held.completion_ids_b)
    first.save_pretrained(tmp_path / "rm")
    loaded = RewardModel.from_pretrained(tmp_path / "rm", device="cpu")
    assert (loaded.n_models, loaded.env_id, loaded.offset) == (2, ENV_ID, first.offset)
    assert loaded.history == first.history and loaded.epochs_done == 1
    for a, b in zip(_parameters(first), _parameters(loaded), strict=True):
        assert torch.equal(a, b)
    call = {"prompts": list(held.prompts), "completion_ids": held.completion_ids_a}
    assert loaded(**call) == first(**call)

    loaded.fit(prefs, epochs=1, learning_rate=3e-4, batch_size=8)  # seed None: continue
    for a, b in zip(_parameters(straight), _parameters(loaded), strict=True):
        assert torch.equal(a, b)

    # TRL's convention: the folder is a transformers sequence classifier (the first member).
    from transformers import AutoModelForSequenceClassification

    plain = AutoModelForSequenceClassification.from_pretrained(tmp_path / "rm")
    assert plain.config.num_labels == 1
    for a, b in zip(
        first.models[0].state_dict().values(), plain.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b)


def test_loading_refuses_a_directory_that_is_not_ours(env, policy, tmp_path):
    policy.save_pretrained(tmp_path / "lm")
    with pytest.raises(RewardModelError, match="not a reward model saved by lfi-gym"):
        RewardModel.from_pretrained(tmp_path / "lm")
    with pytest.raises(RewardModelError, match="is a file"):
        RewardModel.from_pretrained(tmp_path / "lm" / "config.json")


def _saved(policy, env, path):
    RewardModel.from_policy(policy, env, n_models=2).save_pretrained(path)
    return path


@pytest.mark.parametrize(
    ("tamper", "message"),
    [
        (lambda p: (p / "model.safetensors").unlink(), "missing model.safetensors"),
        (lambda p: (p / "member-1" / "model.safetensors").unlink(), "missing member-1"),
        (
            lambda p: (p / "model.safetensors").write_bytes(
                (p / "model.safetensors").read_bytes() + b"\0" * (2 << 20)
            ),
            "exceed the cap",
        ),
        (lambda p: (p / "model.safetensors").write_bytes(b"\x80\x04pickle"), "not safetensors"),
        (lambda p: _edit_json(p / "config.json", model_type="evil"), "transformers' own model"),
        (lambda p: _edit_json(p / "config.json", num_labels=2), "num_labels=1"),
        (lambda p: _edit_json(p / SETTINGS_FILE, version=99), "format version 99"),
        (lambda p: _edit_json(p / SETTINGS_FILE, offset="x"), "setting 'offset'"),
        (lambda p: _edit_json(p / SETTINGS_FILE, tokenizer_digest="0" * 64), "digest differs"),
        (lambda p: (p / "reward_trainer.data").write_bytes(b"junk"), "malformed trainer state"),
    ],
)
def test_loading_refuses_tampered_files(env, policy, tmp_path, tamper, message):
    path = _saved(policy, env, tmp_path / "rm")
    tamper(path)
    with pytest.raises(RewardModelError, match=message):
        RewardModel.from_pretrained(path)


def _edit_json(file, **changes):
    data = json.loads(file.read_text())
    file.write_text(json.dumps({**data, **changes}))


def test_a_missing_hub_model_fails_at_once(monkeypatch):
    from lfi_gym.envs.text.hub import MissingAssetError

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(MissingAssetError, match=r"RewardModel.from_pretrained\('no-one/no-rm'\)"):
        RewardModel.from_pretrained("no-one/no-rm")


# -- bad input ----------------------------------------------------------------------------------


def test_fit_refuses_what_is_not_a_preference_set_of_its_env(env, policy):
    rm = RewardModel.from_policy(policy, env)
    prefs = _toy(env, 4, seed=6)
    with pytest.raises(RewardModelError, match="must be a Preferences set"):
        rm.fit([])
    with pytest.raises(PreferencesError, match="at least one labelled pair"):
        prefs.select([])  # an empty set cannot be built, so it never reaches fit
    other_env = dataclasses.replace(prefs, env_id="TextGen-TinyConcepts-v0")
    with pytest.raises(PreferencesError, match="come from TextGen-TinyConcepts-v0"):
        rm.fit(other_env)
    other_tokenizer = dataclasses.replace(prefs, tokenizer_digest="0" * 64)
    with pytest.raises(PreferencesError, match="another tokenizer"):
        rm.fit(other_tokenizer)
    with pytest.raises(PreferencesError, match="another tokenizer"):
        rm.fit(prefs, held_out=other_tokenizer)
    with pytest.raises(PreferencesError, match="labels must be 1"):
        dataclasses.replace(prefs, labels=[1.0, 0.0, 0.7, 1.0])
    with pytest.raises(ValueError, match="epochs"):
        rm.fit(prefs, epochs=0)
    only_ties = dataclasses.replace(prefs, labels=[0.5] * 4)
    with pytest.raises(RewardModelError, match="every pair is labelled equal"):
        rm.accuracy(only_ties)
    assert rm.epochs_done == 0  # nothing was trained by the refused calls


def test_an_env_with_another_tokenizer_refuses_the_reward_model(env, policy):
    rm = RewardModel.from_policy(policy, env)
    with pytest.raises(RewardModelError, match="another tokenizer than TextGen-TinyConcepts-v0"):
        gym.make("TextGen-TinyConcepts-v0", reward=rm)
    with pytest.raises(RewardModelError, match="another tokenizer"):
        rm.check_env(gym.make_vec("TextGen-TinyConcepts-v0", num_envs=2))
    with pytest.raises(RewardModelError, match="for text envs"):
        rm.check_env(gym.make("Control-CartPole-v0"))
    concepts = gym.make("TextGen-TinyConcepts-v0")
    with pytest.raises(RewardModelError, match="tokenizer differs"):
        RewardModel.from_policy(policy, concepts)


def test_reward_calls_refuse_malformed_rows(env, policy):
    rm = RewardModel.from_policy(policy, env)
    with pytest.raises(RewardModelError, match="pass completion_ids="):
        rm(prompts=["a"], completions=["b"])
    with pytest.raises(RewardModelError, match="1 prompts for 2 completions"):
        rm(prompts=["a"], completion_ids=[[5], [6]])
    with pytest.raises(RewardModelError, match="outside the reward model's vocabulary"):
        rm(prompts=["a"], completion_ids=[[99_999]])
    with pytest.raises(RewardModelError, match="more than the reward model's 128 positions"):
        rm(prompts=["a"], completion_ids=[[5] * 200])
    with pytest.raises(RewardModelError, match="list of str"):
        rm(prompts=[{"role": "user", "content": "a"}], completion_ids=[[5]])
    assert rm(prompts=[], completion_ids=[]) == []
