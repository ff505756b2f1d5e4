"""Rank-*: building a ranking one position at a time (the sequential Plackett-Luce view).

At position k (1-based) the policy picks one not-yet-placed candidate of the current query
and receives its DCG increment ``(2**rel - 1) / log2(k + 1)``; the episode terminates
after ``k_positions`` picks or when the candidates run out, and the last step's info holds
``ndcg@1``, ``ndcg@5``, ``ndcg@10`` and the ``ranking`` (candidate slots, best first,
length K, -1 past the end of a shorter list).
The State is (split, query index, placed prefix, step, RNG), so restarts are exact and
cheap, and the ideal ranking by relevance is an exact oracle (``lfi_gym.envs.make_expert``).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from lfi_gym.envs.core import RestartableEnv, State, StateError, generator_from_state, rng_state
from lfi_gym.envs.ranking.data import (
    SPLITS,
    QuerySet,
    load_letor,
    resolve_letor_files,
    synthetic_splits,
)
from lfi_gym.envs.ranking.metrics import discounts, gains, ndcg_at_k
from lfi_gym.envs.validation import check_choice, check_positive_int, is_int

INVALID_ACTION_MODES = ("raise", "penalty")
REPORTED_CUTOFFS = (1, 5, 10)


@dataclasses.dataclass(frozen=True, eq=False)
class RankingState(State):
    """Which query of which split, the slots placed so far (in order), the number of
    ``step`` calls this episode (placements plus penalised invalid actions), the
    list length K and the env's RNG (it draws the next query at ``reset``)."""

    split: str
    query: int
    placed: tuple[int, ...]
    step: int
    k_positions: int
    rng: str


