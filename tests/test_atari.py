"""AtariImitation-*: DRIL preprocessing inside the env, its options, bad input, and the
RAM positions the oracles rely on. (The restart contract itself is checked for every id
by tests/test_conformance.py.)"""

from __future__ import annotations

import dataclasses

import gymnasium as gym
import numpy as np
import pytest

from lfi_gym import envs
from lfi_gym.envs import StateError
from lfi_gym.envs.atari.ale import AtariImitationEnv
from lfi_gym.envs.atari.oracles import (
    BREAKOUT_PADDLE_X,
    PONG_BALL_Y,
    PONG_PLAYER_Y,
)


def test_spaces_and_raw_score_in_info() -> None:
    env = gym.make("AtariImitation-Pong-v0")
    obs, info = env.reset(seed=0)
    assert env.observation_space == gym.spaces.Box(0, 255, (4, 84, 84), np.uint8)
    assert obs.shape == (4, 84, 84) and obs.dtype == np.uint8
    assert (obs == obs[0]).all()  # the stack starts filled with the first frame
    assert env.action_space.n == 6 and env.unwrapped.get_action_meanings()[1] == "FIRE"
    assert info["lives"] == 0 and info["score"] == 0.0
    obs2, *_ = env.step(0)
    assert (obs2[:3] == obs[1:]).all()  # the stack shifts by one frame per step


def test_action_outside_the_action_set_is_refused() -> None:
    env = gym.make("AtariImitation-Breakout-v0")
    env.reset(seed=0)
    state = env.get_state()
    for bad in (env.action_space.n, -1, 17):  # 17 is an ALE action Breakout does not use
        with pytest.raises(ValueError, match="action"):
            env.step(bad)
    assert env.get_state() == state


def test_state_from_another_game_is_refused_by_name() -> None:
    pong, breakout = gym.make("AtariImitation-Pong-v0"), gym.make("AtariImitation-Breakout-v0")
    pong.reset(seed=0)
    breakout.reset(seed=0)
    before = breakout.get_state()
    with pytest.raises(StateError, match="AtariImitation-Pong-v0"):
        breakout.reset_to(pong.get_state())
    # Same id but the payload of another game (e.g. a hand-edited state): still refused.
    forged = dataclasses.replace(pong.get_state(), env_id="AtariImitation-Breakout-v0")
    with pytest.raises(StateError, match="pong"):
        breakout.reset_to(forged)
    assert breakout.get_state() == before


def test_restart_hundreds_of_steps_later_is_bit_exact() -> None:
    env = gym.make("AtariImitation-SpaceInvaders-v0")
    env.reset(seed=3)
    env.action_space.seed(3)
    for _ in range(150):
        env.step(env.action_space.sample())
    state = env.get_state()
    actions = [env.action_space.sample() for _ in range(300)]
    first = [env.step(a) for a in actions]
    env.reset(seed=99)
    env.reset_to(state)
    again = [env.step(a) for a in actions]
    for a, b in zip(first, again, strict=True):
        assert (a[0] == b[0]).all() and a[1:] == b[1:]


def test_clip_rewards_keeps_the_raw_score_in_info() -> None:
    env = gym.make("AtariImitation-SpaceInvaders-v0", clip_rewards=True)
    env.reset(seed=0)
    env.action_space.seed(0)
    raws = []
    for _ in range(400):
        _, reward, terminated, truncated, info = env.step(env.action_space.sample())
        assert reward == np.sign(info["raw_reward"])
        raws.append(info["raw_reward"])
        if terminated or truncated:
            break
    assert max(raws) > 1  # Space Invaders pays 5-30 per alien: clipping did something


def test_episodic_life_ends_at_a_lost_life_and_the_game_goes_on() -> None:
    env = gym.make("AtariImitation-Breakout-v0", episodic_life=True, fire_reset=True)
    _, info = env.reset(seed=0)
    lives = info["lives"]
    for _ in range(2000):
        _, _, terminated, truncated, info = env.step(0)  # never moves: loses the ball
        if terminated or truncated:
            break
    assert terminated and info["lives"] == lives - 1
    _, info = env.reset()
    assert info["lives"] == lives - 1  # same game, one life fewer


