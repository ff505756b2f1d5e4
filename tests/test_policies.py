"""The Policy protocol and its adapters (lfi_gym.envs.policies), mixtures
(lfi_gym.agents.policies) and the learners' log-probabilities (lfi_gym.agents.learners)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces
from stable_baselines3 import DQN, PPO

from lfi_gym import envs
from lfi_gym.agents.learners import action_log_prob, trainable_module
from lfi_gym.agents.policies import MixturePolicy
from lfi_gym.envs.policies import OraclePolicy, Policy, as_policy, batch_observation, check_spaces

torch.set_num_threads(1)

ENV_ID = "Control-CartPole-v0"


class ThreeActionEnv(gym.Env):
    """CartPole's observations (or ``obs_dim`` others), but ``n_actions`` actions."""

    def __init__(self, n_actions: int = 3, obs_dim: int = 4) -> None:
        if obs_dim == 4:
            self.observation_space = gym.make(ENV_ID).observation_space
        else:
            self.observation_space = spaces.Box(-1.0, 1.0, shape=(obs_dim,), dtype=np.float32)
        self.action_space = spaces.Discrete(n_actions)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros(self.observation_space.shape, dtype=np.float32), {}

    def step(self, action):
        return np.zeros(self.observation_space.shape, dtype=np.float32), 0.0, True, False, {}


class ConstantPolicy:
    """Acts with ``action`` on every row; counts calls."""

    def __init__(self, observation_space, action_space, action: int) -> None:
        self.observation_space = observation_space
        self.action_space = action_space
        self.action = action
        self.calls = 0

    def predict(self, observation, state=None, episode_start=None, deterministic=False):
        self.calls += 1
        batch, batched = batch_observation(observation, self.observation_space)
        actions = np.full(len(batch), self.action, dtype=np.int64)
        return (actions if batched else actions[0]), state


@pytest.fixture(scope="module")
def env():
    return gym.make(ENV_ID)


@pytest.fixture(scope="module")
def oracle(env):
    return envs.make_expert(env)


@pytest.fixture(scope="module")
def ppo(env):
    return PPO("MlpPolicy", env, seed=0, device="cpu")


@pytest.fixture(scope="module")
def dqn(env):
    return DQN("MlpPolicy", env, seed=0, device="cpu")


def constants(env):
    return (
        ConstantPolicy(env.observation_space, env.action_space, 0),
        ConstantPolicy(env.observation_space, env.action_space, 1),
    )


def observations(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-0.2, 0.2, size=(n, 4)).astype(np.float32)


# -- as_policy / check_spaces ------------------------------------------------------------


def test_as_policy_accepts_sb3_models_policies_and_oracles(ppo, dqn, oracle):
    for obj in (ppo, ppo.policy, dqn, dqn.policy, oracle):
        assert as_policy(obj) is obj, "Policies are returned as they are, unwrapped"
        assert isinstance(obj, Policy)


class PredictOnly:
    def predict(self, observation, state=None, episode_start=None, deterministic=False):
        return 0, None


@pytest.mark.parametrize(
    "obj", [object(), "MlpPolicy", lambda obs: 0, torch.nn.Linear(4, 2), PredictOnly()]
)
def test_as_policy_rejects_objects_without_the_protocol(obj):
    with pytest.raises(TypeError) as info:
        as_policy(obj, role="expert")
    message = str(info.value)
    assert message.startswith("expert must be a Policy")
    assert "predict" in message
    assert "SB3 model" in message and "make_expert" in message
    assert type(obj).__name__ in message


def test_check_spaces_accepts_matching_env(env, oracle, ppo):
    assert check_spaces(oracle, env) is None
    assert check_spaces(ppo, gym.make(ENV_ID)) is None


def test_check_spaces_rejects_other_action_space(oracle):
    other = ThreeActionEnv(n_actions=3)
    assert other.observation_space.shape == oracle.observation_space.shape
    with pytest.raises(ValueError) as info:
        check_spaces(oracle, other, role="expert")
    message = str(info.value)
    assert "expert's action_space" in message
    assert "Discrete(2)" in message and "Discrete(3)" in message


def test_check_spaces_rejects_other_observation_space(oracle):
    other = ThreeActionEnv(n_actions=2, obs_dim=5)
    with pytest.raises(ValueError, match="observation_space"):
        check_spaces(oracle, other)


