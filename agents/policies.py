"""Policies the agents build from Policies: mixtures, and SB3 policies as trainable learners.

The Policy protocol itself (``Policy``, ``as_policy``, ``check_spaces``, ...) lives in
:mod:`lfi_gym.envs.policies`, with the env oracles that implement it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from lfi_gym.envs.policies import Policy, as_policy, batch_observation, same_space
from lfi_gym.envs.validation import check_probability

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


# -- SB3 policies as trainable learners ----------------------------------------------


def trainable_module(obj: Any) -> torch.nn.Module:
    """The torch module to train when ``obj`` is a learner.

    ``obj`` is an SB3 model or policy, or any ``torch.nn.Module`` that follows SB3's
    policy shape: ``predict``, ``evaluate_actions``, ``set_training_mode``,
    ``_get_constructor_parameters`` and the two spaces (e.g. ``LMPolicy`` or the ranking
    policy), so that BC and DAgger train it in place.
    """
    from stable_baselines3.common.base_class import BaseAlgorithm
    from stable_baselines3.common.policies import BasePolicy

    if isinstance(obj, BaseAlgorithm):
        obj = obj.policy
    if isinstance(obj, BasePolicy):
        return obj
    if isinstance(obj, torch.nn.Module) and all(hasattr(obj, name) for name in LEARNER_METHODS):
        return obj
    raise TypeError(
        "a learner must be an SB3 policy name ('MlpPolicy', 'CnnPolicy', "
        "'MultiInputPolicy'), an SB3 model (PPO, A2C, DQN, ...), an SB3 policy, or a "
        f"torch.nn.Module with {', '.join(LEARNER_METHODS)}; got {type(obj).__name__}"
    )


#: What a torch module needs, besides the two spaces, to be trained by BC / DAgger.
LEARNER_METHODS = (
    "predict",
    "evaluate_actions",
    "set_training_mode",
    "_get_constructor_parameters",
    "observation_space",
    "action_space",
)


def action_log_prob(
    policy: torch.nn.Module, observations: Any, actions: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-probability and entropy of ``actions`` under an SB3 policy (for supervised loss).

    Actor-critic policies (PPO, A2C, TRPO, MaskablePPO) use their action distribution;
    Q-value policies (DQN, QR-DQN) are trained as softmax classifiers over their Q-values,
    which keeps ``predict`` (argmax Q) consistent with the learned labels.
    """
    if hasattr(policy, "evaluate_actions") and not hasattr(policy, "lstm_actor"):
        _, log_prob, entropy = policy.evaluate_actions(observations, actions)
        if entropy is None:
            entropy = -log_prob
        return log_prob, entropy
    q_values = _q_values(policy, observations)
    if q_values is not None:
        log_probs = torch.log_softmax(q_values, dim=-1)
        chosen = log_probs.gather(1, actions.long().reshape(-1, 1)).squeeze(1)
        entropy = -(log_probs.exp() * log_probs).sum(-1)
        return chosen, entropy
    raise TypeError(
        f"cannot train {type(policy).__name__} by imitation: supported learners are SB3 "
        "actor-critic policies (PPO, A2C, TRPO, MaskablePPO) and Q-value policies (DQN, "
        "QR-DQN); recurrent policies need their LSTM state and are not supported"
    )


def _q_values(policy: torch.nn.Module, observations: Any) -> torch.Tensor | None:
    if hasattr(policy, "q_net") and hasattr(policy.q_net, "forward"):
        return policy.q_net(observations)
    if hasattr(policy, "quantile_net"):
        return policy.quantile_net(observations).mean(dim=1)
    return None
