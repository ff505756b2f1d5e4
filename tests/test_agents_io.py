"""Agent files, SB3 callbacks and TensorBoard logs."""

from __future__ import annotations

import json
import os
import zipfile

import gymnasium as gym
import numpy as np
import pytest
from stable_baselines3.common.callbacks import (
    CheckpointCallback,
    EvalCallback,
    StopTrainingOnRewardThreshold,
)
from stable_baselines3.common.vec_env import DummyVecEnv

from lfi_gym import envs
from lfi_gym.agents import AGENTS, BC, DAgger, Demonstrations

ENV_ID = "Control-CartPole-v0"


@pytest.fixture
def demos(env) -> Demonstrations:
    return Demonstrations.collect(env, envs.make_expert(env), n_episodes=1, seed=0)


def _observations(n: int = 64) -> np.ndarray:
    return np.random.default_rng(0).normal(scale=0.2, size=(n, 4)).astype(np.float32)


def test_bc_save_load_predicts_the_same(tmp_path, env, demos) -> None:
    bc = BC(env, demos, seed=0, learning_rate=3e-3).learn(2000)
    path = bc.save(tmp_path / "bc")
    assert path.name == "bc.zip"
    loaded = BC.load(tmp_path / "bc")  # no env: predict-only
    obs = _observations()
    np.testing.assert_array_equal(
        loaded.predict(obs, deterministic=True)[0], bc.predict(obs, deterministic=True)[0]
    )
    assert loaded.learning_rate == 3e-3 and loaded.num_timesteps == bc.num_timesteps
    with pytest.raises(ValueError, match="needs an env"):
        loaded.learn(10)


def test_bc_resumes_with_its_optimizer(tmp_path, env, demos) -> None:
    bc = BC(env, demos, seed=0).learn(1000)
    bc.save(tmp_path / "bc.zip")
    loaded = BC.load(tmp_path / "bc.zip", env=env)
    loaded.set_demonstrations(demos)
    saved_state = bc.optimizer.state_dict()["state"]
    loaded_state = loaded.optimizer.state_dict()["state"]
    assert saved_state.keys() == loaded_state.keys() and len(saved_state) > 0
    for key in saved_state:
        np.testing.assert_allclose(saved_state[key]["exp_avg"], loaded_state[key]["exp_avg"])
    loaded.learn(500, reset_num_timesteps=False)
    assert loaded.num_timesteps >= 1500


def test_dagger_checkpoint_continues_where_it_stopped(tmp_path, env) -> None:
    expert = envs.make_expert(env)
    dagger = DAgger(env, expert, steps_per_round=100, n_epochs=2, seed=0).learn(300)
    dagger.save(tmp_path / "dagger.zip")
    loaded = DAgger.load(tmp_path / "dagger.zip", env=gym.make(ENV_ID), expert=None)
    assert loaded.round == 3 and loaded.expert_labels == 300
    assert loaded.beta() == pytest.approx(dagger.beta())
    np.testing.assert_array_equal(loaded.demonstrations.actions, dagger.demonstrations.actions)
    with pytest.raises(ValueError, match="expert"):
        loaded.learn(100, reset_num_timesteps=False)
    loaded.set_expert(envs.make_expert(loaded.env))
    loaded.learn(100, reset_num_timesteps=False)
    assert loaded.round == 4 and loaded.expert_labels == 400 and loaded.num_timesteps == 400


