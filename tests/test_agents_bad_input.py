"""Bad input to agents, registries and the restart contract gives clear errors."""

from __future__ import annotations

import dataclasses
import pickle

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces

from lfi_gym import agents, envs
from lfi_gym.agents import BC, DAgger, Demonstrations

torch.set_num_threads(1)

ENV_ID = "Control-CartPole-v0"


class OtherActionsEnv(gym.Env):
    """CartPole's observations with three actions."""

    def __init__(self) -> None:
        self.observation_space = gym.make(ENV_ID).observation_space
        self.action_space = spaces.Discrete(3)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros(4, dtype=np.float32), {}

    def step(self, action):
        return np.zeros(4, dtype=np.float32), 0.0, True, False, {}


class ThreeActionExpert:
    def __init__(self) -> None:
        env = OtherActionsEnv()
        self.observation_space, self.action_space = env.observation_space, env.action_space

    def predict(self, observation, state=None, episode_start=None, deterministic=False):
        return np.int64(2), state


@pytest.fixture(scope="module")
def demos():
    env = gym.make(ENV_ID)
    return Demonstrations.collect(env, envs.make_expert(env), n_steps=200, seed=0)


def make(cls, env, demos, **kwargs):
    if cls is BC:
        return BC(env, demos, device="cpu", **kwargs)
    return DAgger(env, envs.make_expert(env), device="cpu", **kwargs)


# -- hyperparameters ---------------------------------------------------------------------


@pytest.mark.parametrize("cls", [BC, DAgger])
@pytest.mark.parametrize(
    "name, value",
    [
        ("learning_rate", 0),
        ("learning_rate", -1e-3),
        ("learning_rate", "fast"),
        ("learning_rate", float("nan")),
        ("learning_rate", float("inf")),
        ("batch_size", 0),
        ("batch_size", -8),
        ("batch_size", 2.5),
        ("batch_size", True),
        ("ent_coef", -0.1),
        ("l2_coef", -1.0),
        ("max_grad_norm", 0.0),
    ],
)
def test_bad_learner_hyperparameters(cls, env, demos, name, value):
    with pytest.raises(ValueError) as info:
        make(cls, env, demos, **{name: value})
    assert name in str(info.value)
    assert repr(value) in str(info.value)


@pytest.mark.parametrize(
    "name, value",
    [
        ("steps_per_round", 0),
        ("steps_per_round", -100),
        ("steps_per_round", 10.5),
        ("n_epochs", 0),
        ("n_epochs", -1),
        ("n_epochs", 1.5),
        ("beta_rounds", 0),
        ("beta_rounds", -3),
        ("beta_decay", -0.1),
        ("beta_decay", 1.1),
        ("beta_decay", "half"),
    ],
)
def test_bad_dagger_hyperparameters(env, name, value):
    with pytest.raises(ValueError) as info:
        DAgger(env, envs.make_expert(env), device="cpu", **{name: value})
    assert name in str(info.value)


@pytest.mark.parametrize("schedule", ["cosine", "Linear", 0.5, None])
def test_unknown_beta_schedule(env, schedule):
    with pytest.raises(ValueError) as info:
        DAgger(env, envs.make_expert(env), beta_schedule=schedule, device="cpu")
    message = str(info.value)
    assert "beta_schedule" in message and "'linear'" in message and "'exponential'" in message
    assert repr(schedule) in message


def test_beta_schedule_callable_out_of_range_is_refused(env):
    dagger = DAgger(env, envs.make_expert(env), beta_schedule=lambda i: 2.0, device="cpu")
    with pytest.raises(ValueError, match="beta"):
        dagger.learn(10)


def test_valid_schedules_are_accepted(env):
    # Guards the tests above: the same constructor with valid values works.
    linear = DAgger(env, envs.make_expert(env), beta_rounds=4, device="cpu")
    assert [linear.beta(i) for i in range(6)] == [1.0, 0.75, 0.5, 0.25, 0.0, 0.0]
    exponential = DAgger(
        env, envs.make_expert(env), beta_schedule="exponential", beta_decay=0.5, device="cpu"
    )
    assert [exponential.beta(i) for i in range(3)] == [1.0, 0.5, 0.25]


def test_bad_env_and_seed(demos):
    with pytest.raises(TypeError, match=r"gymnasium\.Env"):
        BC("Control-CartPole-v0", demos)
    with pytest.raises(TypeError, match="seed"):
        BC(gym.make(ENV_ID), demos, seed="0")
    with pytest.raises(ValueError, match="env"):
        BC(None, demos)


