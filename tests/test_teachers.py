"""B-Pref's simulated teachers: the Bradley-Terry probability, mistakes, skip, equal, myopia,
the query budget and seeding, against hand-computed values."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import stats

from lfi_gym.agents.teachers import BPREF_TEACHERS, QueryBudgetExhausted, SimulatedTeacher

# A text episode: zeros, then the sequence reward at the last token.
GOOD = [0.0, 0.0, 1.0]
BAD = [0.0, 0.0, 0.0]


def _within_binomial_ci(successes: int, n: int, p: float, level: float = 0.99) -> bool:
    low, high = stats.binom.interval(level, n, p)
    return low <= successes <= high


def test_the_bradley_terry_probability_matches_the_hand_computation():
    # beta 1, returns 1 and 0: P(a) = e / (1 + e).
    teacher = SimulatedTeacher(beta=1.0)
    assert teacher.preference_probability(GOOD, BAD) == pytest.approx(math.e / (1 + math.e))
    assert teacher.preference_probability(BAD, GOOD) == pytest.approx(1 / (1 + math.e))
    # beta 2, returns 0.25 and 1.0: P(a) = exp(0.5) / (exp(0.5) + exp(2)).
    p = SimulatedTeacher(beta=2.0).preference_probability([0.25], [0.5, 0.5])
    assert p == pytest.approx(math.exp(0.5) / (math.exp(0.5) + math.exp(2.0)))
    # No overflow far in the tails.
    assert SimulatedTeacher(beta=1e6).preference_probability([-1e3], [1e3]) == 0.0
    assert SimulatedTeacher(beta=1e6).preference_probability([1e3], [-1e3]) == 1.0
    # The rational teacher: always the higher return; exact ties are a fair coin.
    oracle = SimulatedTeacher()
    assert oracle.preference_probability(GOOD, BAD) == 1.0
    assert oracle.preference_probability(BAD, GOOD) == 0.0
    assert oracle.preference_probability(GOOD, GOOD) == 0.5
    assert teacher.queries_used == 0  # asking the probability costs nothing


def test_a_stochastic_teacher_prefers_with_the_bradley_terry_frequency():
    teacher = SimulatedTeacher(beta=1.0, seed=0)
    n = 4000
    a_preferred = sum(teacher.label(GOOD, BAD) == 1.0 for _ in range(n))
    assert _within_binomial_ci(a_preferred, n, math.e / (1 + math.e))
    assert teacher.queries_used == n


def test_the_measured_mistake_rate_matches_the_setting():
    rng = np.random.default_rng(1)
    teacher = SimulatedTeacher(mistake_rate=0.1, seed=0)
    n, mistakes = 4000, 0
    for _ in range(n):
        return_a, return_b = rng.normal(size=2)
        label = teacher.label([0.0, return_a], [0.0, return_b])
        mistakes += label != (1.0 if return_a > return_b else 0.0)
    assert _within_binomial_ci(mistakes, n, 0.1)
    # The oracle makes none.
    oracle = SimulatedTeacher(seed=0)
    assert all(oracle.label([r], [r - 0.01]) == 1.0 for r in rng.normal(size=200))


def test_the_equal_teacher_labels_close_returns_half():
    teacher = SimulatedTeacher(equal_threshold=0.25, mistake_rate=1.0, seed=0)
    assert teacher.label([0.0, 0.625], [0.5]) == 0.5  # |0.625 - 0.5| < 0.25
    assert teacher.label([0.5], [0.375, 0.0]) == 0.5
    # Not close: the (always mistaken) answer.
    assert teacher.label([1.0], [0.5]) == 0.0
    assert teacher.label([0.5], [0.75]) == 1.0  # exactly 0.25 apart is not "less than"
    assert teacher.queries_used == 4


def test_the_skip_teacher_skips_pairs_that_are_both_below_its_threshold_and_charges_them():
    teacher = SimulatedTeacher(skip_threshold=0.3, max_queries=4, seed=0)
    assert teacher.label([0.1, 0.1], [0.2]) is None  # both <= 0.3
    assert teacher.label([0.0, 0.3], [-1.0]) is None  # 0.3 is not above 0.3
    assert teacher.label([0.31], [0.2]) == 1.0  # one of them above
    assert teacher.label([0.0], [0.5]) == 0.0
    assert teacher.queries_used == 4 and teacher.queries_left == 0


def test_myopia_weighs_step_t_of_h_by_gamma_to_the_h_minus_t():
    early, late = [1.0, 0.0, 0.0], [0.0, 0.0, 0.5]
    assert SimulatedTeacher(seed=0).label(early, late) == 1.0  # undiscounted: 1 > 0.5
    myopic = SimulatedTeacher(gamma=0.5, seed=0)
    # gamma^(3-1) * 1 = 0.25 < gamma^0 * 0.5 = 0.5: the late reward wins.
    assert myopic.label(early, late) == 0.0
    stochastic = SimulatedTeacher(beta=1.0, gamma=0.5)
    assert stochastic.preference_probability(early, late) == pytest.approx(
        1 / (1 + math.exp(0.5 - 0.25))
    )
    # Each segment is weighted from its own last step: a text reward at the end is unchanged.
    assert stochastic.preference_probability([0.0] * 5 + [1.0], [0.0, 0.0]) == pytest.approx(
        math.e / (1 + math.e)
    )
    # Skip and equal look at undiscounted returns, as in B-Pref.
    assert SimulatedTeacher(gamma=0.5, equal_threshold=0.6).label(early, late) == 0.5


def test_the_budget_is_respected_exactly():
    teacher = SimulatedTeacher(max_queries=3, seed=0)
    for _ in range(3):
        teacher.label(GOOD, BAD)
    assert (teacher.queries_used, teacher.queries_left) == (3, 0)
    with pytest.raises(QueryBudgetExhausted, match="answered all 3 queries"):
        teacher.label(GOOD, BAD)
    assert (teacher.queries_used, teacher.queries_left) == (3, 0)
    assert isinstance(QueryBudgetExhausted("x"), RuntimeError)
    # A zero budget answers nothing; no budget answers on.
    with pytest.raises(QueryBudgetExhausted):
        SimulatedTeacher(max_queries=0).label(GOOD, BAD)
    assert SimulatedTeacher().queries_left is None
    # Bad rewards are refused without spending a query.
    with pytest.raises(ValueError, match="rewards_b must be a non-empty 1-D"):
        teacher_with_room = SimulatedTeacher(max_queries=1)
        teacher_with_room.label(GOOD, [])
    assert teacher_with_room.queries_used == 0


def test_the_same_seed_gives_the_same_labels():
    rng = np.random.default_rng(0)
    pairs = [(rng.normal(size=3), rng.normal(size=3)) for _ in range(200)]

    def labels(seed):
        teacher = SimulatedTeacher(beta=1.0, mistake_rate=0.2, seed=seed)
        return [teacher.label(a, b) for a, b in pairs]

    assert labels(7) == labels(7)
    assert labels(7) != labels(8)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"beta": 0.0}, "beta must be > 0"),
        ({"beta": -1.0}, "beta must be > 0"),
        ({"beta": float("nan")}, "beta must be > 0"),
        ({"beta": "high"}, "beta must be a number"),
        ({"mistake_rate": 1.5}, r"mistake_rate must be a probability in \[0, 1\]"),
        ({"mistake_rate": -0.1}, "mistake_rate must be a probability"),
        ({"equal_threshold": -0.1}, "equal_threshold must be a non-negative number"),
        ({"skip_threshold": -1.0}, "skip_threshold must be a non-negative number"),
        ({"skip_threshold": math.inf}, "skip_threshold must be a non-negative number"),
        ({"gamma": 0.0}, r"gamma must be in \(0, 1\]"),
        ({"gamma": 1.1}, r"gamma must be in \[0, 1\]"),
        ({"max_queries": -1}, "max_queries must be a non-negative int"),
        ({"max_queries": 2.5}, "max_queries must be a non-negative int"),
        ({"seed": 1.5}, "seed must be an int or None"),
    ],
)
def test_bad_settings_are_refused_at_construction(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SimulatedTeacher(**kwargs)


def test_the_six_bpref_presets():
    assert set(BPREF_TEACHERS) == {"oracle", "stoc", "mistake", "skip", "equal", "myopic"}
    assert SimulatedTeacher.preset("oracle").beta == math.inf
    assert SimulatedTeacher.preset("stoc").beta == 1.0
    assert SimulatedTeacher.preset("mistake").mistake_rate == 0.1
    assert SimulatedTeacher.preset("myopic").gamma == 0.9
    assert SimulatedTeacher.preset("skip", mean_return=0.5).skip_threshold == pytest.approx(0.05)
    equal = SimulatedTeacher.preset("equal", mean_return=2.0, max_queries=9, seed=3)
    assert (equal.equal_threshold, equal.max_queries, equal.seed) == (pytest.approx(0.2), 9, 3)
    with pytest.raises(ValueError, match="pass mean_return="):
        SimulatedTeacher.preset("skip")
    with pytest.raises(ValueError, match="unknown B-Pref teacher 'noisy'; valid: oracle"):
        SimulatedTeacher.preset("noisy")


def test_settings_are_json_and_rebuild_the_teacher():
    teacher = SimulatedTeacher.preset("equal", mean_return=1.0, max_queries=5, seed=2)
    teacher.label(GOOD, BAD)
    settings = json.loads(json.dumps(teacher.settings(), allow_nan=False))
    assert settings["name"] == "equal" and settings["beta"] == "inf"
    again = SimulatedTeacher.from_settings(settings)
    assert again.settings() == teacher.settings()
    assert again.queries_used == 0
    assert "queries 1/5" in repr(teacher)


def test_a_teacher_rebuilt_from_its_state_answers_on_as_the_original():
    rng = np.random.default_rng(1)
    pairs = [(rng.normal(size=3), rng.normal(size=3)) for _ in range(40)]
    teacher = SimulatedTeacher(beta=1.0, mistake_rate=0.3, max_queries=30, seed=4)
    for a, b in pairs[:10]:
        teacher.label(a, b)
    again = SimulatedTeacher.from_state(teacher.state())
    assert again.settings() == teacher.settings() and again.queries_used == 10
    assert [again.label(a, b) for a, b in pairs[10:30]] == [
        teacher.label(a, b) for a, b in pairs[10:30]
    ]
    with pytest.raises(QueryBudgetExhausted):
        again.label(GOOD, BAD)
    state = teacher.state()
    with pytest.raises(ValueError, match="queries_used 31 exceeds max_queries 30"):
        SimulatedTeacher.from_state({**state, "queries_used": 31})
    with pytest.raises(ValueError, match="queries_used must be a non-negative int"):
        SimulatedTeacher.from_state({**state, "queries_used": -1})