def test_check_spaces_tolerates_float_precision_of_bounds(env, oracle):
    class Loose:
        # One float32 ulp inside the env's bounds, as after a save/load round trip.
        low, high = env.observation_space.low, env.observation_space.high
        observation_space = spaces.Box(
            np.where(np.isfinite(low), np.nextafter(low, np.float32(0)), low),
            np.where(np.isfinite(high), np.nextafter(high, np.float32(0)), high),
            dtype=np.float32,
        )
        action_space = spaces.Discrete(2)

        def predict(self, *args, **kwargs):
            return 0, None

    check_spaces(Loose(), env)
    Loose.observation_space = spaces.Box(-1.0, 1.0, shape=(4,), dtype=np.float32)
    with pytest.raises(ValueError, match="observation_space"):
        check_spaces(Loose(), env)


# -- batch_observation / OraclePolicy ------------------------------------------------------


def test_batch_observation_box(env):
    space = env.observation_space
    single = np.arange(4, dtype=np.float32)
    batch, batched = batch_observation(single, space)
    assert not batched and batch.shape == (1, 4)
    np.testing.assert_array_equal(batch[0], single)
    batch, batched = batch_observation(observations(7), space)
    assert batched and batch.shape == (7, 4)
    batch, batched = batch_observation(list(single), space)  # lists work too
    assert not batched and batch.shape == (1, 4)


@pytest.mark.parametrize("shape", [(3,), (5,), (2, 3), (2, 2, 4), ()])
def test_batch_observation_wrong_shape_names_expected(env, shape):
    with pytest.raises(ValueError) as info:
        batch_observation(np.zeros(shape, dtype=np.float32), env.observation_space)
    message = str(info.value)
    assert f"observation has shape {shape}" in message
    assert "(4,)" in message and "n_envs" in message


def test_batch_observation_discrete_and_dict():
    batch, batched = batch_observation(3, spaces.Discrete(5))
    assert not batched and batch.shape == (1,)
    batch, batched = batch_observation(np.array([1, 2, 3]), spaces.Discrete(5))
    assert batched and batch.shape == (3,)
    space = spaces.Dict({"a": spaces.Box(0, 1, (2,)), "b": spaces.Discrete(3)})
    batch, batched = batch_observation({"a": np.zeros(2), "b": 1}, space)
    assert not batched and batch["a"].shape == (1, 2) and batch["b"].shape == (1,)
    batch, batched = batch_observation({"a": np.zeros((4, 2)), "b": np.zeros(4)}, space)
    assert batched and batch["a"].shape == (4, 2)
    with pytest.raises(ValueError, match="mixes batched and unbatched"):
        batch_observation({"a": np.zeros((4, 2)), "b": 1}, space)
    with pytest.raises(ValueError, match=r"keys \['a', 'b'\]"):
        batch_observation({"a": np.zeros(2)}, space)
    with pytest.raises(ValueError, match="dict"):
        batch_observation(np.zeros(2), space)


def test_oracle_predict_single_and_batch(env, oracle):
    assert isinstance(oracle, OraclePolicy)
    obs = observations(32)
    actions, state = oracle.predict(obs)
    assert state is None
    assert actions.shape == (32,)
    assert set(np.unique(actions)) == {0, 1}, "random states should need both pushes"
    for row, action in zip(obs, actions, strict=True):
        single, _ = oracle.predict(row)
        assert np.shape(single) == ()
        assert env.action_space.contains(single)
        assert single == action
    token = object()
    assert oracle.predict(obs[0], state=token)[1] is token


def test_oracle_predict_wrong_shape(oracle):
    with pytest.raises(ValueError, match=r"\(4,\)"):
        oracle.predict(np.zeros(3, dtype=np.float32))
    with pytest.raises(ValueError, match=r"\(4,\)"):
        oracle.predict(np.zeros((2, 5), dtype=np.float32))


def test_oracle_balances_from_its_labels(env, oracle):
    # The labels are a sensible controller: leaning right -> push right.
    right, _ = oracle.predict(np.array([0.0, 0.0, 0.1, 0.5], dtype=np.float32))
    left, _ = oracle.predict(np.array([0.0, 0.0, -0.1, -0.5], dtype=np.float32))
    assert (int(right), int(left)) == (1, 0)


# -- MixturePolicy -------------------------------------------------------------------------


def test_mixture_beta_one_and_zero(env):
    zero, one = constants(env)
    obs = observations(50)
    always_first = MixturePolicy(zero, one, beta=1.0, seed=0)
    always_second = MixturePolicy(zero, one, beta=0.0, seed=0)
    for _ in range(20):
        actions, _ = always_first.predict(obs)
        assert (actions == 0).all() and always_first.last_choice.all()
        actions, _ = always_second.predict(obs)
        assert (actions == 1).all() and not always_second.last_choice.any()
    single, _ = always_second.predict(obs[0])
    assert np.shape(single) == () and single == 1