class RankingEnv(RestartableEnv[dict, np.int64]):
    """Sequential ranking over the queries of one split of a dataset.

    Observation ``Dict(features=Box(max_candidates, n_features) float32,
    mask=MultiBinary(max_candidates))``: the candidates' features padded with zero rows,
    and 1 where a slot can still be picked (a real candidate not yet placed; all 0 once the
    episode is over). Action ``Discrete(max_candidates)``: the slot to place next.
    :meth:`action_masks` returns the mask as booleans (sb3-contrib MaskablePPO's hook).

    ``invalid_action="raise"`` (default): picking a padding slot or a placed one raises a
    ValueError naming the slot and why, and changes nothing. ``"penalty"``: such an action
    is a no-op that costs ``invalid_penalty`` reward and counts as a step; after
    ``max_invalid_actions`` of them (default: ``max_candidates``) the episode is truncated,
    so an unmasked policy stuck on a placed slot cannot loop forever. Use it for tools that
    sample unmasked actions (Gymnasium's ``check_env``, plain PPO).

    ``reset(options={"query": i})`` starts query ``i`` of the split (evaluation walks the
    queries this way); without it the query is drawn uniformly with the env's RNG.

    An episode has no fixed horizon (K placements, plus any penalised actions), so by
    default nothing truncates it but the penalised-action limit. ``gym.make(id,
    max_episode_steps=N)`` adds one: the episode is truncated after N ``step`` calls
    counted from its start (the state's ``step``), with the final info of the partial list.
    """

    metadata = {"render_modes": []}
    state_type = RankingState
    state_version = 1

    def __init__(
        self,
        splits: Mapping[str, QuerySet],
        *,
        split: str = "train",
        k_positions: int = 10,
        max_candidates: int | None = None,
        invalid_action: str = "raise",
        invalid_penalty: float = 1.0,
        max_invalid_actions: int | None = None,
    ) -> None:
        if split not in splits:
            raise ValueError(f"split {split!r} is not in this dataset; it has {', '.join(splits)}")
        check_choice(invalid_action, INVALID_ACTION_MODES, "invalid_action")
        widths = {name: q.n_features for name, q in splits.items()}
        if len(set(widths.values())) != 1:
            raise ValueError(f"feature count mismatch between splits: {widths}")
        longest = max(int(q.sizes.max()) for q in splits.values())
        if max_candidates is None:
            max_candidates = longest
        check_positive_int(max_candidates, "max_candidates")
        if longest > max_candidates:
            raise ValueError(
                f"a query has {longest} candidates but max_candidates={max_candidates}; "
                f"pass max_candidates>={longest} (or None to use the longest list)"
            )
        check_positive_int(k_positions, "k_positions")
        if k_positions > max_candidates:
            raise ValueError(
                f"k_positions={k_positions} is larger than the candidate list "
                f"(max_candidates={max_candidates}); pass k_positions<={max_candidates}"
            )
        if max_invalid_actions is None:
            max_invalid_actions = max_candidates
        check_positive_int(max_invalid_actions, "max_invalid_actions")
        self.splits = dict(splits)
        self.split = split
        self.queries = self.splits[split]
        self.k_positions = int(k_positions)
        self.max_candidates = int(max_candidates)
        self.n_features = next(iter(widths.values()))
        self.invalid_action = invalid_action
        self.invalid_penalty = float(invalid_penalty)
        self.max_invalid_actions = int(max_invalid_actions)
        self.observation_space = spaces.Dict(
            {
                "features": spaces.Box(
                    -np.inf, np.inf, (self.max_candidates, self.n_features), np.float32
                ),
                "mask": spaces.MultiBinary(self.max_candidates),
            }
        )
        self.action_space = spaces.Discrete(self.max_candidates)
        self._discounts = discounts(self.max_candidates)
        self._query = 0
        self._placed: list[int] = []
        self._step_count = 0
        self._step_limit: int | None = None  # set by gym.make's max_episode_steps
        self._load_query(0)

    # -- episode bookkeeping -------------------------------------------------------------------

    def _load_query(self, index: int) -> None:
        features, relevance = self.queries.query(index)
        self._query = int(index)
        self._relevance = relevance
        self._n = len(relevance)
        self._padded = np.zeros((self.max_candidates, self.n_features), dtype=np.float32)
        self._padded[: self._n] = features
        self._available = np.zeros(self.max_candidates, dtype=bool)
        self._available[: self._n] = True

    @property
    def current_relevance(self) -> np.ndarray:
        """Relevance labels of the current query's candidates (privileged: for oracles)."""
        return self._relevance

    @property
    def current_query(self) -> int:
        return self._query

    @property
    def placed(self) -> tuple[int, ...]:
        return tuple(self._placed)

    @property
    def list_length(self) -> int:
        """Positions this episode fills: K, or fewer when the query has fewer candidates."""
        return min(self.k_positions, self._n)

    def _done(self) -> bool:
        return len(self._placed) >= self.list_length

    def _truncated(self) -> bool:
        if self._step_limit is not None and self._step_count >= self._step_limit:
            return True
        return self._step_count - len(self._placed) >= self.max_invalid_actions

    def action_masks(self) -> np.ndarray:
        """Boolean vector of the slots that may be picked now (MaskablePPO's hook)."""
        if self._done() or self._truncated():
            return np.zeros(self.max_candidates, dtype=bool)
        return self._available.copy()

    def _observation(self) -> dict[str, np.ndarray]:
        return {"features": self._padded.copy(), "mask": self.action_masks().astype(np.int8)}

    def _final_info(self) -> dict[str, Any]:
        placed = np.array(self._placed, dtype=np.int64)
        info: dict[str, Any] = {
            f"ndcg@{k}": ndcg_at_k(placed, self._relevance, k) for k in REPORTED_CUTOFFS
        }
        # Fixed length K (-1 past the list's end) so that vector envs can stack it.
        ranking = np.full(self.k_positions, -1, dtype=np.int64)
        ranking[: len(placed)] = placed
        info["ranking"] = ranking
        info["query"] = self._query
        return info

    # -- RestartableEnv ------------------------------------------------------------------------

    def _reset(self, *, seed: int | None, options: dict[str, Any] | None):
        gym.Env.reset(self, seed=seed)  # seeds self.np_random
        options = dict(options or {})
        if "query" in options:
            query = options.pop("query")
            if not is_int(query) or not 0 <= query < self.queries.n_queries:
                raise ValueError(
                    f"options['query'] must be an int in [0, {self.queries.n_queries}) for "
                    f"the {self.split!r} split, got {query!r}"
                )
        else:
            query = int(self.np_random.integers(self.queries.n_queries))
        if options:
            raise ValueError(
                f"unknown reset option(s) {sorted(options)}; RankingEnv takes 'query' and 'state'"
            )
        self._load_query(query)
        self._placed, self._step_count = [], 0
        return self._observation(), {"query": self._query}

    def _step(self, action):
        slot = int(action)
        if not self._available[slot] or self._done():
            if self.invalid_action == "raise":
                raise ValueError(
                    f"{self.env_id}: invalid action {slot}: {self._invalid_reason(slot)}; "
                    "pick a slot where env.action_masks() (or observation['mask']) is 1, or "
                    "make the env with invalid_action='penalty'"
                )
            self._step_count += 1
            truncated = self._truncated()
            info: dict[str, Any] = {"invalid_action": True}
            if truncated:
                info.update(self._final_info())
            return self._observation(), -self.invalid_penalty, False, truncated, info
        position = len(self._placed)
        reward = float(gains(self._relevance[slot]) * self._discounts[position])
        self._placed.append(slot)
        self._available[slot] = False
        self._step_count += 1
        terminated = self._done()
        truncated = not terminated and self._truncated()
        info = self._final_info() if terminated or truncated else {}
        return self._observation(), reward, terminated, truncated, info

    def _invalid_reason(self, slot: int) -> str:
        if self._done():
            return f"the ranking is complete ({len(self._placed)} positions): call reset()"
        if slot >= self._n:
            return (
                f"slot {slot} is padding (this query has {self._n} candidates, "
                f"slots 0..{self._n - 1})"
            )
        return f"slot {slot} was already placed at position {self._placed.index(slot) + 1}"

    def _limit_horizon(self, max_steps: int) -> None:
        self._step_limit = (
            max_steps if self._step_limit is None else min(self._step_limit, max_steps)
        )

    def _capture_state(self) -> RankingState:
        return RankingState(
            env_id=self.env_id,
            version=self.state_version,
            split=self.split,
            query=self._query,
            placed=tuple(self._placed),
            step=self._step_count,
            k_positions=self.k_positions,
            rng=rng_state(self.np_random),
        )

    def _validate_state(self, state: RankingState) -> None:
        if state.split != self.split:
            raise StateError(
                f"state is from split {state.split!r}, this env serves {self.split!r}; "
                f"make the env with split={state.split!r}"
            )
        if state.k_positions != self.k_positions:
            raise StateError(
                f"state was taken with k_positions={state.k_positions!r}, this env has "
                f"{self.k_positions}; make the env with k_positions={state.k_positions!r}"
            )
        if not (is_int(state.query) and 0 <= state.query < self.queries.n_queries):
            raise StateError(f"query must be an int in [0, {self.queries.n_queries})")
        n = int(self.queries.sizes[state.query])
        placed = state.placed
        if not (isinstance(placed, tuple) and all(is_int(p) and 0 <= p < n for p in placed)):
            raise StateError(f"placed must be a tuple of distinct slots in [0, {n})")
        if len(set(placed)) != len(placed) or len(placed) > min(self.k_positions, n):
            raise StateError(f"placed {placed!r} repeats a slot or is longer than the list")
        if not (is_int(state.step) and len(placed) <= state.step):
            raise StateError(f"step must be an int >= len(placed), got {state.step!r}")
        if state.step - len(placed) > self.max_invalid_actions:
            raise StateError(f"step {state.step!r} exceeds the penalised-action limit")
        if self._step_limit is not None and state.step > self._step_limit:
            raise StateError(
                f"step {state.step!r} lies beyond this env's max_episode_steps="
                f"{self._step_limit}; restore it into an env made with a larger one"
            )
        generator_from_state(state.rng)

    def _restore_state(self, state: RankingState):
        self._np_random = generator_from_state(state.rng)
        self._load_query(state.query)
        self._placed = [int(p) for p in state.placed]
        self._available[self._placed] = False
        self._step_count = int(state.step)
        return self._observation(), {"query": self._query}

    def make_expert(self):
        from lfi_gym.envs.ranking.oracles import IdealRankingOracle

        return IdealRankingOracle(self)


