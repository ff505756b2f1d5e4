"""MinAtarImitation-*: spaces, oracles, streamed demonstrations, and SB3 PPO / A2C
training unmodified on these envs with their saved models used as experts."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from stable_baselines3 import A2C, PPO

from lfi_gym import envs
from lfi_gym.agents import DAgger, Demonstrations
from lfi_gym.agents.data import record
from lfi_gym.agents.demofile import DemonstrationsFileError, DemonstrationsWriter
from lfi_gym.envs import StateError
from lfi_gym.envs.atari import MINATAR_GAMES

BATCH = {PPO: {"batch_size": 32}, A2C: {}}


def _play(env: gym.Env, policy, seed: int) -> float:
    obs, _ = env.reset(seed=seed)
    total, done = 0.0, False
    while not done:
        action, _ = policy.predict(obs)
        obs, reward, terminated, truncated, _ = env.step(action)
        total, done = total + reward, terminated or truncated
    return total


class _Random:
    def __init__(self, env: gym.Env) -> None:
        self.action_space = env.action_space
        self.action_space.seed(0)

    def predict(self, obs):
        return self.action_space.sample(), None


@pytest.mark.parametrize("game", ["Breakout", "Freeway", "SpaceInvaders"])
def test_oracle_beats_random_play(game: str) -> None:
    env = gym.make(f"MinAtarImitation-{game}-v0", horizon=300)
    oracle = _play(env, envs.make_expert(env), seed=0)
    random = np.mean([_play(env, _Random(env), seed=s) for s in range(3)])
    assert oracle >= random + 3, (oracle, random)


def test_spaces_and_other_game_state() -> None:
    for suffix in MINATAR_GAMES.values():
        env = gym.make(f"MinAtarImitation-{suffix}-v0")
        obs, _ = env.reset(seed=0)
        assert obs.dtype == np.uint8 and obs.shape[:2] == (10, 10) and obs.max() == 1
    breakout, freeway = (
        gym.make("MinAtarImitation-Breakout-v0"),
        gym.make("MinAtarImitation-Freeway-v0"),
    )
    breakout.reset(seed=0)
    freeway.reset(seed=0)
    with pytest.raises(StateError, match="MinAtarImitation-Freeway-v0"):
        breakout.reset_to(freeway.get_state())
    forged = dataclasses.replace(freeway.get_state(), env_id="MinAtarImitation-Breakout-v0")
    with pytest.raises(StateError, match="freeway"):
        breakout.reset_to(forged)
    with pytest.raises(ValueError, match="action"):
        freeway.step(3)  # Freeway's action set is noop, up, down
    with pytest.raises(ValueError, match="unknown MinAtar game"):
        gym.make("MinAtarImitation-Breakout-v0", game="tetris")


def test_recorded_demonstrations_stream_to_a_valid_file(tmp_path: Path) -> None:
    env = gym.make("MinAtarImitation-Breakout-v0", horizon=60)
    path = record(env, envs.make_expert(env), 3, tmp_path / "d.lfid", seed=0)
    demos = Demonstrations.load(path)
    expected = Demonstrations.collect(env, envs.make_expert(env), 3, seed=0)
    assert demos.n_episodes == 3 and len(demos) == len(expected) == 180
    assert np.array_equal(demos.observations, expected.observations)
    assert np.array_equal(demos.actions, expected.actions)
    assert np.array_equal(demos.rewards, expected.rewards)
    assert np.array_equal(demos.truncated, expected.truncated)
    assert demos.env_id == "MinAtarImitation-Breakout-v0"
    assert demos.observations.dtype == np.uint8


def test_corrupt_demonstration_file_is_refused(tmp_path: Path) -> None:
    env = gym.make("MinAtarImitation-Freeway-v0", horizon=20)
    path = record(env, envs.make_expert(env), 1, tmp_path / "d.lfid", seed=0)
    raw = bytearray(path.read_bytes())
    raw[100] ^= 0xFF  # a byte inside the observations
    path.write_bytes(bytes(raw))
    with pytest.raises(DemonstrationsFileError, match="checksum"):
        Demonstrations.load(path)
    path.write_bytes(bytes(raw[: len(raw) // 2]))
    with pytest.raises(DemonstrationsFileError, match="truncated"):
        Demonstrations.load(path)


def test_interrupted_recording_leaves_no_file(tmp_path: Path) -> None:
    env = gym.make("MinAtarImitation-Breakout-v0")
    target = tmp_path / "d.lfid"
    with (
        pytest.raises(RuntimeError),
        DemonstrationsWriter(target, env.observation_space, env.action_space) as writer,
    ):
        obs, _ = env.reset(seed=0)
        writer.add(obs, 0, 0.0, True, False, False)
        raise RuntimeError("interrupted")
    assert not target.exists() and not list(tmp_path.iterdir())
    with (
        pytest.raises(ValueError, match="shape"),
        DemonstrationsWriter(target, env.observation_space, env.action_space) as writer,
    ):
        writer.add(np.zeros((3, 3), np.uint8), 0, 0.0, True, False, False)


@pytest.mark.parametrize("algorithm", [PPO, A2C])
def test_sb3_trains_unmodified_and_its_saved_model_is_an_expert(algorithm, tmp_path) -> None:
    env = gym.make("MinAtarImitation-Breakout-v0", horizon=100)
    model = algorithm("MlpPolicy", env, n_steps=32, seed=0, device="cpu", **BATCH[algorithm])
    model.learn(256)
    model.save(tmp_path / "model")
    expert = algorithm.load(tmp_path / "model", device="cpu")
    demos = Demonstrations.collect(env, expert, n_steps=50, seed=0)
    assert len(demos) == 50 and env.action_space.contains(int(demos.actions[0]))
    learner = DAgger(env, expert, steps_per_round=40, n_epochs=1, seed=0, device="cpu")
    learner.learn(80)
    action, _ = learner.predict(env.reset(seed=1)[0])
    assert env.action_space.contains(int(action))


def test_sb3_cnn_policy_trains_on_ale_frames(tmp_path: Path) -> None:
    env = gym.make("AtariImitation-Pong-v0")
    model = PPO("CnnPolicy", env, n_steps=16, batch_size=16, n_epochs=1, seed=0, device="cpu")
    model.learn(32)
    model.save(tmp_path / "pong")
    expert = PPO.load(tmp_path / "pong", device="cpu")
    demos = Demonstrations.collect(env, expert, n_steps=8, seed=0)
    assert demos.observations.shape == (8, 4, 84, 84)
