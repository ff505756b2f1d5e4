"""Behavioural cloning: fit the learner to expert actions by maximum likelihood.

Defaults. The papers we follow have no BC table for control or Atari (GRUE's BC is supervised
fine-tuning, set with the text envs). Ours follow common practice and the `imitation`
library's BC: Adam, learning rate 1e-3, batch size 64, entropy bonus 1e-3, no L2.
The default learner is SB3's ``ActorCriticPolicy`` with SB3's default MLP, so its weights
can warm-start an SB3 ``PPO("MlpPolicy", env)`` directly.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.callbacks import BaseCallback
from tqdm.auto import tqdm

from lfi_gym.agents.base import BaseAgent, torch_bytes, torch_load
from lfi_gym.agents.data import Demonstrations
from lfi_gym.agents.policies import action_log_prob, trainable_module
from lfi_gym.envs.policies import check_spaces, same_space
from lfi_gym.envs.validation import (
    check_non_negative_float,
    check_positive_float,
    check_positive_int,
)

POLICY_ALIASES = ("MlpPolicy", "CnnPolicy", "MultiInputPolicy")


#: Learners of lfi-gym's own, by the name a suite or config gives (JSON-friendly):
#: built as ``cls.from_spaces(observation_space, action_space, **policy_kwargs)``.
LEARNER_CLASSES = {
    "LMPolicy": "lfi_gym.agents.lm_policy:LMPolicy",
    "PlackettLucePolicy": "lfi_gym.agents.plackett_luce:PlackettLucePolicy",
}


def make_learner(
    policy: Any,
    observation_space: gym.Space,
    action_space: gym.Space,
    policy_kwargs: dict[str, Any] | None,
    device: torch.device,
) -> torch.nn.Module:
    """Build or unwrap the learner: an SB3 policy name (``"MlpPolicy"``...), one of
    :data:`LEARNER_CLASSES` (``"LMPolicy"``, ``"PlackettLucePolicy"``), an SB3 model or
    policy, or a torch module with the learner methods -> the module to train."""
    if isinstance(policy, str) and policy in LEARNER_CLASSES:
        import importlib

        module_name, class_name = LEARNER_CLASSES[policy].split(":")
        cls = getattr(importlib.import_module(module_name), class_name)
        module = cls.from_spaces(observation_space, action_space, **(policy_kwargs or {}))
    elif isinstance(policy, str):
        from stable_baselines3.common.policies import (
            ActorCriticCnnPolicy,
            ActorCriticPolicy,
            MultiInputActorCriticPolicy,
        )

        classes = dict(
            zip(
                POLICY_ALIASES,
                (ActorCriticPolicy, ActorCriticCnnPolicy, MultiInputActorCriticPolicy),
                strict=True,
            )
        )
        if policy not in classes:
            raise ValueError(
                f"unknown policy {policy!r}; use one of "
                f"{', '.join((*POLICY_ALIASES, *LEARNER_CLASSES))}, an SB3 model or an SB3 "
                "policy"
            )
        module = classes[policy](
            observation_space, action_space, lambda _: 0.0, **(policy_kwargs or {})
        )
    else:
        if policy_kwargs:
            raise ValueError("policy_kwargs only apply when policy is a name like 'MlpPolicy'")
        module = trainable_module(policy)
    return module.to(device)


class BC(BaseAgent):
    """Behavioural cloning, SB3-shaped.

    >>> demos = Demonstrations.collect(env, envs.make_expert(env), n_episodes=5)
    >>> bc = BC(env, demos).learn(total_timesteps=50_000)

    ``learn(total_timesteps)`` counts training samples: it takes
    ``ceil(total_timesteps / batch_size)`` gradient steps over shuffled epochs of the
    demonstrations. ``policy`` is ``"MlpPolicy"`` / ``"CnnPolicy"`` / ``"MultiInputPolicy"``
    (an SB3 actor-critic policy), or any SB3 model or policy to train in place (PPO, A2C,
    DQN, QR-DQN, ...). ``expert_labels`` is the number of expert actions it learned from.
    Callbacks' ``on_step`` runs once per gradient step, and ``num_timesteps`` advances by
    the batch size, so an SB3 ``eval_freq`` counts gradient steps.
    """

    def __init__(
        self,
        env: gym.Env | None,
        demonstrations: Demonstrations | None = None,
        *,
        policy: Any = "MlpPolicy",
        policy_kwargs: dict[str, Any] | None = None,
        learning_rate: float = 1e-3,
        batch_size: int = 64,
        ent_coef: float = 1e-3,
        l2_coef: float = 0.0,
        max_grad_norm: float | None = None,
        seed: int | None = None,
        device: str | torch.device = "auto",
        tensorboard_log: str | None = None,
        verbose: int = 0,
    ) -> None:
        super().__init__(
            env, seed=seed, device=device, tensorboard_log=tensorboard_log, verbose=verbose
        )
        self.learning_rate = check_positive_float(learning_rate, "learning_rate")
        self.batch_size = check_positive_int(batch_size, "batch_size")
        self.ent_coef = check_non_negative_float(ent_coef, "ent_coef")
        self.l2_coef = check_non_negative_float(l2_coef, "l2_coef")
        self.max_grad_norm = (
            None if max_grad_norm is None else check_positive_float(max_grad_norm, "max_grad_norm")
        )
        if env is None and isinstance(policy, str):
            raise ValueError("BC needs an env to build a policy from a name; pass env=")
        observation_space = env.observation_space if env is not None else None
        action_space = env.action_space if env is not None else None
        self._policy = make_learner(
            policy, observation_space, action_space, policy_kwargs, self.device
        )
        if env is not None:
            check_spaces(self._policy, env, role="policy")
        self.demonstrations: Demonstrations | None = None
        if demonstrations is not None:
            self.set_demonstrations(demonstrations)
        self.optimizer = torch.optim.Adam(
            self._policy.parameters(), lr=self.learning_rate, weight_decay=self.l2_coef
        )
        self._rng = np.random.default_rng(seed)
        self._n_updates = 0
        #: Training statistics go to the logger every this many gradient steps.
        self.log_every_updates = 100

    @property
    def policy(self) -> torch.nn.Module:
        return self._policy

    @property
    def expert_labels(self) -> int:
        return 0 if self.demonstrations is None else len(self.demonstrations)

    def set_demonstrations(self, demonstrations: Demonstrations) -> None:
        """Replace the training data (checked against the learner's spaces)."""
        if not isinstance(demonstrations, Demonstrations):
            raise TypeError(
                f"demonstrations must be a Demonstrations, got {type(demonstrations).__name__}"
            )
        if len(demonstrations) == 0:
            raise ValueError("demonstrations are empty: collect at least one transition")
        for kind in ("observation_space", "action_space"):
            theirs = getattr(demonstrations, kind)
            if theirs is not None and not same_space(theirs, getattr(self._policy, kind)):
                raise ValueError(
                    f"demonstrations were recorded with {kind} {theirs}, the learner uses "
                    f"{getattr(self._policy, kind)}; record them on the same env"
                )
        self.demonstrations = demonstrations

    def _learn(self, target_timesteps: int, callback: BaseCallback, bar: tqdm) -> None:
        if self.demonstrations is None:
            raise ValueError(
                "BC has no demonstrations: pass BC(env, demonstrations) or call "
                "bc.set_demonstrations(...) (a loaded BC does not carry its data) with "
                "Demonstrations.collect(env, expert, n_episodes=...) or Demonstrations.load(path)"
            )
        self.train_samples(target_timesteps - self.num_timesteps, callback, bar)

    def train_samples(
        self,
        n_samples: int,
        callback: BaseCallback | None = None,
        bar: tqdm | None = None,
        log_step: int | None = None,
    ) -> bool:
        """Take gradient steps until ``n_samples`` samples were seen; False if a callback
        stopped training. Logged statistics are stamped with ``log_step`` when given (an
        outer algorithm's timestep, e.g. DAgger's), else with BC's sample count."""
        self._policy.set_training_mode(True)
        seen = 0
        try:
            while seen < n_samples:
                for batch in self.demonstrations.iter_batches(
                    self.batch_size, shuffle=True, seed=self._rng, device=self.device
                ):
                    stats = self._update(batch)
                    n = len(batch["actions"])
                    seen += n
                    self.num_timesteps += n
                    self._n_updates += 1
                    if bar is not None:
                        bar.update(n)
                    if self._n_updates % self.log_every_updates == 0:
                        for key, value in stats.items():
                            self.logger.record(f"train/{key}", value)
                        self.logger.record("train/n_updates", self._n_updates)
                        self.logger.dump(self.num_timesteps if log_step is None else log_step)
                    if callback is not None:
                        callback.update_locals(locals())
                        if not callback.on_step():
                            return False
                    if seen >= n_samples:
                        break
        finally:
            self._policy.set_training_mode(False)
        return True

    def _update(self, batch: dict[str, Any]) -> dict[str, float]:
        actions = batch["actions"]
        if isinstance(self._policy.action_space, gym.spaces.Discrete):
            actions = actions.long().reshape(-1)
        log_prob, entropy = action_log_prob(self._policy, batch["observations"], actions)
        neglogp = -log_prob.mean()
        entropy_mean = entropy.mean()
        loss = neglogp - self.ent_coef * entropy_mean
        self.optimizer.zero_grad()
        loss.backward()
        if self.max_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_(self._policy.parameters(), self.max_grad_norm)
        self.optimizer.step()
        return {"loss": loss.item(), "neglogp": neglogp.item(), "entropy": entropy_mean.item()}

    def loss(self, demonstrations: Demonstrations | None = None) -> float:
        """Mean negative log-likelihood of the (given or own) demonstrations' actions."""
        demos = demonstrations if demonstrations is not None else self.demonstrations
        total, count = 0.0, 0
        with torch.no_grad():
            for batch in demos.iter_batches(1024, shuffle=False, device=self.device):
                actions = batch["actions"]
                if isinstance(self._policy.action_space, gym.spaces.Discrete):
                    actions = actions.long().reshape(-1)
                log_prob, _ = action_log_prob(self._policy, batch["observations"], actions)
                total += -log_prob.sum().item()
                count += len(actions)
        return total / max(count, 1)

    # -- files ---------------------------------------------------------------------------

    def _extra_members(self) -> dict[str, bytes]:
        trainer = {"rng": self._rng.bit_generator.state, "n_updates": self._n_updates}
        return {
            "optimizer.pt": torch_bytes(self.optimizer.state_dict()),
            "trainer.pt": torch_bytes(trainer),
        }

    def _restore_training_state(self, members: dict[str, bytes]) -> None:
        """Optimizer moments, shuffling RNG and update count: training resumes exactly."""
        if "optimizer.pt" in members:
            self.optimizer.load_state_dict(torch_load(members["optimizer.pt"], self.device))
        if "trainer.pt" in members:
            trainer = torch_load(members["trainer.pt"], self.device)
            self._rng.bit_generator.state = trainer["rng"]
            self._n_updates = trainer["n_updates"]

    @classmethod
    def _from_saved(cls, env, policy, hyperparameters, meta, members, device):
        agent = cls(env, policy=policy, device=device, **hyperparameters)
        agent._restore_training_state(members)
        return agent
