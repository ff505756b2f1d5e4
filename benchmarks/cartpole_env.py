"""Steps/s of Control-CartPole-v0 against Gymnasium's CartPole-v1, side by side, plus the
latency of get_state / reset_to and of the LQR oracle.

    python benchmarks/cartpole_env.py [--steps 200000]

Prints a ratio (ours / Gymnasium's): what the restart contract costs per step.
"""

from __future__ import annotations

import argparse

import gymnasium as gym
import numpy as np
from timing import per_call_microseconds, steps_per_second

from lfi_gym import envs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    ours, theirs = [], []
    for _ in range(args.repeats):  # interleaved, so drifts in machine load hit both
        theirs.append(steps_per_second(gym.make("CartPole-v1"), args.steps))
        ours.append(steps_per_second(gym.make("Control-CartPole-v0"), args.steps))
    ours_best, theirs_best = max(ours), max(theirs)
    print(f"gymnasium CartPole-v1      {theirs_best:12,.0f} steps/s")
    print(f"lfi-gym Control-CartPole-v0 {ours_best:11,.0f} steps/s")
    print(f"ratio (ours / gymnasium)   {ours_best / theirs_best:12.2f}x")

    env = gym.make("Control-CartPole-v0")
    env.reset(seed=0)
    state = env.get_state()
    expert = envs.make_expert(env)
    obs = env.reset(seed=0)[0]
    batch = np.repeat(obs[None], 1024, axis=0)
    timings = {
        "get_state": per_call_microseconds(env.get_state, 20_000),
        "reset_to": per_call_microseconds(lambda: env.reset_to(state), 20_000),
        "oracle predict (1 obs)": per_call_microseconds(lambda: expert.predict(obs), 20_000),
        "oracle predict (1024 obs)": per_call_microseconds(lambda: expert.predict(batch), 2_000),
    }
    for name, microseconds in timings.items():
        print(f"{name:27s}{microseconds:9.1f} us")


if __name__ == "__main__":
    main()