class RankSyntheticEnv(RankingEnv):
    """Rank-Synthetic-v0: queries from :func:`lfi_gym.envs.ranking.data.synthetic_splits`.

    Defaults: 600 / 200 / 200 train / validation / test queries of 5..30 candidates with 16
    features, K=10, labels 0..4 from a hidden non-linear function with noise 0.3.
    The generator's knobs (``n_queries``, ``n_features``, ``min_candidates``,
    ``max_candidates``, ``noise``, ``nonlinearity``, ``data_seed``) are constructor
    arguments; ``data_seed`` fixes the dataset, ``reset(seed=...)`` only the query order.
    """

    default_id = "Rank-Synthetic-v0"

    def __init__(
        self,
        *,
        split: str = "train",
        k_positions: int = 10,
        n_queries: tuple[int, int, int] = (600, 200, 200),
        n_features: int = 16,
        min_candidates: int = 5,
        max_candidates: int = 30,
        noise: float = 0.3,
        nonlinearity: float = 1.0,
        data_seed: int = 0,
        invalid_action: str = "raise",
        invalid_penalty: float = 1.0,
        max_invalid_actions: int | None = None,
    ) -> None:
        check_choice(split, SPLITS, "split")
        data = synthetic_splits(
            tuple(int(n) for n in n_queries),
            int(n_features),
            int(min_candidates),
            int(max_candidates),
            float(noise),
            float(nonlinearity),
            int(data_seed),
        )
        super().__init__(
            data,
            split=split,
            k_positions=k_positions,
            max_candidates=max_candidates,
            invalid_action=invalid_action,
            invalid_penalty=invalid_penalty,
            max_invalid_actions=max_invalid_actions,
        )


