"""Why DAgger trails BC at few labels on a MinAtar game: the benchmark's DAgger with one
change at a time.

    python benchmarks/dagger_probe.py --game Breakout --seed 1 --demos 1

Prints, as markdown table rows, the score (mean of the benchmark's 10 evaluation episodes of
that seed, as ``lfi-gym compare --suite atari-imitation`` scores them) of BC on ``--demos``
oracle episodes and of DAgger with the oracle at as many labels as they hold: the suite's
settings, more passes, beta = 1 in every round (expert-driven states only: this must equal
BC), and two rounds whose second is all learner.
"""

from __future__ import annotations

import argparse
import dataclasses

import gymnasium as gym
import numpy as np
import torch

from lfi_gym import agents, envs
from lfi_gym.agents.learners import auto_policy
from lfi_gym.compare import evaluate
from lfi_gym.suites import get_suite


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--game", default="Breakout", help="MinAtar game")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--demos", type=int, default=1, help="demonstrations (episodes)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    # The atari-imitation suite's settings (BC's passes, DAgger's rounds), on this game.
    entry = dataclasses.replace(
        get_suite("atari-imitation")[0], env_id=f"MinAtarImitation-{args.game}-v0"
    )
    env = gym.make(entry.env_id, **entry.env_kwargs)
    policy, policy_kwargs = auto_policy(env.observation_space)

    def score(agent) -> float:
        return float(np.mean(evaluate(agent, entry, args.seed)))

    demo_env = gym.make(entry.env_id, **entry.env_kwargs)
    demos = agents.Demonstrations.collect(
        demo_env, envs.make_expert(demo_env), n_episodes=args.demos, seed=args.seed
    )
    labels = len(demos)
    bc = agents.BC(env, demos, policy=policy, policy_kwargs=policy_kwargs, seed=args.seed)
    bc.learn(entry.n_epochs * len(demos))
    print(f"| BC on {len(demos)} demonstration states | {score(bc):.1f} |")

    suite = dict(entry.agent_kwargs["dagger"])
    variants = {
        "suite default": {},
        f"{entry.n_epochs} passes per round": {"n_epochs": entry.n_epochs},
        "beta = 1 in every round": {"beta_schedule": lambda round_index: 1.0},
        "2 rounds (the second all learner)": {
            "steps_per_round": labels // 2,
            "beta_rounds": 1,
        },
    }
    for name, change in variants.items():
        dagger = agents.DAgger(
            env,
            envs.make_expert(env),
            policy=policy,
            policy_kwargs=policy_kwargs,
            seed=args.seed,
            **{**suite, **change},
        )
        dagger.learn(labels)
        print(f"| DAgger, {name} | {score(dagger):.1f} |")


if __name__ == "__main__":
    main()
