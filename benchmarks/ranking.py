"""NDCG@10 of LightGBM's LambdaMART and of our ranking agents on the same held-out split.

    python benchmarks/ranking.py                 # Rank-Synthetic-v0, test split
    python benchmarks/ranking.py --letor PATH    # also a LETOR folder / file (Rank-LETOR-v0)
    python benchmarks/ranking.py --letor MSLR-WEB10K --fold 1 [--n-features 136]

The LETOR files are read and checked before any training starts.

LambdaMART (``lightgbm.LGBMRanker``, objective lambdarank) trains on the train split with
early stopping on the validation split. Our agents train a Plackett-Luce policy on the
train split: BC on ideal-ranking demonstrations, DAgger with the ideal-ranking oracle,
PG-Rank by policy gradient. Every NDCG@10 is computed by ``lfi_gym.envs.ranking.ndcg_at_k`` over
all test queries (queries without relevant documents score 0 for every method).
"""

from __future__ import annotations

import argparse
import inspect
import re
import sys
import time

import gymnasium as gym
import numpy as np
import torch

from lfi_gym import agents, envs
from lfi_gym.agents.evaluation import evaluate_ranker
from lfi_gym.agents.pgrank import PGRank
from lfi_gym.agents.plackett_luce import PlackettLucePolicy
from lfi_gym.envs.ranking import ndcg_from_scores
from lfi_gym.envs.ranking.data import resolve_letor_files


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
            **_eval_data(ranker, val.features, val.relevance),
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


def _eval_data(ranker, features: np.ndarray, relevance: np.ndarray) -> dict:
    """The validation set in the form ``ranker.fit`` takes: ``eval_X`` / ``eval_y`` since
    LightGBM 4.7 (where ``eval_set`` is deprecated), ``eval_set`` before; the same data."""
    if "eval_X" in inspect.signature(ranker.fit).parameters:
        return {"eval_X": (features,), "eval_y": (relevance,)}
    return {"eval_set": [(features, relevance)]}


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


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--letor", help="LETOR folder or file for Rank-LETOR-v0")
    parser.add_argument(
        "--fold", type=_positive_int, help="with --letor: read the folder's Fold<N> subfolder"
    )
    parser.add_argument(
        "--n-features",
        type=_positive_int,
        help="with --letor: the feature count (default: the largest feature id used)",
    )
    parser.add_argument("--labels", type=int, default=6000, help="expert labels for BC / DAgger")
    parser.add_argument("--pg-steps", type=int, default=60_000, help="env steps for PGRank")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.letor is None and (args.fold is not None or args.n_features is not None):
        parser.error("--fold and --n-features apply to --letor data; pass --letor PATH")
    if args.letor is not None:
        try:
            args.letor_kwargs = check_letor(args.letor, args.fold, args.n_features)
        except (ValueError, OSError) as exc:
            parser.error(f"--letor {args.letor}: {_in_flag_terms(str(exc))}")
    return args


def check_letor(path: str, fold: int | None, n_features: int | None) -> dict:
    """The Rank-LETOR-v0 arguments for ``path``, after reading and checking its files (so
    that a bad file fails before any training; the env keeps the data cached for the run).
    Warns on stderr when LambdaMART would have no held-out validation split."""
    kwargs = {"path": path, "fold": fold, "n_features": n_features, "normalize": "query"}
    files = resolve_letor_files(path, fold)
    if "validation" not in files:
        folder = next(iter(files.values())).parent
        print(
            f"warning: no vali.txt in {folder}: LambdaMART trains all 500 trees without early "
            "stopping; add a validation split (vali.txt) for a fair comparison",
            file=sys.stderr,
        )
    elif len(set(files.values())) < len(files):
        print(
            f"warning: {files['train']} serves as train, validation and test: scores are not "
            "held out; pass a folder with train.txt, vali.txt and test.txt",
            file=sys.stderr,
        )
    gym.make("Rank-LETOR-v0", **kwargs).close()
    return kwargs


def _in_flag_terms(message: str) -> str:
    """The loader's hints name keyword arguments (``fold=1``, ``n_features=9``); here they
    are flags."""
    message = re.sub(r"\bfold=(\d+)", r"--fold \1", message)
    return re.sub(r"\bn_features=(\d+)", r"--n-features \1", message)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(1)
    run("Rank-Synthetic-v0", {}, args.labels, args.pg_steps, args.seed)
    if args.letor is not None:
        run("Rank-LETOR-v0", args.letor_kwargs, args.labels, args.pg_steps, args.seed)


if __name__ == "__main__":
    main()
