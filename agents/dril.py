"""DRIL: Disagreement-Regularized Imitation Learning (Brantley, Sun and Henaff, ICLR 2020).

An ensemble of BC policies, each fit on a bootstrap resample of the demonstrations,
agrees on states like the expert's and disagrees elsewhere. DRIL turns that
disagreement into a reward and optimises it with RL, starting from BC and taking a BC
step after every RL update, so the learner is pulled back towards states where it
knows what the expert would do.

Defaults and their sources (Brantley, Sun and Henaff 2020; docs/paper-settings.md):

- ``ensemble_size=5`` members, BC on bootstrap resamples (paper: Algorithm 1; 5 in Section 6.1);
- cost(s, a) = variance across members of the predicted probability of ``a`` (paper, Section 3);
  ``cost="logit"`` uses the variance of the members' log-probabilities instead;
- reward +1 where cost <= the ``quantile=0.98`` quantile of the cost over demonstration
  states, else -1; the environment reward is not used (paper, Section 3: clipped cost);
- thresholds truly per action (``threshold="per_action"``): for action a, the quantile of
  cost(s, a) over the demonstration pairs (s, a) where the expert took a, so about 98% of
  the demonstrations earn +1 whatever the action mix. The original code meant per-action
  thresholds but its closures all bind the last action's value (Python late binding):
  ``threshold="original"`` reproduces that (the last action's threshold for every
  action), ``threshold="global"`` is one quantile over all demonstration pairs;
- RL: SB3 A2C for image observations (Atari, MinAtar: 8 envs x 128 steps, learning rate
  2.5e-3, entropy 0.01, as the original's Atari runs), SB3 PPO with its defaults
  elsewhere (``rl_algorithm="auto"``); ``rl_kwargs`` override any of it;
- the learner starts from BC, and after every RL update takes one pass of BC over the
  demonstrations with its own Adam optimizer (``bc_mode="alternate"``: our reading of the
  original's alternating BC update; ``bc_batches_per_update`` caps the pass);
  ``bc_mode="sum"`` adds ``bc_coef`` x the BC loss of one demonstration batch to every RL
  gradient step instead (an optimizer pre-step hook); ``bc_mode="none"`` turns it off.

Ours, not the paper's: members are independent networks of the learner's architecture
with no dropout (``shared_trunk=True``: one feature extractor and one linear head per
member, the bootstrap applied per head); BC uses Adam 1e-3, batch 64 and
``bc_epochs`` passes, like :class:`lfi_gym.agents.BC`.

``learn(total_timesteps)`` counts RL environment steps (over all ``n_envs`` sub-envs).
The ensemble and the BC warm start are fit on the first ``learn`` call (or by
:meth:`pretrain`), and are part of a saved agent, so a resumed run does not refit them.
"""

from __future__ import annotations

import json
from collections import deque
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.preprocessing import preprocess_obs
from stable_baselines3.common.utils import set_random_seed
from torch import nn
from tqdm.auto import tqdm

from lfi_gym.agents.base import BaseAgent
from lfi_gym.agents.data import Demonstrations
from lfi_gym.agents.learners import (
    features_network,
    is_atari_frames,
    is_minatar_grid,
    resolve_policy,
)
from lfi_gym.agents.serialization import (
    MAX_STATE_BYTES,
    check_count,
    data_bytes,
    decode_value,
    encode_value,
    optimizer_bytes,
    weights_bytes,
)
from lfi_gym.agents.supervised import BC_DEFAULTS, SupervisedTrainer, check_demonstrations
from lfi_gym.envs.validation import (
    check_choice,
    check_non_negative_float,
    check_positive_float,
    check_positive_int,
    is_int,
)

THRESHOLD_MODES = ("per_action", "global", "original")
COST_KINDS = ("probability", "logit")
BC_MODES = ("alternate", "sum", "none")
RL_ALGORITHMS = ("auto", "a2c", "ppo")

