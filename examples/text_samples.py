"""Sample completions of a text env's test prompts with the LM its policies start from.

    python examples/text_samples.py --n 5                                  # TinyReviews
    python examples/text_samples.py --env TextGen-TinyConcepts-v0 --n 5

Drives the native vector env with LMPolicy (the task's own LM, top-k 50 sampling, the KV
cache carried in predict's state) and prints prompt | completion | reward as a Markdown
table.
"""

from __future__ import annotations

import argparse

import gymnasium as gym
import numpy as np
import torch

from lfi_gym import envs  # noqa: F401  (registers the env ids)
from lfi_gym.agents.lm_policy import LMPolicy
from lfi_gym.output import quiet_third_party


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="TextGen-TinyReviews-v0", help="a TextGen-* env id")
    parser.add_argument("--n", type=int, default=5, help="number of prompts")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    vec = gym.make_vec(args.env, num_envs=args.n, split="test")
    policy = LMPolicy.from_pretrained(vec.unwrapped.task.policy_model, env=vec, device="cpu")
    obs, _ = vec.reset(seed=args.seed)
    state, done = None, np.zeros(args.n, dtype=bool)
    print("| prompt | completion | reward |\n|---|---|---|")
    while not done.all():
        actions, state = policy.predict(obs, state)
        obs, rewards, terminated, _, infos = vec.step(actions)
        for row in np.flatnonzero(terminated & ~done):
            prompt, completion = infos["prompt"][row], infos["completion"][row].strip()
            print(f"| {prompt} | {completion} | {rewards[row]:.2f} |")
        done |= terminated


if __name__ == "__main__":
    with quiet_third_party():
        main()
