"""What the guided agents' episodes look like on TextGen-TinyConcepts-v0, per guide.

For the shipped LM as learner and each guide (the reference oracle, BC on ``--bc-labels``
oracle labels), on validation prompts (episode ``i`` from ``reset(seed=seed + i)``):

* ``guide alone``: the guide writes the whole completion;
* ``PPO++ episode``: the guide rolls in for h ~ U[0, H) tokens, the learner completes
  (H = 40, the env's horizon, as PPO++ draws it); also how often the guide had already
  ended the episode (no learner token to train on);
* ``AggreVaTeD episode``: the learner rolls in for h ~ U[1, H), the guide completes.

Each row: mean reward and the fraction of episodes with a reward above 0.

    python benchmarks/tinyconcepts_restarts.py --out benchmarks/figures/tinyconcepts_restarts.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from lfi_gym import agents, envs
from lfi_gym.agents.rollouts import GUIDE, LEARNER, EpisodePlan, per_row, run_wave

ENV_ID = "TextGen-TinyConcepts-v0"


def episodes(
    vec: Any, learner: Any, guide: Any, plans: list[EpisodePlan], seed: int
) -> dict[str, float]:
    """Run one wave of ``plans`` (one per row); mean reward, rate of reward > 0, and the
    rate of episodes in which the learner took no step."""
    policies = {LEARNER: learner, GUIDE: per_row(guide, vec)}
    seeds = list(range(seed, seed + vec.num_envs))
    wave = run_wave(vec, policies, plans, seeds)
    returns = np.asarray(wave.episode_returns)
    learner_rows = len(wave.segments)
    return {
        "reward": float(returns.mean()),
        "rewarded": float(np.mean(returns > 0)),
        "no_learner_step": 1.0 - learner_rows / vec.num_envs,
    }


def measure(learner: Any, guide: Any, n: int, seed: int) -> dict[str, dict[str, float]]:
    vec = gym.make_vec(ENV_ID, num_envs=n, split="validation")
    horizon = vec.unwrapped.task.max_new_tokens
    rng = np.random.default_rng(seed)
    ppo_pp = [EpisodePlan(GUIDE, LEARNER, int(h)) for h in rng.integers(horizon, size=n)]
    aggrevated = [EpisodePlan(LEARNER, GUIDE, int(h)) for h in rng.integers(1, horizon, size=n)]
    alone = [EpisodePlan(GUIDE, GUIDE, 0)] * n
    rows = {}
    for name, plans in (
        ("guide alone", alone),
        ("PPO++ episode (guide rolls in)", ppo_pp),
        ("AggreVaTeD episode (learner rolls in)", aggrevated),
    ):
        torch.manual_seed(seed)
        rows[name] = episodes(vec, learner, guide, plans, seed)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--bc-labels", type=int, default=10_000)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    torch.set_num_threads(1)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from tinyreviews_rl import train_guide

    env = gym.make(ENV_ID)
    learner = agents.LMPolicy.from_pretrained(env.unwrapped.task.policy_model, env=env)
    guides = {
        "reference oracle": envs.make_expert(gym.make(ENV_ID)),
        f"BC ({args.bc_labels} labels)": train_guide(ENV_ID, args.seed, args.bc_labels, 3).policy,
    }
    results = {
        name: measure(learner, guide, args.episodes, args.seed) for name, guide in guides.items()
    }
    print("| guide | episode | mean reward | reward > 0 | learner took no step |")
    print("|---|---|---|---|---|")
    for guide, rows in results.items():
        for episode, row in rows.items():
            print(
                f"| {guide} | {episode} | {row['reward']:.3f} | {row['rewarded']:.3f} | "
                f"{row['no_learner_step']:.3f} |"
            )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"settings": vars(args), "results": results}, indent=1))


if __name__ == "__main__":
    main()
