"""Why DRIL does or does not beat BC on a game: one DRIL run with its diagnostics.

Prints, as one JSON line: the BC warm start's score, DRIL's score after ``--steps`` RL
steps, how often DRIL's reward is +1 on the warm start's own rollout (500 deterministic
steps) against on the demonstrations (if both are ~98% the ensemble cannot tell the
learner's states from the expert's and the reward carries no signal), and DRIL's mean
training reward.

    python benchmarks/dril_probe.py --game Freeway --demos 1 --steps 200000 --seed 0 \
        --dril-kwargs '{"quantile": 0.9}'

``--eval-every N`` also scores DRIL every N steps (``dril_curve``: steps -> score).
"""

from __future__ import annotations

import argparse
import dataclasses
import json

import gymnasium as gym
import numpy as np
import torch

from lfi_gym import agents, envs
from lfi_gym.agents.dril import DRIL
from lfi_gym.compare import evaluate
from lfi_gym.suites import get_suite


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--game", default="Freeway", help="MinAtar game, e.g. SpaceInvaders")
    parser.add_argument("--demos", type=int, default=1)
    parser.add_argument("--steps", type=int, default=200_000, help="DRIL RL steps")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dril-kwargs", default="{}", help="JSON for DRIL, e.g. a quantile")
    parser.add_argument(
        "--eval-every", type=int, default=None, help="also score DRIL every N RL steps"
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    # The atari-imitation suite's DRIL settings and evaluation episodes, on this game.
    entry = dataclasses.replace(
        get_suite("atari-imitation")[0], env_id=f"MinAtarImitation-{args.game}-v0"
    )
    settings = dict(entry.agent_kwargs["dril"])
    settings.pop("total_timesteps")
    env = gym.make(entry.env_id, **entry.env_kwargs)
    demo_env = gym.make(entry.env_id, **entry.env_kwargs)
    demos = agents.Demonstrations.collect(
        demo_env, envs.make_expert(demo_env), n_episodes=args.demos, seed=args.seed
    )
    dril = DRIL(
        env, demos, seed=args.seed, **{**settings, **json.loads(args.dril_kwargs)}
    ).pretrain()

    def score() -> float:
        # evaluate() seeds torch for its episodes; keep DRIL's training draws as they were.
        rng = torch.get_rng_state()
        scores = evaluate(dril, entry, args.seed)
        torch.set_rng_state(rng)
        return float(np.mean(scores))

    warm_start = score()
    observations, actions = [], []
    obs, _ = env.reset(seed=123)
    for _ in range(500):
        action, _ = dril.predict(obs, deterministic=True)
        observations.append(obs)
        actions.append(action)
        obs, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            obs, _ = env.reset()
    on_rollout = float((dril.rewards(np.array(observations), np.array(actions)) > 0).mean())
    on_demos = float((dril.rewards(demos.observations, demos.actions) > 0).mean())
    # DRIL's score every --eval-every RL steps (the compare runner scores a run once).
    every = args.eval_every or args.steps
    curve = {}
    while dril.num_timesteps < args.steps:
        dril.learn(min(every, args.steps - dril.num_timesteps), reset_num_timesteps=False)
        curve[dril.num_timesteps] = score()
    print(
        json.dumps(
            {
                "game": args.game,
                "demos": args.demos,
                "seed": args.seed,
                "dril_kwargs": json.loads(args.dril_kwargs),
                "bc_warm_start": warm_start,
                "dril": curve[dril.num_timesteps],
                "dril_curve": curve,
                "plus_one_rate_bc_rollout": on_rollout,
                "plus_one_rate_demos": on_demos,
                "train_reward_mean": dril.reward_sum / max(dril.reward_count, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
