"""DRIL's mechanics on tiny budgets: bootstrap ensemble, thresholds, reward, BC step, files."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from lfi_gym import agents, envs
from lfi_gym.agents.dril import DRIL
from lfi_gym.agents.learners import MinAtarCNN, auto_policy
from lfi_gym.wrappers.reward import DisagreementRewardVecEnv, DisagreementRewardVector

torch.set_num_threads(1)

CARTPOLE = "Control-CartPole-v0"
FAST = {
    "ensemble_epochs": 15,
    "bc_epochs": 5,
    "n_envs": 2,
    "rl_kwargs": {"n_steps": 16, "batch_size": 32},
}


@pytest.fixture(scope="module")
def cartpole_demos() -> agents.Demonstrations:
    env = gym.make(CARTPOLE)
    return agents.Demonstrations.collect(env, envs.make_expert(env), n_episodes=1, seed=0)


@pytest.fixture(scope="module")
def fitted(cartpole_demos) -> DRIL:
    dril = DRIL(gym.make(CARTPOLE), cartpole_demos, seed=0, **FAST)
    return dril.pretrain()


class Blobs(gym.Env):
    """Two-dimensional points, three actions; the tests give it hand-made demonstrations."""

    observation_space = gym.spaces.Box(-10.0, 10.0, (2,), dtype=np.float32)
    action_space = gym.spaces.Discrete(3)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros(2, dtype=np.float32), {}

    def step(self, action):
        return np.zeros(2, dtype=np.float32), 0.0, False, False, {}


def blob_demos(seed: int = 0) -> agents.Demonstrations:
    """Action 0 always at (2, 2) (clean); actions 1 and 2 at random around (-2, -2)
    (ambiguous): members agree on 0 and disagree on 1 and 2."""
    rng = np.random.default_rng(seed)
    clean = rng.normal(2.0, 0.1, (300, 2))
    noisy = rng.normal(-2.0, 0.5, (300, 2))
    obs = np.concatenate([clean, noisy]).astype(np.float32)
    actions = np.concatenate([np.zeros(300), rng.integers(1, 3, 300)]).astype(np.int64)
    n = len(actions)
    starts = np.zeros(n, dtype=bool)
    starts[0] = True
    space = Blobs.observation_space
    return agents.Demonstrations(
        obs, actions, np.zeros(n), starts, np.zeros(n, bool), np.zeros(n, bool),
        observation_space=space, action_space=Blobs.action_space,
    )  # fmt: skip


def test_bootstrap_resamples_differ_across_members(fitted, cartpole_demos):
    counts = fitted.bootstrap_counts
    assert counts.shape == (5, len(cartpole_demos))
    assert np.all(counts.sum(axis=1) == len(cartpole_demos))  # each a resample of size n
    for i in range(5):
        for j in range(i + 1, 5):
            assert not np.array_equal(counts[i], counts[j])
    # About e^-1 of the transitions are left out of each resample.
    left_out = (counts == 0).mean(axis=1)
    assert np.all((left_out > 0.25) & (left_out < 0.5))
    with torch.no_grad():
        probs = fitted.ensemble.log_probs(torch.as_tensor(cartpole_demos.observations)).exp()
    assert not torch.allclose(probs[0], probs[1])  # independent members, different fits


def test_reward_is_plus_one_on_demonstrations_and_minus_one_far_away(fitted, cartpole_demos):
    rewards = fitted.rewards(cartpole_demos.observations, cartpole_demos.actions)
    assert set(np.unique(rewards)) <= {-1.0, 1.0}
    assert 0.96 <= (rewards > 0).mean() < 1.0  # the 0.98 quantile, per action


def test_reward_is_minus_one_far_from_the_demonstrations():
    # Off both blobs, on the line between them, the members extrapolate differently.
    demos = blob_demos()
    dril = DRIL(Blobs(), demos, seed=0, ensemble_epochs=40, n_envs=1, bc_epochs=1).pretrain()
    t = np.random.default_rng(0).uniform(-3, 3, 300)
    far = np.stack([t, -t], axis=1).astype(np.float32)
    assert (dril.rewards(far, np.zeros(300, dtype=np.int64)) < 0).mean() > 0.9
    near = demos.observations[:300]  # the clean blob, where every member says action 0
    assert (dril.rewards(near, np.zeros(300, dtype=np.int64)) > 0).mean() > 0.95


def test_per_action_thresholds_follow_the_data():
    demos = blob_demos()
    kwargs = {"ensemble_epochs": 40, "n_envs": 1, "bc_epochs": 1}
    per_action = DRIL(Blobs(), demos, seed=0, **kwargs)
    thresholds = per_action.pretrain().thresholds
    assert thresholds[1] > 5 * thresholds[0] and thresholds[2] > 5 * thresholds[0]
    pooled = DRIL(Blobs(), demos, seed=0, threshold="global", **kwargs).pretrain().thresholds
    assert np.all(pooled == pooled[0])
    original = DRIL(Blobs(), demos, seed=0, threshold="original", **kwargs).pretrain()
    assert np.allclose(original.thresholds, thresholds[2])  # the last action's, for all
    # Per action, about 98% of the demonstration pairs of each action earn +1.
    rewards = per_action.rewards(demos.observations, demos.actions)
    for action in range(3):
        assert (rewards[demos.actions == action] > 0).mean() >= 0.95


def test_bc_step_reduces_the_bc_loss(cartpole_demos):
    dril = DRIL(gym.make(CARTPOLE), cartpole_demos, seed=0, **{**FAST, "bc_epochs": 1})
    dril.pretrain()
    before = dril.bc_loss()
    for _ in range(3):
        dril.bc_step()
    assert dril.bc_loss() < 0.9 * before


def test_cost_is_one_batched_forward_per_vector_step(cartpole_demos):
    dril = DRIL(gym.make(CARTPOLE), cartpole_demos, seed=0, **{**FAST, "n_envs": 4})
    dril.pretrain()
    batch_sizes = []
    forward = dril.ensemble.log_probs

    def counting(obs):
        batch_sizes.append(len(obs))
        return forward(obs)

    dril.ensemble.log_probs = counting
    calls_before = dril.cost_calls
    dril.learn(128)
    steps = dril.num_timesteps // 4
    assert dril.num_timesteps == 128
    assert dril.cost_calls - calls_before == steps == 32
    assert batch_sizes == [4] * steps


def test_alternating_bc_step_after_each_rl_update(cartpole_demos, monkeypatch):
    dril = DRIL(gym.make(CARTPOLE), cartpole_demos, seed=0, **FAST)
    calls = []
    original = dril.bc_step
    monkeypatch.setattr(dril, "bc_step", lambda n: calls.append(n) or original(n_batches=1))
    dril.learn(4 * 32)  # 4 rollouts of 2 envs x 16 steps: 3 updates before the last rollout
    assert len(calls) == 3


def test_summed_loss_option_trains(cartpole_demos):
    dril = DRIL(gym.make(CARTPOLE), cartpole_demos, seed=0, bc_mode="sum", **FAST)
    dril.learn(64)
    assert dril.num_timesteps == 64 and dril._step_hook is not None


def test_save_load_restores_everything_and_resumes(tmp_path, cartpole_demos):
    env = gym.make(CARTPOLE)
    dril = DRIL(env, cartpole_demos, seed=0, **FAST)
    dril.learn(64)
    path = dril.save(tmp_path / "dril")
    loaded = DRIL.load(path, env=gym.make(CARTPOLE))
    assert loaded.pretrained and loaded.num_timesteps == 64
    np.testing.assert_array_equal(loaded.thresholds, dril.thresholds)
    np.testing.assert_array_equal(loaded.bootstrap_counts, dril.bootstrap_counts)
    for a, b in zip(
        loaded.ensemble.state_dict().values(), dril.ensemble.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b)
    for a, b in zip(
        loaded.policy.state_dict().values(), dril.policy.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b)
    obs = cartpole_demos.observations[:50]
    np.testing.assert_array_equal(
        loaded.predict(obs, deterministic=True)[0], dril.predict(obs, deterministic=True)[0]
    )
    ensemble_before = [p.clone() for p in loaded.ensemble.parameters()]
    loaded.learn(64, reset_num_timesteps=False)  # continues: no refit, counters go on
    assert loaded.num_timesteps == 128 and loaded.model.num_timesteps == 128
    assert all(
        torch.equal(a, b)
        for a, b in zip(ensemble_before, loaded.ensemble.parameters(), strict=True)
    )
    assert loaded.cost_calls == 32  # 64 steps over 2 envs, all in the resumed run


def test_bad_input_is_refused_at_construction(cartpole_demos):
    env = gym.make(CARTPOLE)
    empty = cartpole_demos.select(np.zeros(0, dtype=np.int64))
    with pytest.raises(ValueError, match="empty"):
        DRIL(env, empty)
    with pytest.raises(ValueError, match="demonstrations"):
        DRIL(env, None)
    minatar = gym.make("MinAtarImitation-Breakout-v0", horizon=20)
    other = agents.Demonstrations.collect(minatar, envs.make_expert(minatar), n_episodes=1)
    with pytest.raises(ValueError, match="record them on the same env"):
        DRIL(env, other)
    for size in (1, 0, 2.5):
        with pytest.raises(ValueError, match="ensemble_size"):
            DRIL(env, cartpole_demos, ensemble_size=size)
    for q in (0.0, 1.0, 1.5, -0.1, "high"):
        with pytest.raises(ValueError, match="quantile"):
            DRIL(env, cartpole_demos, quantile=q)
    with pytest.raises(ValueError, match="threshold"):
        DRIL(env, cartpole_demos, threshold="per-state")


def test_auto_policy_matches_the_observation_space():
    minatar = gym.make("MinAtarImitation-Freeway-v0")
    name, kwargs = auto_policy(minatar.observation_space)
    assert kwargs["features_extractor_class"] is MinAtarCNN
    assert auto_policy(gym.spaces.Box(0, 255, (4, 84, 84), np.uint8))[0] == "CnnPolicy"
    assert auto_policy(gym.make(CARTPOLE).observation_space) == ("MlpPolicy", {})
    bc = agents.BC(minatar, policy=name, policy_kwargs=kwargs)
    assert isinstance(bc.policy.features_extractor, MinAtarCNN)


def test_gymnasium_vector_wrapper_replaces_rewards():
    venv = gym.make_vec(CARTPOLE, num_envs=3, vectorization_mode="sync")
    seen = []

    def cost(obs, actions):
        seen.append(len(obs))
        return np.where(np.asarray(actions) == 0, 0.0, 1.0)

    wrapped = DisagreementRewardVector(venv, cost, [0.5, 0.5])
    wrapped.reset(seed=0)
    _, rewards, _, _, info = wrapped.step(np.array([0, 1, 0]))
    np.testing.assert_array_equal(rewards, [1.0, -1.0, 1.0])
    assert seen == [3] and "env_reward" in info
    with pytest.raises(ValueError, match="per-action thresholds"):
        DisagreementRewardVector(venv, cost, [0.1, 0.2, 0.3])


def test_sb3_vec_wrapper_keeps_env_reward():
    from stable_baselines3.common.env_util import make_vec_env

    venv = make_vec_env(lambda: gym.make(CARTPOLE), n_envs=2, seed=0)
    wrapped = DisagreementRewardVecEnv(venv, lambda o, a: np.ones(len(o)), 2.0)
    wrapped.reset()
    wrapped.step_async(np.array([0, 1]))
    _, rewards, _, infos = wrapped.step_wait()
    np.testing.assert_array_equal(rewards, [1.0, 1.0])
    assert infos[0]["env_reward"] == 1.0 and infos[0]["dril_cost"] == 1.0


def test_cli_atari_imitation_suite_reports_bad_input(capsys):
    from lfi_gym import cli

    assert (
        cli.main(["compare", "--suite", "atari-imitation", "--env", "Nope-v0", "--out", "x"]) == 2
    )
    assert "unknown env id" in capsys.readouterr().err
    args = ["compare", "--suite", "atari-imitation", "--agents", "gail", "--out", "x"]
    assert cli.main(args) == 2
    assert "unknown agent 'gail'" in capsys.readouterr().err


def test_train_env_kwargs_reach_the_rollout_envs(cartpole_demos):
    with pytest.raises(ValueError, match="train_env_kwargs"):
        DRIL(Blobs(), blob_demos(), n_envs=1, train_env_kwargs={"x": 1})
    minatar = gym.make("MinAtarImitation-Breakout-v0", horizon=500)
    demos = agents.Demonstrations.collect(minatar, envs.make_expert(minatar), n_steps=50)
    dril = DRIL(minatar, demos, n_envs=2, train_env_kwargs={"horizon": 7})
    assert dril.model.env.get_attr("horizon") == [7, 7]


def test_shared_trunk_option_has_one_trunk_and_distinct_heads(cartpole_demos):
    dril = DRIL(gym.make(CARTPOLE), cartpole_demos, seed=0, shared_trunk=True, **FAST)
    assert len(dril.ensemble.trunks) == 1 and dril.ensemble.size == 5
    dril.pretrain()
    with torch.no_grad():
        probs = dril.ensemble.log_probs(torch.as_tensor(cartpole_demos.observations)).exp()
    assert not torch.allclose(probs[0], probs[1])
    rewards = dril.rewards(cartpole_demos.observations, cartpole_demos.actions)
    assert 0.95 <= (rewards > 0).mean() < 1.0
