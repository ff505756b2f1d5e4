"""Ranking data: queries with candidate documents, features and graded relevance.

Two sources: :func:`synthetic_splits` (a seeded generator, no files needed) and
:func:`load_letor` (svmlight files with ``qid:``, the LETOR / MSLR-WEB / Yahoo / Istella
layout, read and checked line by line by :mod:`lfi_gym.envs.ranking.svmlight`).
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from lfi_gym.envs.ranking.svmlight import read_svmlight
from lfi_gym.envs.validation import check_choice, is_int

#: Split names every ranking env understands, in this order.
SPLITS = ("train", "validation", "test")


@dataclasses.dataclass(frozen=True, eq=False)
class QuerySet:
    """The queries of one split, stored flat: documents of query ``q`` are rows
    ``offsets[q]:offsets[q + 1]`` of ``features`` and ``relevance``.

    ``qids`` are the query ids of the source (the generator's index, or svmlight ``qid:``).
    Arrays are read-only so that one QuerySet can be shared by many envs.
    """

    features: np.ndarray  # (n_docs, n_features) float32
    relevance: np.ndarray  # (n_docs,) int64, graded 0..
    offsets: np.ndarray  # (n_queries + 1,) int64
    qids: np.ndarray  # (n_queries,) int64

    def __post_init__(self) -> None:
        for name in ("features", "relevance", "offsets", "qids"):
            getattr(self, name).setflags(write=False)

    @property
    def n_queries(self) -> int:
        return len(self.offsets) - 1

    @property
    def n_features(self) -> int:
        return int(self.features.shape[1])

    @property
    def sizes(self) -> np.ndarray:
        """Number of candidates of every query."""
        return np.diff(self.offsets)

    def query(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Features and relevance of query ``index`` (read-only views)."""
        start, stop = self.offsets[index], self.offsets[index + 1]
        return self.features[start:stop], self.relevance[start:stop]


def _from_groups(
    features: np.ndarray, relevance: np.ndarray, qid: np.ndarray, source: str
) -> QuerySet:
    """Group rows by query id: queries in order of first appearance, documents in file
    order within a query (so files whose qids are unsorted or interleaved work too)."""
    if len(qid) == 0:
        raise ValueError(f"{source}: no documents")
    _, first, inverse = np.unique(qid, return_index=True, return_inverse=True)
    rank_of_group = np.empty(len(first), dtype=np.int64)
    rank_of_group[np.argsort(first, kind="stable")] = np.arange(len(first))
    query_of_row = rank_of_group[inverse.reshape(-1)]
    order = np.argsort(query_of_row, kind="stable")
    counts = np.bincount(query_of_row, minlength=len(first))
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    qids = np.asarray(qid)[order][offsets[:-1]].astype(np.int64)
    return QuerySet(
        features=np.ascontiguousarray(features[order], dtype=np.float32),
        relevance=np.asarray(relevance[order], dtype=np.int64),
        offsets=offsets,
        qids=qids,
    )


# -- synthetic ------------------------------------------------------------------------------


@functools.lru_cache(maxsize=8)
def synthetic_splits(
    n_queries: tuple[int, int, int] = (600, 200, 200),
    n_features: int = 16,
    min_candidates: int = 5,
    max_candidates: int = 30,
    noise: float = 0.3,
    nonlinearity: float = 1.0,
    data_seed: int = 0,
) -> dict[str, QuerySet]:
    """Train / validation / test queries from one hidden relevance function.

    Every document has ``n_features`` standard-normal features. Its latent score is a
    linear part plus ``nonlinearity`` times a random one-hidden-layer tanh network of the
    features plus a per-query offset (some queries are harder, a few have no relevant
    document), plus Gaussian label ``noise``; fixed thresholds grade it into 0..4
    (roughly 45% / 25% / 15% / 10% / 5%). Difficulty knobs: ``noise`` (irreducible
    error: no ranker reaches NDCG 1), ``nonlinearity`` (0: a linear scorer is optimal),
    ``n_features``, and the candidate-list sizes, drawn uniformly in
    ``[min_candidates, max_candidates]`` per query. Cached: equal arguments share arrays.
    """
    if len(n_queries) != 3 or any(int(n) <= 0 for n in n_queries):
        raise ValueError(f"n_queries must be 3 positive counts (train, val, test), got {n_queries}")
    if not 1 <= min_candidates <= max_candidates:
        raise ValueError(
            f"need 1 <= min_candidates <= max_candidates, got {min_candidates}, {max_candidates}"
        )
    if n_features < 2:
        raise ValueError(f"n_features must be >= 2, got {n_features}")
    if noise < 0 or nonlinearity < 0:
        raise ValueError(f"noise and nonlinearity must be >= 0, got {noise}, {nonlinearity}")
    rng = np.random.default_rng([data_seed, 7])
    hidden = 2 * n_features
    linear = rng.normal(size=n_features) / np.sqrt(n_features)
    first = rng.normal(size=(n_features, hidden)) * 1.5 / np.sqrt(n_features)
    bias = rng.normal(size=hidden) * 0.5
    second = rng.normal(size=hidden) / np.sqrt(hidden)
    thresholds = np.array([0.0, 0.75, 1.35, 2.0])
    splits = {}
    for split, count in zip(SPLITS, n_queries, strict=True):
        sizes = rng.integers(min_candidates, max_candidates + 1, size=int(count))
        n_docs = int(sizes.sum())
        x = rng.normal(size=(n_docs, n_features))
        offset = np.repeat(rng.normal(size=int(count)) * 0.3, sizes)
        latent = x @ linear + nonlinearity * (np.tanh(x @ first + bias) @ second) * 1.5
        latent = latent + offset + noise * rng.normal(size=n_docs)
        relevance = np.searchsorted(thresholds, latent, side="right")
        qid = np.repeat(np.arange(int(count)), sizes)
        splits[split] = _from_groups(x.astype(np.float32), relevance, qid, f"synthetic {split}")
    return splits


# -- LETOR ------------------------------------------------------------------------------------

_SPLIT_FILES = {"train": "train.txt", "validation": "vali.txt", "test": "test.txt"}


def resolve_letor_files(
    path: str | os.PathLike | Mapping[str, str | os.PathLike], fold: int | None = None
) -> dict[str, Path]:
    """Which file holds which split.

    ``path`` is one of: a mapping ``{"train": ..., "validation": ..., "test": ...}`` (any
    non-empty subset); a folder with ``train.txt`` / ``vali.txt`` / ``test.txt`` (the MSLR /
    LETOR fold layout); a folder of ``Fold1`` .. ``FoldN`` with ``fold=n``; or a single file,
    used for every split (handy for a quick look, not for held-out evaluation).
    """
    if isinstance(path, Mapping):
        unknown = sorted(set(path) - set(SPLITS))
        if unknown or not path:
            raise ValueError(f"split names must be among {SPLITS}, got {sorted(path)}")
        files = {split: Path(p) for split, p in path.items()}
    else:
        root = Path(path)
        if fold is not None:
            root = root / f"Fold{int(fold)}"
            if not root.is_dir():
                raise FileNotFoundError(f"fold={fold}: no folder {root}")
        if root.is_dir():
            files = {
                split: root / name for split, name in _SPLIT_FILES.items() if (root / name).exists()
            }
            if not files:
                folds = sorted(p.name for p in root.glob("Fold*"))
                hint = f"; it has {', '.join(folds)}: pass fold=1" if folds else ""
                raise FileNotFoundError(
                    f"{root} has none of train.txt, vali.txt, test.txt{hint}; or pass a "
                    "file or a {'train': ..., 'test': ...} mapping"
                )
        elif root.is_file():
            files = dict.fromkeys(SPLITS, root)
        else:
            raise FileNotFoundError(f"no LETOR file or folder at {root}")
    for split, file in files.items():
        if not file.is_file():
            raise FileNotFoundError(f"{split} split: no file at {file}")
    return files


def load_letor(
    path: str | os.PathLike | Mapping[str, str | os.PathLike],
    *,
    fold: int | None = None,
    n_features: int | None = None,
    normalize: str | None = None,
) -> dict[str, QuerySet]:
    """Read LETOR-style svmlight files (``rel qid:Q id:value ... # comment``) into splits.

    Feature ids are 1-based, as in every LETOR release; missing ids are zeros. Every line
    is checked (see :mod:`lfi_gym.envs.ranking.svmlight`): it needs ``qid:``, a relevance
    grade that is an integer from 0 to 31 and finite feature values; a bad line raises
    :class:`~lfi_gym.envs.ranking.svmlight.LETORFormatError` naming the file and the line.
    ``n_features`` fixes the feature count (a file using a larger id is an error); by
    default it is the largest id used, and splits whose largest ids differ are refused,
    since that usually means files from different datasets (pass ``n_features`` if they
    belong together and one omits zero features). ``normalize="query"`` min-max scales
    every feature within each query to [0, 1] (LETOR's QueryLevelNorm; constant features
    become 0). Queries whose documents are all irrelevant stay in the data; their NDCG is 0
    (see :mod:`lfi_gym.envs.ranking.metrics`). A file serving several splits is read once.
    """
    check_choice(normalize, (None, "query"), "normalize")
    if n_features is not None and (not is_int(n_features) or n_features <= 0):
        raise ValueError(f"n_features must be a positive int or None, got {n_features!r}")
    files = resolve_letor_files(path, fold)
    rows = {file: read_svmlight(file, n_features) for file in dict.fromkeys(files.values())}
    if n_features is None:
        widths = {split: rows[file][0].shape[1] for split, file in files.items()}
        if len(set(widths.values())) > 1:
            listing = ", ".join(f"{split} ({files[split].name}) {w}" for split, w in widths.items())
            raise ValueError(
                f"feature count mismatch between splits: largest feature id per split: "
                f"{listing}; if the files belong to one dataset and some just omit zero "
                f"features, pass n_features={max(widths.values())}"
            )
    queries = {}
    for file, (x, relevance, qid) in rows.items():
        queries[file] = _from_groups(x.toarray(), relevance, qid, str(file))
        if normalize == "query":
            queries[file] = _normalize_per_query(queries[file])
    return {split: queries[file] for split, file in files.items()}


def _normalize_per_query(queries: QuerySet) -> QuerySet:
    features = np.array(queries.features, dtype=np.float32)
    for q in range(queries.n_queries):
        rows = slice(queries.offsets[q], queries.offsets[q + 1])
        block = features[rows]
        low, high = block.min(axis=0), block.max(axis=0)
        span = np.where(high > low, high - low, 1.0)
        features[rows] = np.where(high > low, (block - low) / span, 0.0)
    return dataclasses.replace(queries, features=features)
