"""Policies the agents build from other Policies: the beta-mixture of two.

The Policy protocol itself (``Policy``, ``as_policy``, ``check_spaces``, ...) lives in
:mod:`lfi_gym.envs.policies`, with the env oracles that implement it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lfi_gym.envs.policies import Policy, as_policy, batch_observation, space_mismatch
from lfi_gym.envs.validation import check_probability


class MixturePolicy:
    """Acts with ``first`` with probability ``beta``, else with ``second``.

    ``per="step"`` draws the choice for every row at every call (DAgger's mixture);
    ``per="episode"`` draws it where ``episode_start`` is true and keeps it for the rest
    of the episode (PPO++'s roll-in). ``last_choice`` holds, per row, whether ``first``
    acted on the last call.
    """

    def __init__(
        self,
        first: Policy,
        second: Policy,
        beta: float,
        *,
        per: str = "step",
        seed: int | None = None,
    ) -> None:
        self.first = as_policy(first, role="first")
        self.second = as_policy(second, role="second")
        mismatch = space_mismatch(first, second, unknown_agrees=False)
        if mismatch is not None:
            kind, mine, theirs = mismatch
            raise ValueError(f"mixture of policies with different {kind}s: {mine} vs {theirs}")
        if per not in ("step", "episode"):
            raise ValueError(f"per must be 'step' or 'episode', got {per!r}")
        self.observation_space = first.observation_space
        self.action_space = first.action_space
        self.per = per
        self.beta = beta
        self.rng = np.random.default_rng(seed)
        self.last_choice: np.ndarray | None = None

    @property
    def beta(self) -> float:
        return self._beta

    @beta.setter
    def beta(self, value: float) -> None:
        self._beta = check_probability(value, "beta")

    def predict(
        self,
        observation: Any,
        state: Any = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, Any]:
        batch, was_batched = batch_observation(observation, self.observation_space)
        n = len(next(iter(batch.values()))) if isinstance(batch, dict) else len(batch)
        first_state, second_state = state if state is not None else (None, None)
        choice = self._choose(n, episode_start)
        first_actions, first_state = self.first.predict(
            batch, first_state, episode_start, deterministic
        )
        second_actions, second_state = self.second.predict(
            batch, second_state, episode_start, deterministic
        )
        first_actions, second_actions = np.asarray(first_actions), np.asarray(second_actions)
        mask = choice.reshape((n,) + (1,) * (first_actions.ndim - 1))
        actions = np.where(mask, first_actions, second_actions)
        self.last_choice = choice
        return (actions if was_batched else actions[0]), (first_state, second_state)

    def _choose(self, n: int, episode_start: np.ndarray | None) -> np.ndarray:
        draw = self.rng.random(n) < self._beta
        if self.per == "step" or self.last_choice is None or len(self.last_choice) != n:
            return draw
        if episode_start is None:
            return self.last_choice
        return np.where(np.asarray(episode_start, dtype=bool), draw, self.last_choice)