def test_unknown_policy_name(env, demos):
    with pytest.raises(ValueError, match="MlpPolicy"):
        BC(env, demos, policy="TransformerPolicy")


# -- learn ------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", [BC, DAgger])
@pytest.mark.parametrize("total", [0, -5, 1.5, "100", True, None])
def test_learn_bad_total_timesteps(cls, env, demos, total):
    agent = make(cls, env, demos)
    with pytest.raises(ValueError, match="total_timesteps"):
        agent.learn(total_timesteps=total)
    assert agent.num_timesteps == 0


def test_learn_accepts_numpy_int(env, demos):
    agent = BC(env, demos, device="cpu").learn(np.int64(64))
    assert agent.num_timesteps == 64


def test_bc_without_demonstrations(env):
    agent = BC(env, device="cpu")
    with pytest.raises(ValueError) as info:
        agent.learn(100)
    message = str(info.value)
    assert "no demonstrations" in message
    assert "Demonstrations.collect" in message and "Demonstrations.load" in message


def test_bc_with_empty_demonstrations(env, demos):
    empty = demos.select(np.zeros(0, dtype=np.int64))
    assert len(empty) == 0
    with pytest.raises(ValueError, match="empty"):
        BC(env, empty)
    with pytest.raises(ValueError, match="empty"):
        DAgger(env, envs.make_expert(env), demonstrations=empty)


def test_bc_with_non_demonstrations(env, demos):
    with pytest.raises(TypeError, match="Demonstrations"):
        BC(env, {"observations": demos.observations, "actions": demos.actions})


def test_bc_with_demonstrations_of_other_spaces(env, demos):
    other = dataclasses.replace(demos, action_space=spaces.Discrete(3))
    with pytest.raises(ValueError, match="action_space"):
        BC(env, other)


def test_dagger_without_expert(env):
    dagger = DAgger(env, device="cpu")
    with pytest.raises(ValueError, match="make_expert"):
        dagger.learn(10)


def test_expert_with_other_action_space(env):
    with pytest.raises(ValueError) as info:
        DAgger(env, ThreeActionExpert(), device="cpu")
    assert "expert's action_space" in str(info.value) and "Discrete(3)" in str(info.value)
    with pytest.raises(ValueError, match="action_space"):
        Demonstrations.collect(env, ThreeActionExpert(), n_steps=5)


def test_expert_that_is_not_a_policy(env):
    with pytest.raises(TypeError, match="expert must be a Policy"):
        DAgger(env, "LQR", device="cpu")


def test_learner_with_other_spaces(env):
    from stable_baselines3 import PPO

    other_model = PPO("MlpPolicy", OtherActionsEnv(), device="cpu")
    with pytest.raises(ValueError, match="action_space"):
        BC(env, policy=other_model, device="cpu")


# -- predict ------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", [BC, DAgger])
@pytest.mark.parametrize("shape", [(3,), (2, 5), (4, 4, 1)])
def test_predict_wrong_observation_shape(cls, env, demos, shape):
    agent = make(cls, env, demos)
    with pytest.raises(ValueError) as info:
        agent.predict(np.zeros(shape, dtype=np.float32))
    message = str(info.value)
    assert str(shape) in message and "(4,)" in message


@pytest.mark.parametrize("cls", [BC, DAgger])
def test_predict_right_shapes(cls, env, demos):
    agent = make(cls, env, demos)
    single, _ = agent.predict(np.zeros(4, dtype=np.float32), deterministic=True)
    assert np.shape(single) == () and env.action_space.contains(int(single))
    batch, _ = agent.predict(np.zeros((6, 4), dtype=np.float32), deterministic=True)
    assert batch.shape == (6,)


# -- registries -----------------------------------------------------------------------------


def test_agent_class_lists_valid_names():
    assert agents.agent_class("bc") is BC
    assert agents.agent_class("DAgger") is DAgger
    with pytest.raises(ValueError) as info:
        agents.agent_class("nope")
    message = str(info.value)
    assert "'nope'" in message
    for name in agents.AGENTS:
        assert name in message


def test_check_env_id_lists_valid_ids():
    envs.check_env_id(ENV_ID)
    with pytest.raises(ValueError) as info:
        envs.check_env_id("nope")
    message = str(info.value)
    assert "'nope'" in message
    assert ENV_ID in message
    for env_id in envs.registered_ids():
        assert env_id in message
    with pytest.raises(ValueError):
        envs.check_env_id("CartPole-v1")  # a Gymnasium id, but not an lfi-gym one


