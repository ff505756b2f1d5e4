"""Evaluation against the SFT policy: samples, KL to SFT, win rate with its judge."""

from __future__ import annotations

import copy

import gymnasium as gym
import numpy as np
import pytest
import torch

from lfi_gym.agents.alignment_eval import alignment_metrics, sample, sequence_kl, win_rate
from lfi_gym.agents.lm_policy import TINYREVIEWS_LM, LMPolicy

ENV_ID = "TextGen-TinyReviews-v0"


@pytest.fixture(scope="module")
def env() -> gym.Env:
    return gym.make(ENV_ID)


@pytest.fixture(scope="module")
def sft(env) -> LMPolicy:
    return LMPolicy.from_pretrained(TINYREVIEWS_LM, env=env)


@pytest.fixture(scope="module")
def shifted(sft) -> LMPolicy:
    """The SFT policy with its output bias tilted: a different distribution."""
    other = copy.deepcopy(sft)
    with torch.no_grad():
        generator = torch.Generator().manual_seed(0)
        head = other.model.lm_head.weight
        head.add_(0.05 * torch.randn(head.shape, generator=generator))
    return other


def test_samples_match_the_env_and_the_same_seed_gives_the_same_prompts(env, sft):
    torch.manual_seed(0)
    first = sample(sft, env, 5, seed=3, num_envs=2)
    second = sample(sft, env, 5, seed=3, num_envs=4)
    assert first.prompts == second.prompts and len(first.prompts) == 5
    reference = gym.make(ENV_ID)
    obs, _ = reference.reset(seed=3 + 4)
    task = env.unwrapped.task
    p = task.prompt_length
    assert first.prompts[4] == task.decode_prompt(
        obs["input_ids"][:p][obs["attention_mask"][:p] == 1]
    )
    # the gold reward is the env's return for the same tokens from the same start
    replay = gym.make(ENV_ID)
    replay.reset(seed=3)
    total = 0.0
    for token in first.completion_ids[0]:
        _, reward, terminated, truncated, _ = replay.step(int(token))
        total += reward
    assert terminated or truncated
    assert first.gold[0] == pytest.approx(total)
    assert first.gold.shape == (5,) and np.all((first.gold >= 0) & (first.gold <= 1))


def test_sequence_kl_is_zero_against_itself_and_sums_per_token_log_ratios(env, sft, shifted):
    torch.manual_seed(0)
    samples = sample(shifted, env, 3, seed=0)
    assert np.allclose(sequence_kl(sft, sft, samples), 0.0)
    kl = sequence_kl(shifted, sft, samples)
    # by hand for the first sample: one step at a time with evaluate_actions
    obs = samples.observations
    p = env.unwrapped.task.prompt_length
    total = 0.0
    for t, token in enumerate(samples.completion_ids[0]):
        ids = obs["input_ids"][:1].copy()
        mask = obs["attention_mask"][:1].copy()
        mask[0, p + t :] = 0
        ids[0, p + t :] = 0
        step = {"input_ids": torch.as_tensor(ids), "attention_mask": torch.as_tensor(mask)}
        action = torch.tensor([int(token)])
        with torch.no_grad():
            log_p = shifted.evaluate_actions(step, action)[1]
            log_ref = sft.evaluate_actions(step, action)[1]
        total += float(log_p - log_ref)
    assert kl[0] == pytest.approx(total, abs=1e-4)
    assert kl[0] != pytest.approx(0.0)


def test_win_rate_counts_ties_as_half_and_takes_a_judge(env, sft):
    torch.manual_seed(0)
    a = sample(sft, env, 4, seed=0)
    torch.manual_seed(0)
    b = sample(sft, env, 4, seed=0)  # the same completions: every row a tie
    assert win_rate(a, b).tolist() == [0.5] * 4
    longer = win_rate(a, b, judge=lambda p, x, y: [1.0 if len(s) > 5 else 0.0 for s in x])
    assert longer.tolist() == [1.0 if len(s) > 5 else 0.0 for s in a.completions]
    with pytest.raises(ValueError, match=r"one of 0, 0\.5, 1 per prompt"):
        win_rate(a, b, judge=lambda p, x, y: [0.3] * 4)
    other = sample(sft, env, 4, seed=100)
    with pytest.raises(ValueError, match="different prompts"):
        win_rate(a, other)


def test_alignment_metrics_of_the_sft_policy_against_itself(env, sft):
    metrics = alignment_metrics(sft, sft, env, n=8, seed=0, reward_model=lambda **kw: [1.0] * 8)
    assert metrics["kl_to_sft"] == pytest.approx(0.0, abs=1e-6)
    assert metrics["proxy_reward"] == 1.0
    assert 0.0 <= metrics["win_rate"] <= 1.0
