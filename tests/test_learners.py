"""agents.learners: one learner per env whichever agent trains it, and clear refusals."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from stable_baselines3.common.policies import ActorCriticCnnPolicy, ActorCriticPolicy
from stable_baselines3.common.torch_layers import FlattenExtractor, NatureCNN

from lfi_gym import agents, envs
from lfi_gym.agents.learners import MinAtarCNN, auto_policy, features_network, make_learner
from lfi_gym.agents.lm_policy import LMPolicy
from lfi_gym.agents.plackett_luce import PlackettLucePolicy

CARTPOLE = "Control-CartPole-v0"
MINATAR = "MinAtarImitation-Breakout-v0"
TEXT = "TextGen-TinyReviews-v0"
RANKING = "Rank-Synthetic-v0"
SMALL_RANKING = {"n_queries": (20, 5, 5), "max_candidates": 8, "n_features": 4, "k_positions": 3}
ENV_KWARGS = {CARTPOLE: {}, MINATAR: {"horizon": 30}, TEXT: {}, RANKING: SMALL_RANKING}


def _architecture(policy) -> tuple:
    """The learner's class, its features extractor's class, its parameter shapes (an
    LMPolicy's value head aside: PPO adds one, BC does not need it) and, for an LMPolicy,
    what it takes from the env (where the prompt ends, the minimum length, EOS)."""
    shapes = {
        name: tuple(p.shape)
        for name, p in policy.state_dict().items()
        if not name.startswith("value_head.")
    }
    extractor = getattr(policy, "features_extractor", None)
    from_env = tuple(
        getattr(policy, name, None) for name in ("prompt_length", "min_new_tokens", "eos_token_id")
    )
    return type(policy), type(extractor), shapes, from_env


@pytest.mark.parametrize("env_id", [CARTPOLE, MINATAR, TEXT, RANKING])
def test_auto_gives_bc_dagger_ppo_and_dril_the_same_learner(env_id):
    env = gym.make(env_id, **ENV_KWARGS[env_id])
    learners = {
        "BC": agents.BC(env, policy="auto", seed=0, device="cpu").policy,
        "BC default": agents.BC(env, seed=0, device="cpu").policy,
        "DAgger": agents.DAgger(env, seed=0, device="cpu").policy,
        "PPO": agents.PPO(env, seed=0, device="cpu").policy,
    }
    expected_class = {
        CARTPOLE: ActorCriticPolicy,
        MINATAR: ActorCriticPolicy,
        TEXT: LMPolicy,
        RANKING: PlackettLucePolicy,
    }[env_id]
    if env_id in (CARTPOLE, MINATAR):
        demos = agents.Demonstrations.collect(env, envs.make_expert(env), n_steps=20, seed=0)
        dril = agents.DRIL(env, demos, ensemble_size=2, n_envs=1, seed=0, device="cpu")
        learners["DRIL"] = dril.policy
        # DRIL's ensemble members share the learner's feature network.
        member = dril.ensemble.trunks[0]
        assert isinstance(
            member if env_id == MINATAR else member[0], (MinAtarCNN, FlattenExtractor)
        )
        assert isinstance(member, MinAtarCNN) == (env_id == MINATAR)
    else:
        with pytest.raises(ValueError, match="use BC, DAgger or PPO"):
            agents.DRIL(env, None, seed=0, device="cpu")
    reference = _architecture(learners["BC"])
    assert reference[0] is expected_class
    for name, policy in learners.items():
        assert _architecture(policy) == reference, name
    if env_id == MINATAR:
        assert reference[1] is MinAtarCNN  # the DRIL benchmark's network, not a flat MLP


def test_auto_policy_decides_from_the_observation_space():
    assert auto_policy(gym.make(CARTPOLE).observation_space) == ("MlpPolicy", {})
    name, kwargs = auto_policy(gym.make(MINATAR).observation_space)
    assert (name, kwargs) == ("MlpPolicy", {"features_extractor_class": MinAtarCNN, "net_arch": []})
    frames = gym.spaces.Box(0, 255, (4, 84, 84), np.uint8)  # ALE's stacked frames
    assert auto_policy(frames) == ("CnnPolicy", {})
    assert auto_policy(gym.make(TEXT).observation_space) == ("LMPolicy", {})
    assert auto_policy(gym.make(RANKING, **SMALL_RANKING).observation_space)[0] == (
        "PlackettLucePolicy"
    )
    other = gym.spaces.Dict({"a": gym.spaces.Box(0, 1, (3,)), "b": gym.spaces.Discrete(2)})
    assert auto_policy(other) == ("MultiInputPolicy", {})


def test_auto_on_atari_frames_is_the_nature_cnn():
    frames = gym.spaces.Box(0, 255, (4, 84, 84), np.uint8)
    learner = make_learner("auto", frames, gym.spaces.Discrete(6))
    assert type(learner) is ActorCriticCnnPolicy
    assert isinstance(learner.features_extractor, NatureCNN)
    assert isinstance(features_network(frames)(), NatureCNN)
    flat = features_network(gym.make(CARTPOLE).observation_space)()
    assert isinstance(flat[0], FlattenExtractor)


def test_given_policy_kwargs_override_autos():
    space = gym.make(MINATAR).observation_space
    learner = make_learner("auto", space, gym.spaces.Discrete(3), {"net_arch": [8]})
    assert isinstance(learner.features_extractor, MinAtarCNN)
    assert learner.mlp_extractor.policy_net[0].out_features == 8


@pytest.mark.parametrize(
    "make",
    [
        lambda env, policy: agents.BC(env, policy=policy, device="cpu"),
        lambda env, policy: agents.DAgger(env, policy=policy, device="cpu"),
        lambda env, policy: agents.PPO(env, policy, device="cpu"),
        lambda env, policy: agents.PPOPlusPlus(env, policy, device="cpu"),
    ],
    ids=["BC", "DAgger", "PPO", "PPO++"],
)
def test_a_learner_named_for_another_kind_of_env_is_refused_at_construction(make):
    env = gym.make(CARTPOLE)
    with pytest.raises(ValueError, match=r"needs a text env .*Use policy='auto' \(here: 'Mlp"):
        make(env, "LMPolicy")
    with pytest.raises(ValueError, match=r"needs a ranking env .*Use policy='auto'"):
        make(env, "PlackettLucePolicy")
    with pytest.raises(ValueError, match="needs a text env"):
        make(gym.make(RANKING, **SMALL_RANKING), "LMPolicy")


@pytest.mark.parametrize(
    "make",
    [
        lambda env, policy: agents.BC(env, policy=policy, device="cpu"),
        lambda env, policy: agents.DAgger(env, envs.make_expert(env), policy=policy, device="cpu"),
        lambda env, policy: agents.PPO(env, policy, device="cpu"),
    ],
    ids=["BC", "DAgger", "PPO"],
)
@pytest.mark.parametrize("policy", ["MlpPolicy", "CnnPolicy"])
def test_an_sb3_box_policy_on_dict_observations_names_the_learner_to_use(make, policy):
    # SB3 builds these on a Dict space, then fails at the first forward pass with
    # "'dict' object has no attribute 'flatten'"; the name must be refused up front.
    cases = [
        (gym.make(RANKING, **SMALL_RANKING), "PlackettLucePolicy"),
        (gym.make(TEXT), "LMPolicy"),
    ]
    for env, learner in cases:
        expected = (
            rf"policy='{policy}' takes Box observations.*Use policy='auto' \(here: '{learner}'\)"
        )
        with pytest.raises(ValueError, match=expected):
            make(env, policy)


def test_pgrank_and_dril_refuse_learners_they_cannot_train():
    env = gym.make(CARTPOLE)
    with pytest.raises(
        ValueError, match=r"PGRank trains a PlackettLucePolicy on a ranking env.*BC"
    ):
        agents.PGRank(env, "auto")
    ranking = gym.make(RANKING, **SMALL_RANKING)
    assert isinstance(agents.PGRank(ranking, "auto").policy, PlackettLucePolicy)
    demos = agents.Demonstrations.collect(env, envs.make_expert(env), n_steps=20, seed=0)
    with pytest.raises(ValueError, match="policy must be 'auto', 'MlpPolicy' or 'CnnPolicy'"):
        agents.DRIL(env, demos, policy="LMPolicy")


def test_an_lm_learner_starts_from_the_lm_its_text_task_names(tmp_path):
    """Without ``name_or_path``, make_learner loads the task's ``policy_model``: the shipped
    LM on TinyReviews, and whatever folder a task names (here a saved copy whose weights
    differ)."""
    env = gym.make(TEXT)
    assert env.unwrapped.task.policy_model == "lfi-gym/tinyreviews-lm"
    shipped = make_learner("LMPolicy", env.observation_space, env.action_space, env=env)
    shipped_again = LMPolicy.from_pretrained("lfi-gym/tinyreviews-lm", env=env)
    first = next(shipped.model.parameters())
    assert torch.equal(first, next(shipped_again.model.parameters()))

    with torch.no_grad():
        next(shipped_again.model.parameters()).add_(1.0)
    shipped_again.save_pretrained(tmp_path / "lm")
    env.unwrapped.task.policy_model = str(tmp_path / "lm")
    other = make_learner("LMPolicy", env.observation_space, env.action_space, env=env)
    assert torch.equal(next(other.model.parameters()), first + 1.0)