#: The original DRIL code's Atari A2C (Brantley et al. 2020): 8 envs x 128 steps, lr 2.5e-3,
#: entropy 0.01.
A2C_DEFAULTS: dict[str, Any] = {"n_steps": 128, "learning_rate": 2.5e-3, "ent_coef": 0.01}


# -- networks -------------------------------------------------------------------------


def _features_dim(module: nn.Module, space: gym.Space) -> int:
    with torch.no_grad():
        sample = torch.as_tensor(space.sample()[None])
        return int(module(preprocess_obs(sample, space)).shape[-1])


class Ensemble(nn.Module):
    """``size`` categorical policies: independent networks, or one shared trunk with one
    head per member. :meth:`log_probs` returns ``(size, batch, n_actions)`` in one call."""

    def __init__(self, observation_space: gym.Space, n_actions: int, size: int, shared: bool):
        super().__init__()
        self.observation_space = observation_space
        self.shared = shared
        make = features_network(observation_space)
        n_trunks = 1 if shared else size
        self.trunks = nn.ModuleList(make() for _ in range(n_trunks))
        dim = _features_dim(self.trunks[0], observation_space)
        self.heads = nn.ModuleList(nn.Linear(dim, n_actions) for _ in range(size))

    @property
    def size(self) -> int:
        return len(self.heads)

    def log_probs(self, observations: torch.Tensor) -> torch.Tensor:
        obs = preprocess_obs(observations, self.observation_space)
        if self.shared:
            features = self.trunks[0](obs)
            logits = [head(features) for head in self.heads]
        else:
            logits = [head(trunk(obs)) for trunk, head in zip(self.trunks, self.heads, strict=True)]
        return torch.log_softmax(torch.stack(logits), dim=-1)


def ensemble_costs(log_probs: torch.Tensor, kind: str = "probability") -> torch.Tensor:
    """Cost of every action, ``(batch, n_actions)``: the variance across members of the
    predicted probability (or of the log-probability, ``kind="logit"``)."""
    values = log_probs.exp() if kind == "probability" else log_probs
    return values.var(dim=0, unbiased=False)


# -- the agent ------------------------------------------------------------------------


