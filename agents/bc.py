"""Behavioural cloning: fit the learner to expert actions by maximum likelihood.

Defaults. The papers we follow have no BC table for control or Atari (GRUE's BC is supervised
fine-tuning, set with the text envs). Ours follow common practice and the `imitation`
library's BC: Adam, learning rate 1e-3, batch size 64, entropy bonus 1e-3, no L2.
The default learner (``policy="auto"``) is the one every agent trains on the env
(:mod:`lfi_gym.agents.learners`); on vector observations it is SB3's ``ActorCriticPolicy`` with
SB3's default MLP, so its weights can warm-start an SB3 ``PPO("MlpPolicy", env)`` directly.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import torch
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import VecEnv
from tqdm.auto import tqdm

from lfi_gym.agents.base import BaseAgent
from lfi_gym.agents.data import Demonstrations
from lfi_gym.agents.learners import learner_for_env
from lfi_gym.agents.supervised import BC_DEFAULTS, SupervisedTrainer, check_demonstrations


class BC(BaseAgent):
    """Behavioural cloning, SB3-shaped.

    >>> demos = Demonstrations.collect(env, make_expert(env), n_episodes=5)
    >>> bc = BC(env, demos).learn(total_timesteps=50_000)

    ``learn(total_timesteps)`` counts training samples: it takes
    ``ceil(total_timesteps / batch_size)`` gradient steps over shuffled epochs of the
    demonstrations (:class:`lfi_gym.agents.supervised.SupervisedTrainer`). ``policy`` is
    ``"auto"`` (the network :func:`lfi_gym.agents.learners.auto_policy` picks for the env),
    ``"MlpPolicy"`` / ``"CnnPolicy"`` / ``"MultiInputPolicy"`` (an SB3 actor-critic policy),
    ``"LMPolicy"`` / ``"PlackettLucePolicy"``, or any SB3 model or policy to train in place
    (PPO, A2C, DQN, QR-DQN, ...). ``expert_labels`` is the number of expert actions it
    learned from. Callbacks' ``on_step`` runs once per gradient step, and
    ``num_timesteps`` advances by the batch size, so an SB3 ``eval_freq`` counts gradient
    steps. ``env`` may be a single env, a Gymnasium vector env or an SB3 VecEnv: BC reads
    one row's spaces from it, and SB3 callbacks get it from ``get_env()``.
    """

    BUDGET_UNIT = "demonstrations"
    USES_ENV_REWARD = False

    def __init__(
        self,
        env: gym.Env | gym.vector.VectorEnv | VecEnv | None,
        demonstrations: Demonstrations | None = None,
        *,
        policy: Any = "auto",
        policy_kwargs: dict[str, Any] | None = None,
        learning_rate: float = BC_DEFAULTS["learning_rate"],
        batch_size: int = BC_DEFAULTS["batch_size"],
        ent_coef: float = BC_DEFAULTS["ent_coef"],
        l2_coef: float = BC_DEFAULTS["l2_coef"],
        max_grad_norm: float | None = BC_DEFAULTS["max_grad_norm"],
        seed: int | None = None,
        device: str | torch.device = "auto",
        tensorboard_log: str | None = None,
        verbose: int = 0,
    ) -> None:
        super().__init__(
            env, seed=seed, device=device, tensorboard_log=tensorboard_log, verbose=verbose
        )
        self._policy = learner_for_env("BC", env, policy, policy_kwargs, self.device)
        self.demonstrations: Demonstrations | None = None
        if demonstrations is not None:
            self.set_demonstrations(demonstrations)
        self.trainer = SupervisedTrainer(
            self._policy,
            learning_rate=learning_rate,
            batch_size=batch_size,
            ent_coef=ent_coef,
            l2_coef=l2_coef,
            max_grad_norm=max_grad_norm,
            seed=seed,
            device=self.device,
        )

    @property
    def policy(self) -> torch.nn.Module:
        return self._policy

    # BC's settings are its trainer's, checked there (saved and restored by these names).
    @property
    def learning_rate(self) -> float:
        return self.trainer.learning_rate

    @property
    def batch_size(self) -> int:
        return self.trainer.batch_size

    @property
    def ent_coef(self) -> float:
        return self.trainer.ent_coef

    @property
    def l2_coef(self) -> float:
        return self.trainer.l2_coef

    @property
    def max_grad_norm(self) -> float | None:
        return self.trainer.max_grad_norm

    @property
    def optimizer(self) -> torch.optim.Optimizer:
        return self.trainer.optimizer

    @property
    def expert_labels(self) -> int:
        return 0 if self.demonstrations is None else len(self.demonstrations)

    def set_demonstrations(self, demonstrations: Demonstrations) -> None:
        """Replace the training data (checked against the learner's spaces)."""
        self.demonstrations = check_demonstrations(demonstrations, self._policy)

    def _learn(self, target_timesteps: int, callback: BaseCallback, bar: tqdm) -> None:
        if self.demonstrations is None:
            raise ValueError(
                "BC has no demonstrations: pass BC(env, demonstrations) or call "
                "bc.set_demonstrations(...) (a loaded BC does not carry its data) with "
                "Demonstrations.collect(env, expert, n_episodes=...) or Demonstrations.load(path)"
            )

        last_stats: dict[str, float] | None = None

        def on_update(stats: dict[str, float], n: int) -> bool:
            nonlocal last_stats
            self.num_timesteps += n
            bar.update(n)
            self.trainer.log_update(self.logger, stats, self.num_timesteps)
            last_stats = stats
            callback.update_locals(locals())
            return callback.on_step()

        self.trainer.train_samples(
            self.demonstrations, target_timesteps - self.num_timesteps, on_update
        )
        # Every learn call logs, however short (the trainer logs every 100 updates).
        if last_stats is not None:
            self.trainer.log_update(self.logger, last_stats, self.num_timesteps, last=True)

    def loss(self, demonstrations: Demonstrations | None = None) -> float:
        """Mean negative log-likelihood of the (given or own) demonstrations' actions."""
        demos = demonstrations if demonstrations is not None else self.demonstrations
        return self.trainer.loss(demos)

    # -- files ---------------------------------------------------------------------------

    FILE_MEMBERS = SupervisedTrainer.FILE_MEMBERS

    def _extra_members(self) -> dict[str, bytes]:
        return self.trainer.file_members()

    @classmethod
    def _from_saved(cls, env, policy, hyperparameters, meta, members, device):
        agent = cls(env, policy=policy, device=device, **hyperparameters)
        # Optimizer moments, shuffling RNG and update count: training resumes exactly.
        agent.trainer.restore_file_members(members)
        return agent
