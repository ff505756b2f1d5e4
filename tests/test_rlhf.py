"""The RLHF agent: reward model from preferences, RL on it with a KL penalty to the SFT
policy, online collection within the teacher's budget, and the token and query counts."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from lfi_gym.agents import LMPolicy, Preferences, SimulatedTeacher
from lfi_gym.agents.guided import PPOPlusPlus
from lfi_gym.agents.lm_policy import TINYREVIEWS_LM
from lfi_gym.agents.rlhf import RLHF

ENV_ID = "TextGen-TinyReviews-v0"
SMALL = {"n_envs": 4, "n_steps": 64, "batch_size": 32, "n_epochs": 1, "learning_rate": 1e-3}
FAST_RM = {"rm_epochs": 1, "center_samples": 8}


@pytest.fixture(scope="module")
def env() -> gym.Env:
    return gym.make(ENV_ID)


@pytest.fixture(scope="module")
def sft(env) -> LMPolicy:
    return LMPolicy.from_pretrained(TINYREVIEWS_LM, env=env)


@pytest.fixture(scope="module")
def preferences(env, sft) -> Preferences:
    torch.manual_seed(0)
    return Preferences.collect(env, sft, 24, SimulatedTeacher(seed=0), seed=0, batch_size=8)


def _params(module: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in module.model.parameters()])


def test_offline_rlhf_fits_centres_and_trains_on_the_reward_model(env, sft, preferences):
    before = _params(sft).clone()
    agent = RLHF(env, sft, preferences=preferences, rl_kwargs=SMALL, seed=0, **FAST_RM)
    assert agent.rl_agent.kl_controller.coef == 0.05
    # the RL step's reference, start and (for guided steps) guide are the SFT policy
    assert torch.equal(_params(agent.rl_agent.reference), before)
    assert torch.equal(_params(agent.policy), before)
    # the RL step's env scores with the reward model; the user's env keeps the gold reward
    assert agent.rl_env.unwrapped.task.reward_fn is agent.reward_model
    assert env.unwrapped.task.reward_fn is not agent.reward_model
    agent.learn(128)
    assert agent.reward_model.epochs_done == 1
    assert agent.reward_model.offset != 0.0  # centred on the SFT's samples
    assert agent.num_timesteps == agent.rl_agent.num_timesteps >= 128
    assert agent.budgets() == {
        "expert_labels": 0,
        "env_steps": agent.num_timesteps,
        "reward_queries": 0,
        "preference_queries": 24,
    }
    assert not torch.equal(_params(agent.policy), before)
    assert torch.equal(_params(sft), before)  # the user's SFT policy is never trained
    assert torch.equal(_params(agent.sft), before)


def test_online_rlhf_spends_the_teachers_budget_exactly_and_counts_its_tokens(env, sft):
    torch.manual_seed(1)
    teacher = SimulatedTeacher(max_queries=40, seed=0)
    agent = RLHF(
        env,
        sft,
        teacher=teacher,
        initial_pairs=16,
        pairs_per_refit=16,
        refit_every=1,
        rl_kwargs=SMALL,
        seed=0,
        **FAST_RM,
    )
    # the sampled pairs' tokens count: about 800 per 16 pairs, so RL runs a few iterations
    agent.learn(3000)
    # 16 before RL, 16 after the first iteration, the last 8 after the second; then none
    assert teacher.queries_used == 40
    assert agent.preference_queries == 40 == len(agent.preferences)
    assert agent.reward_model.epochs_done == 3
    assert agent.collection_tokens > 0
    assert agent.rl_agent.iteration >= 3
    assert agent.num_timesteps == agent.rl_agent.num_timesteps + agent.collection_tokens
    labels = agent.preferences.labels
    assert set(np.unique(labels)) <= {0.0, 0.5, 1.0}


def test_a_guided_rl_step_is_guided_by_the_sft_policy(env, sft, preferences):
    agent = RLHF(env, sft, preferences=preferences, rl="ppo++", rl_kwargs=SMALL, **FAST_RM)
    assert isinstance(agent.rl_agent, PPOPlusPlus)
    assert agent.rl_agent.guide is agent.sft
    agent.learn(64)
    assert torch.equal(_params(agent.sft), _params(sft))


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({}, ValueError, "either preferences= .* or teacher="),
        ({"teacher": "x", "preferences": "y"}, ValueError, "not both"),
        ({"teacher": object()}, TypeError, "teacher must answer label"),
        ({"preferences": [1, 2]}, TypeError, "must be a Preferences set"),
        ({"teacher": SimulatedTeacher(), "rl": "dqn"}, ValueError, "rl must be one of"),
        ({"teacher": SimulatedTeacher(), "kl_coef": -1.0}, ValueError, "kl_coef"),
        (
            {"teacher": SimulatedTeacher(), "rl_kwargs": {"kl_coef": 0.1}},
            ValueError,
            "not in rl_kwargs",
        ),
    ],
)
def test_bad_settings_fail_at_construction(env, sft, kwargs, error, message):
    with pytest.raises(error, match=message):
        RLHF(env, sft, **kwargs)


def test_preferences_of_another_env_are_refused(sft, preferences):
    from lfi_gym.agents import PreferencesError

    with pytest.raises(PreferencesError, match="come from TextGen-TinyReviews-v0"):
        RLHF(gym.make("TextGen-TinyConcepts-v0"), preferences=preferences)
