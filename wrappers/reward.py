"""Reward replacement for DRIL: the env's reward becomes +1 / -1 from an ensemble's disagreement.

The cost of taking action ``a`` in observation ``s`` comes from a batched function
``cost_fn(observations, actions) -> costs`` (one call per vector step, over every sub-env
at once: an ensemble forward is the expensive part of a DRIL step, and batching it over
the envs is what keeps it cheap). The reward is ``+1`` where the cost is at most the
threshold of the taken action and ``-1`` elsewhere; the env's own reward is kept in
``info["env_reward"]`` and the cost in ``info["dril_cost"]``, so episode statistics
(SB3's ``Monitor`` underneath) still report the game score.

Two forms: :class:`DisagreementRewardVecEnv` for SB3 VecEnvs (what SB3's A2C/PPO train on)
and :class:`DisagreementRewardVector` for Gymnasium vector envs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper

#: ``cost_fn(observations, actions) -> costs``: batched over sub-envs, numpy in and out.
CostFn = Callable[[Any, np.ndarray], np.ndarray]


def threshold_rewards(costs: np.ndarray, actions: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """+1 where ``costs[i] <= thresholds[actions[i]]`` (or a scalar threshold), else -1."""
    thresholds = np.asarray(thresholds, dtype=np.float64)
    limit = thresholds if thresholds.ndim == 0 else thresholds[np.asarray(actions, dtype=np.int64)]
    return np.where(np.asarray(costs) <= limit, 1.0, -1.0).astype(np.float32)


def _check_thresholds(thresholds: Any, action_space: gym.Space) -> np.ndarray:
    thresholds = np.asarray(thresholds, dtype=np.float64)
    if thresholds.ndim == 1 and isinstance(action_space, gym.spaces.Discrete):
        if len(thresholds) != action_space.n:
            raise ValueError(
                f"got {len(thresholds)} per-action thresholds for {action_space.n} actions; "
                "give one per action or a single scalar"
            )
    elif thresholds.ndim != 0:
        raise ValueError(
            f"thresholds must be a scalar or one per action of a Discrete space, got shape "
            f"{thresholds.shape} for {action_space}"
        )
    if not np.all(np.isfinite(thresholds)):
        raise ValueError("thresholds must be finite numbers")
    return thresholds


class DisagreementRewardVecEnv(VecEnvWrapper):
    """SB3 VecEnv wrapper: reward = +1 if cost(s, a) <= threshold[a] else -1.

    ``s`` is the observation the action was taken in (kept from the previous step or
    reset), so the reward scores the decision, not its outcome.
    """

    def __init__(self, venv: VecEnv, cost_fn: CostFn, thresholds: Any) -> None:
        super().__init__(venv)
        if not callable(cost_fn):
            raise TypeError(f"cost_fn must be callable, got {type(cost_fn).__name__}")
        self.cost_fn = cost_fn
        self.thresholds = _check_thresholds(thresholds, venv.action_space)
        self._last_obs: Any = None
        self._actions: np.ndarray | None = None

    def reset(self) -> Any:
        self._last_obs = self.venv.reset()
        return self._last_obs

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions)
        self.venv.step_async(actions)

    def step_wait(self):
        if self._last_obs is None:
            raise RuntimeError("DisagreementRewardVecEnv: call reset() before step()")
        obs, env_rewards, dones, infos = self.venv.step_wait()
        costs = np.asarray(self.cost_fn(self._last_obs, self._actions), dtype=np.float64)
        rewards = threshold_rewards(costs, self._actions, self.thresholds)
        for info, env_reward, cost in zip(infos, env_rewards, costs, strict=True):
            info["env_reward"] = float(env_reward)
            info["dril_cost"] = float(cost)
        # On done, SB3 VecEnvs already return the next episode's first observation.
        self._last_obs = obs
        return obs, rewards, dones, infos


class DisagreementRewardVector(gym.vector.VectorWrapper):
    """The same reward replacement for a Gymnasium vector env (``gym.make_vec``).

    Gymnasium's default autoreset ("next step") returns the last observation of an
    episode and resets on the following ``step``; that step's action is ignored by the env
    and is given reward 0 here.
    """

    def __init__(self, env: gym.vector.VectorEnv, cost_fn: CostFn, thresholds: Any) -> None:
        super().__init__(env)
        if not callable(cost_fn):
            raise TypeError(f"cost_fn must be callable, got {type(cost_fn).__name__}")
        self.cost_fn = cost_fn
        self.thresholds = _check_thresholds(thresholds, env.single_action_space)
        self._last_obs: Any = None
        self._resetting = np.zeros(env.num_envs, dtype=bool)

    def reset(self, *, seed: Any = None, options: dict[str, Any] | None = None):
        obs, info = self.env.reset(seed=seed, options=options)
        self._last_obs = obs
        self._resetting[:] = False
        return obs, info

    def step(self, actions: Any):
        if self._last_obs is None:
            raise RuntimeError("DisagreementRewardVector: call reset() before step()")
        actions = np.asarray(actions)
        obs, env_rewards, terminated, truncated, info = self.env.step(actions)
        costs = np.asarray(self.cost_fn(self._last_obs, actions), dtype=np.float64)
        rewards = threshold_rewards(costs, actions, self.thresholds)
        rewards[self._resetting] = 0.0
        info = dict(info)
        info["env_reward"] = np.asarray(env_rewards)
        info["dril_cost"] = costs
        self._resetting = np.logical_or(terminated, truncated)
        self._last_obs = obs
        return obs, rewards, terminated, truncated, info
