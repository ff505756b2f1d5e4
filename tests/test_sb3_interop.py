"""Any SB3 algorithm trained on Control-CartPole-v0 works as an expert or a learner in BC
and DAgger without glue code.

Experts are PPO, A2C, DQN and sb3-contrib's QR-DQN, each trained briefly (3000 steps,
seeded): good enough to act non-trivially (both actions, returns ~80-220), far from the
oracle's 500. Thresholds were chosen from measurements over seeds 0-4 with these
budgets (agreement 0.86-1.00, learner returns 500 everywhere) and leave margin.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from sb3_contrib import QRDQN
from stable_baselines3 import A2C, DQN, PPO

from lfi_gym import envs
from lfi_gym.agents import BC, DAgger, Demonstrations, episode_returns

torch.set_num_threads(1)

pytestmark = pytest.mark.slow

ENV_ID = "Control-CartPole-v0"
ALGORITHMS = ["PPO", "A2C", "DQN", "QRDQN"]
TRAIN_STEPS = 3000

# DQN's defaults learn nothing useful in a few thousand steps (the greedy policy is
# constant); these follow rl-baselines3-zoo's CartPole settings, scaled down.
_DQN_KWARGS = dict(
    learning_rate=2.3e-3,
    batch_size=64,
    learning_starts=500,
    train_freq=16,
    gradient_steps=8,
    target_update_interval=200,
    exploration_fraction=0.2,
    exploration_final_eps=0.04,
)


def make_model(name: str, seed: int = 0):
    env = gym.make(ENV_ID)
    if name == "PPO":
        return PPO(
            "MlpPolicy", env, n_steps=512, batch_size=64, n_epochs=4, seed=seed, device="cpu"
        )
    if name == "A2C":
        return A2C("MlpPolicy", env, seed=seed, device="cpu")
    if name == "DQN":
        return DQN("MlpPolicy", env, seed=seed, device="cpu", **_DQN_KWARGS)
    if name == "QRDQN":
        return QRDQN(
            "MlpPolicy",
            env,
            seed=seed,
            device="cpu",
            policy_kwargs={"n_quantiles": 25},
            **_DQN_KWARGS,
        )
    raise AssertionError(name)


@pytest.fixture(scope="module")
def trained():
    """``trained(name)``: the briefly trained model of that algorithm (trained once)."""
    cache: dict[str, object] = {}

    def get(name: str):
        if name not in cache:
            cache[name] = make_model(name).learn(TRAIN_STEPS)
        return cache[name]

    return get


@pytest.fixture
def trained_copy(trained, tmp_path):
    """An independent copy of a trained model (save + load), to train in place."""

    def get(name: str):
        model = trained(name)
        path = tmp_path / f"{name}.zip"
        model.save(path)
        return type(model).load(path, env=gym.make(ENV_ID), device="cpu")

    return get


@pytest.fixture(scope="module")
def oracle_demos():
    env = gym.make(ENV_ID)
    return Demonstrations.collect(env, envs.make_expert(env), n_episodes=4, seed=0)


def _params(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _same_params(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# -- (a) SB3 models as experts -----------------------------------------------------------


@pytest.mark.parametrize("name", ALGORITHMS)
def test_sb3_model_as_collect_expert(trained, name):
    expert = trained(name)
    env = gym.make(ENV_ID)
    demos = Demonstrations.collect(env, expert, n_episodes=3, seed=7)
    assert demos.n_episodes == 3
    assert demos.env_id == ENV_ID and demos.action_space == env.action_space
    labels, _ = expert.predict(demos.observations, deterministic=True)
    np.testing.assert_array_equal(demos.actions, labels)
    assert 0.1 < demos.actions.mean() < 0.9, "the expert should use both actions"
    # Collection follows the expert: its first episode is the one episode_returns sees.
    first_return = episode_returns(expert, env, n_episodes=1, seed=7)[0]
    assert demos.episode_returns()[0] == first_return


@pytest.mark.parametrize("name", ALGORITHMS)
def test_sb3_model_as_dagger_expert(trained, name):
    expert = trained(name)
    before = _params(expert.policy)
    env = gym.make(ENV_ID)
    dagger = DAgger(env, expert, steps_per_round=250, n_epochs=4, seed=0, device="cpu")
    dagger.learn(2500)
    assert dagger.expert_labels == 2500
    assert dagger.round == 10
    # Every label is the expert's deterministic action at the visited state.
    data = dagger.demonstrations
    labels, _ = expert.predict(np.asarray(data.observations), deterministic=True)
    np.testing.assert_array_equal(data.actions, labels)
    assert _same_params(before, _params(expert.policy)), "DAgger changed its expert"

    # Held-out states: the expert's own rollouts from other start states.
    held_out = Demonstrations.collect(gym.make(ENV_ID), expert, n_steps=1000, seed=10_000)
    expert_actions, _ = expert.predict(held_out.observations, deterministic=True)
    assert 0.2 < expert_actions.mean() < 0.8, "agreement would be trivial"
    learner_actions, _ = dagger.predict(held_out.observations, deterministic=True)
    agreement = np.mean(learner_actions == expert_actions)
    assert agreement >= 0.8, f"DAgger learner agrees with the {name} expert on {agreement:.1%}"


# -- (b) SB3 models as learners -----------------------------------------------------------


@pytest.mark.parametrize("name", ALGORITHMS)
def test_sb3_model_as_bc_learner(trained_copy, oracle_demos, name):
    model = trained_copy(name)
    env = gym.make(ENV_ID)
    before = episode_returns(model, env, n_episodes=5, seed=100).mean()
    assert before < 400, "the briefly trained model should not already be good"
    params = _params(model.policy)
    bc = BC(env, oracle_demos, policy=model, learning_rate=3e-3, seed=0, device="cpu")
    assert bc.policy is model.policy, "the SB3 model is trained in place, not copied"
    bc.learn(40_000)
    assert not _same_params(params, _params(model.policy))
    returns = episode_returns(model, env, n_episodes=5, seed=100)  # the SB3 model itself
    assert returns.mean() >= 400, f"{name} trained by BC returns {returns}"


@pytest.mark.parametrize("name", ALGORITHMS)
def test_sb3_model_as_dagger_learner(trained_copy, name):
    model = trained_copy(name)
    env = gym.make(ENV_ID)
    dagger = DAgger(
        env,
        envs.make_expert(env),
        policy=model,
        steps_per_round=250,
        n_epochs=4,
        seed=0,
        device="cpu",
    )
    assert dagger.policy is model.policy
    dagger.learn(2500)
    returns = episode_returns(model, env, n_episodes=5, seed=100)
    assert returns.mean() >= 400, f"{name} trained by DAgger returns {returns}"


def test_fresh_sb3_model_as_bc_learner(oracle_demos):
    model = make_model("DQN", seed=1)  # never trained by RL
    env = gym.make(ENV_ID)
    BC(env, oracle_demos, policy=model, learning_rate=3e-3, seed=0, device="cpu").learn(40_000)
    assert episode_returns(model, env, n_episodes=5, seed=100).mean() >= 400


# -- warm start -------------------------------------------------------------------------------


def test_bc_mlp_policy_warm_starts_ppo(oracle_demos):
    env = gym.make(ENV_ID)
    bc = BC(env, oracle_demos, seed=0, device="cpu").learn(20_000)
    assert episode_returns(bc, env, n_episodes=3, seed=100).mean() >= 400

    ppo = PPO("MlpPolicy", env, n_steps=256, batch_size=64, n_epochs=1, seed=1, device="cpu")
    assert ppo.policy.state_dict().keys() == bc.policy.state_dict().keys()
    ppo.policy.load_state_dict(bc.policy.state_dict())  # strict: same architecture

    held_out = Demonstrations.collect(env, envs.make_expert(env), n_steps=500, seed=321)
    bc_actions, _ = bc.predict(held_out.observations, deterministic=True)
    ppo_actions, _ = ppo.predict(held_out.observations, deterministic=True)
    np.testing.assert_array_equal(ppo_actions, bc_actions)
    assert episode_returns(ppo, env, n_episodes=3, seed=100).mean() >= 400
    # PPO keeps training from the warm start.
    ppo.learn(256)
    assert ppo.num_timesteps == 256
