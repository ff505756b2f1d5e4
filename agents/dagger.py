"""DAgger (Ross, Gordon and Bagnell, 2011): roll in with a beta-mixture, label every
visited state with the expert, aggregate, retrain.

Defaults (see docs/paper-settings.md): beta_i is the probability that the expert's action is
executed at a step of round i, decaying linearly from 1 to 0 over 15 rounds; every
visited state is labelled by the expert; the learner is retrained on the aggregate after
each round. ``beta_schedule="exponential"`` gives beta_i = decay**i instead,
``"first_round"`` beta_0 = 1 and 0 after, and any callable ``round -> beta`` is accepted.
The round loop is :class:`lfi_gym.agents.aggregation.AggregatingAgent`'s.

``learn(total_timesteps)`` counts environment steps, which equal expert labels.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from lfi_gym.agents.aggregation import AggregatingAgent, exponential_beta, linear_beta
from lfi_gym.agents.data import Demonstrations

__all__ = ["DAgger", "exponential_beta", "linear_beta"]


class DAgger(AggregatingAgent):
    """Dataset Aggregation with an interactive expert.

    ``expert`` is any Policy: ``lfi_gym.envs.make_expert(env)``, an SB3 model, another agent.
    Each round collects ``steps_per_round`` steps with the mixture (expert with
    probability beta_i per step, else the learner), labels every visited state with the
    expert *while the env is in that state* (so privileged oracles work), adds them to the
    aggregate and trains the learner on the aggregate for ``n_epochs`` passes.
    ``demonstrations`` optionally seeds the aggregate with offline expert data.
    ``policy`` is any learner :class:`lfi_gym.agents.BC` takes (default ``"auto"``). Other keyword
    arguments (``learning_rate``, ``batch_size``, ...) configure the supervised training,
    as in :class:`lfi_gym.agents.BC` (same defaults).
    """

    BUDGET_UNIT = "expert_labels"
    USES_ENV_REWARD = False
    LOG_PREFIX = "dagger"
    SINGLE_ENV_REASON = (
        "it steps one env and has the expert label each state while the env is in it"
    )

    def __init__(
        self,
        env: gym.Env | None,
        expert: Any = None,
        *,
        demonstrations: Demonstrations | None = None,
        policy: Any = "auto",
        policy_kwargs: dict[str, Any] | None = None,
        steps_per_round: int = 500,
        beta_schedule: str | Callable[[int], float] = "linear",
        beta_rounds: int = 15,
        beta_decay: float = 0.5,
        n_epochs: int = 4,
        deterministic_rollouts: bool = True,
        retrain_from_scratch: bool = False,
        seed: int | None = None,
        device: str | torch.device = "auto",
        tensorboard_log: str | None = None,
        verbose: int = 0,
        **trainer_kwargs: Any,
    ) -> None:
        super().__init__(
            env,
            expert,
            demonstrations=demonstrations,
            policy=policy,
            policy_kwargs=policy_kwargs,
            steps_per_round=steps_per_round,
            beta_schedule=beta_schedule,
            beta_rounds=beta_rounds,
            beta_decay=beta_decay,
            n_epochs=n_epochs,
            deterministic_rollouts=deterministic_rollouts,
            retrain_from_scratch=retrain_from_scratch,
            seed=seed,
            device=device,
            tensorboard_log=tensorboard_log,
            verbose=verbose,
            **trainer_kwargs,
        )

    def _check_round(self) -> None:
        if self.expert is None:
            raise ValueError(
                "DAgger needs an expert: DAgger(env, expert=lfi_gym.envs.make_expert(env)), or "
                "DAgger.load(path, env=env, expert=...) (experts are not saved with the agent)"
            )

    def _label_visited_state(self, observation: Any, episode_start: np.ndarray) -> Any:
        # The expert sees every step, so a recurrent one keeps its state; its action is the
        # label whether or not it is executed.
        label, self._expert_state = self.expert.predict(
            observation, state=self._expert_state, episode_start=episode_start, deterministic=True
        )
        return label

    def _expert_rollin_action(self, observation: Any, episode_start: np.ndarray, label: Any) -> Any:
        return label
