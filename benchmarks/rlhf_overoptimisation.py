"""Reward-model over-optimisation on TextGen-TinyReviews-v0: gold and proxy reward against KL
to the SFT policy as RLHF-PPO trains on a learned reward (Gao et al. 2022, "Scaling Laws for
Reward Model Overoptimization", Figure 1).

Per seed and per ``--pairs`` N: the SFT model of ``benchmarks/rlhf_tinyreviews.py`` (BC on
``--bc-labels`` labels of positive reviews), N pairs of its completions labelled by a
perfect teacher (the env's lexicon reward), a Bradley-Terry reward model fitted on them, and
PPO on that reward with KL coefficient ``--kl-coef`` (default 0: nothing holds the policy near
SFT, so it goes as far in KL as the tokens take it). Every ``--eval-every`` tokens the policy
is sampled on ``--eval`` validation prompts: its gold reward, its proxy reward (the reward
model's score, centred on SFT samples) and its KL to SFT, each mean with a 95% bootstrap CI
over the prompts. The gold reward's peak, if any, is where the proxy keeps rising and the
gold falls.

    python benchmarks/rlhf_overoptimisation.py --out runs/rlhf_overopt
    python benchmarks/rlhf_overoptimisation.py --replot runs/rlhf_overopt/results.json \\
        --figure benchmarks/figures/rlhf_overoptimisation.png
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from lfi_gym import stats
from lfi_gym.agents import RLHF, Preferences, SimulatedTeacher
from lfi_gym.agents.alignment_eval import proxy_rewards, sample, sequence_kl
from lfi_gym.output import quiet_third_party

sys.path.insert(0, str(Path(__file__).resolve().parent))
from rlhf_tinyreviews import ENV_ID, RL_SETTINGS
from tinyreviews_rl import train_guide

#: Completions kept per evaluation point (the first prompts', and the lowest-scoring), to read
#: what the policy writes.
EXAMPLES = 4
#: Completions of at most this many tokens count as short (a degenerate policy stops at once).
SHORT_TOKENS = 2


def measure(agent: RLHF, env: gym.Env, policy: Any, n: int, seed: int) -> dict[str, Any]:
    """Gold reward, proxy reward and KL to SFT of ``policy`` on ``n`` prompts: means and 95%
    bootstrap CIs over the prompts."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        samples = sample(policy, env, n, seed)
    values = {
        "gold_reward": np.asarray(samples.gold, dtype=float),
        "proxy_reward": proxy_rewards(agent.reward_model, samples),
        "kl_to_sft": sequence_kl(policy, agent.sft, samples),
    }
    lengths = np.array([len(c) for c in samples.completion_ids])
    worst = np.argsort(values["gold_reward"], kind="stable")[:EXAMPLES]
    out: dict[str, Any] = {
        "examples": list(samples.completions[:EXAMPLES]),
        "lowest_gold_examples": [samples.completions[i] for i in worst],
        "mean_tokens": float(lengths.mean()),
        "short_fraction": float((lengths <= SHORT_TOKENS).mean()),
    }
    for name, per_prompt in values.items():
        out[name] = float(per_prompt.mean())
        out[name + "_ci"] = [float(x) for x in stats.bootstrap_ci(per_prompt, confidence=0.95)]
    return out


def run(args: argparse.Namespace, seed: int, n_pairs: int, results: list[dict]) -> None:
    env = gym.make(ENV_ID)
    sft = train_guide(ENV_ID, seed, args.bc_labels, 3).policy.requires_grad_(False)
    torch.manual_seed(seed + n_pairs)
    pairs = Preferences.collect(
        env, sft, n_pairs, SimulatedTeacher(seed=seed + n_pairs), seed=seed * 1000 + 2 + n_pairs
    )
    agent = RLHF(
        env,
        sft,
        preferences=pairs,
        rl=args.rl,
        kl_coef=args.kl_coef,
        rl_kwargs=RL_SETTINGS,
        seed=seed,
    )
    run_record = {
        "seed": seed,
        "pairs": n_pairs,
        "rl": args.rl,
        "kl_coef": args.kl_coef,
        "points": [],
    }
    results.append(run_record)
    started = time.perf_counter()
    while agent.num_timesteps < args.tokens:
        agent.learn(args.eval_every, reset_num_timesteps=False)
        if not run_record["points"]:  # the reward model is fitted now: score SFT with it
            point = measure(agent, env, agent.sft, args.eval, 10_000 + seed)
            run_record["points"].append({"tokens": 0, **point})
        point = measure(agent, env, agent.policy, args.eval, 10_000 + seed)
        point.update(tokens=int(agent.num_timesteps), wall_s=time.perf_counter() - started)
        run_record["points"].append(point)
        save(args, results)
        print(f"seed {seed} pairs {n_pairs}: {json.dumps(point)}", flush=True)


