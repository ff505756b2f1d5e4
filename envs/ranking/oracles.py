"""The ideal-ranking oracle: place the most relevant remaining candidate next."""

from __future__ import annotations

import zlib
from typing import Any

import numpy as np

from lfi_gym.envs.policies import OraclePolicy


class IdealRankingOracle(OraclePolicy):
    """Picks, among the slots the observation's mask allows, the one ranked highest by
    relevance; ties are broken by a fixed pseudo-random order per (split, query) drawn
    from ``tie_seed``, so the oracle is deterministic and unbiased towards low slots.

    Following it from any state gives the best DCG reachable from that state, so it is an
    exact expert for DAgger and an optimal roll-out for AggreVaTeD. It reads the bound
    env's labels (``privileged``): query it while the env is in the observed situation.
    """

    privileged = True

    def __init__(self, env: Any, tie_seed: int = 0) -> None:
        super().__init__(env)
        self.tie_seed = int(tie_seed)
        self._cache_key: tuple[str, int] | None = None
        self._priority: np.ndarray | None = None

    def priority(self) -> np.ndarray:
        """Slot priorities of the current query (higher first): relevance, then tie rank."""
        base = self.env.unwrapped
        key = (base.split, base.current_query)
        if key != self._cache_key:
            relevance = np.asarray(base.current_relevance, dtype=np.float64)
            split_code = zlib.crc32(base.split.encode())
            tie = np.random.default_rng([self.tie_seed, split_code, key[1]]).random(len(relevance))
            priority = np.full(base.max_candidates, -np.inf)
            priority[: len(relevance)] = relevance + 0.5 * tie  # tie in [0, 0.5): grades stay apart
            self._cache_key, self._priority = key, priority
        return self._priority

    def ranking(self) -> np.ndarray:
        """The full ideal ranking of the current query (slots, best first)."""
        base = self.env.unwrapped
        n = len(base.current_relevance)
        return np.argsort(-self.priority()[:n], kind="stable")

    def act(self, observations: dict[str, np.ndarray]) -> np.ndarray:
        masks = np.asarray(observations["mask"], dtype=bool)
        if len(masks) != 1:
            raise ValueError(
                "IdealRankingOracle reads the bound env's relevance labels, so it labels one "
                f"observation (the env's current one) at a time; got a batch of {len(masks)}"
            )
        base = self.env.unwrapped
        if not np.array_equal(observations["features"][0], base._padded):
            raise ValueError(
                "the observation is not the bound env's current one: the ideal-ranking oracle "
                "can only label the situation its env is in (make it with "
                "lfi_gym.envs.make_expert(env) on the env you step)"
            )
        scores = np.where(masks[0], self.priority(), -np.inf)
        if not masks[0].any():
            return np.zeros(1, dtype=np.int64)  # episode over: any action, it is not used
        return np.array([int(np.argmax(scores))], dtype=np.int64)