@pytest.mark.parametrize("beta", [0.1, 0.3, 0.75])
def test_mixture_per_step_rate(env, beta):
    zero, one = constants(env)
    mixture = MixturePolicy(zero, one, beta=beta, seed=0)
    obs = observations(500)
    chosen = []
    for _ in range(10):
        actions, _ = mixture.predict(obs)
        np.testing.assert_array_equal(actions == 0, mixture.last_choice)
        chosen.append(mixture.last_choice.copy())
    rate = np.mean(chosen)
    assert abs(rate - beta) < 0.03, rate
    # per="step" redraws at every call: rows do not keep their choice.
    assert not all(np.array_equal(chosen[0], c) for c in chosen[1:])


def test_mixture_is_seeded(env):
    zero, one = constants(env)
    obs = observations(100)

    def run(seed):
        mixture = MixturePolicy(zero, one, 0.5, seed=seed)
        return np.concatenate([mixture.predict(obs)[0] for _ in range(3)])

    np.testing.assert_array_equal(run(3), run(3))
    assert not np.array_equal(run(3), run(4))


def test_mixture_per_episode_keeps_choice_until_episode_start(env):
    zero, one = constants(env)
    mixture = MixturePolicy(zero, one, beta=0.5, per="episode", seed=0)
    obs = observations(16)
    actions, _ = mixture.predict(obs, episode_start=np.ones(16, dtype=bool))
    initial = mixture.last_choice.copy()
    assert 0 < initial.sum() < 16, "beta=0.5 over 16 rows should pick both policies"
    np.testing.assert_array_equal(actions == 0, initial)
    for _ in range(10):
        actions, _ = mixture.predict(obs, episode_start=np.zeros(16, dtype=bool))
        np.testing.assert_array_equal(mixture.last_choice, initial)
        np.testing.assert_array_equal(actions == 0, initial)
    mixture.predict(obs, episode_start=None)
    np.testing.assert_array_equal(mixture.last_choice, initial)
    # Only row 3 starts a new episode: the others keep their choice, row 3 redraws.
    start = np.zeros(16, dtype=bool)
    start[3] = True
    row3 = set()
    for _ in range(40):
        mixture.predict(obs, episode_start=start)
        others = np.arange(16) != 3
        np.testing.assert_array_equal(mixture.last_choice[others], initial[others])
        row3.add(bool(mixture.last_choice[3]))
    assert row3 == {True, False}, "row 3 never redrew at its episode starts"


def test_mixture_per_episode_single_observation(env):
    zero, one = constants(env)
    mixture = MixturePolicy(zero, one, beta=0.5, per="episode", seed=1)
    obs = observations(1)[0]
    first, _ = mixture.predict(obs, episode_start=np.array([True]))
    assert np.shape(first) == ()
    for _ in range(10):
        again, _ = mixture.predict(obs, episode_start=np.array([False]))
        assert again == first
    seen = {int(mixture.predict(obs, episode_start=np.array([True]))[0]) for _ in range(30)}
    assert seen == {0, 1}


def test_mixture_asks_both_and_returns_both_states(env):
    zero, one = constants(env)
    mixture = MixturePolicy(zero, one, beta=0.5, seed=0)
    _, state = mixture.predict(observations(4), state=("s1", "s2"))
    assert state == ("s1", "s2")
    assert zero.calls == 1 and one.calls == 1


@pytest.mark.parametrize("beta", [-0.01, 1.01, 2, float("nan"), float("inf"), "half", None, [0.5]])
def test_mixture_bad_beta(env, beta):
    zero, one = constants(env)
    with pytest.raises(ValueError, match="beta must be a probability in"):
        MixturePolicy(zero, one, beta=beta)


def test_mixture_beta_setter_validates_and_keeps_old_value(env):
    zero, one = constants(env)
    mixture = MixturePolicy(zero, one, beta="0.25")
    assert mixture.beta == 0.25
    with pytest.raises(ValueError, match="beta"):
        mixture.beta = 1.5
    assert mixture.beta == 0.25
    mixture.beta = np.float32(1.0)
    assert (mixture.predict(observations(5))[0] == 0).all()


def test_mixture_bad_per(env):
    zero, one = constants(env)
    with pytest.raises(ValueError, match="per must be 'step' or 'episode'"):
        MixturePolicy(zero, one, beta=0.5, per="round")


def test_mixture_mismatched_spaces(env, oracle):
    other = ThreeActionEnv(n_actions=3)
    three = ConstantPolicy(other.observation_space, other.action_space, 2)
    with pytest.raises(ValueError, match="action_space"):
        MixturePolicy(oracle, three, beta=0.5)
    five = ThreeActionEnv(n_actions=2, obs_dim=5)
    with pytest.raises(ValueError, match="observation_space"):
        MixturePolicy(oracle, ConstantPolicy(five.observation_space, five.action_space, 0), 0.5)
    with pytest.raises(TypeError, match="second must be a Policy"):
        MixturePolicy(oracle, object(), beta=0.5)


