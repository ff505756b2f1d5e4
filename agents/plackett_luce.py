"""A masked Plackett-Luce ranking policy, the learner for the ranking envs.

:class:`PlackettLucePolicy` scores every candidate with one shared network and picks the
next document with probability ``softmax(scores)`` over the slots the mask allows, which
is the Plackett-Luce model of a whole ranking factored into the env's steps. It follows
SB3's policy shape (``predict``, ``evaluate_actions``, ``get_distribution``,
``set_training_mode``, ``_get_constructor_parameters``), so BC and DAgger train it in place,
PG-Rank (:mod:`lfi_gym.agents.pgrank`) trains it by policy gradient and guided agents
(PPO++, AggreVaTeD) can use its optional value head.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from torch import nn

from lfi_gym.envs.policies import batch_observation
from lfi_gym.envs.validation import check_choice, check_positive_float, check_positive_int

_ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU}
_MASKED = -1e9  # finite: keeps entropies and gradients free of NaN


def _check_ranking_spaces(observation_space: gym.Space, action_space: gym.Space) -> tuple[int, int]:
    if not (
        isinstance(observation_space, spaces.Dict)
        and set(observation_space.spaces) == {"features", "mask"}
        and isinstance(action_space, spaces.Discrete)
    ):
        raise ValueError(
            "PlackettLucePolicy needs a ranking env's spaces: Dict(features=Box(M, F), "
            f"mask=MultiBinary(M)) and Discrete(M); got {observation_space} and {action_space}"
        )
    shape = observation_space["features"].shape
    if len(shape) != 2 or shape[0] != action_space.n:
        raise ValueError(
            f"features must have shape (max_candidates={action_space.n}, n_features), got {shape}"
        )
    return int(shape[0]), int(shape[1])


def mlp(sizes: Sequence[int], activation: str) -> nn.Sequential:
    """Linear layers of the given sizes with ``activation`` between them."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(itertools.pairwise(sizes)):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(_ACTIVATIONS[activation]())
    return nn.Sequential(*layers)