def save(args: argparse.Namespace, results: list[dict]) -> None:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=1))


def report(results: list[dict]) -> None:
    """Per run: the gold reward's peak and where the run ended."""
    print("\n| seed | pairs | KL coef | SFT gold | peak gold (KL) | last gold (KL) | last proxy |")
    print("|---|---|---|---|---|---|---|")
    for run_record in results:
        points = run_record["points"]
        peak = max(points, key=lambda p: p["gold_reward"])
        last = points[-1]

        def at(p: dict) -> str:
            low, high = p["gold_reward_ci"]
            return f"{p['gold_reward']:.3f} [{low:.3f}, {high:.3f}] ({p['kl_to_sft']:.1f})"

        print(
            f"| {run_record['seed']} | {run_record['pairs']} | {run_record['kl_coef']} | "
            f"{points[0]['gold_reward']:.3f} | {at(peak)} | {at(last)} | "
            f"{last['proxy_reward']:.2f} |"
        )


def plot(results: list[dict], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(5 * len(results), 4), squeeze=False)
    for ax, run_record in zip(axes[0], results, strict=True):
        points = run_record["points"]
        kl = np.array([p["kl_to_sft"] for p in points])
        gold = np.array([p["gold_reward"] for p in points])
        low, high = np.array([p["gold_reward_ci"] for p in points]).T
        # Points in training order (KL to SFT need not grow every step); bars: 95% CIs.
        ax.errorbar(kl, gold, yerr=[gold - low, high - gold], fmt="o-", color="tab:blue", ms=4)
        ax.set_xlabel("KL to SFT (nats per completion)")
        ax.set_ylabel("gold reward", color="tab:blue")
        twin = ax.twinx()
        proxy = np.array([p["proxy_reward"] for p in points])
        plow, phigh = np.array([p["proxy_reward_ci"] for p in points]).T
        twin.errorbar(
            kl, proxy, yerr=[proxy - plow, phigh - proxy], fmt="s--", color="tab:orange", ms=3
        )
        twin.set_ylabel("proxy reward (centred on SFT)", color="tab:orange")
        ax.set_title(
            f"RLHF-{run_record.get('rl', 'ppo').upper()}, {run_record['pairs']} pairs, "
            f"KL coef {run_record['kl_coef']}, seed {run_record['seed']}",
            fontsize=9,
        )
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"wrote {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--pairs", type=int, nargs="+", default=[300, 1000])
    parser.add_argument("--tokens", type=int, default=60_000)
    parser.add_argument("--eval-every", type=int, default=5_000)
    parser.add_argument("--kl-coef", type=float, default=0.0)
    parser.add_argument("--rl", default="ppo", choices=("ppo", "ppo++", "aggrevated"))
    parser.add_argument("--bc-labels", type=int, default=960)
    parser.add_argument("--eval", type=int, default=256)
    parser.add_argument("--out", default="runs/rlhf_overopt")
    parser.add_argument("--replot", help="only report and plot a results.json")
    parser.add_argument("--figure", default=None, help="where to write the figure (PNG)")
    args = parser.parse_args()
    quiet_third_party()  # transformers' loading bars are not this benchmark's output
    if args.replot:
        results = json.loads(Path(args.replot).read_text())
    else:
        torch.set_num_threads(1)
        results = []
        for seed in args.seeds:
            for n_pairs in args.pairs:
                run(args, seed, n_pairs, results)
    report(results)
    if args.figure:
        plot(results, args.figure)


if __name__ == "__main__":
    main()