def test_frame_cap_truncates() -> None:
    env = gym.make("AtariImitation-Pong-v0", max_frames=40)
    env.reset(seed=0)
    flags = [env.step(0)[3] for _ in range(10)]
    assert flags == [False] * 9 + [True]


def test_bad_construction_arguments() -> None:
    with pytest.raises(ValueError, match="unknown ALE game"):
        AtariImitationEnv("not_a_game")
    with pytest.raises(ValueError, match="max_frames"):
        AtariImitationEnv("pong", max_frames=-1)


def test_matches_gymnasium_preprocessing() -> None:
    """Same frames as ALE frameskip 1 + AtariPreprocessing + FrameStackObservation, up to
    the rounding of OpenCV's area resize (noops off on both sides so the runs align)."""
    pytest.importorskip("cv2")
    import ale_py

    gym.register_envs(ale_py)
    theirs = gym.wrappers.FrameStackObservation(
        gym.wrappers.AtariPreprocessing(
            gym.make("ALE/Breakout-v5", frameskip=1, repeat_action_probability=0.0),
            noop_max=0,
        ),
        4,
    )
    ours = gym.make("AtariImitation-Breakout-v0", noop_max=0)
    a, _ = theirs.reset(seed=0)
    b, _ = ours.reset(seed=0)
    rng = np.random.default_rng(0)
    for _ in range(60):
        assert np.abs(a.astype(int) - b.astype(int)).max() <= 1
        action = int(rng.integers(4))
        a, ra, *_ = theirs.step(action)
        b, rb, *_ = ours.step(action)
        assert ra == rb


def test_ram_positions_used_by_the_oracles() -> None:
    """Pong: RIGHT moves the player's paddle up (RAM 51 falls), LEFT down; the ball's
    height (RAM 54) is 0 before the serve, then moves. Breakout: RIGHT raises RAM 72."""
    env = gym.make("AtariImitation-Pong-v0")
    env.reset(seed=0)
    ale = env.unwrapped.ale
    y0 = int(ale.getRAM()[PONG_PLAYER_Y])
    for _ in range(4):
        env.step(2)  # RIGHT
    y1 = int(ale.getRAM()[PONG_PLAYER_Y])
    for _ in range(4):
        env.step(3)  # LEFT
    assert y1 < y0 and int(ale.getRAM()[PONG_PLAYER_Y]) > y1
    heights = set()
    for _ in range(30):
        env.step(0)
        heights.add(int(ale.getRAM()[PONG_BALL_Y]))
    assert len(heights) > 5

    env = gym.make("AtariImitation-Breakout-v0")
    env.reset(seed=0)
    x0 = int(env.unwrapped.ale.getRAM()[BREAKOUT_PADDLE_X])
    for _ in range(5):
        env.step(2)  # RIGHT
    assert int(env.unwrapped.ale.getRAM()[BREAKOUT_PADDLE_X]) > x0


def test_pong_oracle_wins_points_and_is_bound() -> None:
    env = gym.make("AtariImitation-Pong-v0")
    expert = envs.make_expert(env)
    assert expert.privileged
    obs, _ = env.reset(seed=0)
    score = 0.0
    for _ in range(200):  # the first point comes after ~90 steps
        action, _ = expert.predict(obs)
        obs, reward, *_ = env.step(action)
        score += reward
    assert score >= 2
    with pytest.raises(ValueError, match="one situation"):
        expert.predict(np.stack([obs, obs]))


def test_breakout_oracle_breaks_bricks_without_losing_a_life() -> None:
    env = gym.make("AtariImitation-Breakout-v0")
    expert = envs.make_expert(env)
    obs, info = env.reset(seed=0)
    lives, score = info["lives"], 0.0
    for _ in range(250):
        action, _ = expert.predict(obs)
        obs, reward, _, _, info = env.step(action)
        score += reward
    assert score >= 5 and info["lives"] == lives


def test_search_oracle_budget_is_validated_and_spent() -> None:
    env = gym.make("AtariImitation-SpaceInvaders-v0")
    with pytest.raises(ValueError, match="depth"):
        env.unwrapped.make_expert(depth=0)
    expert = env.unwrapped.make_expert(depth=3)
    obs, _ = env.reset(seed=0)
    state = env.get_state()
    expert.predict(obs)
    assert expert.frames_searched == 3 * 4 * env.action_space.n
    assert env.get_state() == state  # searching leaves the env where it was
