"""Simulated teachers: label a pair of episodes by the env's own (gold) reward.

:class:`SimulatedTeacher` is the simulated human of B-Pref (Lee et al. 2021, "B-Pref:
Benchmarking Preference-Based Reinforcement Learning"): given the per-step rewards of two
segments ``a`` and ``b`` it answers 1.0 (``a`` preferred), 0.0 (``b`` preferred), 0.5
(equally preferable) or None (skipped), through these steps in order:

1. **skip**: with ``skip_threshold`` set, a pair whose returns both lie at or below it is
   skipped (neither segment shows the desired behaviour); it still costs a query, as in
   B-Pref, where every query asked counts against the feedback budget.
2. **equal**: a pair whose returns differ by less than ``equal_threshold`` is labelled 0.5.
3. **myopia**: step ``t`` of an ``H``-step segment (``t = 1 .. H``) is weighted
   ``gamma ** (H - t)``: the last step counts fully, earlier ones less. Two segments of
   different lengths are each weighted from their own last step. On a text env the whole
   reward arrives at the last token, so myopia changes nothing there.
4. **rationality**: ``a`` is preferred with the Bradley-Terry probability
   ``P(a) = exp(beta R_a) / (exp(beta R_a) + exp(beta R_b))`` of the (myopic) returns;
   ``beta = inf`` always prefers the higher return. Two exactly equal returns give
   ``P(a) = 1/2`` at every beta (the limit for ``beta -> inf``).
5. **mistake**: the answer is flipped with probability ``mistake_rate``.

Skip and equal compare undiscounted returns, myopia acts only on the preference itself, and
the equal label overrides the drawn one: the order of B-Pref's reference implementation.

Thresholds are absolute, in units of the env's return. B-Pref sets them per run as a
fraction ``eps`` of the average return of a segment (0.1 for its Skip and Equal teachers);
:meth:`SimulatedTeacher.preset` does the same from a ``mean_return`` you give it.

Every query draws the same two uniforms from the teacher's own generator, so the answer to
the ``i``-th query depends only on the seed, ``i`` and its rewards: the same seed gives the
same labels.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from lfi_gym.envs.validation import (
    check_non_negative_float,
    check_non_negative_int,
    check_probability,
    check_unit_interval,
    is_int,
)

__all__ = ["BPREF_TEACHERS", "QueryBudgetExhausted", "SimulatedTeacher"]

#: B-Pref's six teachers (Lee et al. 2021, and the settings of their released scripts): the
#: settings that differ from the oracle's. ``skip`` and ``equal`` are fractions of the
#: average return of a segment (see :meth:`SimulatedTeacher.preset`).
BPREF_TEACHERS: dict[str, dict[str, float]] = {
    "oracle": {},
    "stoc": {"beta": 1.0},
    "mistake": {"mistake_rate": 0.1},
    "skip": {"skip_fraction": 0.1},
    "equal": {"equal_fraction": 0.1},
    "myopic": {"gamma": 0.9},
}


class QueryBudgetExhausted(RuntimeError):
    """The teacher has answered its ``max_queries`` queries and answers no more."""


class SimulatedTeacher:
    """A B-Pref simulated teacher; see the module docstring for what each setting does.

    Args:
        beta: rationality, > 0; ``math.inf`` (default) always prefers the higher return.
        mistake_rate: probability in [0, 1] of flipping the answer.
        equal_threshold: returns closer than this (>= 0) are labelled equal (0.5); 0 never.
        skip_threshold: a pair whose returns are both <= this (>= 0) is skipped; None never.
        gamma: myopia, in (0, 1]; 1 weighs every step fully.
        max_queries: how many pairs it labels (skipped ones included); None for no limit.
        seed: seeds its generator (None: fresh entropy).
    """

    def __init__(
        self,
        beta: float = math.inf,
        mistake_rate: float = 0.0,
        equal_threshold: float = 0.0,
        skip_threshold: float | None = None,
        gamma: float = 1.0,
        max_queries: int | None = None,
        seed: int | None = None,
    ) -> None:
        beta = _as_number(beta, "beta")
        if not beta > 0:  # also refuses NaN
            raise ValueError(
                f"beta must be > 0 (math.inf for a perfectly rational teacher), got {beta!r}"
            )
        self.beta = beta
        self.mistake_rate = check_probability(mistake_rate, "mistake_rate")
        self.equal_threshold = check_non_negative_float(equal_threshold, "equal_threshold")
        self.skip_threshold = (
            None
            if skip_threshold is None
            else check_non_negative_float(skip_threshold, "skip_threshold")
        )
        gamma = check_unit_interval(gamma, "gamma")
        if gamma == 0.0:
            raise ValueError("gamma must be in (0, 1]; 0 would ignore every step but the last")
        self.gamma = gamma
        self.max_queries = (
            None if max_queries is None else check_non_negative_int(max_queries, "max_queries")
        )
        if seed is not None and not is_int(seed):
            raise ValueError(f"seed must be an int or None, got {seed!r}")
        self.seed = None if seed is None else int(seed)
        self.name: str | None = None  # set by preset()
        self.queries_used = 0
        self._rng = np.random.default_rng(self.seed)

    # -- presets --------------------------------------------------------------------------

    @classmethod
    def preset(
        cls,
        name: str,
        *,
        mean_return: float | None = None,
        max_queries: int | None = None,
        seed: int | None = None,
    ) -> SimulatedTeacher:
        """One of B-Pref's six teachers (:data:`BPREF_TEACHERS`): ``oracle`` (rational),
        ``stoc`` (beta 1), ``mistake`` (10% flipped), ``skip``, ``equal``, ``myopic``
        (gamma 0.9).

        ``skip`` and ``equal`` need ``mean_return``, the average return of a segment (B-Pref
        takes the mean true return of the agent's recent episodes, scaled to the segment
        length; on a text env, the mean reward of the policy's completions): their
        threshold is ``0.1 * mean_return``.
        """
        if name not in BPREF_TEACHERS:
            raise ValueError(f"unknown B-Pref teacher {name!r}; valid: {', '.join(BPREF_TEACHERS)}")
        settings: dict[str, Any] = dict(BPREF_TEACHERS[name])
        for key, target in (
            ("skip_fraction", "skip_threshold"),
            ("equal_fraction", "equal_threshold"),
        ):
            if key not in settings:
                continue
            if mean_return is None:
                raise ValueError(
                    f"the {name!r} teacher's threshold is a fraction of the average return of a "
                    "segment: pass mean_return= (e.g. the mean reward of the policy's "
                    "completions on this env)"
                )
            settings[target] = settings.pop(key) * check_non_negative_float(
                mean_return, "mean_return"
            )
        teacher = cls(**settings, max_queries=max_queries, seed=seed)
        teacher.name = name
        return teacher

    @classmethod
    def from_settings(cls, settings: dict[str, Any]) -> SimulatedTeacher:
        """A fresh teacher (no queries used) with the settings :meth:`settings` returned."""
        keys = (
            "beta",
            "mistake_rate",
            "equal_threshold",
            "skip_threshold",
            "gamma",
            "max_queries",
            "seed",
        )
        arguments = {k: settings[k] for k in keys if k in settings}
        if arguments.get("beta") == "inf":
            arguments["beta"] = math.inf
        teacher = cls(**arguments)
        teacher.name = settings.get("name")
        return teacher

    # -- the budget -----------------------------------------------------------------------

    @property
    def queries_left(self) -> int | None:
        """Queries it still answers (None: no limit)."""
        return None if self.max_queries is None else self.max_queries - self.queries_used

    def settings(self) -> dict[str, Any]:
        """JSON-able settings (beta = inf as the string ``"inf"``), for ``Preferences.teacher``."""
        return {
            "kind": "SimulatedTeacher",
            "name": self.name,
            "beta": "inf" if math.isinf(self.beta) else self.beta,
            "mistake_rate": self.mistake_rate,
            "equal_threshold": self.equal_threshold,
            "skip_threshold": self.skip_threshold,
            "gamma": self.gamma,
            "max_queries": self.max_queries,
            "seed": self.seed,
        }

    def state(self) -> dict[str, Any]:
        """Plain data (settings, queries used, the generator's state) from which
        :meth:`from_state` rebuilds this teacher mid-run: it answers on as this one would."""
        return {
            "settings": self.settings(),
            "queries_used": self.queries_used,
            "rng": self._rng.bit_generator.state,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> SimulatedTeacher:
        """The teacher :meth:`state` described; ValueError for data it would not write."""
        teacher = cls.from_settings(state["settings"])
        used = check_non_negative_int(state["queries_used"], "queries_used")
        if teacher.max_queries is not None and used > teacher.max_queries:
            raise ValueError(f"queries_used {used} exceeds max_queries {teacher.max_queries}")
        teacher.queries_used = used
        teacher._rng.bit_generator.state = state["rng"]
        return teacher

    def __repr__(self) -> str:
        used = f"{self.queries_used}" + ("" if self.max_queries is None else f"/{self.max_queries}")
        settings = {k: v for k, v in self.settings().items() if k not in ("kind", "max_queries")}
        text = ", ".join(f"{k}={v!r}" for k, v in settings.items())
        return f"SimulatedTeacher({text}, queries {used})"

    # -- answering ------------------------------------------------------------------------

    def preference_probability(
        self, rewards_a: Sequence[float] | np.ndarray, rewards_b: Sequence[float] | np.ndarray
    ) -> float:
        """P(a preferred) of the Bradley-Terry step (myopic returns, before mistakes, skip
        and equal); asks nothing and costs no query."""
        a, b = _rewards(rewards_a, "rewards_a"), _rewards(rewards_b, "rewards_b")
        return self._probability(self._myopic_return(a), self._myopic_return(b))

    def label(
        self, rewards_a: Sequence[float] | np.ndarray, rewards_b: Sequence[float] | np.ndarray
    ) -> float | None:
        """Answer one query: 1.0 (a preferred), 0.0 (b preferred), 0.5 (equal) or None
        (skipped, which costs a query too).

        ``rewards_a`` / ``rewards_b`` are the per-step rewards of the two segments (on a text
        env, an episode's rewards: zeros, then the sequence reward at the last token).
        Raises :class:`QueryBudgetExhausted`, counting nothing, once ``max_queries`` are used.
        """
        a, b = _rewards(rewards_a, "rewards_a"), _rewards(rewards_b, "rewards_b")
        if self.max_queries is not None and self.queries_used >= self.max_queries:
            raise QueryBudgetExhausted(
                f"the teacher's query budget is spent: it answered all {self.max_queries} "
                "queries of max_queries; make a teacher with a larger max_queries to label more"
            )
        self.queries_used += 1
        # Two draws per query whatever the settings: the i-th answer depends only on the
        # seed, i and the rewards.
        preference_draw, mistake_draw = self._rng.random(2)
        return_a, return_b = float(a.sum()), float(b.sum())
        if self.skip_threshold is not None and max(return_a, return_b) <= self.skip_threshold:
            return None
        probability = self._probability(self._myopic_return(a), self._myopic_return(b))
        answer = 1.0 if preference_draw < probability else 0.0
        if mistake_draw < self.mistake_rate:
            answer = 1.0 - answer
        if abs(return_a - return_b) < self.equal_threshold:
            return 0.5
        return answer

    def _myopic_return(self, rewards: np.ndarray) -> float:
        if self.gamma == 1.0:
            return float(rewards.sum())
        # Step t of H (t = 1..H) weighs gamma ** (H - t): the last step 1.
        weights = self.gamma ** np.arange(len(rewards) - 1, -1, -1, dtype=np.float64)
        return float(np.dot(weights, rewards))

    def _probability(self, return_a: float, return_b: float) -> float:
        difference = return_a - return_b
        if difference == 0.0:
            return 0.5
        if math.isinf(self.beta):
            return 1.0 if difference > 0 else 0.0
        # exp(bRa) / (exp(bRa) + exp(bRb)) = sigmoid(b (Ra - Rb)), computed without overflow.
        z = self.beta * difference
        if z >= 0:
            return 1.0 / (1.0 + math.exp(-z))
        e = math.exp(z)
        return e / (1.0 + e)


def _as_number(value: Any, name: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None


def _rewards(values: Any, name: str) -> np.ndarray:
    try:
        rewards = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a sequence of per-step rewards (numbers)") from None
    if rewards.ndim != 1 or rewards.size == 0:
        raise ValueError(
            f"{name} must be a non-empty 1-D sequence of per-step rewards, got shape "
            f"{rewards.shape}"
        )
    if not np.all(np.isfinite(rewards)):
        raise ValueError(f"{name} holds a reward that is not finite: {rewards.tolist()[:8]}")
    return rewards
