"""Rank-* environments: sequential ranking with action masks, NDCG and an exact oracle."""

from __future__ import annotations

from typing import Any

from lfi_gym.envs.ranking.data import SPLITS, QuerySet, load_letor, synthetic_splits
from lfi_gym.envs.ranking.env import RankingEnv, RankingState, RankLETOREnv, RankSyntheticEnv
from lfi_gym.envs.ranking.metrics import dcg_at_k, ndcg_at_k, ndcg_from_scores
from lfi_gym.envs.ranking.svmlight import LETORFormatError
from lfi_gym.envs.vector import RestartableSyncVectorEnv, restartable_sync_vector_env

__all__ = [
    "SPLITS",
    "LETORFormatError",
    "QuerySet",
    "RankLETOREnv",
    "RankSyntheticEnv",
    "RankingEnv",
    "RankingState",
    "dcg_at_k",
    "load_letor",
    "make_letor_vector",
    "make_synthetic_vector",
    "ndcg_at_k",
    "ndcg_from_scores",
    "synthetic_splits",
    "write_svmlight",
]


def write_svmlight(queries: QuerySet, path, comment: str | None = None) -> None:
    """Write a QuerySet as LETOR svmlight (``rel qid:Q 1:v 2:v ...``), zeros omitted."""
    with open(path, "w") as f:
        if comment:
            f.write(f"# {comment}\n")
        for q in range(queries.n_queries):
            features, relevance = queries.query(q)
            for row, rel in zip(features, relevance, strict=True):
                cells = " ".join(f"{j + 1}:{v:.4g}" for j, v in enumerate(row) if v != 0)
                f.write(f"{int(rel)} qid:{int(queries.qids[q])} {cells}\n")


def make_synthetic_vector(num_envs: int = 1, **kwargs: Any) -> RestartableSyncVectorEnv:
    """``gym.make_vec("Rank-Synthetic-v0", num_envs=n)``'s vector entry point."""
    return restartable_sync_vector_env("Rank-Synthetic-v0", num_envs, **kwargs)


def make_letor_vector(num_envs: int = 1, **kwargs: Any) -> RestartableSyncVectorEnv:
    """``gym.make_vec("Rank-LETOR-v0", num_envs=n)``'s vector entry point."""
    return restartable_sync_vector_env("Rank-LETOR-v0", num_envs, **kwargs)