class PlackettLucePolicy(nn.Module):
    """Masked Plackett-Luce ranking policy over a per-document scorer.

    ``scorer`` maps features ``(..., n_features)`` to one score per document
    ``(..., 1)`` or ``(...)``; by default an MLP with hidden sizes ``net_arch``. Any torch
    module works (a cross-encoder over token ids, a linear model). With ``value_head``
    (default) a small MLP on the mean and max of the selectable candidates' features
    estimates the state value, which ``evaluate_actions`` returns for actor-critic agents.
    ``temperature`` divides the scores (lower: closer to sorting by score).
    """

    def __init__(
        self,
        observation_space: gym.Space,
        action_space: gym.Space,
        net_arch: Sequence[int] = (64, 64),
        activation: str = "relu",
        scorer: nn.Module | None = None,
        value_head: bool = True,
        temperature: float = 1.0,
    ) -> None:
        super().__init__()
        self.max_candidates, self.n_features = _check_ranking_spaces(
            observation_space, action_space
        )
        check_choice(activation, sorted(_ACTIVATIONS), "activation")
        self.net_arch = [check_positive_int(h, "net_arch entry") for h in net_arch]
        if scorer is not None and not isinstance(scorer, nn.Module):
            raise TypeError(f"scorer must be a torch.nn.Module, got {type(scorer).__name__}")
        self.observation_space = observation_space
        self.action_space = action_space
        self.activation = activation
        self.temperature = check_positive_float(temperature, "temperature")
        self._custom_scorer = scorer is not None
        self.scorer = (
            scorer if scorer is not None else mlp([self.n_features, *self.net_arch, 1], activation)
        )
        self.value_net = (
            mlp([2 * self.n_features, *self.net_arch, 1], activation) if value_head else None
        )

    # -- SB3 policy shape ---------------------------------------------------------------------

    @classmethod
    def from_spaces(
        cls, observation_space: spaces.Dict, action_space: spaces.Discrete, **kwargs: Any
    ) -> PlackettLucePolicy:
        """Build from the env's spaces (how BC / DAgger make a learner named by string)."""
        return cls(observation_space, action_space, **kwargs)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def set_training_mode(self, mode: bool) -> None:
        self.train(mode)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        return {
            "observation_space": self.observation_space,
            "action_space": self.action_space,
            "net_arch": list(self.net_arch),
            "activation": self.activation,
            "scorer": self.scorer if self._custom_scorer else None,
            "value_head": self.value_net is not None,
            "temperature": self.temperature,
        }

    def obs_to_tensor(self, observation: Any) -> tuple[dict[str, torch.Tensor], bool]:
        """Numpy observation (single or batched) -> batched tensors on the policy's device."""
        batch, was_batched = batch_observation(observation, self.observation_space)
        device = self.device
        return {k: torch.as_tensor(np.asarray(v), device=device) for k, v in batch.items()}, (
            was_batched
        )

    def scores(self, observations: dict[str, torch.Tensor]) -> torch.Tensor:
        """Masked logits ``(batch, max_candidates)``; a row with nothing selectable (the
        episode is over) is left unmasked so that its distribution stays defined."""
        features = observations["features"].float()
        raw = self.scorer(features)
        if raw.dim() == features.dim():
            raw = raw.squeeze(-1)
        mask = observations["mask"].bool()
        mask = mask | ~mask.any(dim=-1, keepdim=True)
        return (raw / self.temperature).masked_fill(~mask, _MASKED)

    def get_distribution(
        self, observations: dict[str, torch.Tensor]
    ) -> torch.distributions.Categorical:
        """The next pick's distribution (a torch Categorical over slots)."""
        return torch.distributions.Categorical(logits=self.scores(observations))

    def predict_values(self, observations: dict[str, torch.Tensor]) -> torch.Tensor:
        """State values ``(batch, 1)`` from the value head (zeros without one)."""
        features = observations["features"].float()
        if self.value_net is None:
            return torch.zeros(len(features), 1, device=features.device)
        mask = observations["mask"].float().unsqueeze(-1)
        count = mask.sum(dim=1).clamp(min=1.0)
        mean = (features * mask).sum(dim=1) / count
        peak = features.masked_fill(mask == 0, -1e4).max(dim=1).values * (count > 0)
        return self.value_net(torch.cat([mean, peak.clamp(min=-1e4)], dim=-1))

    def evaluate_actions(
        self, observations: dict[str, torch.Tensor], actions: torch.Tensor
    ) -> tuple[torch.Tensor | None, torch.Tensor, torch.Tensor]:
        """(values or None, log-probability of ``actions``, entropy), as SB3's policies."""
        distribution = self.get_distribution(observations)
        actions = actions.long().reshape(-1)
        values = self.predict_values(observations) if self.value_net is not None else None
        return values, distribution.log_prob(actions), distribution.entropy()

    def forward(
        self, observations: dict[str, torch.Tensor], deterministic: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Actions, values and log-probabilities, as SB3's ``ActorCriticPolicy.forward``."""
        distribution = self.get_distribution(observations)
        logits = distribution.logits
        actions = logits.argmax(dim=-1) if deterministic else distribution.sample()
        return actions, self.predict_values(observations), distribution.log_prob(actions)

    def predict(
        self,
        observation: Any,
        state: Any = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, Any]:
        """SB3's ``predict``: a placed or padding slot is never chosen."""
        tensors, was_batched = self.obs_to_tensor(observation)
        with torch.no_grad():
            logits = self.scores(tensors)
            if deterministic:
                actions = logits.argmax(dim=-1)
            else:
                actions = torch.distributions.Categorical(logits=logits).sample()
        actions = actions.cpu().numpy().astype(np.int64)
        return (actions if was_batched else actions[0]), state

    def rank(self, features: np.ndarray) -> np.ndarray:
        """Slots of one query's candidates ``(n, n_features)`` sorted by decreasing score:
        the mode of the Plackett-Luce distribution, what deterministic ``predict`` builds."""
        with torch.no_grad():
            raw = self.scorer(torch.as_tensor(np.asarray(features), device=self.device).float())
        return np.argsort(-raw.reshape(-1).cpu().numpy(), kind="stable")
