"""BC versus DAgger on Control-CartPole-v0 at equal expert labels.

    python examples/cartpole_bc_vs_dagger.py [--labels 200] [--seeds 3]

With few, short demonstrations BC only sees the start of an expert episode and drifts
off later (covariate shift); DAgger spends the same labels on states it visits itself.
"""

from __future__ import annotations

import argparse

import gymnasium as gym
import numpy as np

from lfi_gym import envs
from lfi_gym.agents import BC, DAgger, Demonstrations, episode_returns


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labels", type=int, default=200)
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()

    results: dict[str, list[float]] = {"BC": [], "DAgger": []}
    for seed in range(args.seeds):
        env = gym.make("Control-CartPole-v0")
        expert = envs.make_expert(env)
        demos = Demonstrations.collect(env, expert, n_steps=args.labels, seed=seed)
        bc = BC(env, demos, seed=seed).learn(total_timesteps=100 * args.labels)
        # Ross et al.'s schedule: the expert acts in round 0 only (beta_rounds=1).
        dagger = DAgger(
            env,
            expert,
            steps_per_round=max(1, args.labels // 4),
            beta_rounds=1,
            n_epochs=25,
            seed=seed,
        ).learn(total_timesteps=args.labels)
        for name, agent in (("BC", bc), ("DAgger", dagger)):
            eval_env = gym.make("Control-CartPole-v0")
            results[name].append(episode_returns(agent, eval_env, 10, seed=1000 + seed).mean())

    print(f"{args.labels} expert labels, {args.seeds} seeds (return, max 500)")
    for name, returns in results.items():
        mean, std = np.mean(returns), np.std(returns)
        print(f"  {name:7s} {mean:6.1f} +- {std:5.1f}   {np.round(returns, 1)}")


if __name__ == "__main__":
    main()
