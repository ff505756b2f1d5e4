"""Sample continuations of TinyReviews test prompts with the shipped tiny GPT-2.

    python examples/tinyreviews_samples.py --n 5

Drives the native vector env with LMPolicy (top-k 50 sampling, the KV cache carried in
predict's state) and prints prompt | continuation | lexicon-sentiment reward.
"""

from __future__ import annotations

import argparse

import gymnasium as gym
import numpy as np
import torch

from lfi_gym import envs  # noqa: F401  (registers the env ids)
from lfi_gym.agents.lm_policy import TINYREVIEWS_LM, LMPolicy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5, help="number of prompts")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    vec = gym.make_vec("TextGen-TinyReviews-v0", num_envs=args.n, split="test")
    policy = LMPolicy.from_pretrained(TINYREVIEWS_LM, env=vec, device="cpu")
    obs, _ = vec.reset(seed=args.seed)
    state, done = None, np.zeros(args.n, dtype=bool)
    print("| prompt | continuation | reward |\n|---|---|---|")
    while not done.all():
        actions, state = policy.predict(obs, state)
        obs, rewards, terminated, _, infos = vec.step(actions)
        for row in np.flatnonzero(terminated & ~done):
            prompt, completion = infos["prompt"][row], infos["completion"][row].strip()
            print(f"| {prompt} | {completion} | {rewards[row]:.2f} |")
        done |= terminated


if __name__ == "__main__":
    main()
