"""The Policy protocol every expert, guide and learner implements, and the env oracles' base.

The protocol is Stable-Baselines3's ``predict`` signature, so every SB3 model and policy
is already a Policy::

    actions, state = policy.predict(observation, state=None, episode_start=None,
                                    deterministic=False)

A batch of observations gives a batch of actions; a single observation gives a single
action. ``state`` is the policy's recurrent state (None for feed-forward policies).
It lives with the envs (the bottom layer) because every env family's oracle is a Policy;
the agents build on it.
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
        "such as an SB3 model, an lfi-gym agent or lfi_gym.envs.make_expert(env); got "
        f"{type(obj).__name__}"
    )


#: The two spaces a Policy, an env, a learner or a dataset declares, observation space first.
SPACE_KINDS = ("observation_space", "action_space")


def space_mismatch(
    first: Any, second: Any, *, unknown_agrees: bool = True
) -> tuple[str, Any, Any] | None:
    """The first of :data:`SPACE_KINDS` on which ``first`` and ``second`` disagree, as
    ``(kind, first's space, second's space)``, or None when they agree. With
    ``unknown_agrees``, a space that is None or missing (not known yet, e.g. data recorded
    without one) agrees with anything."""
    for kind in SPACE_KINDS:
        mine, theirs = getattr(first, kind, None), getattr(second, kind, None)
        if mine is None or theirs is None:
            if unknown_agrees or mine is theirs:
                continue
            return kind, mine, theirs
        if not same_space(mine, theirs):
            return kind, mine, theirs
    return None


def check_spaces(policy: Policy, env: gym.Env, *, role: str = "policy") -> None:
    """Raise ValueError unless ``policy`` acts on ``env``'s observation and action spaces."""
    mismatch = space_mismatch(policy, env, unknown_agrees=False)
    if mismatch is not None:
        kind, got, expected = mismatch
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


# -- a random policy ------------------------------------------------------------------


class RandomPolicy:
    """Uniformly random actions from a seeded generator: the usual "low" end of a score
    normalisation. On envs with an action mask (an observation ``"mask"``: ranking) it
    draws among the valid actions only."""

    def __init__(
        self, observation_space: gym.Space, action_space: gym.Space, seed: int | None = None
    ) -> None:
        if not isinstance(action_space, spaces.Discrete):
            raise TypeError(
                f"RandomPolicy draws Discrete actions; this env's action space is {action_space}"
            )
        self.observation_space, self.action_space = observation_space, action_space
        self._rng = np.random.default_rng(seed)

    @classmethod
    def for_env(cls, env: gym.Env, seed: int | None = None) -> RandomPolicy:
        return cls(env.observation_space, env.action_space, seed)

    def predict(
        self,
        observation: Any,
        state: Any = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, Any]:
        batch, was_batched = batch_observation(observation, self.observation_space)
        n_actions = int(self.action_space.n)
        if isinstance(batch, dict) and "mask" in batch:
            masks = np.asarray(batch["mask"], dtype=bool).reshape(-1, n_actions)
        else:
            rows = len(next(iter(batch.values()))) if isinstance(batch, dict) else len(batch)
            masks = np.ones((rows, n_actions), dtype=bool)
        actions = np.array(
            [self._rng.choice(np.flatnonzero(m)) + self.action_space.start for m in masks],
            dtype=np.int64,
        )
        return (actions if was_batched else actions[0]), state
