"""A hand-written probabilistic grammar of short English movie reviews.

TextGen-TinyReviews-v0 must run with no network at all, so its corpus is generated here
rather than downloaded. The grammar is built for what the text agents need from a
sentiment-steering benchmark:

- the label is clear over the whole review (sentiment words that VADER's lexicon knows,
  intensifiers, negations, a closing verdict), so a lexicon reward can score it;
- the first half does not always give the label away: about a third of the reviews open
  neutrally and another third open with the *opposite* sentiment and turn later, so a
  policy that continues a prompt has room to steer;
- invented titles, people, genres and plots make exact duplicates between splits rare.

Everything is drawn from a ``random.Random`` seeded by the caller, whose algorithms are
stable across processes and Python versions (no ``hash()``, no global state), so a
``(n, seed)`` pair always gives the same reviews.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import NamedTuple

MIN_WORDS = 20
MAX_WORDS = 45
MAX_SENTENCES = 4


class Review(NamedTuple):
    """One review of the corpus: its text and its label (1 = positive, 0 = negative)."""

    text: str
    label: int


# ---------------------------------------------------------------------------- lexicon
# Words for names, titles and plots are chosen to be neutral for VADER, so that the
# sentiment of a review comes only from the words that are meant to carry it.

_TITLE_ADJ = (
    "Silent", "Northern", "Hidden", "Distant", "Quiet", "Golden", "Secret", "Wild",
    "Crimson", "Velvet", "Copper", "Paper", "Iron", "Amber", "Violet", "Midnight",
    "Winter", "Summer", "Autumn", "Little", "Last", "Long", "Salt", "Glass",
)  # fmt: skip
_TITLE_NOUN = (
    "Harbor", "Orchard", "River", "Lantern", "Moon", "Garden", "Letters", "Station",
    "Echo", "Tide", "Meadow", "Kingdom", "Signal", "Ember", "Frost", "Canyon", "House",
    "Road", "City", "Island", "Mountain", "Bridge", "Tower", "Circus", "Archive",
    "Engine", "Orbit", "Mirror", "Forest", "Desert", "Valley", "Lighthouse", "Sparrow",
    "Falcon", "Fox", "Raven", "Harvest", "Carnival", "Frontier", "Horizon", "Compass",
    "Ledger", "Atlas", "Cipher",
)  # fmt: skip
_FIRST = (
    "Mara", "Elias", "Ines", "Tobias", "Lena", "Jonah", "Priya", "Mateo", "Greta",
    "Owen", "Sofia", "Rafael", "Nadia", "Hugo", "Clara", "Felix", "Ada", "Marcus",
    "Yuki", "Leo", "Hana", "Victor", "Irene", "Dmitri", "Alma", "Theo", "Rosa", "Callum",
)  # fmt: skip
_LAST = (
    "Voss", "Brandt", "Okafor", "Lindqvist", "Moreau", "Castillo", "Hale", "Nakamura",
    "Ferreira", "Albright", "Kowalski", "Marsh", "Delacroix", "Ibsen", "Quinn", "Reyes",
    "Sato", "Whitlock", "Novak", "Abara", "Fontaine", "Kerr", "Haddad", "Lund",
)  # fmt: skip
_GENRES = (
    "thriller", "comedy", "drama", "western", "horror film", "documentary", "romance",
    "musical", "science fiction film", "animated feature", "mystery", "war film",
    "family film", "period piece", "road movie", "heist film", "sports drama",
)  # fmt: skip
_ROLES = (
    "sailor", "chemist", "detective", "teacher", "pilot", "farmer", "widow", "painter",
    "soldier", "astronaut", "mayor", "clockmaker", "nurse", "boxer", "librarian",
    "journalist", "chef", "violinist", "lawyer", "fisherman",
)  # fmt: skip
_PLOTS = (
    "returns home after twenty years", "searches for a missing sister",
    "inherits an old hotel", "plans one final journey", "moves to a small town",
    "trains for a big race", "opens a bakery by the sea", "chases a rumor across Europe",
    "hides a letter from the family", "builds a boat in the backyard",
    "takes a job at the city archive", "tries to win back an old friend",
    "crosses the desert on foot", "runs for mayor", "writes a novel in one summer",
)  # fmt: skip
_PLACES = (
    "a fishing village", "Lisbon", "a mountain town", "Chicago", "a small island",
    "the suburbs", "Marseille", "a border town", "Osaka", "a farm in Iowa", "Berlin",
)  # fmt: skip
_ASPECTS = (
    "plot", "acting", "score", "pacing", "ending", "dialogue", "visuals",
    "cinematography", "cast", "script", "soundtrack", "characters", "story",
    "direction", "editing", "camera work", "lead performance", "final act", "music",
    "costumes", "set design", "first half", "screenplay",
)  # fmt: skip

_PLURAL_ASPECTS = frozenset({"visuals", "characters", "costumes"})

# Sentiment-bearing words, all known to VADER's lexicon (a few unknown ones add variety).
_POS_ADJ = (
    "great", "wonderful", "excellent", "brilliant", "beautiful", "lovely", "superb",
    "fantastic", "amazing", "delightful", "charming", "gorgeous", "perfect", "fun",
    "enjoyable", "impressive", "clever", "fresh", "sweet", "terrific", "marvelous",
    "splendid", "engaging", "entertaining", "funny", "elegant", "heartfelt", "inspiring",
    "thrilling", "exciting", "smart", "good", "nice", "outstanding", "remarkable",
    "powerful", "pleasant", "glorious", "joyful", "moving", "memorable", "witty",
)  # fmt: skip
_NEG_ADJ = (
    "boring", "awful", "terrible", "dull", "bad", "weak", "horrible", "stupid", "painful",
    "ugly", "messy", "lame", "pathetic", "disappointing", "poor", "annoying", "dreadful",
    "lazy", "confusing", "miserable", "ridiculous", "awkward", "tedious", "bland",
    "clumsy", "forgettable", "lifeless", "pointless", "sloppy", "mediocre",
)  # fmt: skip
_POS_NOUN = ("treat", "triumph", "masterpiece", "joy", "delight", "gem", "pleasure", "winner")
_NEG_NOUN = ("mess", "disaster", "failure", "waste", "flop", "bore", "letdown", "chore")
_POS_VERB = ("loved", "enjoyed", "adored", "liked", "admired", "appreciated")
_NEG_VERB = ("hated", "disliked", "despised", "regretted", "resented", "dreaded")
_POS_INF = ("love", "enjoy", "like", "admire")
_NEG_INF = ("hate", "dislike", "despise", "resent")
_INTENS = (
    "", "", "", "really ", "very ", "truly ", "incredibly ", "extremely ",
    "absolutely ", "so ", "quite ", "genuinely ", "remarkably ", "utterly ",
)  # fmt: skip
_FILM = ("film", "movie", "picture")


def _adj(rng: random.Random, pol: int) -> str:
    return rng.choice(_POS_ADJ if pol > 0 else _NEG_ADJ)


def _noun(rng: random.Random, pol: int) -> str:
    return rng.choice(_POS_NOUN if pol > 0 else _NEG_NOUN)


def _verb(rng: random.Random, pol: int) -> str:
    return rng.choice(_POS_VERB if pol > 0 else _NEG_VERB)


def _inf(rng: random.Random, pol: int) -> str:
    return rng.choice(_POS_INF if pol > 0 else _NEG_INF)


def _article(word: str) -> str:
    return "an" if word[0].lower() in "aeiou" else "a"


def _a(word: str) -> str:
    """``word`` with its indefinite article ("an awful", "a great")."""
    return f"{_article(word)} {word}"


def _title(rng: random.Random) -> str:
    form = rng.randrange(4)
    adj, noun, noun2 = rng.choice(_TITLE_ADJ), rng.choice(_TITLE_NOUN), rng.choice(_TITLE_NOUN)
    if form == 0:
        return f"The {adj} {noun}"
    if form == 1:
        return f"{adj} {noun}"
    if form == 2:
        return f"The {noun} and the {noun2}" if noun != noun2 else f"The {noun}"
    return f"{noun} of {rng.choice(_FIRST)}"


def _name(rng: random.Random) -> str:
    return f"{rng.choice(_FIRST)} {rng.choice(_LAST)}"


def _two_aspects(rng: random.Random) -> tuple[str, str]:
    first, second = rng.sample(_ASPECTS, 2)
    return first, second


def _be(aspect: str, past: bool) -> str:
    """The form of "to be" that agrees with ``aspect`` ("the visuals were")."""
    plural = aspect in _PLURAL_ASPECTS
    return ("were" if plural else "was") if past else ("are" if plural else "is")


def _qualified(adjective: str, aspect: str) -> str:
    """``adjective aspect`` with the article a singular aspect needs ("a dull plot", "dull
    visuals")."""
    phrase = f"{adjective} {aspect}"
    return phrase if aspect in _PLURAL_ASPECTS else _a(phrase)


def _cap(sentence: str) -> str:
    return sentence[0].upper() + sentence[1:]


# ---------------------------------------------------------------------------- sentences


def _neutral_opener(rng: random.Random, ctx: dict[str, str]) -> str:
    """A sentence that sets the scene and says nothing about the reviewer's opinion."""
    t, g, n = ctx["title"], ctx["genre"], ctx["name"]
    role, plot, place = rng.choice(_ROLES), rng.choice(_PLOTS), rng.choice(_PLACES)
    forms = (
        f"I watched {t} last night.",
        f"{t} is {_a(g)} from director {n}.",
        f"I saw {t}, the new {g} by {n}, this weekend.",
        f"{t} follows {_a(role)} who {plot}.",
        f"In {t}, {n} plays {_a(role)} who {plot}.",
        f"{n} directs this {g} about {_a(role)} in {place}.",
        f"We went to see {t} on a {rng.choice(('Friday', 'Sunday', 'rainy', 'quiet'))} evening.",
        f"{t} is set in {place} and runs just under two hours.",
    )
    return rng.choice(forms)


def _polar_opener(rng: random.Random, ctx: dict[str, str], pol: int) -> str:
    """An opening sentence that already states an opinion of sign ``pol``."""
    t, g, n = ctx["title"], ctx["genre"], ctx["name"]
    i, a = rng.choice(_INTENS), _adj(rng, pol)
    forms = (
        f"{t} is {_a(i + a)} {g}.",
        f"I {_verb(rng, pol)} {t}, the new {g} from {n}.",
        f"From the first scene, {t} is {i}{a}.",
        f"{t} is {_a(_noun(rng, pol))} from start to finish.",
        f"What {_a(a)} {rng.choice(_FILM)} {t} turned out to be.",
    )
    return rng.choice(forms)


def _aspect_sentence(rng: random.Random, ctx: dict[str, str], pol: int) -> str:
    """A sentence judging one or two aspects of the film with sign ``pol``."""
    asp, asp2 = _two_aspects(rng)
    i, a, a2 = rng.choice(_INTENS), _adj(rng, pol), _adj(rng, pol)
    opposite = _adj(rng, -pol)
    past = rng.random() < 0.5
    forms = [
        f"The {asp} {_be(asp, past)} {i}{a}.",
        f"The {asp} {_be(asp, past)} {i}{a} and the {asp2} {_be(asp2, past)} {a2}.",
        f"{ctx['name']} gives {_a(i + a)} performance as the {rng.choice(_ROLES)}.",
        f"I {_verb(rng, pol)} the {asp}.",
        f"The {asp} felt {i}{a}, and the {asp2} {_be(asp2, True)} {a2} too.",
        f"The {asp} {_be(asp, past)} never {opposite}.",
        f"The {asp} {_be(asp, past)} {_a(_noun(rng, pol))}.",
        f"Even the {asp} {_be(asp, past)} {a}.",
    ]
    if pol < 0:
        forms.append(f"The {asp} {_be(asp, past)} not {_adj(rng, 1)} at all.")
    return rng.choice(forms)


def _contrast_sentence(rng: random.Random, pol: int) -> str:
    """A "this was X, but that was Y" sentence whose *second* clause carries ``pol``."""
    asp, asp2 = _two_aspects(rng)
    i, bad, good = rng.choice(_INTENS), _adj(rng, -pol), _adj(rng, pol)
    was, was2, is_, is2 = _be(asp, True), _be(asp2, True), _be(asp, False), _be(asp2, False)
    forms = (
        f"The {asp} {was} {bad}, but the {asp2} {was2} {i}{good}.",
        f"Although the {asp} {is_} {bad}, the {asp2} {is2} {i}{good}.",
        f"I expected to {_inf(rng, -pol)} it, but I {_verb(rng, pol)} it.",
        f"The {asp} {is_} {bad} in places, yet the {asp2} {is2} {good}.",
    )
    return rng.choice(forms)


def _turn_sentence(rng: random.Random, pol: int) -> str:
    """The sentence after a contrary opening, turning the review towards ``pol``."""
    asp = rng.choice(_ASPECTS)
    i = rng.choice(_INTENS)
    forms = (
        f"But the {asp} {_be(asp, False)} {i}{_adj(rng, pol)}.",
        f"However, the {asp} {_be(asp, True)} {i}{_adj(rng, pol)} and I {_verb(rng, pol)} it.",
        f"Still, the rest is {i}{_adj(rng, pol)}.",
        f"Then the {asp} turns {i}{_adj(rng, pol)}.",
        f"But overall I {_verb(rng, pol)} it.",
    )
    return rng.choice(forms)


def _verdict(rng: random.Random, ctx: dict[str, str], pol: int) -> str:
    """A closing sentence with an unambiguous overall opinion of sign ``pol``."""
    a, i, f = _adj(rng, pol), rng.choice(_INTENS), rng.choice(_FILM)
    if pol > 0:
        special = (
            "Highly recommended.",
            f"I would {rng.choice(('really ', 'strongly ', ''))}recommend it.",
            f"Easily one of the best {f}s this year.",
            "I loved every minute of it.",
            f"{rng.choice(('Eight', 'Nine', 'Ten'))} out of ten, a {_noun(rng, 1)}.",
        )
    else:
        special = (
            "Not recommended.",
            "Skip this one, it is a waste of time.",
            f"Easily one of the worst {f}s this year.",
            "I hated every minute of it.",
            f"{rng.choice(('Two', 'Three', 'One'))} out of ten, a {_noun(rng, -1)}.",
        )
    forms = (
        f"Overall, {_a(i + a)} {f}.",
        f"In the end, {ctx['title']} is {_a(_noun(rng, pol))}.",
        f"All in all, {_a(a)} {ctx['genre']}.",
        rng.choice(special),
    )
    return rng.choice(forms)


def _one_sentence(rng: random.Random, ctx: dict[str, str], pol: int) -> list[str]:
    """A whole review in a single long sentence (the one-sentence end of the range)."""
    asp, asp2 = _two_aspects(rng)
    a, a2, a3 = _adj(rng, pol), _adj(rng, pol), _adj(rng, pol)
    return [
        f"{ctx['title']}, the {ctx['genre']} from {ctx['name']}, has {_qualified(a, asp)} and "
        f"{_qualified(a2, asp2)}, and I {_verb(rng, pol)} nearly every {a3} minute of it."
    ]


# ---------------------------------------------------------------------------- reviews

_Structure = Callable[[random.Random, dict[str, str], int], list[str]]


def _plain(rng: random.Random, ctx: dict[str, str], pol: int) -> list[str]:
    """Opinion from the first sentence on."""
    body = [_aspect_sentence(rng, ctx, pol) for _ in range(rng.randint(1, 2))]
    return [_polar_opener(rng, ctx, pol), *body, _verdict(rng, ctx, pol)]


def _neutral_start(rng: random.Random, ctx: dict[str, str], pol: int) -> list[str]:
    """A neutral set-up first; the opinion only comes later."""
    middle = rng.choice((_aspect_sentence(rng, ctx, pol), _contrast_sentence(rng, pol)))
    return [_neutral_opener(rng, ctx), middle, _verdict(rng, ctx, pol)]


def _turnaround(rng: random.Random, ctx: dict[str, str], pol: int) -> list[str]:
    """Opens with the opposite opinion, then turns; the verdict settles the label."""
    opening = rng.choice((_polar_opener(rng, ctx, -pol), _aspect_sentence(rng, ctx, -pol)))
    return [opening, _turn_sentence(rng, pol), _verdict(rng, ctx, pol)]


_STRUCTURES: tuple[tuple[_Structure, float], ...] = (
    (_plain, 0.35),
    (_neutral_start, 0.3),
    (_turnaround, 0.3),
    (_one_sentence, 0.05),
)


def _review_text(rng: random.Random, pol: int) -> str:
    """Draws one review of sign ``pol`` within the word and sentence bounds."""
    structures = [s for s, _ in _STRUCTURES]
    weights = [w for _, w in _STRUCTURES]
    while True:  # rejection sampling: a few percent of drafts fall outside the bounds
        ctx = {"title": _title(rng), "genre": rng.choice(_GENRES), "name": _name(rng)}
        sentences = rng.choices(structures, weights)[0](rng, ctx, pol)
        if len(sentences) < MAX_SENTENCES and rng.random() < 0.35:
            # a second opinion sentence before the verdict, for length and variety
            extra = rng.choice((_aspect_sentence(rng, ctx, pol), _contrast_sentence(rng, pol)))
            sentences.insert(len(sentences) - 1, extra)
        text = " ".join(_cap(s) for s in sentences)
        if MIN_WORDS <= len(text.split()) <= MAX_WORDS:
            return text


def generate_reviews(n: int, seed: int) -> list[Review]:
    """Returns ``n`` reviews drawn from the grammar, half positive (label 1), half negative.

    The same ``(n, seed)`` gives the same list in every process; ``n`` odd gives one more
    negative than positive review.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"n must be a non-negative int, got {n!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be an int, got {seed!r}; pass e.g. seed=0")
    rng = random.Random(seed)
    labels = [1] * (n // 2) + [0] * (n - n // 2)
    rng.shuffle(labels)
    return [Review(_review_text(rng, 1 if label else -1), label) for label in labels]


# ---------------------------------------------------------------------------- public names
# The lexicon and the phrase and sentence helpers, for grammars built on this one
# (TinyConcepts). Aliases only: nothing above changes, so the corpus (and the digest
# recorded with the shipped model) stays the same.

FIRST_NAMES = _FIRST
LAST_NAMES = _LAST
TITLE_ADJECTIVES = _TITLE_ADJ
TITLE_NOUNS = _TITLE_NOUN
GENRES = _GENRES
ROLES = _ROLES
PLOTS = _PLOTS
PLACES = _PLACES
ASPECTS = _ASPECTS
PLURAL_ASPECTS = _PLURAL_ASPECTS
POSITIVE_ADJECTIVES = _POS_ADJ
NEGATIVE_ADJECTIVES = _NEG_ADJ
INTENSIFIERS = _INTENS
FILM_WORDS = _FILM

draw_title = _title
draw_name = _name
sentiment_adjective = _adj
sentiment_noun = _noun
sentiment_verb = _verb
with_article = _a
be_form = _be
qualified = _qualified
capitalize = _cap
neutral_opener = _neutral_opener
polar_opener = _polar_opener
aspect_sentence = _aspect_sentence
contrast_sentence = _contrast_sentence
verdict = _verdict