def test_interrupted_agent_save_keeps_the_old_file(tmp_path, env, demos, monkeypatch) -> None:
    bc = BC(env, demos, seed=0)
    path = bc.save(tmp_path / "bc.zip")
    before = path.read_bytes()

    def broken_replace(src, dst):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(KeyboardInterrupt):
        bc.learn(500).save(path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bc.zip"]


def test_sb3_callbacks_drive_dagger(tmp_path, env) -> None:
    stop = StopTrainingOnRewardThreshold(reward_threshold=475)
    # Seeded evaluation starts: an unseeded eval env made this test depend on OS entropy.
    eval_env = DummyVecEnv([lambda: gym.make(ENV_ID)])
    eval_env.seed(0)
    evaluate = EvalCallback(eval_env, eval_freq=100, n_eval_episodes=3, callback_on_new_best=stop)
    checkpoints = CheckpointCallback(save_freq=100, save_path=str(tmp_path / "ckpt"))
    dagger = DAgger(
        env,
        envs.make_expert(env),
        steps_per_round=100,
        beta_rounds=1,
        n_epochs=20,
        seed=0,
        tensorboard_log=str(tmp_path / "tb"),
    )
    dagger.learn(5000, callback=[evaluate, checkpoints])
    assert evaluate.best_mean_reward >= 475
    assert dagger.num_timesteps < 5000  # stopped early by the callback
    saved = sorted((tmp_path / "ckpt").iterdir(), key=lambda p: int(p.stem.split("_")[2]))
    assert saved and DAgger.load(saved[-1]).expert_labels > 0
    events = list((tmp_path / "tb").rglob("events.out.tfevents.*"))
    assert events and events[0].stat().st_size > 0


def test_plain_callable_callback_can_stop_bc(env, demos) -> None:
    calls = []

    def stop_after_three(locals_, globals_) -> bool:
        calls.append(locals_["self"].num_timesteps)
        return len(calls) < 3

    bc = BC(env, demos, batch_size=32, seed=0).learn(10_000, callback=stop_after_three)
    assert len(calls) == 3 and bc.num_timesteps == 96


def test_dagger_resumed_from_a_checkpoint_matches_the_uninterrupted_run(tmp_path) -> None:
    """The checkpoint holds the env's State mid-episode, the RNGs and the optimizer, so
    'train 300, save, load, train 200' equals 'train 500' label for label."""
    import torch

    def make():
        env = gym.make(ENV_ID)
        return env, envs.make_expert(env)

    env, expert = make()
    kwargs = dict(steps_per_round=70, beta_rounds=3, n_epochs=3, seed=1)
    dagger = DAgger(env, expert, **kwargs).learn(300)
    dagger.save(tmp_path / "ckpt.zip")
    dagger.learn(200, reset_num_timesteps=False)

    env2, expert2 = make()
    resumed = DAgger.load(tmp_path / "ckpt.zip", env=env2, expert=expert2)
    resumed.learn(200, reset_num_timesteps=False)

    a, b = dagger.demonstrations, resumed.demonstrations
    np.testing.assert_array_equal(a.observations, b.observations)
    np.testing.assert_array_equal(a.actions, b.actions)
    np.testing.assert_array_equal(a.episode_starts, b.episode_starts)
    for (name, p), (_, q) in zip(
        dagger.policy.state_dict().items(), resumed.policy.state_dict().items(), strict=True
    ):
        assert torch.equal(p, q), name


def test_suffix_and_seed_overrides_on_load(tmp_path, env, demos) -> None:
    bc = BC(env, demos, seed=0)
    path = bc.save(tmp_path / "run.v1")
    assert path.name == "run.v1.zip"
    assert BC.load(tmp_path / "run.v1").seed == 0
    assert BC.load(tmp_path / "run.v1", env=env, seed=3).seed == 3


def test_bc_resume_equals_uninterrupted_training(tmp_path, env, demos) -> None:
    import torch

    bc = BC(env, demos, seed=0).learn(1000)
    bc.save(tmp_path / "bc.zip")
    bc.learn(1000, reset_num_timesteps=False)
    resumed = BC.load(tmp_path / "bc.zip", env=env)
    resumed.set_demonstrations(demos)
    resumed.learn(1000, reset_num_timesteps=False)
    assert resumed.num_timesteps == bc.num_timesteps
    for p, q in zip(bc.policy.parameters(), resumed.policy.parameters(), strict=True):
        assert torch.equal(p, q)


def test_dagger_resume_goes_through_the_users_wrappers(tmp_path) -> None:
    def make():
        return gym.wrappers.TransformObservation(
            gym.make(ENV_ID), lambda o: 2 * o, gym.make(ENV_ID).observation_space
        )

    env = make()
    dagger = DAgger(env, envs.make_expert(gym.make(ENV_ID)), steps_per_round=30, seed=0)
    dagger.learn(30)
    dagger.save(tmp_path / "d.zip")
    resumed = DAgger.load(tmp_path / "d.zip", env=make())
    np.testing.assert_array_equal(resumed._obs, dagger._obs)


def test_retrain_from_scratch_is_seeded_and_resumable(tmp_path, env) -> None:
    import torch

    def run():
        return DAgger(
            gym.make(ENV_ID),
            envs.make_expert(env),
            steps_per_round=50,
            n_epochs=2,
            retrain_from_scratch=True,
            seed=0,
        ).learn(150)

    a, b = run(), run()
    for p, q in zip(a.policy.parameters(), b.policy.parameters(), strict=True):
        assert torch.equal(p, q)
    a.save(tmp_path / "a.zip")
    resumed = DAgger.load(tmp_path / "a.zip", env=gym.make(ENV_ID), expert=envs.make_expert(env))
    resumed.learn(50, reset_num_timesteps=False)
    assert resumed.round == 4


def test_dagger_logs_true_episode_returns_and_monotonic_steps(tmp_path, env) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    # beta = 1 throughout: the expert plays 500-step episodes split over 50-step rounds.
    dagger = DAgger(
        env,
        envs.make_expert(env),
        steps_per_round=50,
        n_epochs=1,
        beta_schedule=lambda i: 1.0,
        seed=0,
        tensorboard_log=str(tmp_path),
    )
    dagger.learn(1000)
    (run_dir,) = tmp_path.iterdir()
    events = EventAccumulator(str(run_dir))
    events.Reload()
    returns = [e.value for e in events.Scalars("rollout/ep_rew_mean")]
    assert returns and set(returns) == {500.0}
    for tag in ("train/loss", "dagger/beta", "dagger/expert_labels"):
        steps = [e.step for e in events.Scalars(tag)]
        assert steps == sorted(steps) and steps[-1] <= 1000, (tag, steps)


def test_dagger_executes_the_expert_at_rate_beta(env, monkeypatch) -> None:
    """Expert always 1, learner always 0: the executed actions show who acted."""
    expert = envs.make_expert(env)
    monkeypatch.setattr(expert, "act", lambda obs: np.ones(len(obs), dtype=np.int64))
    dagger = DAgger(
        env, expert, steps_per_round=1000, n_epochs=1, beta_schedule=lambda i: 0.5, seed=0
    )
    monkeypatch.setattr(
        dagger.policy,
        "predict",
        lambda obs, state=None, episode_start=None, deterministic=False: (0, state),
    )
    executed = []
    step = env.step
    monkeypatch.setattr(env, "step", lambda a: executed.append(int(a)) or step(a))
    dagger.learn(1000)
    assert 0.45 <= np.mean(executed) <= 0.55
    np.testing.assert_array_equal(dagger.demonstrations.actions, 1)  # labels: always the expert


def test_recurrent_expert_keeps_its_state_in_dagger(env) -> None:
    """DAgger with beta = 1 labels exactly what the recurrent expert does when it plays."""
    from sb3_contrib import RecurrentPPO

    expert = RecurrentPPO("MlpLstmPolicy", env, seed=0, n_steps=64).learn(64)
    reference = Demonstrations.collect(gym.make(ENV_ID), expert, n_steps=200, seed=0)
    dagger = DAgger(
        gym.make(ENV_ID),
        expert,
        steps_per_round=200,
        n_epochs=1,
        beta_schedule=lambda i: 1.0,
        seed=0,
    )
    dagger.learn(200)
    np.testing.assert_array_equal(dagger.demonstrations.actions, reference.actions)


def test_dagger_rejects_unknown_keyword_arguments(env) -> None:
    with pytest.raises(TypeError, match="n_epoch"):
        DAgger(env, envs.make_expert(env), n_epoch=3)


# -- hyperparameters: the constructor's keyword arguments ---------------------------------

PPO_HYPERPARAMETERS = {
    "n_envs",
    "learning_rate",
    "n_steps",
    "batch_size",
    "n_epochs",
    "gamma",
    "gae_lambda",
    "clip_range",
    "clip_range_vf",
    "vf_coef",
    "ent_coef",
    "max_grad_norm",
    "kl_coef",
    "target_kl",
    "kl_horizon",
    "sft_coef",
    "normalize_advantage",
}
BC_HYPERPARAMETERS = {"learning_rate", "batch_size", "ent_coef", "l2_coef", "max_grad_norm"}

#: What each agent's file holds under "hyperparameters" (DAgger's adds its BC learner's).
SAVED_HYPERPARAMETERS = {
    "bc": BC_HYPERPARAMETERS,
    "dagger": BC_HYPERPARAMETERS
    | {
        "steps_per_round",
        "beta_schedule",
        "beta_rounds",
        "beta_decay",
        "n_epochs",
        "deterministic_rollouts",
        "retrain_from_scratch",
    },
    "dril": {
        "ensemble_size",
        "quantile",
        "threshold",
        "cost",
        "shared_trunk",
        "ensemble_epochs",
        "ensemble_learning_rate",
        "bc_epochs",
        "bc_learning_rate",
        "bc_batch_size",
        "bc_mode",
        "bc_coef",
        "bc_batches_per_update",
        "rl_algorithm",
        "n_envs",
        "rl_kwargs",
        "train_env_kwargs",
    },
    "pgrank": {
        "learning_rate",
        "n_samples",
        "queries_per_update",
        "ent_coef",
        "max_grad_norm",
        "normalize_advantage",
    },
    "ppo": PPO_HYPERPARAMETERS,
    "ppo++": PPO_HYPERPARAMETERS | {"restart_horizon", "beta"},
    "aggrevated": PPO_HYPERPARAMETERS | {"restart_horizon", "beta"},
    "lols": PPO_HYPERPARAMETERS | {"restart_horizon", "tau", "ppo_beta", "aggrevated_beta"},
    "d2lols": PPO_HYPERPARAMETERS | {"restart_horizon", "tau", "ppo_beta", "aggrevated_beta"},
    "rlhf": {
        "rl",
        "rl_kwargs",
        "kl_coef",
        "initial_pairs",
        "pairs_per_refit",
        "refit_every",
        "n_models",
        "bootstrap",
        "rm_epochs",
        "rm_learning_rate",
        "rm_batch_size",
        "center_samples",
    },
    "dpo": {"beta", "learning_rate", "batch_size", "max_grad_norm", "warmup_steps"},
}


@pytest.mark.parametrize("name", sorted(AGENTS))
def test_each_agent_saves_its_constructor_hyperparameters(name) -> None:
    cls = AGENTS[name]
    saved = set(cls.hyperparameter_names)
    if cls is DAgger:
        # DAgger adds its supervised trainer's settings: read what a DAgger really saves
        env = gym.make(ENV_ID)
        saved = set(DAgger(env, envs.make_expert(env), device="cpu").get_hyperparameters())
    assert saved == SAVED_HYPERPARAMETERS[name]


def test_the_file_holds_the_constructor_arguments_given(tmp_path, env, demos) -> None:
    given = {
        "learning_rate": 3e-4,
        "batch_size": 32,
        "ent_coef": 0.0,
        "l2_coef": 1e-5,
        "max_grad_norm": 2.0,
    }
    path = BC(env, demos, seed=0, device="cpu", **given).save(tmp_path / "bc")
    with zipfile.ZipFile(path) as zf:
        meta = json.loads(zf.read("agent.json"))
    assert meta["hyperparameters"] == given


class SmoothedBC(BC):
    """BC with one more constructor argument, and no list of hyperparameters to update."""

    def __init__(self, env, demonstrations=None, *, label_smoothing: float = 0.0, **kwargs):
        super().__init__(env, demonstrations, **kwargs)
        self.label_smoothing = label_smoothing


def test_a_new_constructor_argument_is_saved_and_restored(tmp_path, env, demos) -> None:
    assert SmoothedBC.hyperparameter_names == (*BC.hyperparameter_names, "label_smoothing")
    SmoothedBC(env, demos, label_smoothing=0.1, batch_size=16, device="cpu").save(tmp_path / "s")
    loaded = SmoothedBC.load(tmp_path / "s")
    assert (loaded.label_smoothing, loaded.batch_size) == (0.1, 16)


def test_a_constructor_argument_without_its_attribute_is_refused_at_save(tmp_path, env) -> None:
    class ForgetfulBC(BC):
        def __init__(self, env, demonstrations=None, *, warmup: int = 0, **kwargs):
            super().__init__(env, demonstrations, **kwargs)

    with pytest.raises(AttributeError, match=r"ForgetfulBC.__init__ takes .*warmup"):
        ForgetfulBC(env, device="cpu").save(tmp_path / "f")


def test_agent_files_hold_demonstrations_without_a_temporary_folder(
    tmp_path, env, monkeypatch
) -> None:
    """DAgger's aggregate and DRIL's demonstrations go into the zip as .lfid bytes built in
    memory, the same bytes a saved .lfid file holds."""
    import tempfile
    import zipfile

    from lfi_gym.agents import DRIL

    def no_folders(*args, **kwargs):
        raise AssertionError("an agent file went through a temporary folder")

    dagger = DAgger(env, envs.make_expert(env), steps_per_round=50, n_epochs=1, seed=0).learn(50)
    demos = Demonstrations.collect(env, envs.make_expert(env), n_steps=30, seed=0)
    dril = DRIL(env, demos, ensemble_size=2, n_envs=1, seed=0, device="cpu")
    monkeypatch.setattr(tempfile, "TemporaryDirectory", no_folders)
    dagger_path, dril_path = dagger.save(tmp_path / "dagger"), dril.save(tmp_path / "dril")
    with zipfile.ZipFile(dagger_path) as zf:
        assert zf.read("aggregate.lfid") == dagger.demonstrations.to_bytes()
    loaded = DAgger.load(dagger_path, env=gym.make(ENV_ID))
    np.testing.assert_array_equal(loaded.demonstrations.actions, dagger.demonstrations.actions)
    loaded_dril = DRIL.load(dril_path, env=gym.make(ENV_ID))
    np.testing.assert_array_equal(loaded_dril.demonstrations.observations, demos.observations)


def test_a_version_1_file_is_refused_with_the_fix(tmp_path, env) -> None:
    """Version 1 pickled the policy (policy.pt): such a file is refused by its version, before
    any member is read, with the fix (train again with this version)."""
    from lfi_gym.agents.serialization import AgentFileError

    path = BC(env, device="cpu").save(tmp_path / "old")
    with zipfile.ZipFile(path) as zf:
        meta = json.loads(zf.read("agent.json"))
    meta["file_version"] = 1
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("agent.json", json.dumps(meta))
        zf.writestr("policy.pt", b"a version-1 torch pickle")
    with pytest.raises(AgentFileError, match=r"version 1 was written by an older lfi-gym.*"
                       r"Re-create it \(train the agent again\)"):  # fmt: skip
        BC.load(path)


# -- every kind of learner through the file format ------------------------------------------


class _ImageEnv(gym.Env):
    """Channel-first uint8 frames: ``policy="auto"`` trains SB3's CnnPolicy (Nature CNN)."""

    observation_space = gym.spaces.Box(0, 255, (3, 36, 36), dtype=np.uint8)
    action_space = gym.spaces.Discrete(3)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self._t = 0
        return self.observation_space.sample(), {}

    def step(self, action):
        self._t += 1
        return self.observation_space.sample(), 0.0, self._t >= 10, False, {}


class _DictEnv(_ImageEnv):
    """Dict observations (not text, not ranking): ``policy="auto"`` is MultiInputPolicy."""

    observation_space = gym.spaces.Dict(
        {
            "position": gym.spaces.Box(-1.0, 1.0, (3,), dtype=np.float32),
            "frame": gym.spaces.Box(0, 255, (3, 36, 36), dtype=np.uint8),
            "flag": gym.spaces.Discrete(2),
        }
    )


def _learner_case(kind: str):
    """(env, expert, policy) for one kind of learner."""
    from sb3_contrib import QRDQN
    from stable_baselines3 import DQN, PPO

    if kind == "cnn":
        env = _ImageEnv()
        env.observation_space.seed(0)
        return env, PPO("CnnPolicy", env, seed=1, device="cpu"), "auto"
    if kind == "multi_input":
        env = _DictEnv()
        env.observation_space.seed(0)
        return env, PPO("MultiInputPolicy", env, seed=1, device="cpu"), "auto"
    if kind == "minatar":
        env = gym.make("MinAtarImitation-Breakout-v0", horizon=60)
        return env, envs.make_expert(env), "auto"
    env = gym.make(ENV_ID)
    model_class = {"dqn": DQN, "qrdqn": QRDQN}[kind]
    return env, envs.make_expert(env), model_class("MlpPolicy", env, seed=1, device="cpu")


@pytest.mark.parametrize("kind", ["cnn", "multi_input", "minatar", "dqn", "qrdqn"])
def test_every_kind_of_learner_saves_loads_and_resumes_exactly(kind, tmp_path) -> None:
    """SB3's CNN (Nature CNN, MinAtar network), MultiInput, DQN and QR-DQN learners: the
    file rebuilds the same policy (predictions) and training resumes bit for bit."""
    import torch

    env, expert, policy = _learner_case(kind)
    demos = Demonstrations.collect(env, expert, n_steps=48, seed=0)
    bc = BC(env, demos, policy=policy, seed=0, batch_size=16, device="cpu").learn(48)
    path = bc.save(tmp_path / kind)
    loaded = BC.load(path, env=env, device="cpu")
    assert type(loaded.policy) is type(bc.policy)
    obs = demos.select(np.arange(16)).observations
    np.testing.assert_array_equal(
        loaded.predict(obs, deterministic=True)[0], bc.predict(obs, deterministic=True)[0]
    )
    loaded.set_demonstrations(demos)
    bc.learn(48, reset_num_timesteps=False)
    loaded.learn(48, reset_num_timesteps=False)
    for p, q in zip(bc.policy.parameters(), loaded.policy.parameters(), strict=True):
        assert torch.equal(p, q)


def test_an_lm_policy_saves_loads_and_resumes_exactly(tmp_path) -> None:
    """LMPolicy's model is saved as its config (JSON) and safetensors weights, tied
    embeddings once; loading builds it from transformers' own classes."""
    import torch

    env = gym.make("TextGen-TinyReviews-v0", max_new_tokens=4)
    demos = Demonstrations.collect(env, envs.make_expert(env), n_steps=8, seed=0)
    bc = BC(env, demos, seed=0, batch_size=4, device="cpu").learn(8)
    path = bc.save(tmp_path / "lm")
    with zipfile.ZipFile(path) as zf:
        description = json.loads(zf.read("policy.json"))
        weights = zf.read("policy.safetensors")
    header = json.loads(weights[8 : 8 + int.from_bytes(weights[:8], "little")])
    aliases = json.loads(header["__metadata__"]["aliases"])
    assert aliases == {"model.lm_head.weight": "model.transformer.wte.weight"}  # tied, once
    assert description["class"] == "lfi_gym.agents.lm_policy.LMPolicy"
    assert description["constructor"]["model"]["transformers_config"]["model_type"] == "gpt2"
    loaded = BC.load(path, env=env, device="cpu")
    obs = demos.select(np.arange(8)).observations
    np.testing.assert_array_equal(
        loaded.predict(obs, deterministic=True)[0], bc.predict(obs, deterministic=True)[0]
    )
    loaded.set_demonstrations(demos)
    bc.learn(8, reset_num_timesteps=False)
    loaded.learn(8, reset_num_timesteps=False)
    for p, q in zip(bc.policy.parameters(), loaded.policy.parameters(), strict=True):
        assert torch.equal(p, q)


def test_dril_on_minatar_round_trips_its_a2c_model(tmp_path) -> None:
    """DRIL's A2C (RMSprop) on MinAtar's network: policy_kwargs name MinAtarCNN, the model's
    optimizer and counters come back, and training goes on."""
    import torch

    from lfi_gym.agents import DRIL

    env = gym.make("MinAtarImitation-Breakout-v0", horizon=60)
    demos = Demonstrations.collect(env, envs.make_expert(env), n_steps=48, seed=0)
    dril = DRIL(
        env, demos, ensemble_size=2, ensemble_epochs=1, bc_epochs=1, n_envs=1,
        rl_kwargs={"n_steps": 8}, seed=0, device="cpu",
    ).learn(16)  # fmt: skip
    path = dril.save(tmp_path / "dril")
    loaded = DRIL.load(path, env=gym.make("MinAtarImitation-Breakout-v0", horizon=60))
    assert type(loaded.model) is type(dril.model) and loaded.model._n_updates == 2
    assert loaded.model.num_timesteps == dril.model.num_timesteps == 16
    saved_state = dril.model.policy.optimizer.state_dict()["state"]
    loaded_state = loaded.model.policy.optimizer.state_dict()["state"]
    for key, value in saved_state.items():
        assert torch.equal(value["square_avg"], loaded_state[key]["square_avg"])
    obs = demos.observations[:16]
    np.testing.assert_array_equal(
        loaded.predict(obs, deterministic=True)[0], dril.predict(obs, deterministic=True)[0]
    )
    loaded.learn(16, reset_num_timesteps=False)
    assert loaded.model._n_updates == 4