class DRIL(BaseAgent):
    """Disagreement-regularized imitation, SB3-shaped (see the module docstring).

    >>> demos = Demonstrations.collect(env, make_expert(env), n_episodes=1)
    >>> dril = DRIL(env, demos).learn(200_000)

    ``env`` is copied ``n_envs`` times from its spec (``gym.make(env.spec,
    **train_env_kwargs)``) for the RL rollouts: e.g. ``train_env_kwargs={"episodic_life":
    True, "fire_reset": True}`` for the DRIL paper's Atari training envs.
    ``policy="auto"`` picks the network from the observation space
    (:func:`lfi_gym.agents.learners.auto_policy`: the one BC, DAgger and PPO train too); an SB3
    policy name with ``policy_kwargs`` overrides it. The learner is an SB3 A2C / PPO policy,
    so DRIL refuses text and ranking envs (their learners are not SB3 policies).
    """

    #: Its learner is an SB3 policy: no text or ranking learner.
    FAMILIES = frozenset({"control", "atari"})
    BUDGET_UNIT = "demonstrations"
    USES_ENV_REWARD = False  # it learns from its own disagreement cost
    SINGLE_ENV_REASON = (
        "it makes its n_envs rollout envs itself, from the env's spec (set their number "
        "with n_envs=)"
    )

    def __init__(
        self,
        env: gym.Env | None,
        demonstrations: Demonstrations | None,
        *,
        ensemble_size: int = 5,
        policy: str = "auto",
        policy_kwargs: dict[str, Any] | None = None,
        quantile: float = 0.98,
        threshold: str = "per_action",
        cost: str = "probability",
        shared_trunk: bool = False,
        ensemble_epochs: int = 50,
        ensemble_learning_rate: float = 1e-3,
        bc_epochs: int = 50,
        bc_learning_rate: float = 1e-3,
        bc_batch_size: int = 64,
        bc_mode: str = "alternate",
        bc_coef: float = 1.0,
        bc_batches_per_update: int | None = None,
        rl_algorithm: str = "auto",
        n_envs: int = 8,
        rl_kwargs: dict[str, Any] | None = None,
        train_env_kwargs: dict[str, Any] | None = None,
        seed: int | None = None,
        device: str | torch.device = "auto",
        tensorboard_log: str | None = None,
        verbose: int = 0,
    ) -> None:
        super().__init__(
            env, seed=seed, device=device, tensorboard_log=tensorboard_log, verbose=verbose
        )
        if env is None:
            raise ValueError("DRIL needs an env to build its learner: pass DRIL(env, demos)")
        if not is_int(ensemble_size):
            raise ValueError(f"ensemble_size must be an int >= 2, got {ensemble_size!r}")
        if ensemble_size < 2:
            raise ValueError(
                f"ensemble_size must be at least 2 (disagreement needs two members), got "
                f"{ensemble_size}; the paper uses 5"
            )
        self.ensemble_size = int(ensemble_size)
        try:
            quantile_value = float(quantile)
        except (TypeError, ValueError):
            raise ValueError(f"quantile must be a number in (0, 1), got {quantile!r}") from None
        if not 0.0 < quantile_value < 1.0:
            raise ValueError(
                f"quantile must lie strictly between 0 and 1, got {quantile!r}; the paper uses 0.98"
            )
        self.quantile = quantile_value
        self.threshold = check_choice(threshold, THRESHOLD_MODES, "threshold")
        self.cost = check_choice(cost, COST_KINDS, "cost")
        self.bc_mode = check_choice(bc_mode, BC_MODES, "bc_mode")
        self.rl_algorithm = check_choice(rl_algorithm, RL_ALGORITHMS, "rl_algorithm")
        self.shared_trunk = bool(shared_trunk)
        self.ensemble_epochs = check_positive_int(ensemble_epochs, "ensemble_epochs")
        self.ensemble_learning_rate = check_positive_float(
            ensemble_learning_rate, "ensemble_learning_rate"
        )
        self.bc_epochs = check_positive_int(bc_epochs, "bc_epochs")
        self.bc_learning_rate = check_positive_float(bc_learning_rate, "bc_learning_rate")
        self.bc_batch_size = check_positive_int(bc_batch_size, "bc_batch_size")
        self.bc_coef = check_non_negative_float(bc_coef, "bc_coef")
        self.bc_batches_per_update = (
            None
            if bc_batches_per_update is None
            else check_positive_int(bc_batches_per_update, "bc_batches_per_update")
        )
        self.n_envs = check_positive_int(n_envs, "n_envs")
        self.rl_kwargs = dict(rl_kwargs or {})
        self.train_env_kwargs = dict(train_env_kwargs or {})
        if self.train_env_kwargs and env.spec is None:
            raise ValueError("train_env_kwargs need an env made by gym.make (with a spec)")
        if not isinstance(env.action_space, gym.spaces.Discrete):
            raise ValueError(
                f"DRIL supports Discrete action spaces (its cost is the variance of action "
                f"probabilities); got {env.action_space}"
            )
        if n_envs > 1 and env.spec is None:
            raise ValueError(
                "DRIL copies the env for its n_envs rollout envs with gym.make(env.spec), but "
                "this env has no spec; make it with gym.make(...) or pass n_envs=1"
            )
        policy, policy_kwargs = resolve_policy(policy, env.observation_space, policy_kwargs)
        if not isinstance(policy, str) or policy not in ("MlpPolicy", "CnnPolicy"):
            shown = policy if isinstance(policy, str) else type(policy).__name__
            raise ValueError(
                f"DRIL trains an SB3 A2C / PPO policy on Box observations: policy must be "
                f"'auto', 'MlpPolicy' or 'CnnPolicy', and this gives {shown!r} (for "
                f"{env.observation_space}); use BC, DAgger or PPO on text and ranking envs"
            )
        self._check_demonstrations(demonstrations, env)
        self.demonstrations = demonstrations
        self._policy_name, self._policy_kwargs = policy, policy_kwargs
        self.ensemble = Ensemble(
            env.observation_space, int(env.action_space.n), self.ensemble_size, self.shared_trunk
        ).to(self.device)
        n = len(demonstrations)
        rng = np.random.default_rng(seed)
        # Bootstrap resample i of member e, as counts: member e sees transition i
        # bootstrap_counts[e, i] times (about 37% of transitions never).
        self.bootstrap_counts = np.stack(
            [np.bincount(rng.integers(0, n, n), minlength=n) for _ in range(self.ensemble_size)]
        )
        self._rng = rng
        self.thresholds: np.ndarray | None = None
        self.pretrained = False
        self.cost_calls = 0
        #: Sum and count of the DRIL rewards seen in training (diagnostics).
        self.reward_sum, self.reward_count = 0.0, 0
        self.model = self._make_model()
        self._bc = self._make_bc_trainer()
        self._step_hook: Any = None

    # -- construction helpers ------------------------------------------------------------

    @staticmethod
    def _check_demonstrations(demonstrations: Any, env: gym.Env) -> None:
        if demonstrations is None:
            raise ValueError(
                "DRIL needs demonstrations: Demonstrations.collect(env, "
                "lfi_gym.envs.make_expert(env), n_episodes=1) or Demonstrations.load(path)"
            )
        if isinstance(demonstrations, Demonstrations) and demonstrations.n_episodes == 0:
            raise ValueError("demonstrations are empty: record at least one expert episode")
        check_demonstrations(demonstrations, env, what="the env has")

    def _algorithm_class(self) -> type:
        from stable_baselines3 import A2C, PPO

        name = self.rl_algorithm
        if name == "auto":
            space = self.env.observation_space
            image = is_atari_frames(space) or is_minatar_grid(space)
            name = "a2c" if image else "ppo"
        return A2C if name == "a2c" else PPO

    def _make_model(self):
        from stable_baselines3.common.env_util import make_vec_env

        cls = self._algorithm_class()
        env = self.env
        if self.n_envs == 1 and not self.train_env_kwargs:
            venv = make_vec_env(lambda: env, n_envs=1, seed=self.seed)
        else:
            spec, extra = env.spec, self.train_env_kwargs
            venv = make_vec_env(lambda: gym.make(spec, **extra), n_envs=self.n_envs, seed=self.seed)
        from lfi_gym.wrappers.reward import DisagreementRewardVecEnv

        placeholder = np.zeros(self.env.action_space.n)  # replaced after pretrain()
        self.reward_env = DisagreementRewardVecEnv(venv, self.ensemble_cost, placeholder)
        defaults = A2C_DEFAULTS if cls.__name__ == "A2C" else {}
        kwargs = {**defaults, **self.rl_kwargs}
        return cls(
            self._policy_name,
            self.reward_env,
            policy_kwargs=self._policy_kwargs or None,
            seed=self.seed,
            device=self.device,
            tensorboard_log=self.tensorboard_log,
            verbose=self.verbose,
            **kwargs,
        )

    @property
    def policy(self) -> torch.nn.Module:
        return self.model.policy

    # -- the ensemble and its cost -------------------------------------------------------

    def ensemble_cost(self, observations: Any, actions: np.ndarray) -> np.ndarray:
        """Cost of each (observation, action) pair of a batch: one ensemble forward."""
        self.cost_calls += 1
        with torch.no_grad():
            obs = torch.as_tensor(np.asarray(observations), device=self.device)
            costs = ensemble_costs(self.ensemble.log_probs(obs), self.cost)
            index = torch.as_tensor(np.asarray(actions), device=self.device).long().reshape(-1, 1)
            return costs.gather(1, index).squeeze(1).cpu().numpy()

    def action_costs(self, observations: Any) -> np.ndarray:
        """Cost of every action at each observation, ``(batch, n_actions)``."""
        with torch.no_grad():
            costs = []
            for start in range(0, len(observations), 1024):
                obs = torch.as_tensor(
                    np.asarray(observations[start : start + 1024]), device=self.device
                )
                costs.append(ensemble_costs(self.ensemble.log_probs(obs), self.cost))
            return torch.cat(costs).cpu().numpy()

    def rewards(self, observations: Any, actions: np.ndarray) -> np.ndarray:
        """DRIL's reward (+1 / -1) for a batch of (observation, action) pairs."""
        from lfi_gym.wrappers.reward import threshold_rewards

        if self.thresholds is None:
            raise ValueError("the ensemble is not fit yet: call pretrain() or learn() first")
        return threshold_rewards(
            self.ensemble_cost(observations, actions), actions, self.thresholds
        )

    def fit_ensemble(self, bar: tqdm | None = None) -> list[float]:
        """Train every member by BC on its bootstrap resample; returns the mean loss per
        epoch. A minibatch of demonstration indices is drawn uniformly and each member's
        loss weights the transitions by its bootstrap counts (the same objective as
        training on the resample)."""
        demos = self.demonstrations
        counts = torch.as_tensor(self.bootstrap_counts, dtype=torch.float32, device=self.device)
        optimizer = torch.optim.Adam(self.ensemble.parameters(), lr=self.ensemble_learning_rate)
        self.ensemble.train()
        losses = []
        for _ in range(self.ensemble_epochs):
            total, batches = 0.0, 0
            order = self._rng.permutation(len(demos))
            for start in range(0, len(demos), self.bc_batch_size):
                idx = np.sort(order[start : start + self.bc_batch_size])
                obs = torch.as_tensor(np.asarray(demos.observations[idx]), device=self.device)
                actions = torch.as_tensor(demos.actions[idx], device=self.device).long()
                log_probs = self.ensemble.log_probs(obs)  # (E, B, A)
                index = actions.reshape(1, -1, 1).expand(self.ensemble_size, -1, 1)
                nll = -log_probs.gather(2, index).squeeze(2)  # (E, B)
                weights = counts[:, idx]
                per_member = (weights * nll).sum(1) / weights.sum(1).clamp(min=1.0)
                loss = per_member.sum()
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                total += loss.item() / self.ensemble_size
                batches += 1
            losses.append(total / max(batches, 1))
            if bar is not None:
                bar.update(1)
        self.ensemble.eval()
        return losses

    def compute_thresholds(self) -> np.ndarray:
        """Per action a, the ``quantile`` of cost(s, a) over the demonstration states where
        the expert took a, so that about ``quantile`` of the demonstration pairs earn +1
        (``threshold="global"``: one quantile over every demonstration pair;
        ``"original"``: the last action's threshold for every action)."""
        costs = self.action_costs(self.demonstrations.observations)  # (N, A)
        actions = np.asarray(self.demonstrations.actions, dtype=np.int64).reshape(-1)
        taken = costs[np.arange(len(actions)), actions]  # cost of the expert's own action
        pooled = float(np.quantile(taken, self.quantile))
        n_actions = costs.shape[1]
        if self.threshold == "per_action":
            # Actions the expert never took get the pooled threshold.
            thresholds = np.array(
                [
                    np.quantile(taken[actions == a], self.quantile)
                    if np.any(actions == a)
                    else pooled
                    for a in range(n_actions)
                ]
            )
        elif self.threshold == "global":
            thresholds = np.full(n_actions, pooled)
        else:  # the original's closures all see the loop's last action
            last = n_actions - 1
            value = (
                np.quantile(taken[actions == last], self.quantile)
                if np.any(actions == last)
                else pooled
            )
            thresholds = np.full(n_actions, value)
        self.thresholds = thresholds.astype(np.float64)
        self.reward_env.thresholds = self.thresholds
        return self.thresholds

    def bc_loss(self) -> float:
        """The learner's mean negative log-likelihood of the demonstrations' actions."""
        return self._bc.loss(self.demonstrations)

    def _make_bc_trainer(self) -> SupervisedTrainer:
        """The alternating BC step's trainer: no entropy term, batches shuffled by DRIL's
        RNG, its own Adam on the learner."""
        return SupervisedTrainer(
            self.model.policy,
            learning_rate=self.bc_learning_rate,
            batch_size=self.bc_batch_size,
            ent_coef=0.0,
            seed=self._rng,
            device=self.device,
        )

    def bc_step(self, n_batches: int | None = None) -> float:
        """One pass of BC over the demonstrations (or ``n_batches`` minibatches) on the
        learner; returns the mean loss over the batches."""
        n_samples = len(self.demonstrations)
        if n_batches is not None:
            n_samples = min(n_samples, n_batches * self.bc_batch_size)
        losses: list[float] = []
        self._bc.train_samples(
            self.demonstrations, n_samples, lambda stats, _: losses.append(stats["loss"])
        )
        return float(np.mean(losses))

    def pretrain(self, progress_bar: bool = False) -> DRIL:
        """Fit the ensemble, its thresholds and the BC warm start of the learner (once)."""
        if self.pretrained:
            return self
        bar = tqdm(total=self.ensemble_epochs + 1, desc="DRIL ensemble", disable=not progress_bar)
        losses = self.fit_ensemble(bar)
        thresholds = self.compute_thresholds()
        bar.close()
        if self.seed is not None:
            # The warm start has always begun by reseeding the global RNGs (it used to be a
            # BC agent, which does): the RL phase's action sampling starts from the seed.
            set_random_seed(int(self.seed))
        # The warm start is BC's objective (its entropy bonus) with BC's seeding, on the
        # Adam of the alternating steps, so its moments carry over into them.
        warm_start = SupervisedTrainer(
            self.model.policy,
            learning_rate=self.bc_learning_rate,
            batch_size=self.bc_batch_size,
            ent_coef=BC_DEFAULTS["ent_coef"],
            seed=None if self.seed is None else int(self.seed),
            device=self.device,
            optimizer=self._bc.optimizer,
        )
        n_samples = self.bc_epochs * len(self.demonstrations)
        bc_bar = tqdm(total=n_samples, desc="DRIL BC", disable=not progress_bar)
        warm_start.train_samples(self.demonstrations, n_samples, lambda _, n: bc_bar.update(n))
        bc_bar.close()
        self.pretrained = True
        self.logger.record("dril/ensemble_loss", losses[-1])
        self.logger.record("dril/threshold_mean", float(np.mean(thresholds)))
        self.logger.record("dril/bc_loss", warm_start.loss(self.demonstrations))
        return self

    # -- learning ------------------------------------------------------------------------

    def _learn(self, target_timesteps: int, callback: BaseCallback, bar: tqdm) -> None:
        self.pretrain(progress_bar=not bar.disable)
        self._install_sum_hook()
        agent = self

        class _Bridge(BaseCallback):
            """Keeps DRIL's counters in step with SB3's, adds the alternating BC step and
            forwards the user's callback."""

            def _on_rollout_start(self) -> None:
                if agent.bc_mode == "alternate" and agent._rl_updates_seen():
                    loss = agent.bc_step(agent.bc_batches_per_update)
                    self.logger.record("dril/bc_step_loss", loss)

            def _on_step(self) -> bool:
                delta = self.model.num_timesteps - agent.num_timesteps
                agent.num_timesteps = self.model.num_timesteps
                bar.update(delta)
                infos = self.locals.get("infos", ())
                if infos:
                    rewards = self.locals.get("rewards")
                    if rewards is not None:
                        agent.reward_sum += float(np.sum(rewards))
                        agent.reward_count += len(rewards)
                        self.logger.record_mean("dril/reward", float(np.mean(rewards)))
                callback.update_locals(self.locals)
                return callback.on_step()

        remaining = target_timesteps - self.num_timesteps
        if remaining <= 0:
            return
        self.model.num_timesteps = self.num_timesteps
        self.model.learn(
            remaining,
            callback=_Bridge(),
            reset_num_timesteps=False,
            progress_bar=False,
        )
        self.num_timesteps = self.model.num_timesteps

    def _rl_updates_seen(self) -> bool:
        n = getattr(self.model, "_n_updates", 0)
        seen = n > getattr(self, "_last_bc_update", -1) and n > 0
        self._last_bc_update = n
        return seen

    def _install_sum_hook(self) -> None:
        """``bc_mode="sum"``: before every RL optimizer step, add the gradient of
        ``bc_coef`` x the BC loss of one demonstration batch (a summed loss)."""
        if self.bc_mode != "sum" or self._step_hook is not None:
            return
        batches = self._demo_batches()

        def hook(optimizer, args, kwargs):
            loss = self.bc_coef * self._bc.batch_loss(next(batches))[0]
            loss.backward()

        self._step_hook = self.model.policy.optimizer.register_step_pre_hook(hook)

    def _demo_batches(self):
        while True:
            yield from self.demonstrations.iter_batches(
                self.bc_batch_size, shuffle=True, seed=self._rng, device=self.device
            )

    # -- files ---------------------------------------------------------------------------

    @property
    def expert_labels(self) -> int:
        return 0 if self.demonstrations is None else len(self.demonstrations)

    def budgets(self) -> dict[str, int]:
        """Its demonstrations' labels and its RL steps (none of them an env reward)."""
        return {
            "expert_labels": self.expert_labels,
            "env_steps": int(self.num_timesteps),
            "reward_queries": 0,
        }

    FILE_MEMBERS = frozenset(
        {
            "demonstrations.lfid",
            "ensemble.safetensors",
            "dril.data",
            "bc_optimizer.data",
            "rl_model.data",
            "rl_optimizer.data",
        }
    )

    def _extra_metadata(self) -> dict[str, Any]:
        return {
            "pretrained": self.pretrained,
            "policy_name": self._policy_name,
            "policy_kwargs": encode_value(self._policy_kwargs, "DRIL's policy_kwargs"),
            "env": _env_make_args(self.env),
        }

    def _extra_members(self) -> dict[str, bytes]:
        # The RL model goes through the agent-file format too (its policy is policy.*):
        # not SB3's save, which pickles schedules and classes.
        dril_state = {
            "bootstrap_counts": self.bootstrap_counts,
            "thresholds": self.thresholds,
            "rng": self._rng.bit_generator.state,
        }
        return {
            "demonstrations.lfid": self.demonstrations.to_bytes(),
            "ensemble.safetensors": weights_bytes(self.ensemble),
            "dril.data": data_bytes(dril_state),
            "bc_optimizer.data": optimizer_bytes(self._bc.optimizer),
            "rl_model.data": data_bytes(_rl_counters(self.model)),
            "rl_optimizer.data": optimizer_bytes(self.model.policy.optimizer),
        }

    @classmethod
    def _from_saved(cls, env, policy, hyperparameters, meta, members, device):
        extra = meta["extra"]
        with members.reading("agent.json"):
            policy_name = extra["policy_name"]
            if policy_name not in ("MlpPolicy", "CnnPolicy"):
                raise ValueError(f"unknown policy_name {policy_name!r}")
            policy_kwargs = decode_value(extra["policy_kwargs"])
            pretrained = extra["pretrained"]
            if not isinstance(pretrained, bool):
                raise ValueError(f"malformed pretrained {pretrained!r}")
            make_args = extra.get("env")
            if make_args is not None and not (
                isinstance(make_args, dict)
                and isinstance(make_args.get("id"), str)
                and isinstance(make_args.get("kwargs"), dict)
            ):
                raise ValueError(f"malformed env {make_args!r}")
        if env is None:
            if make_args is None:
                raise ValueError(
                    "this DRIL was trained on an env without a JSON-able spec: pass env= to "
                    "DRIL.load"
                )
            env = gym.make(make_args["id"], **make_args["kwargs"])
        demos = members.demonstrations("demonstrations.lfid")
        agent = cls(
            env,
            demos,
            policy=policy_name,
            policy_kwargs=policy_kwargs,
            device=device,
            **hyperparameters,
        )
        members.load_weights("ensemble.safetensors", agent.ensemble)
        # The bootstrap counts grow with the demonstrations.
        cap = MAX_STATE_BYTES + 8 * agent.ensemble_size * len(demos)
        state = members.data("dril.data", cap)
        with members.reading("dril.data"):
            counts = np.asarray(state["bootstrap_counts"])
            if counts.shape != agent.bootstrap_counts.shape or counts.dtype.kind not in "iu":
                raise ValueError(
                    f"bootstrap_counts {counts.dtype} {counts.shape} do not fit "
                    f"{agent.ensemble_size} members x {len(demos)} demonstrations"
                )
            thresholds = state["thresholds"]
            if thresholds is not None:
                thresholds = np.array(thresholds, dtype=np.float64)
                if thresholds.shape != (env.action_space.n,):
                    raise ValueError(f"thresholds of shape {thresholds.shape}")
            agent._rng.bit_generator.state = state["rng"]
        agent.bootstrap_counts = np.array(counts)
        agent.thresholds = thresholds
        if thresholds is not None:
            agent.reward_env.thresholds = thresholds
        agent.model.policy.load_state_dict(policy.state_dict())
        members.load_optimizer("rl_optimizer.data", agent.model.policy.optimizer)
        counters = members.data("rl_model.data")
        with members.reading("rl_model.data"):
            _restore_rl_counters(agent.model, counters)
        agent._bc = agent._make_bc_trainer()  # on the loaded learner
        members.load_optimizer("bc_optimizer.data", agent._bc.optimizer)
        agent.pretrained = pretrained
        return agent


