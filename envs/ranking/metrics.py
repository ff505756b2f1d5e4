"""NDCG with exponential gain, the metric every ranking env and benchmark here reports.

Gain of a document with graded relevance ``rel`` is ``2**rel - 1`` and the discount of
1-based position ``k`` is ``log2(k + 1)`` (Burges et al. 2005, the LETOR / MSLR / Yahoo
convention). A query without any relevant document has an ideal DCG of 0: its NDCG is
defined as **0** here (LightGBM reports 1 for such queries; the gap is the share of those
queries, so compare metrics computed by the same function).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from lfi_gym.envs.validation import check_positive_int


def gains(relevance: np.ndarray) -> np.ndarray:
    """Exponential gains ``2**rel - 1`` as float64."""
    return np.exp2(np.asarray(relevance, dtype=np.float64)) - 1.0


def discounts(n: int) -> np.ndarray:
    """``1 / log2(k + 1)`` for positions k = 1..n."""
    return 1.0 / np.log2(np.arange(2, n + 2, dtype=np.float64))


def dcg_at_k(ranked_relevance: Sequence[float] | np.ndarray, k: int) -> float:
    """DCG@k of relevance labels listed in ranked order (only the first k count)."""
    rel = np.asarray(ranked_relevance, dtype=np.float64)[:k]
    return float(np.sum(gains(rel) * discounts(len(rel))))


def ndcg_at_k(
    ranking: Sequence[int] | np.ndarray, relevance: Sequence[float] | np.ndarray, k: int
) -> float:
    """NDCG@k of ``ranking`` (document indices, best first; it may list fewer than all
    documents) against the labels ``relevance`` of all documents of the query.

    0 for a query without relevant documents (see the module docstring).
    """
    check_positive_int(k, "k")
    relevance = np.asarray(relevance, dtype=np.float64)
    ranking = np.asarray(ranking, dtype=np.int64)
    ideal = dcg_at_k(np.sort(relevance)[::-1], k)
    if ideal <= 0.0:
        return 0.0
    return dcg_at_k(relevance[ranking], k) / ideal


def ndcg_from_scores(scores: np.ndarray, relevance: np.ndarray, k: int) -> float:
    """NDCG@k of ranking the documents by decreasing score (ties: lower index first)."""
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    return ndcg_at_k(order, relevance, k)
