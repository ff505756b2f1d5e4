"""Score and cost per action of the Atari and MinAtar oracles (no sticky actions).

    nice -n 10 python benchmarks/atari_oracles.py --env AtariImitation-Pong-v0 --episodes 10

Prints one line per episode and a summary: mean +- std raw score, the human-normalised
score (usual random / human scores: docs/paper-settings.md) and the oracle's time per action.
"""

from __future__ import annotations

import argparse
import time

import gymnasium as gym
import numpy as np

from lfi_gym import envs

HUMAN = {  # game: (random, human)
    "Pong": (-20.7, 14.6),
    "Breakout": (1.7, 30.5),
    "BeamRider": (363.9, 16926.5),
    "SpaceInvaders": (148.0, 1668.7),
    "Qbert": (163.9, 13455.0),
    "MsPacman": (307.3, 6951.6),
}


def run(env_id: str, episodes: int, seed: int, max_frames: int | None, **budget) -> None:
    """Play ``episodes`` full episodes with the oracle and print scores and cost."""
    kwargs = {"max_frames": max_frames} if max_frames else {}  # (ALE ids only)
    env = gym.make(env_id, **kwargs)
    expert = env.unwrapped.make_expert(**budget) if budget else envs.make_expert(env)
    scores, steps, seconds = [], 0, 0.0
    for episode in range(episodes):
        obs, _ = env.reset(seed=seed + episode)
        done, score = False, 0.0
        while not done:
            start = time.perf_counter()
            action, _ = expert.predict(obs)
            seconds += time.perf_counter() - start
            obs, reward, terminated, truncated, info = env.step(action)
            score += info.get("raw_reward", reward)  # MinAtar has no clipping: reward is raw
            steps += 1
            done = terminated or truncated
        scores.append(score)
        print(f"{env_id} episode {episode}: score {score:g} ({steps} steps so far)", flush=True)
    game = env_id.split("-")[1]
    mean = float(np.mean(scores))
    line = f"{env_id}: {mean:.1f} +- {np.std(scores):.1f} over {episodes} episodes"
    if env_id.startswith("AtariImitation-") and game in HUMAN:
        random, human = HUMAN[game]
        line += f", human-normalised {(mean - random) / (human - random):.2f}"
    print(line + f", {1000 * seconds / steps:.2f} ms per action", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--env", required=True)
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-frames", type=int, default=None, help="episode cap in frames")
    parser.add_argument("--depth", type=int, default=None, help="ActionSearchOracle depth")
    args = parser.parse_args()
    budget = {"depth": args.depth} if args.depth else {}
    run(args.env, args.episodes, args.seed, args.max_frames, **budget)


if __name__ == "__main__":
    main()