def test_make_expert_needs_lfi_gym_env():
    with pytest.raises(TypeError, match=ENV_ID):
        envs.make_expert(gym.make("CartPole-v1"))


# -- agent files ------------------------------------------------------------------------------


def test_loading_with_the_wrong_agent_class(tmp_path, env, demos):
    bc_path = BC(env, demos, device="cpu").save(tmp_path / "bc")
    with pytest.raises(ValueError) as info:
        DAgger.load(bc_path, env=env)
    message = str(info.value)
    assert "BC agent" in message and "BC.load" in message
    assert isinstance(BC.load(bc_path, env=env, device="cpu"), BC)

    dagger_path = DAgger(env, envs.make_expert(env), device="cpu").save(tmp_path / "dagger.zip")
    with pytest.raises(ValueError, match=r"DAgger agent; load it with DAgger\.load"):
        BC.load(dagger_path, env=env)


def test_loading_a_non_agent_file(tmp_path):
    path = tmp_path / "junk.zip"
    path.write_bytes(b"not a zip at all")
    with pytest.raises(ValueError, match="not an lfi-gym agent file"):
        BC.load(path)
    with pytest.raises(FileNotFoundError):
        BC.load(tmp_path / "missing.zip")


# -- states -------------------------------------------------------------------------------------


@pytest.fixture
def stepped_env():
    env = gym.make(ENV_ID)
    env.reset(seed=0)
    for _ in range(5):
        env.step(1)
    return env


def _assert_refused_and_unchanged(env, bad, *, match):
    before = env.get_state()
    with pytest.raises(envs.StateError, match=match):
        env.reset_to(bad)
    with pytest.raises(envs.StateError, match=match):
        env.reset(options={"state": bad})
    assert env.get_state() == before, "a refused state changed the env"


def test_state_of_another_env_id(stepped_env):
    state = stepped_env.get_state()
    other = dataclasses.replace(state, env_id="Control-Acrobot-v0")
    assert other != state
    _assert_refused_and_unchanged(stepped_env, other, match="Control-Acrobot-v0")
    with pytest.raises(envs.StateError) as info:
        stepped_env.reset_to(other)
    assert ENV_ID in str(info.value)


@pytest.mark.parametrize("offset", [-1, 1, "str", None])
def test_state_of_another_version(stepped_env, offset):
    current = stepped_env.get_state().version
    version = current + offset if isinstance(offset, int) else (offset and str(current))
    state = dataclasses.replace(stepped_env.get_state(), version=version)
    _assert_refused_and_unchanged(stepped_env, state, match="version")


@pytest.mark.parametrize(
    "changes",
    [
        {"physics": (0.0, 0.0, 0.0)},
        {"physics": (0.0, 0.0, float("nan"), 0.0)},
        {"physics": (0.0, 0.0, float("inf"), 0.0)},
        {"physics": ("0", 0.0, 0.0, 0.0)},
        {"physics": [0.0, 0.0, 0.0, 0.0]},
        {"physics": None},
        {"step": -1},
        {"step": 1.5},
        {"step": True},
        {"steps_beyond_terminated": -2},
        {"rng": "not json"},
        {"rng": '{"bit_generator": "NoSuchGenerator"}'},
        {"rng": None},
    ],
)
def test_malformed_state_payload(stepped_env, changes):
    (field,) = changes
    state = dataclasses.replace(stepped_env.get_state(), **changes)
    # The message names what is wrong (the RNG's errors say "RNG state").
    _assert_refused_and_unchanged(
        stepped_env, state, match="RNG state" if field == "rng" else field
    )


@pytest.mark.parametrize("bad", [None, {"physics": (0, 0, 0, 0)}, "state", 3])
def test_non_state_objects(stepped_env, bad):
    _assert_refused_and_unchanged(stepped_env, bad, match="CartPoleState")


def test_state_error_is_value_error_and_good_state_restores(stepped_env):
    assert issubclass(envs.StateError, ValueError)
    state = stepped_env.get_state()
    restored = pickle.loads(pickle.dumps(state))
    assert restored == state
    obs, _ = stepped_env.reset_to(restored)
    np.testing.assert_array_equal(obs, np.array(state.physics, dtype=np.float32))
