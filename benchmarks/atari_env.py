"""Steps per second of AtariImitation-{Game}-v0 vs Gymnasium's standard Atari pipeline.

    python benchmarks/atari_env.py --game Breakout --steps 3000

Gymnasium's pipeline: ``ALE/{Game}-v5`` with frameskip 1 and no sticky actions,
``AtariPreprocessing`` (noop reset, skip 4 with max-pool, 84x84 grayscale) and
``FrameStackObservation(4)`` -- the same observations our env produces (needs OpenCV,
``pip install opencv-python-headless``). Both run the same random actions, one after
the other, best of ``--repeats``. Also prints get_state / reset_to latency and the
oracle's time per action.
"""

from __future__ import annotations

import argparse
import time

import gymnasium as gym
from timing import per_call_microseconds, steps_per_second

from lfi_gym import envs


def gymnasium_pipeline(game: str) -> gym.Env:
    """The standard Gymnasium Atari preprocessing stack for ``game``."""
    import ale_py

    gym.register_envs(ale_py)
    env = gym.make(f"ALE/{game}-v5", frameskip=1, repeat_action_probability=0.0)
    return gym.wrappers.FrameStackObservation(gym.wrappers.AtariPreprocessing(env), 4)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--game", default="Breakout")
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    ours = gym.make(f"AtariImitation-{args.game}-v0")
    try:
        theirs = gymnasium_pipeline(args.game)
    except gym.error.DependencyNotInstalled as exc:
        theirs = None
        print(f"Gymnasium pipeline unavailable: {exc}")
    best_ours = best_theirs = 0.0
    for _ in range(args.repeats):  # interleaved, so that machine load hits both alike
        best_ours = max(best_ours, steps_per_second(ours, args.steps))
        if theirs is not None:
            best_theirs = max(best_theirs, steps_per_second(theirs, args.steps))
    print(f"{args.game}: {args.steps} random steps, best of {args.repeats}")
    print(f"  AtariImitation-{args.game}-v0      {best_ours:8.0f} steps/s")
    if theirs is not None:
        print(f"  Gymnasium AtariPreprocessing+Stack {best_theirs:8.0f} steps/s")
        print(f"  ratio ours / Gymnasium          {best_ours / best_theirs:8.2f}x")

    ours.reset(seed=0)
    for _ in range(100):
        ours.step(0)
    state = ours.get_state()
    get_state_us = per_call_microseconds(ours.get_state, 500)
    reset_to_us = per_call_microseconds(lambda: ours.reset_to(state), 500)
    print(f"  get_state                       {get_state_us:8.1f} us")
    print(f"  reset_to                        {reset_to_us:8.1f} us")

    expert = envs.make_expert(ours)
    obs, _ = ours.reset(seed=0)
    n, seconds = 300, 0.0
    for _ in range(n):
        start = time.perf_counter()
        action, _ = expert.predict(obs)
        seconds += time.perf_counter() - start
        obs, _, terminated, truncated, _ = ours.step(action)
        if terminated or truncated:
            obs, _ = ours.reset()
    print(f"  oracle ({type(expert).__name__}) {1000 * seconds / n:8.2f} ms per action")


if __name__ == "__main__":
    main()
