"""Concept sets and the short reviews that use them: a CommonGen-shaped offline task.

CommonGen (Lin et al. 2020) gives a model a set of concepts and asks for a fluent text that
uses every one of them. TextGen-TinyConcepts-v0 must run with no network, so its data come
from the TinyReviews grammar (:mod:`lfi_gym.envs.text.tinyreviews.grammar`), constrained:

- a concept set holds 2-4 concepts of distinct kinds: a person ("Greta Voss"), a title
  ("The Silent Harbor"), a genre ("thriller"), an aspect ("soundtrack") and a sentiment
  adjective ("brilliant"), which sets the polarity of the references (a fair coin does
  without one);
- each set has :data:`REFERENCES` references, reviews of 2-3 sentences that contain every
  concept verbatim, each a different plan of sentence forms (so the concepts come in
  another order, with other filler); slots that are not concepts (another title, genre,
  name, aspect or adjective) are drawn at random as in TinyReviews.

A plan is an opening, an optional middle and a closing sentence form; each form names the
concept kinds it is sure to mention, and a plan is only drawn if its forms together mention
every kind of the set. Fillers (TinyReviews' own sentences) mention no kind for sure.

Everything is drawn from a ``random.Random`` seeded by the caller; nothing depends on
``hash()`` or on the iteration order of a set, so a ``(n, seed, exclude)`` triple gives the
same concept sets in every process.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Collection, Iterator
from typing import NamedTuple

from lfi_gym.envs.text.concepts import PROMPT_PREFIX, concept_prompt
from lfi_gym.envs.text.tinyreviews.grammar import (
    ASPECTS,
    FILM_WORDS,
    FIRST_NAMES,
    GENRES,
    INTENSIFIERS,
    LAST_NAMES,
    NEGATIVE_ADJECTIVES,
    PLACES,
    PLOTS,
    POSITIVE_ADJECTIVES,
    ROLES,
    TITLE_ADJECTIVES,
    TITLE_NOUNS,
    aspect_sentence,
    be_form,
    capitalize,
    contrast_sentence,
    draw_name,
    draw_title,
    neutral_opener,
    polar_opener,
    qualified,
    sentiment_adjective,
    sentiment_noun,
    sentiment_verb,
    verdict,
    with_article,
)

__all__ = [
    "KINDS",
    "MAX_CONCEPTS",
    "MAX_SENTENCES",
    "MAX_WORDS",
    "MIN_CONCEPTS",
    "MIN_SENTENCES",
    "MIN_WORDS",
    "PROMPT_PREFIX",
    "REFERENCES",
    "ConceptSet",
    "concept_kind",
    "concept_prompt",
    "generate_concept_sets",
    "iter_concept_sets",
    "mentions",
]

#: The kinds of concept, in the order a concept set's values are described here.
KINDS = ("person", "title", "genre", "aspect", "sentiment")
MIN_CONCEPTS = 2
MAX_CONCEPTS = 4
#: References per concept set (CommonGen's dev and test sets have 4-6 per set).
REFERENCES = 4
MIN_SENTENCES = 2
MAX_SENTENCES = 3
#: Word bounds of a reference: the longest stay under 40 tokens of the shipped tokenizer.
MIN_WORDS = 8
MAX_WORDS = 30

# Share of references with two sentences (opening and closing), where a plan can cover the set.
_TWO_SENTENCES = 0.3


class ConceptSet(NamedTuple):
    """A set of concepts, in prompt order, and the reference reviews that use them all."""

    concepts: tuple[str, ...]
    references: tuple[str, ...]


def mentions(text: str, concept: str) -> bool:
    """Whether ``concept`` occurs in ``text`` verbatim as whole words: no letter or digit
    right before or after it ("music" is not in "musical")."""
    start = text.find(concept)
    while start >= 0:
        end = start + len(concept)
        if (start == 0 or not text[start - 1].isalnum()) and (
            end == len(text) or not text[end].isalnum()
        ):
            return True
        start = text.find(concept, start + 1)
    return False


_TITLE = re.compile(
    "|".join(
        (
            rf"(?:The )?(?:{'|'.join(TITLE_ADJECTIVES)}) (?:{'|'.join(TITLE_NOUNS)})",
            rf"The (?:{'|'.join(TITLE_NOUNS)})(?: and the (?:{'|'.join(TITLE_NOUNS)}))?",
            rf"(?:{'|'.join(TITLE_NOUNS)}) of (?:{'|'.join(FIRST_NAMES)})",
        )
    )
)


def concept_kind(concept: str) -> str:
    """The kind of a concept of this grammar (one of :data:`KINDS`), read off the lexicon."""
    if concept in GENRES:
        return "genre"
    if concept in ASPECTS:
        return "aspect"
    if concept in POSITIVE_ADJECTIVES or concept in NEGATIVE_ADJECTIVES:
        return "sentiment"
    first, _, last = concept.partition(" ")
    if first in FIRST_NAMES and last in LAST_NAMES:
        return "person"
    if _TITLE.fullmatch(concept):
        return "title"
    raise ValueError(f"{concept!r} is not a TinyConcepts concept (a person, title, genre, ...)")


# ---------------------------------------------------------------------------- sentence forms
# A form renders one sentence from the review's slots: ``title``, ``genre`` and ``name`` are
# the same in every sentence of a review, ``aspect`` and ``adj`` are this sentence's own
# (the concept in the one sentence chosen to carry it, random draws elsewhere).

_Slots = dict[str, str]
_Render = Callable[[random.Random, _Slots, int], str]


class _Form(NamedTuple):
    kinds: frozenset[str]  # the concept kinds the sentence always mentions
    render: _Render


def _form(kinds: str, render: _Render) -> _Form:
    return _Form(frozenset(kinds.split()), render)


def _other_aspect(rng: random.Random, aspect: str) -> str:
    return rng.choice([a for a in ASPECTS if a != aspect])


def _intens(rng: random.Random) -> str:
    return rng.choice(INTENSIFIERS)


def _ctx(s: _Slots) -> dict[str, str]:
    return {"title": s["title"], "genre": s["genre"], "name": s["name"]}


def _recommend(rng: random.Random, s: _Slots, pol: int) -> str:
    if pol > 0:
        return f"I would recommend {s['title']} for the {s['aspect']} alone."
    return f"Not even the {s['aspect']} can save {s['title']}."


def _contrast(rng: random.Random, s: _Slots, pol: int) -> str:
    other = _other_aspect(rng, s["aspect"])
    bad = sentiment_adjective(rng, -pol)
    return (
        f"The {other} {be_form(other, True)} {bad}, but the {s['aspect']} "
        f"{be_form(s['aspect'], True)} {_intens(rng)}{s['adj']}."
    )


def _two_aspects(rng: random.Random, s: _Slots, pol: int) -> str:
    asp, other, past = s["aspect"], _other_aspect(rng, s["aspect"]), rng.random() < 0.5
    return (
        f"The {asp} {be_form(asp, past)} {_intens(rng)}{s['adj']} and the {other} "
        f"{be_form(other, past)} {sentiment_adjective(rng, pol)}."
    )


def _felt(rng: random.Random, s: _Slots, pol: int) -> str:
    other = _other_aspect(rng, s["aspect"])
    return (
        f"The {s['aspect']} felt {_intens(rng)}{s['adj']}, and the {other} "
        f"{be_form(other, True)} {sentiment_adjective(rng, pol)} too."
    )


_OPENINGS: tuple[_Form, ...] = (
    _form("title sentiment genre",
          lambda r, s, p: f"{s['title']} is {with_article(_intens(r) + s['adj'])} {s['genre']}."),
    _form("title genre person",
          lambda r, s, p: f"I {sentiment_verb(r, p)} {s['title']}, the new {s['genre']} from "
          f"{s['name']}."),
    _form("title sentiment",
          lambda r, s, p: f"From the first scene, {s['title']} is {_intens(r)}{s['adj']}."),
    _form("title sentiment",
          lambda r, s, p: f"What {with_article(s['adj'])} {r.choice(FILM_WORDS)} {s['title']} "
          "turned out to be."),
    _form("title", lambda r, s, p: f"I watched {s['title']} last night."),
    _form("title genre person",
          lambda r, s, p: f"{s['title']} is {with_article(s['genre'])} from director {s['name']}."),
    _form("title genre person",
          lambda r, s, p: f"I saw {s['title']}, the new {s['genre']} by {s['name']}, "
          "this weekend."),
    _form("title person",
          lambda r, s, p: f"In {s['title']}, {s['name']} plays {with_article(r.choice(ROLES))} "
          f"who {r.choice(PLOTS)}."),
    _form("person genre",
          lambda r, s, p: f"{s['name']} directs this {s['genre']} about "
          f"{with_article(r.choice(ROLES))} in {r.choice(PLACES)}."),
    _form("title genre person sentiment aspect",
          lambda r, s, p: f"{s['title']}, the {s['genre']} from {s['name']}, has "
          f"{qualified(s['adj'], s['aspect'])}."),
    _form("person title sentiment genre",
          lambda r, s, p: f"{s['name']} directs {s['title']}, "
          f"{with_article(_intens(r) + s['adj'])} {s['genre']}."),
    _form("genre aspect sentiment",
          lambda r, s, p: f"This {s['genre']} has {qualified(s['adj'], s['aspect'])}."),
    _form("", lambda r, s, p: neutral_opener(r, _ctx(s))),
    _form("", lambda r, s, p: polar_opener(r, _ctx(s), p)),
)  # fmt: skip

_MIDDLES: tuple[_Form, ...] = (
    _form("aspect sentiment",
          lambda r, s, p: f"The {s['aspect']} {be_form(s['aspect'], r.random() < 0.5)} "
          f"{_intens(r)}{s['adj']}."),
    _form("aspect sentiment", _two_aspects),
    _form("person sentiment",
          lambda r, s, p: f"{s['name']} gives {with_article(_intens(r) + s['adj'])} performance "
          f"as the {r.choice(ROLES)}."),
    _form("aspect", lambda r, s, p: f"I {sentiment_verb(r, p)} the {s['aspect']}."),
    _form("aspect sentiment", _felt),
    _form("aspect sentiment",
          lambda r, s, p: f"Even the {s['aspect']} {be_form(s['aspect'], r.random() < 0.5)} "
          f"{s['adj']}."),
    _form("person sentiment aspect",
          lambda r, s, p: f"{s['name']} gives {with_article(s['adj'])} performance, and the "
          f"{s['aspect']} {be_form(s['aspect'], True)} {sentiment_adjective(r, p)}."),
    _form("aspect genre sentiment",
          lambda r, s, p: f"The {s['aspect']} of this {s['genre']} "
          f"{be_form(s['aspect'], r.random() < 0.5)} {_intens(r)}{s['adj']}."),
    _form("genre sentiment",
          lambda r, s, p: f"As {with_article(s['genre'])}, it is {_intens(r)}{s['adj']}."),
    _form("aspect sentiment", _contrast),
    _form("title aspect",
          lambda r, s, p: f"The {s['aspect']} of {s['title']} "
          f"{be_form(s['aspect'], r.random() < 0.5)} {with_article(sentiment_noun(r, p))}."),
    _form("", lambda r, s, p: aspect_sentence(r, _ctx(s), p)),
    _form("", lambda r, s, p: contrast_sentence(r, p)),
)  # fmt: skip

_CLOSINGS: tuple[_Form, ...] = (
    _form("sentiment",
          lambda r, s, p: f"Overall, {with_article(_intens(r) + s['adj'])} "
          f"{r.choice(FILM_WORDS)}."),
    _form("title",
          lambda r, s, p: f"In the end, {s['title']} is {with_article(sentiment_noun(r, p))}."),
    _form("sentiment genre",
          lambda r, s, p: f"All in all, {with_article(s['adj'])} {s['genre']}."),
    _form("person sentiment genre",
          lambda r, s, p: f"Overall, {s['name']} made {with_article(_intens(r) + s['adj'])} "
          f"{s['genre']}."),
    _form("title aspect", _recommend),
    _form("sentiment title",
          lambda r, s, p: f"All in all, {s['title']} is {_intens(r)}{s['adj']}."),
    _form("", lambda r, s, p: verdict(r, _ctx(s), p)),
)  # fmt: skip


class _Plan(NamedTuple):
    forms: tuple[_Form, ...]
    kinds: frozenset[str]


def _plans() -> tuple[tuple[_Plan, ...], tuple[_Plan, ...]]:
    """Every two- and three-sentence plan, in a fixed order."""
    pairs = tuple(_Plan((o, c), o.kinds | c.kinds) for o in _OPENINGS for c in _CLOSINGS)
    triples = tuple(
        _Plan((o, m, c), o.kinds | m.kinds | c.kinds)
        for o in _OPENINGS
        for m in _MIDDLES
        for c in _CLOSINGS
    )
    return pairs, triples


_PAIRS, _TRIPLES = _plans()
_COVERING: dict[tuple[str, ...], tuple[tuple[_Plan, ...], tuple[_Plan, ...]]] = {}


def _covering(kinds: tuple[str, ...]) -> tuple[tuple[_Plan, ...], tuple[_Plan, ...]]:
    """The two- and three-sentence plans that mention every kind in ``kinds`` (cached)."""
    key = tuple(sorted(kinds))
    if key not in _COVERING:
        needed = frozenset(key)
        _COVERING[key] = (
            tuple(p for p in _PAIRS if needed <= p.kinds),
            tuple(p for p in _TRIPLES if needed <= p.kinds),
        )
    return _COVERING[key]


# ---------------------------------------------------------------------------- references


def _render(rng: random.Random, plan: _Plan, values: dict[str, str], pol: int) -> str:
    """One review following ``plan``: the aspect and adjective concepts each go into one of
    the sentences whose form mentions their kind, chosen at random."""
    ctx = {
        "title": values.get("title") or draw_title(rng),
        "genre": values.get("genre") or rng.choice(GENRES),
        "name": values.get("person") or draw_name(rng),
    }
    carrier = {
        kind: rng.choice([i for i, form in enumerate(plan.forms) if kind in form.kinds])
        for kind in ("aspect", "sentiment")
        if kind in values
    }
    sentences = []
    for i, form in enumerate(plan.forms):
        aspect = values["aspect"] if carrier.get("aspect") == i else None
        adjective = values["sentiment"] if carrier.get("sentiment") == i else None
        slots = {
            **ctx,
            "aspect": aspect or _other_aspect(rng, values.get("aspect", "")),
            "adj": adjective or sentiment_adjective(rng, pol),
        }
        sentences.append(capitalize(form.render(rng, slots, pol)))
    return " ".join(sentences)


def _references(rng: random.Random, values: dict[str, str], pol: int) -> tuple[str, ...]:
    """:data:`REFERENCES` distinct reviews, each from its own plan, all within the bounds."""
    pairs, triples = _covering(tuple(values))
    used: list[_Plan] = []
    references: list[str] = []
    while len(references) < REFERENCES:  # rejection: a used plan, a text out of bounds
        plans = pairs if pairs and rng.random() < _TWO_SENTENCES else triples
        plan = rng.choice(plans)
        if plan in used:
            continue
        text = _render(rng, plan, values, pol)
        if not MIN_WORDS <= len(text.split()) <= MAX_WORDS or text in references:
            continue
        missing = [c for c in values.values() if not mentions(text, c)]
        if missing:  # the plan's forms promised these kinds: a bug in a form
            raise AssertionError(f"a reference lacks the concepts {missing}: {text!r}")
        used.append(plan)
        references.append(text)
    return tuple(references)


def _draw_concepts(rng: random.Random) -> tuple[dict[str, str], int]:
    """A concept set's kinds (in prompt order) with their values, and its polarity."""
    kinds = rng.sample(KINDS, rng.randint(MIN_CONCEPTS, MAX_CONCEPTS))
    pol = rng.choice((1, -1))
    values = {}
    for kind in kinds:
        if kind == "person":
            values[kind] = draw_name(rng)
        elif kind == "title":
            values[kind] = draw_title(rng)
        elif kind == "genre":
            values[kind] = rng.choice(GENRES)
        elif kind == "aspect":
            values[kind] = rng.choice(ASPECTS)
        else:
            values[kind] = sentiment_adjective(rng, pol)
    return values, pol


def iter_concept_sets(seed: int, exclude: Collection[frozenset[str]] = ()) -> Iterator[ConceptSet]:
    """Concept sets drawn from ``seed``, endlessly; a set equal (as a set of concepts) to one
    in ``exclude`` or to one drawn before is skipped."""
    rng = random.Random(seed)
    seen: set[frozenset[str]] = set()  # membership only: its order never matters
    while True:
        values, pol = _draw_concepts(rng)
        key = frozenset(values.values())
        if key in seen or key in exclude:
            continue
        seen.add(key)
        yield ConceptSet(tuple(values.values()), _references(rng, values, pol))


def generate_concept_sets(
    n: int, seed: int, exclude: Collection[frozenset[str]] = ()
) -> list[ConceptSet]:
    """Returns ``n`` distinct concept sets with their references, none equal (as a set of
    concepts) to one in ``exclude``. The same arguments give the same list in every process."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"n must be a non-negative int, got {n!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be an int, got {seed!r}; pass e.g. seed=0")
    sets = iter_concept_sets(seed, exclude)
    return [next(sets) for _ in range(n)]