def test_mixture_of_oracle_and_sb3_model(env, oracle, ppo):
    mixture = MixturePolicy(oracle, ppo, beta=0.5, seed=0)
    obs = observations(64)
    actions, _ = mixture.predict(obs, deterministic=True)
    expert, _ = oracle.predict(obs)
    learner, _ = ppo.predict(obs, deterministic=True)
    np.testing.assert_array_equal(actions, np.where(mixture.last_choice, expert, learner))


# -- learners: log-probabilities ------------------------------------------------------------


def _check_log_probs(policy, obs_np, expected_argmax):
    obs = torch.as_tensor(obs_np)
    n = len(obs)
    lp0, ent = action_log_prob(policy, obs, torch.zeros(n, dtype=torch.long))
    lp1, _ = action_log_prob(policy, obs, torch.ones(n, dtype=torch.long))
    assert lp0.shape == (n,) and lp1.shape == (n,) and ent.shape == (n,)
    assert (lp0 <= 0).all() and (lp1 <= 0).all()
    assert (ent >= 0).all() and (ent <= np.log(2) + 1e-6).all()
    # A distribution over the two actions: the probabilities sum to one.
    total = torch.logsumexp(torch.stack([lp0, lp1]), dim=0)
    torch.testing.assert_close(total, torch.zeros(n), atol=1e-5, rtol=0)
    # Consistent with what the policy predicts deterministically.
    np.testing.assert_array_equal((lp1 > lp0).numpy(), expected_argmax == 1)
    # Differentiable w.r.t. the policy's parameters.
    policy.zero_grad()
    lp0.sum().backward()
    grads = [p.grad for p in policy.parameters() if p.grad is not None]
    assert grads and any(g.abs().sum() > 0 for g in grads)


def test_action_log_prob_ppo(ppo):
    obs = observations(64, seed=3)
    argmax, _ = ppo.predict(obs, deterministic=True)
    _check_log_probs(ppo.policy, obs, argmax)


def test_action_log_prob_dqn(dqn):
    obs = observations(64, seed=4)
    argmax, _ = dqn.policy.predict(obs, deterministic=True)
    _check_log_probs(dqn.policy, obs, argmax)


def test_action_log_prob_qrdqn(env):
    from sb3_contrib import QRDQN

    model = QRDQN("MlpPolicy", env, seed=0, device="cpu", policy_kwargs={"n_quantiles": 5})
    obs = observations(16, seed=5)
    argmax, _ = model.predict(obs, deterministic=True)
    _check_log_probs(model.policy, obs, argmax)


def test_action_log_prob_rejects_unsupported():
    with pytest.raises(TypeError, match="actor-critic"):
        action_log_prob(torch.nn.Linear(4, 2), torch.zeros(3, 4), torch.zeros(3))


def test_action_log_prob_rejects_recurrent(env):
    from sb3_contrib import RecurrentPPO

    model = RecurrentPPO("MlpLstmPolicy", env, seed=0, device="cpu")
    with pytest.raises(TypeError, match="recurrent"):
        action_log_prob(model.policy, torch.zeros(3, 4), torch.zeros(3, dtype=torch.long))


def test_trainable_module(ppo, dqn, oracle):
    assert trainable_module(ppo) is ppo.policy
    assert trainable_module(dqn.policy) is dqn.policy
    with pytest.raises(TypeError, match="learner must be"):
        trainable_module(oracle)


def test_space_mismatch_names_the_first_space_that_differs() -> None:
    from types import SimpleNamespace

    from lfi_gym.envs.policies import space_mismatch

    box, other_box = gym.spaces.Box(-1, 1, (3,)), gym.spaces.Box(-1, 1, (4,))
    two, three = gym.spaces.Discrete(2), gym.spaces.Discrete(3)
    a = SimpleNamespace(observation_space=box, action_space=two)
    assert space_mismatch(a, SimpleNamespace(observation_space=box, action_space=two)) is None
    # both differ: the observation space is named first
    both = SimpleNamespace(observation_space=other_box, action_space=three)
    assert space_mismatch(a, both) == ("observation_space", box, other_box)
    action_only = SimpleNamespace(observation_space=box, action_space=three)
    assert space_mismatch(a, action_only) == ("action_space", two, three)
    # a space not known yet (None or missing) agrees, unless the check is strict
    unknown = SimpleNamespace(observation_space=None)
    assert space_mismatch(a, unknown) is None
    assert space_mismatch(a, unknown, unknown_agrees=False) == ("observation_space", box, None)
    assert space_mismatch(unknown, SimpleNamespace(), unknown_agrees=False) is None
