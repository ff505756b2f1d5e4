"""Torch CPU threads and the agents' small models: one thread against torch's default.

    python benchmarks/threads.py                  # all three models, 3 repeats
    python benchmarks/threads.py --models cartpole --repeats 5

For each model (the CartPole MLP, the Plackett-Luce ranker on Rank-Synthetic-v0, the
TinyReviews LM) and each thread count (1, and the count torch starts with: one per core),
it times, in this one process and alternating the thread counts between repeats:

* ``predict``: single-observation ``policy.predict`` calls, as a user's own loop makes them;
* ``episode_returns``: whole evaluation episodes (predict and env step);
* ``BC learn``: BC training on expert demonstrations (mini-batches of 64 / 32 for the LM).

Each figure is the median over the repeats. The agents' models are small: per call, a
thread pool's start-up and hand-over cost more than the arithmetic it splits, and on a
machine whose cores are busy with other processes a waiting thread stalls the call.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import torch

from lfi_gym import agents, envs


@dataclass(frozen=True)
class Case:
    """One model to time: its env, BC settings, and how many calls / episodes / updates."""

    env_id: str
    env_kwargs: dict[str, Any]
    bc_kwargs: dict[str, Any]
    demo_steps: int
    predict_calls: int
    episodes: int
    learn_samples: int


CASES = {
    "cartpole": Case("Control-CartPole-v0", {}, {}, 500, 2000, 3, 20_000),
    "ranker": Case(
        "Rank-Synthetic-v0", {}, {"policy": "PlackettLucePolicy"}, 500, 1000, 10, 10_000
    ),
    "lm": Case(
        "TextGen-TinyReviews-v0",
        {},
        {"policy": "LMPolicy", "batch_size": 32},
        96,
        100,
        2,
        192,
    ),
}


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def measure(case: Case, threads: int) -> dict[str, float]:
    """Seconds of each operation with ``threads`` torch threads (fresh BC, same seed)."""
    torch.set_num_threads(threads)
    env = gym.make(case.env_id, **case.env_kwargs)
    demos = agents.Demonstrations.collect(
        env, envs.make_expert(env), n_steps=case.demo_steps, seed=0
    )
    bc = agents.BC(env, demos, seed=0, device="cpu", **case.bc_kwargs)
    learn_s = timed(lambda: bc.learn(case.learn_samples))
    obs, _ = env.reset(seed=0)

    def predict_loop() -> None:
        for _ in range(case.predict_calls):
            bc.policy.predict(obs, deterministic=True)

    predict_s = timed(predict_loop) / case.predict_calls
    episodes_s = timed(lambda: agents.episode_returns(bc, env, case.episodes, seed=0))
    return {
        "predict (ms/call)": 1e3 * predict_s,
        "episode_returns (s)": episodes_s,
        "BC learn (s)": learn_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--models", default=",".join(CASES), help="comma-separated: " + ", ".join(CASES)
    )
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    default_threads = torch.get_num_threads()
    counts = sorted({1, default_threads})
    print(f"torch {torch.__version__}; default threads {default_threads}; repeats {args.repeats}")
    for name in args.models.split(","):
        case = CASES[name]
        runs: dict[int, list[dict[str, float]]] = {n: [] for n in counts}
        for _ in range(args.repeats):
            for n in counts:
                runs[n].append(measure(case, n))
        print(f"\n{name} ({case.env_id})")
        header = f"  {'':<22}" + "".join(f"{f'{n} thread(s)':>14}" for n in counts)
        print(header + ("  default / 1" if len(counts) > 1 else ""))
        for metric in runs[counts[0]][0]:
            medians = [statistics.median(r[metric] for r in runs[n]) for n in counts]
            row = f"  {metric:<22}" + "".join(f"{m:>14.3f}" for m in medians)
            if len(counts) > 1:
                row += f"  {medians[-1] / medians[0]:>10.2f}x"
            print(row)
    torch.set_num_threads(default_threads)


if __name__ == "__main__":
    main()
