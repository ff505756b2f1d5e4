"""RLHF and DPO on TextGen-TinyReviews-v0 against PPO on the gold reward, from one SFT model.

Per seed: SFT = BC on ``--bc-labels`` labels of positive reviews (the guide
``benchmarks/tinyreviews_rl.py`` trains); a held-out set of ``--held-out`` pairs of SFT
completions, labelled by a perfect teacher (the env's lexicon reward); then for each N in
``--pairs``: N such pairs (a fresh draw), and on them

* RLHF with the RL step PPO and PPO++ (offline, the reward model fitted on the N pairs),
* DPO (``--dpo-epochs`` epochs over the N pairs),

and once per seed PPO on the gold reward from the SFT model, every RL run at ``--tokens``
tokens with the TinyReviews PPO preset and KL 0.05 to the SFT model. Each policy is
evaluated on ``--eval`` validation prompts (``lfi_gym.agents.alignment_eval``): gold
reward, win rate against SFT (gold judge, ties half), KL to SFT; RLHF rows also report the
reward model's held-out accuracy and its mean score (proxy). The table gives mean [95%
bootstrap CI] over seeds, and for RLHF the ratio of its gold-reward gain over SFT to gold
PPO's, with a bootstrap CI over seeds.

    python benchmarks/rlhf_tinyreviews.py --seeds 0 1 2 --out runs/rlhf_tinyreviews
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
from lfi_gym.agents import DPO, PPO, RLHF, Preferences, SimulatedTeacher
from lfi_gym.agents.alignment_eval import alignment_metrics
from lfi_gym.agents.dpo import TINYREVIEWS as DPO_TINYREVIEWS
from lfi_gym.agents.ppo import TINYREVIEWS
from lfi_gym.output import quiet_third_party

ENV_ID = "TextGen-TinyReviews-v0"
#: The PPO preset without its KL coefficient: RLHF and gold PPO use ``--kl-coef``.
RL_SETTINGS = {k: v for k, v in TINYREVIEWS.items() if k != "kl_coef"}


def copy_of(policy: Any) -> Any:
    import copy

    return copy.deepcopy(policy)


def run_seed(args: argparse.Namespace, seed: int, results: dict[str, list[dict]]) -> None:
    """Run every row of one seed, appending each to ``results`` and saving it to
    ``--out`` as soon as it is measured (a killed run keeps what it finished)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from tinyreviews_rl import train_guide

    env = gym.make(ENV_ID)
    sft = train_guide(ENV_ID, seed, args.bc_labels, 3).policy.requires_grad_(False)

    def record(name: str, policy: Any, seconds: float, **extra: Any) -> None:
        metrics = alignment_metrics(
            policy, sft, env, n=args.eval, seed=10_000 + seed, reward_model=extra.pop("rm", None)
        )
        row = {"seed": seed, "wall_s": seconds, **metrics, **extra}
        results.setdefault(name, []).append(row)
        save(args, results)
        print(f"{name} seed {seed}: {json.dumps(row)}", flush=True)

    record("SFT", sft, 0.0)
    torch.manual_seed(seed)
    held_out = Preferences.collect(
        env, sft, args.held_out, SimulatedTeacher(seed=seed), seed=seed * 1000 + 1
    )
    started = time.perf_counter()
    gold = PPO(
        env, copy_of(sft).requires_grad_(True), kl_coef=args.kl_coef, seed=seed, **RL_SETTINGS
    )
    gold.learn(args.tokens)
    record("PPO (gold reward)", gold.policy, time.perf_counter() - started)
    for n in args.pairs:
        torch.manual_seed(seed + n)
        pairs = Preferences.collect(
            env, sft, n, SimulatedTeacher(seed=seed + n), seed=seed * 1000 + 2 + n
        )
        for rl in ("ppo", "ppo++"):
            started = time.perf_counter()
            agent = RLHF(
                env,
                sft,
                preferences=pairs,
                rl=rl,
                kl_coef=args.kl_coef,
                rl_kwargs=RL_SETTINGS,
                seed=seed,
            )
            agent.learn(args.tokens)
            accuracy = agent.reward_model.accuracy(held_out)
            record(
                f"RLHF-{rl.upper()} ({n} pairs)",
                agent.policy,
                time.perf_counter() - started,
                rm=agent.reward_model,
                rm_accuracy=accuracy,
                pairs=n,
            )
        started = time.perf_counter()
        dpo = DPO(
            env, copy_of(sft).requires_grad_(True), preferences=pairs, seed=seed, **DPO_TINYREVIEWS
        )
        dpo.learn(args.dpo_epochs * n)
        record(f"DPO ({n} pairs)", dpo.policy, time.perf_counter() - started, pairs=n)


