"""Which kinds of env each agent takes: a single env, Gymnasium's vector env (gym.make_vec)
and SB3's VecEnv (DummyVecEnv, make_vec_env). BC and PPO take all of them; DAgger, DRIL and
PGRank drive or copy one env themselves and refuse a vector env, naming the single one."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv

from lfi_gym import envs
from lfi_gym.agents import BC, DRIL, PPO, DAgger, Demonstrations, PGRank

ENV_ID = "Control-CartPole-v0"
RANK_ID = "Rank-Synthetic-v0"


def vector_envs(env_id: str) -> dict:
    return {
        "gym.make_vec": lambda: gym.make_vec(env_id, num_envs=2),
        "DummyVecEnv": lambda: DummyVecEnv([lambda: gym.make(env_id)] * 2),
        "make_vec_env": lambda: make_vec_env(env_id, n_envs=2),
    }


@pytest.fixture(scope="module")
def demos() -> Demonstrations:
    env = gym.make(ENV_ID)
    return Demonstrations.collect(env, envs.make_expert(env), n_episodes=1, seed=0)


def _weights(agent) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in agent.policy.parameters()])


@pytest.mark.parametrize("kind", list(vector_envs(ENV_ID)))
def test_bc_trains_on_a_vector_env_as_on_one_env(kind: str, demos) -> None:
    """BC reads one row's spaces from the env, so the weights match BC on a single env."""
    vec = vector_envs(ENV_ID)[kind]()
    on_vec = BC(vec, demos, batch_size=32, seed=0).learn(96)
    on_single = BC(gym.make(ENV_ID), demos, batch_size=32, seed=0).learn(96)
    assert on_vec.get_env() is vec
    assert torch.equal(_weights(on_vec), _weights(on_single))
    assert not torch.equal(_weights(on_vec), _weights(BC(gym.make(ENV_ID), demos, seed=0)))
    actions, _ = on_vec.predict(np.zeros((2, 4), dtype=np.float32), deterministic=True)
    assert actions.shape == (2,)


def test_bc_set_env_takes_a_vector_env_and_checks_its_rows(demos) -> None:
    bc = BC(gym.make(ENV_ID), demos, seed=0)
    vec = make_vec_env(ENV_ID, n_envs=2)
    bc.set_env(vec)
    assert bc.get_env() is vec
    with pytest.raises(ValueError, match="observation_space"):
        bc.set_env(gym.make_vec(RANK_ID, num_envs=2))


def _ppo(env) -> PPO:
    return PPO(env, "MlpPolicy", n_envs=2, n_steps=32, batch_size=32, n_epochs=1, seed=0)


def test_ppo_trains_on_an_sb3_dummy_vec_env_as_on_gym_make_vec() -> None:
    """A DummyVecEnv gives its rows to a restartable vector env: the same rows, the same
    episodes and so the same weights as on gym.make_vec's rows."""
    on_sb3 = _ppo(make_vec_env(ENV_ID, n_envs=2)).learn(128)
    on_gym = _ppo(gym.make_vec(ENV_ID, num_envs=2)).learn(128)
    assert on_sb3.num_timesteps == on_gym.num_timesteps >= 128
    assert torch.equal(_weights(on_sb3), _weights(on_gym))
    assert not torch.equal(_weights(on_sb3), _weights(_ppo(gym.make(ENV_ID))))


def test_ppo_refuses_a_subprocess_vec_env() -> None:
    vec = SubprocVecEnv([lambda: gym.make(ENV_ID)], start_method="fork")
    try:
        with pytest.raises(TypeError, match=r"other processes.*gym\.make_vec"):
            _ppo(vec).learn(32)
    finally:
        vec.close()


@pytest.mark.parametrize("kind", list(vector_envs(ENV_ID)))
def test_dagger_and_dril_refuse_a_vector_env_naming_the_single_env(kind: str, demos) -> None:
    expert = envs.make_expert(gym.make(ENV_ID))
    pattern = r"takes a single env, not a vector env .*Pass gym\.make\('Control-CartPole-v0'\)"
    with pytest.raises(TypeError, match=pattern):
        DAgger(vector_envs(ENV_ID)[kind](), expert)
    with pytest.raises(TypeError, match="n_envs=.*" + pattern.split(".*")[1]):
        DRIL(vector_envs(ENV_ID)[kind](), demos)


@pytest.mark.parametrize("kind", list(vector_envs(RANK_ID)))
def test_pgrank_refuses_a_vector_env_naming_the_single_env(kind: str) -> None:
    with pytest.raises(TypeError, match=r"Pass gym\.make\('Rank-Synthetic-v0'\)"):
        PGRank(vector_envs(RANK_ID)[kind]())


def test_set_env_refuses_a_vector_env_where_the_constructor_does(demos) -> None:
    env = gym.make(ENV_ID)
    dagger = DAgger(env, envs.make_expert(env), steps_per_round=10, seed=0)
    with pytest.raises(TypeError, match=r"DAgger takes a single env"):
        dagger.set_env(make_vec_env(ENV_ID, n_envs=2))
    assert dagger.env is env


def test_bc_logs_to_tensorboard_once_per_short_learn_call(tmp_path, demos) -> None:
    """The trainer logs every 100 updates; a learn call with fewer still logs its last
    update once, and one whose last update was due is not logged twice."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    assert len(demos) == 500  # the oracle's full episode: 10 batches of 50 per epoch
    bc = BC(gym.make(ENV_ID), demos, batch_size=50, seed=0, tensorboard_log=str(tmp_path))
    bc.learn(100, tb_log_name="run")  # updates 1 and 2
    bc.learn(150, tb_log_name="run", reset_num_timesteps=False)  # 3 to 5
    bc.learn(95 * 50, tb_log_name="run", reset_num_timesteps=False)  # 6 to 100: due at 100
    (run_dir,) = tmp_path.iterdir()
    events = EventAccumulator(str(run_dir)).Reload()
    assert [(e.step, e.value) for e in events.Scalars("train/n_updates")] == [
        (100, 2),
        (250, 5),
        (5000, 100),
    ]
    assert [e.step for e in events.Scalars("train/loss")] == [100, 250, 5000]
