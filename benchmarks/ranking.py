"""NDCG@10 of LightGBM's LambdaMART and of our ranking agents on the same held-out split.

    python benchmarks/ranking.py                 # Rank-Synthetic-v0, test split
    python benchmarks/ranking.py --letor PATH    # also a LETOR folder / file (Rank-LETOR-v0)

LambdaMART (``lightgbm.LGBMRanker``, objective lambdarank) trains on the train split with
early stopping on the validation split. Our agents train a Plackett-Luce policy on the
train split: BC on ideal-ranking demonstrations, DAgger with the ideal-ranking oracle,
PG-Rank by policy gradient. Every NDCG@10 is computed by ``lfi_gym.envs.ranking.ndcg_at_k`` over
all test queries (queries without relevant documents score 0 for every method).
"""

from __future__ import annotations

import argparse
import time

import gymnasium as gym
import numpy as np
import torch

from lfi_gym import agents, envs
from lfi_gym.agents.evaluation import evaluate_ranker
from lfi_gym.agents.pgrank import PGRank
from lfi_gym.agents.plackett_luce import PlackettLucePolicy
from lfi_gym.envs.ranking import ndcg_from_scores


def lambdamart_ndcg(splits: dict, seed: int = 0) -> float:
    """Train LGBMRanker on ``train`` (early stopping on ``validation``), NDCG@10 on ``test``."""
    import lightgbm

    train, test = splits["train"], splits["test"]
    ranker = lightgbm.LGBMRanker(
        objective="lambdarank",
        n_estimators=500,
        learning_rate=0.05,
        num_leaves=31,
        min_child_samples=10,
        random_state=seed,
        n_jobs=2,
        verbose=-1,
    )
    fit_kwargs = {}
    if "validation" in splits:
        val = splits["validation"]
        fit_kwargs = {
            "eval_set": [(val.features, val.relevance)],
            "eval_group": [val.sizes],
            "eval_at": [10],
            "callbacks": [lightgbm.early_stopping(50, verbose=False)],
        }
    ranker.fit(train.features, train.relevance, group=train.sizes, **fit_kwargs)
    scores = ranker.predict(test.features)
    return float(
        np.mean(
            [
                ndcg_from_scores(
                    scores[test.offsets[q] : test.offsets[q + 1]], test.query(q)[1], 10
                )
                for q in range(test.n_queries)
            ]
        )
    )


def run(env_id: str, make_kwargs: dict, labels: int, pg_steps: int, seed: int) -> None:
    train_env = gym.make(env_id, **make_kwargs)
    test_env = gym.make(env_id, split="test", **make_kwargs)
    splits = train_env.unwrapped.splits
    rows = []
    start = time.perf_counter()
    rows.append(
        ("LambdaMART (LGBMRanker)", lambdamart_ndcg(splits, seed), time.perf_counter() - start)
    )
    rows.append(
        ("oracle (ideal ranking)", evaluate_ranker(envs.make_expert(test_env), test_env), 0.0)
    )

    def policy() -> PlackettLucePolicy:
        torch.manual_seed(seed)
        return PlackettLucePolicy(train_env.observation_space, train_env.action_space)

    start = time.perf_counter()
    demos = agents.Demonstrations.collect(
        train_env, envs.make_expert(train_env), n_steps=labels, seed=seed
    )
    bc = agents.BC(train_env, demos, policy=policy(), seed=seed, batch_size=256)
    bc.learn(30 * len(demos))
    rows.append(
        (
            f"BC ({labels} labels, 30 epochs)",
            evaluate_ranker(bc.policy, test_env),
            time.perf_counter() - start,
        )
    )

    start = time.perf_counter()
    dagger = agents.DAgger(
        train_env,
        envs.make_expert(train_env),
        policy=policy(),
        seed=seed,
        steps_per_round=labels // 5,
        n_epochs=10,
        batch_size=256,
    )
    dagger.learn(labels)
    rows.append(
        (
            f"DAgger ({labels} labels, 5 rounds)",
            evaluate_ranker(dagger.policy, test_env),
            time.perf_counter() - start,
        )
    )

    start = time.perf_counter()
    pg = PGRank(train_env, policy(), seed=seed)
    pg.learn(pg_steps)
    rows.append(
        (
            f"PGRank ({pg_steps} env steps)",
            evaluate_ranker(pg.policy, test_env),
            time.perf_counter() - start,
        )
    )

    reference = rows[0][1]
    base = test_env.unwrapped
    print(
        f"\n{env_id} {make_kwargs or ''}: NDCG@10 on the test split "
        f"({base.queries.n_queries} queries)"
    )
    print(f"{'method':<36} {'NDCG@10':>8} {'/ LambdaMART':>13} {'train s':>8}")
    for name, value, seconds in rows:
        print(f"{name:<36} {value:8.4f} {value / reference:12.3f}x {seconds:8.1f}")
    best = max(rows[2:], key=lambda r: r[1])
    print(f"best agent: {best[0]}: {best[1] / reference:.3f}x LambdaMART")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--letor", help="LETOR folder or file for Rank-LETOR-v0")
    parser.add_argument("--fold", type=int, default=None)
    parser.add_argument("--labels", type=int, default=6000, help="expert labels for BC / DAgger")
    parser.add_argument("--pg-steps", type=int, default=60_000, help="env steps for PGRank")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    run("Rank-Synthetic-v0", {}, args.labels, args.pg_steps, args.seed)
    if args.letor:
        kwargs = {"path": args.letor, "fold": args.fold, "normalize": "query"}
        run("Rank-LETOR-v0", kwargs, args.labels, args.pg_steps, args.seed)


if __name__ == "__main__":
    main()
