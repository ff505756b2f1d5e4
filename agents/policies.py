"""The Policy protocol every expert, guide and learner implements, and its adapters.

The protocol is Stable-Baselines3's ``predict`` signature, so every SB3 model and policy
is already a Policy::

    actions, state = policy.predict(observation, state=None, episode_start=None,
                                    deterministic=False)

A batch of observations gives a batch of actions; a single observation gives a single
action. ``state`` is the policy's recurrent state (None for feed-forward policies).
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import gymnasium as gym
import numpy as np
from gymnasium import spaces


@runtime_checkable
class Policy(Protocol):
    """Anything with SB3's ``predict`` and the spaces it acts on."""

    observation_space: gym.Space
    action_space: gym.Space

    def predict(
        self,
        observation: Any,
        state: Any = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, Any]: ...


def as_policy(obj: Any, *, role: str = "policy") -> Policy:
    """Return ``obj`` as a Policy, or raise a TypeError saying what is accepted.

    SB3 models (``PPO``, ``DQN``, ...), SB3 policies, lfi-gym agents and oracles are
    Policies as they are; nothing is wrapped.
    """
    if isinstance(obj, Policy):
        return obj
    raise TypeError(
        f"{role} must be a Policy: an object with predict(observation, state, "
        "episode_start, deterministic) and observation_space / action_space attributes, "
        "such as an SB3 model, an lfi-gym agent or envs.make_expert(env); got "
        f"{type(obj).__name__}"
    )


def check_spaces(policy: Policy, env: gym.Env, *, role: str = "policy") -> None:
    """Raise ValueError unless ``policy`` acts on ``env``'s observation and action spaces."""
    for kind in ("action_space", "observation_space"):
        expected, got = getattr(env, kind), getattr(policy, kind)
        if not same_space(expected, got):
            raise ValueError(
                f"{role}'s {kind} {got} does not match the env's {kind} {expected}; "
                f"use a {role} made for this env"
            )


def same_space(a: gym.Space, b: gym.Space) -> bool:
    if type(a) is not type(b):
        return False
    if isinstance(a, spaces.Box):
        # Bounds may be stored in another float precision (e.g. by SB3 after loading).
        return (
            a.shape == b.shape
            and np.dtype(a.dtype) == np.dtype(b.dtype)
            and np.allclose(a.low, b.low, equal_nan=True)
            and np.allclose(a.high, b.high, equal_nan=True)
        )
    if isinstance(a, spaces.Dict):
        return a.keys() == b.keys() and all(same_space(a[k], b[k]) for k in a.keys())
    return a == b


# -- batching helpers -----------------------------------------------------------------


def batch_observation(observation: Any, space: gym.Space) -> tuple[Any, bool]:
    """Return ``(batch, was_batched)``; raise ValueError on a shape that fits neither."""
    if isinstance(space, spaces.Dict):
        if not isinstance(observation, dict) or observation.keys() != space.spaces.keys():
            raise ValueError(
                f"observation must be a dict with keys {sorted(space.spaces)}, got "
                f"{sorted(observation) if isinstance(observation, dict) else type(observation)}"
            )
        parts = {k: batch_observation(observation[k], space[k]) for k in space.spaces}
        batched = {part[1] for part in parts.values()}
        if len(batched) != 1:
            raise ValueError("observation dict mixes batched and unbatched entries")
        return {k: v[0] for k, v in parts.items()}, batched.pop()
    obs = np.asarray(observation)
    shape = space.shape or ()
    if obs.shape == shape:
        return obs[None], False
    if obs.ndim == len(shape) + 1 and obs.shape[1:] == shape:
        return obs, True
    raise ValueError(
        f"observation has shape {obs.shape}; expected {shape} or (n_envs, *{shape}) for {space}"
    )


# -- oracles --------------------------------------------------------------------------


class OraclePolicy:
    """Base class of an environment's computational oracle, bound to that env.

    Subclasses implement :meth:`act` on a batch of observations. An oracle that reads
    the bound env's internal state (RAM, relevance labels, references) sets
    ``privileged = True``; it can then only label the env's current situation, so
    algorithms must query it while the env is in the state being labelled.
    """

    privileged: bool = False

    def __init__(self, env: gym.Env) -> None:
        self.env = env
        self.observation_space = env.observation_space
        self.action_space = env.action_space

    def act(self, observations: Any) -> np.ndarray:
        raise NotImplementedError

    def predict(
        self,
        observation: Any,
        state: Any = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, Any]:
        batch, was_batched = batch_observation(observation, self.observation_space)
        actions = np.asarray(self.act(batch))
        return (actions if was_batched else actions[0]), state

    def __repr__(self) -> str:
        spec = self.env.unwrapped.spec
        return f"{type(self).__name__}(env={spec.id if spec is not None else self.env})"


# -- mixtures -------------------------------------------------------------------------


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
        for kind in ("action_space", "observation_space"):
            if not same_space(getattr(first, kind), getattr(second, kind)):
                raise ValueError(
                    f"mixture of policies with different {kind}s: "
                    f"{getattr(first, kind)} vs {getattr(second, kind)}"
                )
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


def check_probability(value: Any, name: str) -> float:
    """Return ``value`` as a float in [0, 1], or raise ValueError naming ``name``."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a probability in [0, 1], got {value!r}") from None
    if not 0.0 <= number <= 1.0:
        raise ValueError(f"{name} must be a probability in [0, 1], got {value!r}")
    return number


def __getattr__(name: str) -> Any:
    # LMPolicy needs transformers: import it only when asked for.
    if name == "LMPolicy":
        from lfi_gym.agents.lm_policy import LMPolicy

        return LMPolicy
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