def save(args: argparse.Namespace, results: dict[str, list[dict]]) -> None:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=1))


def mean_ci(values: list[float]) -> str:
    low, high = stats.bootstrap_ci(values, confidence=0.95)
    return f"{np.mean(values):.3f} [{low:.3f}, {high:.3f}]"


def gain_ratio(rows: list[dict], gold: list[dict], sft: list[dict]) -> str:
    """Mean over seeds of (gold reward - SFT's) / (gold PPO's - SFT's), with a bootstrap
    CI over seeds of the ratio of mean gains."""
    by_seed = {r["seed"]: r for r in rows}
    seeds = sorted(by_seed)
    gains = np.array([by_seed[s]["gold_reward"] - by_seed[s]["sft_gold_reward"] for s in seeds])
    gold_by = {r["seed"]: r for r in gold}
    ref = np.array([gold_by[s]["gold_reward"] - gold_by[s]["sft_gold_reward"] for s in seeds])
    rng = np.random.default_rng(0)
    draws = rng.integers(len(seeds), size=(10_000, len(seeds)))
    ratios = gains[draws].mean(1) / ref[draws].mean(1)
    low, high = np.percentile(ratios, [2.5, 97.5])
    return f"{gains.mean() / ref.mean():.2f} [{low:.2f}, {high:.2f}]"


def print_table(results: dict[str, list[dict]]) -> None:
    print(
        "\n| agent | gold reward | win rate vs SFT | KL to SFT | RM held-out accuracy "
        "| gain / gold PPO's gain |"
    )
    print("|---|---|---|---|---|---|")
    gold, sft = results["PPO (gold reward)"], results["SFT"]
    for name, rows in results.items():
        accuracy = mean_ci([r["rm_accuracy"] for r in rows]) if "rm_accuracy" in rows[0] else ""
        ratio = gain_ratio(rows, gold, sft) if name not in ("SFT", "PPO (gold reward)") else ""
        print(
            f"| {name} | {mean_ci([r['gold_reward'] for r in rows])} | "
            f"{mean_ci([r['win_rate'] for r in rows])} | "
            f"{mean_ci([r['kl_to_sft'] for r in rows])} | {accuracy} | {ratio} |"
        )
    print(f"(mean over {len(sft)} seed(s) [95% percentile-bootstrap CI over seeds])")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--pairs", type=int, nargs="+", default=[300, 1000, 3000])
    parser.add_argument("--held-out", type=int, default=500)
    parser.add_argument("--tokens", type=int, default=30_000)
    parser.add_argument("--kl-coef", type=float, default=0.05)
    parser.add_argument("--bc-labels", type=int, default=960)
    parser.add_argument("--dpo-epochs", type=int, default=3)
    parser.add_argument("--eval", type=int, default=256)
    parser.add_argument("--out", default="runs/rlhf_tinyreviews")
    parser.add_argument("--replot", nargs="+", help="only print the table from results.json files")
    args = parser.parse_args()
    quiet_third_party()  # transformers' loading bars are not this benchmark's output
    if args.replot:
        results: dict[str, list[dict]] = {}
        for path in args.replot:
            for name, rows in json.loads(Path(path).read_text()).items():
                results.setdefault(name, []).extend(rows)
        print_table(results)
        return
    torch.set_num_threads(1)
    results: dict[str, list[dict]] = {}
    for seed in args.seeds:
        run_seed(args, seed, results)
    print_table(results)


if __name__ == "__main__":
    main()