#: A small LETOR-format sample of our own making (from the synthetic generator), so that
#: ``gym.make("Rank-LETOR-v0")`` works offline; pass ``path=`` for real data.
SAMPLE_LETOR = Path(__file__).parent / "assets" / "letor_sample"


class RankLETOREnv(RankingEnv):
    """Rank-LETOR-v0: LETOR / MSLR-WEB / Yahoo / Istella svmlight files with ``qid:``.

    ``path`` (default: a tiny bundled sample) is a folder with ``train.txt`` / ``vali.txt``
    / ``test.txt``, a folder of ``Fold1..FoldN`` with ``fold=n``, a ``{split: file}``
    mapping, or a single file. ``normalize="query"`` scales features per query;
    ``max_candidates`` defaults to the longest query of all splits. Queries without a
    relevant document give reward 0 and NDCG 0. See :func:`lfi_gym.envs.ranking.data.load_letor`.
    """

    default_id = "Rank-LETOR-v0"

    def __init__(
        self,
        path: str | os.PathLike | Mapping[str, str | os.PathLike] | None = None,
        *,
        fold: int | None = None,
        n_features: int | None = None,
        normalize: str | None = None,
        split: str = "train",
        k_positions: int = 10,
        max_candidates: int | None = None,
        invalid_action: str = "raise",
        invalid_penalty: float = 1.0,
        max_invalid_actions: int | None = None,
    ) -> None:
        data = _load_letor_cached(
            SAMPLE_LETOR if path is None else path, fold, n_features, normalize
        )
        super().__init__(
            data,
            split=split,
            k_positions=k_positions,
            max_candidates=max_candidates,
            invalid_action=invalid_action,
            invalid_penalty=invalid_penalty,
            max_invalid_actions=max_invalid_actions,
        )


_LETOR_CACHE: dict[tuple, dict[str, QuerySet]] = {}


def _load_letor_cached(path: Any, fold: Any, n_features: Any, normalize: Any) -> dict:
    """load_letor, memoised on the files' identity (path, size, mtime): every gym.make of
    the same data shares one read-only copy instead of parsing the files again."""
    files = resolve_letor_files(path, fold)
    stats = tuple(
        (split, str(file.resolve()), file.stat().st_size, file.stat().st_mtime_ns)
        for split, file in sorted(files.items())
    )
    key = (stats, n_features if is_int(n_features) else repr(n_features), repr(normalize))
    if key not in _LETOR_CACHE:
        if len(_LETOR_CACHE) >= 4:
            _LETOR_CACHE.pop(next(iter(_LETOR_CACHE)))
        _LETOR_CACHE[key] = load_letor(files, n_features=n_features, normalize=normalize)
    return _LETOR_CACHE[key]