def _rl_counters(model: Any) -> dict[str, Any]:
    """What an SB3 model changes as it trains, besides its weights and optimizer (what SB3's
    own ``load`` restores of it; the rest are hyperparameters DRIL rebuilds the model with)."""
    return {
        "num_timesteps": model.num_timesteps,
        "n_updates": model._n_updates,
        "episode_num": model._episode_num,
        "current_progress_remaining": float(model._current_progress_remaining),
        "total_timesteps": model._total_timesteps,
        "num_timesteps_at_start": model._num_timesteps_at_start,
        # None until the first learn call.
        "ep_info_buffer": None if model.ep_info_buffer is None else list(model.ep_info_buffer),
        "ep_success_buffer": (
            None if model.ep_success_buffer is None else list(model.ep_success_buffer)
        ),
    }


def _restore_rl_counters(model: Any, counters: dict[str, Any]) -> None:
    model.num_timesteps = check_count(counters["num_timesteps"])
    model._n_updates = check_count(counters["n_updates"])
    model._episode_num = check_count(counters["episode_num"])
    model._current_progress_remaining = float(counters["current_progress_remaining"])
    model._total_timesteps = check_count(counters["total_timesteps"])
    model._num_timesteps_at_start = check_count(counters["num_timesteps_at_start"])
    window = model._stats_window_size
    for key in ("ep_info_buffer", "ep_success_buffer"):
        entries = counters[key]
        if entries is not None and not isinstance(entries, list):
            raise ValueError(f"malformed {key}")
        setattr(model, key, None if entries is None else deque(entries, maxlen=window))


def _env_make_args(env: gym.Env) -> dict[str, Any] | None:
    """``gym.make`` arguments that rebuild ``env`` on load, if they are plain values."""
    if env.spec is None:
        return None
    try:
        json.dumps(env.spec.kwargs)
    except TypeError:
        return None
    return {"id": env.spec.id, "kwargs": dict(env.spec.kwargs)}


__all__ = ["DRIL", "Ensemble", "ensemble_costs"]
