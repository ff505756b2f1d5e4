"""The concept-to-text reward: concept coverage times a frozen n-gram fluency.

A CommonGen-style task (Lin et al. 2020) asks for a text that uses every concept of a set
fluently. Coverage alone is gamed by listing the concepts ("Greta Voss thriller
soundtrack brilliant"); a fluency term from the policy's own initial LM would reward
staying where that LM already is. So fluency here comes from a model that no policy
trains: the set of word n-grams of a fixed corpus's sentences (the task's training
references), against which a text is judged by the fraction of its n-grams found there
or, as a grammar check, by whether all of them are (:class:`NGramFluency`). Listing
concepts, shuffling a reference's words or sampling tokens at random yields n-grams the
corpus never had; a grammatical review built from the corpus' own phrases has none.

    reward = coverage(completion, concepts) * fluency(completion)

``coverage`` is the fraction of the row's concepts that occur in the completion, each as
written or inflected (``soundtrack`` / ``soundtracks``, ``horror film`` / ``horror
films``, ``Greta Voss`` / ``Greta Voss's``), case-insensitive. Only the completion is
scored: the prompt lists the concepts, and would otherwise give them away.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from lfi_gym.envs.text.rewards import RewardError, _check_rows, _Reward, check_rewards
from lfi_gym.envs.validation import check_choice, check_int_at_least

__all__ = [
    "FLUENCY_RULES",
    "PROMPT_PREFIX",
    "ConceptCoverageReward",
    "NGramFluency",
    "concept_coverage",
    "concept_prompt",
    "concepts_from_prompt",
    "inflections",
    "words",
]

PROMPT_PREFIX = "write a review with: "
"""A concept prompt is this prefix, the concepts joined by ", ", and a period."""

_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?|[.,!?;:]")
_BOUNDARY_START, _BOUNDARY_END = "<s>", "</s>"
_SENTENCE_ENDS = frozenset(".!?")


def words(text: str) -> list[str]:
    """Lower-case word and punctuation tokens (``"Voss's soundtrack."`` -> ``["voss's",
    "soundtrack", "."]``): the units of both coverage and fluency."""
    if not isinstance(text, str):
        raise TypeError(f"expected a str, got {type(text).__name__}")
    return _WORD.findall(text.lower().replace("\u2019", "'"))


def inflections(word: str) -> frozenset[str]:
    """The forms of ``word`` that count as using it: itself, plural and possessive, past
    tense and gerund (regular English morphology; the lexicon has no irregular forms)."""
    forms = {word, word + "s", word + "es", word + "'s", word + "ed", word + "d", word + "ing"}
    if len(word) > 1 and word.endswith("y"):
        forms |= {word[:-1] + "ies", word[:-1] + "ied"}
    if len(word) > 1 and word.endswith("e"):
        forms.add(word[:-1] + "ing")
    return frozenset(forms)


def _concept_present(tokens: Sequence[str], concept: str) -> bool:
    """Whether ``concept`` occurs in ``tokens``: every word but the last as written, the
    last in any of its :func:`inflections`."""
    parts = words(concept)
    if not any(part[0].isalnum() for part in parts):
        raise RewardError(f"concept {concept!r} has no words; concepts are words or names")
    *head, last = parts
    forms = inflections(last)
    k = len(parts)
    for start in range(len(tokens) - k + 1):
        if list(tokens[start : start + k - 1]) == head and tokens[start + k - 1] in forms:
            return True
    return False


def concept_coverage(text: str, concepts: Sequence[str]) -> float:
    """The fraction of ``concepts`` that ``text`` uses (see :func:`inflections`)."""
    if isinstance(concepts, str) or not concepts:
        raise RewardError(
            f"concepts must be a non-empty list of str, got {concepts!r}; e.g. "
            '["Greta Voss", "thriller"]'
        )
    tokens = words(text)
    return sum(_concept_present(tokens, concept) for concept in concepts) / len(concepts)


def concept_prompt(concepts: Sequence[str]) -> str:
    """``"write a review with: Greta Voss, thriller."`` for ``["Greta Voss", "thriller"]``."""
    return PROMPT_PREFIX + ", ".join(concepts) + "."


def concepts_from_prompt(prompt: str) -> tuple[str, ...] | None:
    """The concepts a :func:`concept_prompt` names, or None if ``prompt`` is not one."""
    text = prompt.strip()
    if not text.startswith(PROMPT_PREFIX) or not text.endswith("."):
        return None
    concepts = tuple(c.strip() for c in text[len(PROMPT_PREFIX) : -1].split(","))
    return concepts if all(concepts) else None


FLUENCY_RULES = ("fraction", "all")


class NGramFluency:
    """Fluency of a text from the word n-grams of a fixed corpus's sentences.

    ``rule="fraction"``: the fraction of the text's n-grams found in the corpus.
    ``rule="all"``: 1 if every one of them is found, else 0 (a grammar check: the text
    uses only phrasing the corpus has). ``word_classes`` maps words or phrases to class
    symbols before counting (e.g. every first name to ``"<first-name>"``, ``"camera
    work"`` to ``"<aspect>"``), in the corpus and in the texts alike, so that a grammar's
    slot fillers combine freely: a held-out sentence is then judged by its structure, not
    by which name happened to fill which slot.

    Texts are cut into sentences (after ``.``, ``!``, ``?``), each padded with
    ``order - 1`` start symbols and one end symbol, so a sentence of ``w`` tokens has
    ``w + 1`` n-grams and how it starts and ends counts too. A text without words scores
    0. The corpus is read once and frozen.
    """

    def __init__(
        self,
        corpus: Iterable[str],
        order: int = 3,
        *,
        word_classes: Mapping[str, str] | None = None,
        rule: str = "fraction",
    ) -> None:
        self.order = check_int_at_least(order, 1, "NGramFluency: order", error=RewardError)
        self.rule = check_choice(rule, FLUENCY_RULES, "NGramFluency: rule", error=RewardError)
        if isinstance(corpus, str):
            raise RewardError("NGramFluency: corpus must be a list of texts, not one str")
        self.word_classes = {" ".join(words(k)): v for k, v in (word_classes or {}).items()}
        self._longest = max((len(k.split()) for k in self.word_classes), default=1)
        self._seen: set[str] = set()
        self.n_texts = 0
        for text in corpus:
            if words(text):  # an empty text would make the empty completion "fluent"
                self._seen.update(self._ngrams(text))
                self.n_texts += 1
        if self.n_texts == 0:
            raise RewardError(
                "NGramFluency: the corpus has no words; pass the texts whose phrasing counts "
                "as fluent (e.g. the task's training references)"
            )

    def _ngrams(self, text: str) -> list[str]:
        grams = []
        for sentence in self._sentences(text):
            padded = [_BOUNDARY_START] * (self.order - 1) + sentence + [_BOUNDARY_END]
            # One str per n-gram (unit separator between tokens): far smaller than tuples.
            grams += [
                "\x1f".join(padded[i : i + self.order]) for i in range(len(padded) - self.order + 1)
            ]
        return grams

    def _sentences(self, text: str) -> list[list[str]]:
        """The text's tokens, slot fillers replaced by their classes (longest phrase
        first), cut after each ``.``, ``!`` and ``?``; a last sentence without one keeps
        its end unpunctuated, so an unfinished text does not look finished."""
        tokens = words(text)
        classed: list[str] = []
        i = 0
        while i < len(tokens):
            for length in range(min(self._longest, len(tokens) - i), 0, -1):
                symbol = self.word_classes.get(" ".join(tokens[i : i + length]))
                if symbol is not None:
                    classed.append(symbol)
                    i += length
                    break
            else:
                classed.append(tokens[i])
                i += 1
        sentences, current = [], []
        for token in classed:
            current.append(token)
            if token in _SENTENCE_ENDS:
                sentences.append(current)
                current = []
        if current:
            sentences.append(current)
        return sentences

    def __call__(self, text: str) -> float:
        found = [gram in self._seen for gram in self._ngrams(text)]
        if not found:  # no words: nothing fluent was written
            return 0.0
        if self.rule == "all":
            return float(all(found))
        return sum(found) / len(found)

    def __repr__(self) -> str:
        return (
            f"NGramFluency(order={self.order}, rule={self.rule!r}, "
            f"word_classes={len(self.word_classes)}, n_texts={self.n_texts})"
        )


class ConceptCoverageReward(_Reward):
    """``coverage * fluency`` of each completion, in [0, 1] (see the module docstring).

    Reads each row's concepts from the ``concepts`` column the TinyConcepts env passes;
    for a prompt given to ``make_state`` (no column value), from the prompt itself when it
    is a concept prompt (``"write a review with: a, b."``).
    """

    name = "concept-coverage"

    def __init__(
        self,
        fluency_corpus: Iterable[str],
        order: int = 3,
        *,
        word_classes: Mapping[str, str] | None = None,
        fluency_rule: str = "fraction",
    ) -> None:
        self.fluency = NGramFluency(
            fluency_corpus, order=order, word_classes=word_classes, rule=fluency_rule
        )

    def __call__(
        self,
        prompts: Sequence[str],
        completions: Sequence[str],
        references: Sequence[Sequence[str]] | None = None,
        concepts: Sequence[Sequence[str] | None] | None = None,
        **unused: Any,
    ) -> list[float]:
        _check_rows(self.name, prompts, completions, references, need_references=False)
        if concepts is None:
            concepts = [None] * len(completions)
        if isinstance(concepts, str) or len(concepts) != len(completions):
            raise RewardError(
                f"{self.name}: concepts must hold one concept list per completion "
                f"({len(completions)}), got {concepts!r}"
            )
        values = []
        for prompt, completion, row_concepts in zip(prompts, completions, concepts, strict=True):
            if row_concepts is None:
                row_concepts = concepts_from_prompt(prompt)
            if row_concepts is None:
                raise RewardError(
                    f"{self.name}: no concepts for the prompt {prompt!r}; pass concepts=[...] "
                    f"per row, or a prompt of the form {concept_prompt(['a', 'b'])!r}"
                )
            values.append(concept_coverage(completion, row_concepts) * self.fluency(completion))
        return check_rewards(np.asarray(values, dtype=np.float64), len(values), self.name).tolist()

    def __repr__(self) -> str:
        return f"ConceptCoverageReward(fluency={self.fluency!r})"
