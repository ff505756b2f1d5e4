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
import json

import gymnasium as gym
import numpy as np
import torch

from lfi_gym import (
    envs,  # noqa: F401  (registers the env ids)
    imitation,
)
from lfi_gym.agents.dril import DRIL


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
    config = imitation.game_config(
        f"MinAtarImitation-{args.game}-v0",
        dril_timesteps=args.steps,
        dril_eval_every=args.eval_every or args.steps,
    )
    demos = imitation.collect_demonstrations(config, args.demos, args.seed)
    env = gym.make(config.env_id, **config.env_kwargs)
    dril = DRIL(
        env,
        demos,
        seed=args.seed,
        bc_epochs=config.bc_epochs,
        ensemble_epochs=config.bc_epochs,
        **json.loads(args.dril_kwargs),
    ).pretrain()
    warm_start = float(np.mean(imitation.evaluate(dril, config, args.seed)))
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
    curve = {
        steps: float(np.mean(scores))
        for steps, scores in imitation.learn_scored(dril, config, args.seed)
    }
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
