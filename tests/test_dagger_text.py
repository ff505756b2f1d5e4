"""DAgger on a text env: the learner (an LMPolicy) rolls in on token observations."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import torch

from lfi_gym import agents, envs

TEXT = "TextGen-TinyReviews-v0"


def test_dagger_labels_and_trains_the_lm_on_tinyreviews() -> None:
    env = gym.make(TEXT)
    # beta_rounds=1: the expert acts in round 0 only, so rounds 1 and 2 roll in with the LM.
    dagger = agents.DAgger(
        env, envs.make_expert(env), steps_per_round=8, beta_rounds=1, n_epochs=1, seed=0
    )
    assert isinstance(dagger.policy, agents.LMPolicy)
    before = [p.detach().clone() for p in dagger.policy.parameters()]
    dagger.learn(24)
    assert dagger.expert_labels == 24 and dagger.round == 3
    observations = dagger.demonstrations.observations
    assert set(observations) == {"input_ids", "attention_mask"}
    assert observations["input_ids"].shape == (24, *env.observation_space["input_ids"].shape)
    after = list(dagger.policy.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(before, after, strict=True))
    obs, _ = env.reset(seed=1)
    action, _ = dagger.predict(obs, deterministic=True)
    assert env.action_space.contains(np.int64(action))
