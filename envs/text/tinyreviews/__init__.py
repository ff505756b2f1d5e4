"""The embedded, offline assets of TextGen-TinyReviews-v0: corpus, tokenizer and tiny GPT-2.

The text family must run with no network (each family has an offline default). This package
generates a movie-review corpus from a hand-written grammar (``grammar.py``) and points
at a byte-level BPE tokenizer and a small GPT-2 trained on it (``build.py``), shipped in
``ASSET_DIR`` and loadable with ``AutoTokenizer`` / ``AutoModelForCausalLM``.
"""

from __future__ import annotations

import functools
import pathlib

from lfi_gym.envs.text.tinyreviews.grammar import MAX_WORDS, MIN_WORDS, Review, generate_reviews

ASSET_DIR: pathlib.Path = pathlib.Path(__file__).resolve().parent.parent / "assets" / "tinyreviews"
"""Folder with the shipped tokenizer, model (safetensors) and training.json."""

SPLIT_SIZES: dict[str, int] = {"train": 20_000, "validation": 2_000, "test": 2_000}
SPLIT_SEEDS: dict[str, int] = {"train": 1_000, "validation": 2_000, "test": 3_000}

__all__ = [
    "ASSET_DIR",
    "MAX_WORDS",
    "MIN_WORDS",
    "SPLIT_SEEDS",
    "SPLIT_SIZES",
    "Review",
    "generate_reviews",
    "load_split",
]


@functools.lru_cache(maxsize=8)
def _load_split(split: str) -> tuple[Review, ...]:
    return tuple(generate_reviews(SPLIT_SIZES[split], SPLIT_SEEDS[split]))


def load_split(split: str) -> list[Review]:
    """Returns one split of the corpus ("train", "validation" or "test").

    Each split comes from its own fixed seed, so the splits are fixed across machines and
    the model shipped in ``ASSET_DIR`` was trained on exactly the "train" split. The
    generated split is cached; callers get a fresh list they may mutate.
    """
    if split not in SPLIT_SIZES:
        raise ValueError(
            f"unknown TinyReviews split {split!r}; valid splits are {sorted(SPLIT_SIZES)}"
        )
    return list(_load_split(split))
