"""Supervised training on demonstrations: the maximum-likelihood update BC, DAgger and DRIL
share.

One update on a minibatch of (observation, expert action) pairs minimises

    loss = -mean log pi(a | s) - ent_coef * mean H(pi(. | s))

with Adam (``l2_coef`` is Adam's weight decay) and optional gradient-norm clipping
(``max_grad_norm``). Minibatches come from shuffled passes over the demonstrations; the
last minibatch of a pass holds the remainder when the batch size does not divide the data.
With ``ent_coef=0`` the entropy stays out of the loss (DRIL's BC step).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.logger import Logger

from lfi_gym.agents.data import Demonstrations
from lfi_gym.agents.learners import action_log_prob
from lfi_gym.agents.serialization import (
    AgentFileReader,
    check_count,
    data_bytes,
    optimizer_bytes,
)
from lfi_gym.envs.policies import space_mismatch
from lfi_gym.envs.validation import (
    check_non_negative_float,
    check_positive_float,
    check_positive_int,
)

#: BC's settings and their defaults, as in the `imitation` library's BC: Adam with learning
#: rate 1e-3, batch size 64, entropy bonus 1e-3, no L2, no gradient clipping. DAgger's
#: learner trains with the same, and so does DRIL's BC warm start.
BC_DEFAULTS: dict[str, Any] = {
    "learning_rate": 1e-3,
    "batch_size": 64,
    "ent_coef": 1e-3,
    "l2_coef": 0.0,
    "max_grad_norm": None,
}

#: ``on_update(stats, batch_size)`` after every update; returning False stops training.
OnUpdate = Callable[[dict[str, float], int], "bool | None"]


class SupervisedTrainer:
    """Trains ``policy`` (a learner, see :mod:`lfi_gym.agents.learners`) to imitate demonstrations.

    Holds the optimizer, the RNG that shuffles the minibatches (``seed``: an int, None, or
    a Generator to share) and the update count. ``optimizer``: use this one instead of a
    new Adam (e.g. shared with another trainer, so that Adam's moments carry over).
    """

    #: Training statistics go to the logger every this many updates (see :meth:`log_update`).
    log_every_updates = 100

    def __init__(
        self,
        policy: torch.nn.Module,
        *,
        learning_rate: float,
        batch_size: int,
        ent_coef: float = 0.0,
        l2_coef: float = 0.0,
        max_grad_norm: float | None = None,
        seed: int | np.random.Generator | None = None,
        device: str | torch.device = "cpu",
        optimizer: torch.optim.Optimizer | None = None,
    ) -> None:
        self.policy = policy
        self.learning_rate = check_positive_float(learning_rate, "learning_rate")
        self.batch_size = check_positive_int(batch_size, "batch_size")
        self.ent_coef = check_non_negative_float(ent_coef, "ent_coef")
        self.l2_coef = check_non_negative_float(l2_coef, "l2_coef")
        self.max_grad_norm = (
            None if max_grad_norm is None else check_positive_float(max_grad_norm, "max_grad_norm")
        )
        self.device = torch.device(device)
        if optimizer is None:
            optimizer = torch.optim.Adam(
                policy.parameters(), lr=self.learning_rate, weight_decay=self.l2_coef
            )
        self.optimizer = optimizer
        self.rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        self.n_updates = 0

    def hyperparameters(self) -> dict[str, Any]:
        """The settings, by BC's names (:data:`BC_DEFAULTS`)."""
        return {name: getattr(self, name) for name in BC_DEFAULTS}

    # -- training -------------------------------------------------------------------------

    def train_samples(
        self,
        demonstrations: Demonstrations,
        n_samples: int,
        on_update: OnUpdate | None = None,
    ) -> bool:
        """Update on shuffled minibatches until ``n_samples`` samples were seen (passes
        over the data repeat as needed); False if ``on_update`` stopped training."""
        self.policy.set_training_mode(True)
        seen = 0
        try:
            while seen < n_samples:
                for batch in demonstrations.iter_batches(
                    self.batch_size, shuffle=True, seed=self.rng, device=self.device
                ):
                    stats = self.update(batch)
                    n = len(batch["actions"])
                    seen += n
                    if on_update is not None and on_update(stats, n) is False:
                        return False
                    if seen >= n_samples:
                        break
        finally:
            self.policy.set_training_mode(False)
        return True

    def update(self, batch: dict[str, Any]) -> dict[str, float]:
        """One optimizer step on a minibatch (``Demonstrations.iter_batches``'s dicts)."""
        loss, neglogp, entropy = self.batch_loss(batch)
        self.optimizer.zero_grad()
        loss.backward()
        if self.max_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_(self.policy.parameters(), self.max_grad_norm)
        self.optimizer.step()
        self.n_updates += 1
        return {"loss": loss.item(), "neglogp": neglogp.item(), "entropy": entropy.item()}

    def batch_loss(self, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(loss, mean negative log-likelihood, mean entropy) of a minibatch, with gradients."""
        log_prob, entropy = action_log_prob(
            self.policy, batch["observations"], self._actions(batch)
        )
        neglogp = -log_prob.mean()
        entropy_mean = entropy.mean()
        loss = neglogp - self.ent_coef * entropy_mean if self.ent_coef > 0 else neglogp
        return loss, neglogp, entropy_mean

    def loss(self, demonstrations: Demonstrations) -> float:
        """Mean negative log-likelihood of the demonstrations' actions (no gradients)."""
        total, count = 0.0, 0
        with torch.no_grad():
            for batch in demonstrations.iter_batches(1024, shuffle=False, device=self.device):
                log_prob, _ = action_log_prob(
                    self.policy, batch["observations"], self._actions(batch)
                )
                total += -log_prob.sum().item()
                count += len(log_prob)
        return total / max(count, 1)

    def _actions(self, batch: dict[str, Any]) -> torch.Tensor:
        actions = batch["actions"]
        if isinstance(self.policy.action_space, gym.spaces.Discrete):
            actions = actions.long().reshape(-1)
        return actions

    def log_update(
        self, logger: Logger, stats: dict[str, float], step: int, *, last: bool = False
    ) -> None:
        """After every ``log_every_updates``-th update: its statistics (``train/loss``,
        ``train/neglogp``, ``train/entropy``) and the update count, dumped at ``step``.

        ``last=True``, called once after a training run's last update, logs that update
        unless it was logged already, so that a run shorter than ``log_every_updates``
        updates logs too.
        """
        due = self.n_updates % self.log_every_updates == 0
        if due == last:  # not due yet, or (last) logged when it happened
            return
        for key, value in stats.items():
            logger.record(f"train/{key}", value)
        logger.record("train/n_updates", self.n_updates)
        logger.dump(step)

    # -- state ----------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Optimizer moments, shuffling RNG and update count, as plain values."""
        return {
            "optimizer": self.optimizer.state_dict(),
            "rng": self.rng.bit_generator.state,
            "n_updates": self.n_updates,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`'s values: training resumes exactly."""
        self.optimizer.load_state_dict(state["optimizer"])
        self.rng.bit_generator.state = state["rng"]
        self.n_updates = state["n_updates"]

    #: The members :meth:`file_members` writes.
    FILE_MEMBERS = frozenset({"optimizer.data", "trainer.data"})

    def file_members(self) -> dict[str, bytes]:
        """The state as agent-file members (BC's and DAgger's): ``optimizer.data`` and
        ``trainer.data`` (RNG and update count)."""
        return {
            "optimizer.data": optimizer_bytes(self.optimizer),
            "trainer.data": data_bytes(
                {"rng": self.rng.bit_generator.state, "n_updates": self.n_updates}
            ),
        }

    def restore_file_members(self, members: AgentFileReader) -> None:
        """Restore what :meth:`file_members` wrote (each member only if present)."""
        if "optimizer.data" in members:
            members.load_optimizer("optimizer.data", self.optimizer)
        if "trainer.data" in members:
            trainer = members.data("trainer.data")
            with members.reading("trainer.data"):
                self.rng.bit_generator.state = trainer["rng"]
                self.n_updates = check_count(trainer["n_updates"])


def check_demonstrations(
    demonstrations: Any, learner: Any, *, what: str = "the learner uses"
) -> Demonstrations:
    """``demonstrations`` if they fit ``learner``'s spaces (a learner, or an env: anything with
    ``observation_space`` / ``action_space``), else a TypeError / ValueError that says what
    to record; ``what`` names the other side in the message."""
    if not isinstance(demonstrations, Demonstrations):
        raise TypeError(
            f"demonstrations must be a Demonstrations, got {type(demonstrations).__name__}"
        )
    if len(demonstrations) == 0:
        raise ValueError("demonstrations are empty: collect at least one transition")
    mismatch = space_mismatch(demonstrations, learner)
    if mismatch is not None:
        kind, theirs, ours = mismatch
        recorded_on = f" (on {demonstrations.env_id})" if demonstrations.env_id else ""
        raise ValueError(
            f"demonstrations were recorded{recorded_on} with {kind} {theirs}, {what} {ours}; "
            "record them on the same env"
        )
    return demonstrations
