"""Measured properties of TextGen-TinyConcepts-v0 (reward, coverage, fluency, CIDEr-D),
recorded before any agent runs on it.

    python benchmarks/tinyconcepts_task.py --out benchmarks/figures/tinyconcepts_task.json

On the validation split it scores texts that are not policies' (the references, each
scored as a completion; the concepts listed with nothing around them; each reference with
its words shuffled; a reference of another concept set, alone and after the listed
concepts) and the episodes of two policies
through the env (uniformly random tokens; the shipped LM zero-shot, sampling as in
``lfi-gym compare``). For each it prints the mean reward, the full-coverage rate (every
concept used) with a 95% Wilson interval, mean coverage and fluency, and CIDEr-D against
the set's references (a reference against the set's other references).
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import random
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from lfi_gym import envs  # noqa: F401  (registers the env ids)
from lfi_gym.agents.learners import make_learner
from lfi_gym.envs import RandomPolicy
from lfi_gym.envs.text.concepts import concept_coverage
from lfi_gym.envs.text.rewards import CIDErDReward
from lfi_gym.output import quiet_third_party

ENV_ID = "TextGen-TinyConcepts-v0"


def wilson(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a binomial proportion."""
    if n == 0:
        return (0.0, 1.0)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def summarise(
    name: str,
    completions: Sequence[str],
    concepts: Sequence[Sequence[str]],
    references: Sequence[Sequence[str]],
    reward: Any,
    cider: CIDErDReward,
) -> dict[str, Any]:
    coverage = np.array(
        [concept_coverage(t, c) for t, c in zip(completions, concepts, strict=True)]
    )
    fluency = np.array([reward.fluency(t) for t in completions])
    rewards = np.asarray(reward(prompts=[""] * len(completions), completions=completions,
                                concepts=[list(c) for c in concepts]))  # fmt: skip
    cider_scores = cider(prompts=[""] * len(completions), completions=list(completions),
                         references=[list(r) for r in references])  # fmt: skip
    full = int((coverage == 1.0).sum())
    return {
        "texts": name,
        "n": len(completions),
        "reward_mean": float(rewards.mean()),
        "full_coverage_rate": full / len(completions),
        "full_coverage_ci95": wilson(full, len(completions)),
        "coverage_mean": float(coverage.mean()),
        "fluency_mean": float(fluency.mean()),
        "cider_d_mean": float(np.mean(cider_scores)),
        "examples": [
            {"text": t, "concepts": list(c), "reward": float(r)}
            for t, c, r in list(zip(completions, concepts, rewards, strict=True))[:3]
        ],
    }


def episodes(
    env: gym.Env, policy: Any, n: int, deterministic: bool
) -> tuple[list[str], list[tuple[str, ...]], list[list[str]]]:
    """Completions, concepts and references of ``n`` episodes from ``reset(seed=i)``."""
    task = env.unwrapped.task
    completions, concepts, references = [], [], []
    for i in range(n):
        obs, _ = env.reset(seed=i)
        state, start, done = None, True, False
        while not done:
            action, state = policy.predict(
                obs, state=state, episode_start=np.array([start]), deterministic=deterministic
            )
            obs, _, terminated, truncated, info = env.step(action)
            start, done = False, terminated or truncated
        completions.append(info["completion"])
        concepts.append(task.samples[info["sample_index"]].concepts)
        references.append(list(info["references"]))
    return completions, concepts, references


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=500)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    torch.set_num_threads(1)
    started = time.perf_counter()

    env = gym.make(ENV_ID, split="validation")
    task = env.unwrapped.task
    reward = task.reward_fn
    samples = list(task.samples)
    cider = CIDErDReward([list(s.references) for s in samples])
    rng = random.Random(0)
    concepts = [s.concepts for s in samples]
    first_refs = [s.references[0] for s in samples]
    others = [list(s.references[1:]) for s in samples]  # a reference against the rest
    shuffled = []
    for text in first_refs:
        tokens = text.split()
        rng.shuffle(tokens)
        shuffled.append(" ".join(tokens))
    rotated = first_refs[1:] + first_refs[:1]  # fluent, another set's concepts

    rows: list[dict[str, Any]] = []
    texts = {
        "references": first_refs,
        "concepts listed": [" ".join(c) for c in concepts],
        "concepts as the prompt lists them": [", ".join(c) + "." for c in concepts],
        "concepts listed, then another set's reference": [
            " ".join(c) + ". " + text for c, text in zip(concepts, rotated, strict=True)
        ],
        "shuffled references": shuffled,
        "another set's reference": rotated,
    }
    for name, completions in texts.items():
        rows.append(summarise(name, completions, concepts, others, reward, cider))

    random_policy = RandomPolicy.for_env(env, seed=0)
    rows.append(summarise("random tokens", *episodes(env, random_policy, args.episodes, False),
                          reward, cider))  # fmt: skip
    lm = make_learner("LMPolicy", env.observation_space, env.action_space, env=env)
    rows.append(summarise("zero-shot LM", *episodes(env, lm, args.episodes, False),
                          reward, cider))  # fmt: skip

    print(f"{ENV_ID}, validation split ({len(samples)} concept sets)")
    header = ("texts", "n", "reward", "full coverage [95% CI]", "coverage", "fluency", "CIDEr-D")
    print(" | ".join(header))
    for row in rows:
        low, high = row["full_coverage_ci95"]
        print(
            f"{row['texts']} | {row['n']} | {row['reward_mean']:.3f} | "
            f"{row['full_coverage_rate']:.3f} [{low:.3f}, {high:.3f}] | "
            f"{row['coverage_mean']:.3f} | {row['fluency_mean']:.3f} | {row['cider_d_mean']:.3f}"
        )
    result = {
        "env_id": ENV_ID,
        "split": "validation",
        "concept_sets": len(samples),
        "episodes_per_policy": args.episodes,
        "rows": rows,
        "wall_time_s": time.perf_counter() - started,
        "torch": torch.__version__,
        "platform": platform.platform(),
    }
    if args.out is not None:
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    with quiet_third_party():
        main()
