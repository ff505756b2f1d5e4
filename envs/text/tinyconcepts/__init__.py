"""The embedded, offline assets of TextGen-TinyConcepts-v0: concept sets, tokenizer, tiny GPT-2.

A CommonGen-shaped task (Lin et al. 2020) that runs with no network: concept sets and their
reference reviews come from a grammar (``grammar.py``, built on the TinyReviews grammar),
and ``ASSET_DIR`` holds a byte-level BPE tokenizer and a small GPT-2 trained on the
references alone (``build.py``), loadable with ``AutoTokenizer`` /
``AutoModelForCausalLM``.
"""

from __future__ import annotations

import functools
import pathlib

from lfi_gym.envs.text.tinyconcepts.grammar import (
    KINDS,
    MAX_CONCEPTS,
    MAX_SENTENCES,
    MAX_WORDS,
    MIN_CONCEPTS,
    MIN_SENTENCES,
    MIN_WORDS,
    PROMPT_PREFIX,
    REFERENCES,
    ConceptSet,
    concept_kind,
    concept_prompt,
    generate_concept_sets,
    iter_concept_sets,
    mentions,
)

ASSET_DIR: pathlib.Path = pathlib.Path(__file__).resolve().parent.parent / "assets" / "tinyconcepts"
"""Folder with the shipped tokenizer, model (safetensors) and training.json."""

#: The env's token limits (``tinyconcepts_task``'s defaults): the longest prompt of any split
#: has 28 tokens of the shipped tokenizer and the longest reference 37 as a continuation, so
#: every prompt fits and every reference ends with eos (build.py checks both).
PROMPT_LENGTH = 32
MAX_NEW_TOKENS = 40


def _word_classes() -> dict[str, str]:
    """Each slot filler of the lexicon (a word or a phrase such as "camera work") -> its
    class symbol; a filler in two lists keeps the first list's class."""
    from lfi_gym.envs.text.tinyreviews import grammar as lexicon

    classes: dict[str, str] = {}
    for symbol, fillers in (
        ("<first-name>", lexicon.FIRST_NAMES),
        ("<last-name>", lexicon.LAST_NAMES),
        ("<title-adjective>", lexicon.TITLE_ADJECTIVES),
        ("<title-noun>", lexicon.TITLE_NOUNS),
        ("<positive>", lexicon.POSITIVE_ADJECTIVES),
        ("<negative>", lexicon.NEGATIVE_ADJECTIVES),
        ("<role>", lexicon.ROLES),
        ("<aspect>", lexicon.ASPECTS),
        ("<genre>", lexicon.GENRES),
    ):
        for filler in fillers:
            classes.setdefault(filler.lower(), symbol)
    return classes


#: The reward's fluency check reads texts through these classes, so that a sentence is
#: judged by its structure, not by which name or adjective filled a slot (see
#: :class:`~lfi_gym.envs.text.concepts.NGramFluency`).
WORD_CLASSES: dict[str, str] = _word_classes()

SPLIT_SIZES: dict[str, int] = {"train": 5_000, "validation": 500, "test": 500}
SPLIT_SEEDS: dict[str, int] = {"train": 21_000, "validation": 22_000, "test": 23_000}
# Each split skips the concept sets of the splits before it, so no validation or test set
# equals a train set (nor a test set a validation set), as in CommonGen.
_EARLIER_SPLITS: dict[str, tuple[str, ...]] = {
    "train": (),
    "validation": ("train",),
    "test": ("train", "validation"),
}

__all__ = [
    "ASSET_DIR",
    "KINDS",
    "MAX_CONCEPTS",
    "MAX_NEW_TOKENS",
    "MAX_SENTENCES",
    "MAX_WORDS",
    "MIN_CONCEPTS",
    "MIN_SENTENCES",
    "MIN_WORDS",
    "PROMPT_LENGTH",
    "PROMPT_PREFIX",
    "REFERENCES",
    "SPLIT_SEEDS",
    "SPLIT_SIZES",
    "WORD_CLASSES",
    "ConceptSet",
    "concept_kind",
    "concept_prompt",
    "generate_concept_sets",
    "iter_concept_sets",
    "load_split",
    "mentions",
]


@functools.lru_cache(maxsize=8)
def _load_split(split: str) -> tuple[ConceptSet, ...]:
    exclude = frozenset(
        frozenset(s.concepts) for earlier in _EARLIER_SPLITS[split] for s in _load_split(earlier)
    )
    return tuple(generate_concept_sets(SPLIT_SIZES[split], SPLIT_SEEDS[split], exclude))


def load_split(split: str) -> list[ConceptSet]:
    """Returns one split of the concept sets ("train", "validation" or "test").

    Each split comes from its own fixed seed and skips the concept sets of the splits before
    it (train, then validation, then test), so the splits are fixed across machines and
    disjoint on concept sets; the model in ``ASSET_DIR`` was trained on the "train" split's
    references. The generated split is cached; callers get a fresh list they may mutate.
    """
    if split not in SPLIT_SIZES:
        raise ValueError(
            f"unknown TinyConcepts split {split!r}; valid splits are {sorted(SPLIT_SIZES)}"
        )
    return list(_load_split(split))
