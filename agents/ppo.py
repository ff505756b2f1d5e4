"""PPO for token-level language-model policies (and any other learner), with a KL penalty.

This file holds the update shared by PPO, PPO++, AggreVaTeD, LOLS and D2LOLS
(``agents/guided.py``): they differ only in who rolls in and who rolls out
(``_plans``), and all train the learner on its own steps with the same rules:

* Sampling rule: the learner's ``predict`` (for an LMPolicy: top-k 50 sampling, EOS masked
  below ``min_new_tokens``); the losses use the full distribution, as RL4LMs does.
* KL rule: every learner step's reward is ``r_t - kl_coef * (log pi(a_t|s_t) -
  log pi_ref(a_t|s_t))`` with ``pi_ref`` the frozen initial learner; ``kl_coef`` is fixed,
  or adapted towards ``target_kl`` (Ziegler et al. 2019) when ``target_kl`` is set.
* GAE(gamma, lambda) over each learner segment, bootstrapped with 0 at a terminal state,
  with the learner's value of the next state at a truncation, and with the discounted
  return of the guide's completion after an AggreVaTeD roll-in.
* Clipped policy loss, clipped value loss, entropy bonus, optional SFT loss on
  demonstrations (references), gradient-norm clipping; ``n_epochs`` passes of minibatches.

Defaults are the RLGF paper's IMDB settings (Chang et al. 2023, IMDB
hyperparameters): 1,280 tokens per update, minibatch 64, 5 epochs, lr 1e-6, gamma 0.99,
GAE lambda 0.95, clip 0.2, value coefficient 0.5, KL coefficient 0.1. The authors' later
code is :data:`RLGF_CODE` (``PPO(env, **RLGF_CODE)``); :data:`TINYREVIEWS` is the CPU-sized
setting our TinyReviews results use (a deviation, documented in benchmarks/RESULTS.md).

Unlike SB3's PPO, ``n_steps`` counts env steps (tokens) per update over all rows, and
minibatches of a language model are whole sequences: an LMPolicy scores every token of a
sequence in one forward pass (``evaluate_generated``), so a minibatch holds the sequences
whose tokens add up to about ``batch_size``. Other learners (SB3 policies,
PlackettLucePolicy) are scored step by step with ``evaluate_actions``, in minibatches of
``batch_size`` steps. The model stays in eval mode (no dropout) so that the probability
ratio of the first minibatch is exactly 1.

On several processes (``torchrun --nproc_per_node N`` or ``accelerate launch --multi_gpu
--num_processes N``; LMPolicy learners only) each process rolls out its own episodes (seeds
from ``SeedSequence([seed, process index])``) and the processes agree on every count that
decides how many passes DDP runs: ``num_timesteps``, ``n_steps`` and ``total_timesteps``
count tokens over all processes, every process runs the same number of optimizer steps per
update (a process with fewer minibatches adds zero-weight ones), metrics are summed or
averaged over processes and only the main process logs and saves. The design and what is
tested (CPU / gloo only; NCCL, FSDP and DeepSpeed untested) are in
:mod:`lfi_gym.agents.distributed`.
"""

from __future__ import annotations

import copy
import time
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.callbacks import BaseCallback
from tqdm.auto import tqdm

from lfi_gym.agents.base import BaseAgent
from lfi_gym.agents.data import Demonstrations
from lfi_gym.agents.distributed import Processes, padded_plan, process_seed
from lfi_gym.agents.env_kinds import is_vector_env, row_spaces, single_spaces
from lfi_gym.agents.learners import action_log_prob, make_learner
from lfi_gym.agents.rollouts import GUIDE, LEARNER, EpisodePlan, Segment, Wave, per_row, run_wave
from lfi_gym.agents.serialization import (
    check_count,
    data_bytes,
    optimizer_bytes,
    policy_members,
    read_policy,
)
from lfi_gym.envs.policies import space_mismatch
from lfi_gym.envs.validation import (
    check_non_negative_float,
    check_positive_float,
    check_positive_int,
    check_unit_interval,
)
from lfi_gym.envs.vector import RestartableSyncVectorEnv

#: The RLGF authors' later public code (not the paper): 112 trajectories x 50 iterations
#: (n_steps = 112 x 48 tokens on IMDB), minibatch 28 trajectories, lr 1e-5, KL 0.001, SFT
#: loss 0.1 on references. PPO++ used beta 0.6 there (``PPOPlusPlus(..., beta=0.6)``).
RLGF_CODE: dict[str, Any] = {
    "n_steps": 112 * 48,
    "batch_size": 28 * 48,
    "learning_rate": 1e-5,
    "kl_coef": 0.001,
    "sft_coef": 0.1,
}

#: CPU-sized settings for TextGen-TinyReviews-v0 (1M-parameter LM, 32-token episodes):
#: the paper's lr 1e-6 moves a tiny model too slowly for a few-minute budget.
TINYREVIEWS: dict[str, Any] = {
    "n_steps": 512,
    "batch_size": 128,
    "n_epochs": 4,
    "learning_rate": 2e-4,
    "kl_coef": 0.02,
    "n_envs": 16,
}


class RolloutError(RuntimeError):
    """Training stopped on bad data; the message names the iteration and the sample."""


class KLController:
    """The KL coefficient: fixed, or adapted towards ``target`` (Ziegler et al. 2019)."""

    def __init__(self, coef: float, target: float | None = None, horizon: int = 10_000):
        self.coef, self.target, self.horizon = float(coef), target, int(horizon)

    def update(self, kl: float, n_steps: int) -> None:
        if self.target is None:
            return
        error = float(np.clip(kl / self.target - 1.0, -0.2, 0.2))
        self.coef *= 1.0 + error * n_steps / self.horizon


class PPO(BaseAgent):
    """PPO with a KL penalty against the frozen initial learner, SB3-shaped.

    >>> env = gym.make("TextGen-TinyReviews-v0")
    >>> ppo = PPO(env, "LMPolicy", **TINYREVIEWS).learn(20_000)

    ``env`` is a single env (``n_envs`` rows are made from its spec) or a restartable
    vector env. ``policy`` is ``"LMPolicy"`` (``policy_kwargs`` carry ``name_or_path``;
    the tiny TinyReviews LM by default), another learner name BC accepts, or a module; an
    LMPolicy without a value head gets a zero-initialised one. ``"auto"`` (the default)
    is the learner every agent trains on the env (:func:`lfi_gym.agents.learners.auto_policy`):
    LMPolicy for the text envs, PlackettLucePolicy for the ranking envs, the DRIL
    benchmark's CNNs for Atari and MinAtar, SB3's ``"MlpPolicy"`` otherwise.
    ``learn(total_timesteps)`` counts env steps (tokens) taken by every policy, roll-ins
    included, so algorithms compare at equal token budgets.
    """

    def __init__(
        self,
        env: gym.Env | gym.vector.VectorEnv | None,
        policy: Any = "auto",
        *,
        policy_kwargs: dict[str, Any] | None = None,
        n_envs: int = 8,
        learning_rate: float = 1e-6,
        n_steps: int = 1280,
        batch_size: int = 64,
        n_epochs: int = 5,
        gamma: float = 0.99,
        gae_lambda: float = 0.95,
        clip_range: float = 0.2,
        clip_range_vf: float | None = 0.2,
        vf_coef: float = 0.5,
        ent_coef: float = 0.0,
        max_grad_norm: float | None = 0.5,
        kl_coef: float = 0.1,
        target_kl: float | None = None,
        kl_horizon: int = 10_000,
        sft_demonstrations: Demonstrations | None = None,
        sft_coef: float = 0.0,
        normalize_advantage: bool = True,
        seed: int | None = None,
        device: str | torch.device = "auto",
        tensorboard_log: str | None = None,
        verbose: int = 0,
    ) -> None:
        super().__init__(
            env, seed=seed, device=device, tensorboard_log=tensorboard_log, verbose=verbose
        )
        self.n_envs = check_positive_int(n_envs, "n_envs")
        self.learning_rate = check_positive_float(learning_rate, "learning_rate")
        self.n_steps = check_positive_int(n_steps, "n_steps")
        self.batch_size = check_positive_int(batch_size, "batch_size")
        self.n_epochs = check_positive_int(n_epochs, "n_epochs")
        self.gamma = check_unit_interval(gamma, "gamma")
        self.gae_lambda = check_unit_interval(gae_lambda, "gae_lambda")
        self.clip_range = check_positive_float(clip_range, "clip_range")
        self.clip_range_vf = (
            None if clip_range_vf is None else check_positive_float(clip_range_vf, "clip_range_vf")
        )
        self.vf_coef = check_non_negative_float(vf_coef, "vf_coef")
        self.ent_coef = check_non_negative_float(ent_coef, "ent_coef")
        self.max_grad_norm = (
            None if max_grad_norm is None else check_positive_float(max_grad_norm, "max_grad_norm")
        )
        self.kl_coef = check_non_negative_float(kl_coef, "kl_coef")
        self.target_kl = None if target_kl is None else check_positive_float(target_kl, "target_kl")
        self.kl_horizon = check_positive_int(kl_horizon, "kl_horizon")
        self.sft_coef = check_non_negative_float(sft_coef, "sft_coef")
        self.normalize_advantage = bool(normalize_advantage)
        if self.sft_coef > 0 and sft_demonstrations is None:
            raise ValueError("sft_coef > 0 needs sft_demonstrations (e.g. the env's references)")
        if env is None and isinstance(policy, str):
            raise ValueError(f"{type(self).__name__} needs an env to build a policy; pass env=")

        from accelerate import Accelerator
        from accelerate.utils import DistributedDataParallelKwargs

        # accelerate decides devices and wraps the model for multi-process training
        # (``accelerate launch`` with its own config); one process on CPU needs nothing.
        # find_unused_parameters: a pass that leaves a parameter out (a model whose forward
        # skips one) must not stall DDP's gradient reduction.
        self.accelerator = Accelerator(
            cpu=self.device.type == "cpu",
            kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)],
        )
        self.processes = Processes(self.accelerator)
        self.device = self.accelerator.device
        spaces = (None, None) if env is None else single_spaces(env)
        self._policy = make_learner(
            policy, *spaces, policy_kwargs, self.device, env=env, value_head=True
        )
        if env is not None:
            _check_learner_spaces(self._policy, env)
        if self.processes.count > 1 and not _scores_sequences(self._policy):
            raise ValueError(
                f"{type(self).__name__} trains on {self.processes.count} processes only with "
                f"a language-model learner (LMPolicy); {type(self._policy).__name__} is "
                "scored step by step outside DDP's forward, so its gradients would not be "
                "averaged. Train it in one process"
            )
        self.reference = None
        if self.kl_coef > 0 or self.target_kl is not None:
            self.reference = copy.deepcopy(self._policy).requires_grad_(False)
        self.sft_demonstrations = sft_demonstrations
        self.kl_controller = KLController(self.kl_coef, self.target_kl, self.kl_horizon)
        self.optimizer = torch.optim.Adam(self._policy.parameters(), lr=self.learning_rate)
        self._train_model, self.optimizer = self.accelerator.prepare(self._policy, self.optimizer)
        rank = self.accelerator.process_index
        if self.processes.count > 1:
            # DDP gave every process the main process's weights: so must the reference.
            if self.reference is not None:
                self.reference.load_state_dict(self._policy.state_dict())
            if rank > 0:  # token sampling differs between processes (see process_seed)
                torch.manual_seed(process_seed(seed, rank))
        # Two streams: episode seeds and minibatch order, and the guided algorithms' plans
        # (guided or not, restart points, LOLS's choice), so that PPO++ with beta = 0 sees
        # exactly PPO's episodes.
        root = np.random.SeedSequence(None if seed is None else [int(seed), rank])
        self._rng, self._plan_rng = (np.random.default_rng(s) for s in root.spawn(2))
        self._vector: gym.vector.VectorEnv | None = None
        self.iteration = 0
        self._n_updates = 0
        self.guide: Any = None

    def _is_main_process(self) -> bool:
        return self.processes.is_main

    # -- environment --------------------------------------------------------------------

    @property
    def policy(self) -> torch.nn.Module:
        return self._policy

    @property
    def vector_env(self) -> gym.vector.VectorEnv:
        """The restartable vector env the waves run on (built from ``env`` on first use)."""
        if self._vector is None:
            self._vector = _vectorize(self.env, self.n_envs)
        return self._vector

    def set_env(self, env: gym.Env | gym.vector.VectorEnv) -> None:
        _check_learner_spaces(self._policy, env)
        self.env, self._vec_env, self._vector = env, None, None

    # -- training -----------------------------------------------------------------------

    def _plans(self, n_rows: int) -> list[EpisodePlan]:
        """PPO: the learner acts from the first step to the last."""
        return [EpisodePlan(LEARNER, LEARNER, 0)] * n_rows

    def _learn(self, target_timesteps: int, callback: BaseCallback, bar: tqdm) -> None:
        while self.num_timesteps < target_timesteps:
            started = time.perf_counter()
            callback.on_rollout_start()
            waves, steps, stopped = self._collect(callback, bar)
            callback.on_rollout_end()
            if stopped:
                return
            stats = self._update(waves)
            self.iteration += 1
            seconds = time.perf_counter() - started
            returns = [r for w in waves for r in w.episode_returns]
            ep_rew_mean = float(np.mean(returns))
            if self.processes.count > 1:
                ep_rew_mean = self.processes.merge_stats({"r": (ep_rew_mean, len(returns))})["r"]
            self.logger.record("rollout/ep_rew_mean", ep_rew_mean)
            self.logger.record("time/iterations", self.iteration)
            self.logger.record("time/total_timesteps", self.num_timesteps)
            self.logger.record("time/tokens_per_s", steps / max(seconds, 1e-9))
            for key, value in stats.items():
                self.logger.record(f"train/{key}", value)
            self.logger.dump(self.num_timesteps)

    def _collect(self, callback: BaseCallback, bar: tqdm) -> tuple[list[Wave], int, bool]:
        """Waves of episodes until ``n_steps`` env steps (over all processes); returns the
        waves, their env steps over all processes and True if a callback stopped."""
        vec = self.vector_env
        policies = {LEARNER: self._policy, GUIDE: per_row(self.guide, vec)}
        waves: list[Wave] = []
        steps = 0
        while steps < self.n_steps:
            plans = self._plans(vec.num_envs)
            seeds = self._rng.integers(2**31 - 1, size=vec.num_envs).tolist()

            def check_reward(reward: float, row: int, seeds: list[int] = seeds) -> None:
                if not np.isfinite(reward):
                    raise RolloutError(
                        f"iteration {self.iteration}, wave {len(waves)}: row {row} (episode "
                        f"seed {seeds[row]}) got reward {reward}; training stopped before "
                        "the update, so the policy and any saved checkpoint are unchanged"
                    )

            try:
                wave = run_wave(vec, policies, plans, seeds, check_reward=check_reward)
            except RolloutError:
                raise
            except Exception as exc:
                raise RolloutError(
                    f"iteration {self.iteration}, wave {len(waves)} (episode seeds {seeds}): "
                    f"{exc}; training stopped before the update, so the policy and any "
                    "saved checkpoint are unchanged"
                ) from exc
            waves.append(wave)
            wave_steps = wave.steps
            if self.processes.count > 1:  # every process counts the tokens of all
                wave_steps = int(self.processes.sum([wave.steps])[0])
            steps += wave_steps
            self.num_timesteps += wave_steps
            bar.update(wave_steps)
            callback.update_locals(locals())
            if self.processes.any(not callback.on_step()):  # a stop in one stops all
                return waves, steps, True
        return waves, steps, False

    # -- the update ---------------------------------------------------------------------

    def _update(self, waves: list[Wave]) -> dict[str, float]:
        segments = [s for w in waves for s in w.segments if len(s)]
        # A process without learner tokens has nothing to run DDP's passes on: all skip.
        if self.processes.any(not segments):
            return {"tokens_trained": 0.0}
        batch = _Batch(segments, sequence=_scores_sequences(self._policy))
        own_plan = [
            list(batch.minibatches(self.batch_size, self._rng)) for _ in range(self.n_epochs)
        ]
        # Every process runs as many minibatches per epoch as the one with the most.
        plan = padded_plan(own_plan, self.processes.max([len(epoch) for epoch in own_plan]))
        # One epoch of one minibatch (TRL's default shape): the update's own forward pass
        # gives the old log-probabilities and values (detached), as the model is unchanged
        # until its step; otherwise they come from a separate pass.
        fused = len(plan) == 1 and len(plan[0]) == 1
        first = self._score(self._train_model, batch, batch.all_tokens, grad=fused)
        old_values = None if first[0] is None else first[0].detach()
        old_log_prob = first[1].detach()
        with torch.no_grad():
            if self.reference is not None:
                _, ref_log_prob, _ = self._score(
                    self.reference, batch, batch.all_tokens, reference=True
                )
                kl = old_log_prob - ref_log_prob
            else:
                kl = torch.zeros_like(old_log_prob)
            if old_values is None:
                old_values = torch.zeros_like(old_log_prob)
            rewards = torch.as_tensor(batch.rewards, device=self.device, dtype=torch.float32)
            shaped = rewards - self.kl_controller.coef * kl
            advantages, returns = self._gae(batch, shaped, old_values.float())
        normalized = advantages
        if self.normalize_advantage and len(advantages) > 1:
            normalized = (advantages - advantages.mean()) / (advantages.std() + 1e-8)

        totals: dict[str, list[float]] = {
            k: [] for k in ("policy_loss", "value_loss", "entropy", "clip_fraction", "approx_kl")
        }
        if self.sft_coef > 0:
            totals["sft_loss"] = []
        for epoch in plan:
            for index, weight in epoch:
                if fused:
                    values, log_prob, entropy = first
                else:
                    values, log_prob, entropy = self._score(
                        self._train_model, batch, index, grad=True
                    )
                ratio = torch.exp(log_prob - old_log_prob[index])
                adv = normalized[index]
                clipped = torch.clamp(ratio, 1 - self.clip_range, 1 + self.clip_range)
                policy_loss = torch.max(-adv * ratio, -adv * clipped).mean()
                loss = policy_loss
                if self.ent_coef > 0:  # else keep the vocabulary-wide entropy out of backward
                    loss = loss - self.ent_coef * entropy.mean()
                value_loss = torch.zeros((), device=self.device)
                if values is not None:
                    value_loss = self._value_loss(values, old_values[index], returns[index])
                    loss = loss + self.vf_coef * value_loss
                if self.sft_coef > 0 and weight:
                    sft = self._sft_loss()
                    loss = loss + self.sft_coef * sft
                    totals["sft_loss"].append(sft.item())
                if not torch.isfinite(loss):
                    raise RolloutError(
                        f"iteration {self.iteration}: the loss is {loss.item()} (policy "
                        f"{policy_loss.item()}, value {value_loss.item()}); training stopped "
                        "before the optimizer step, so the policy is unchanged by it"
                    )
                if weight != 1.0:  # padding: DDP's pass, no gradient of this process's own
                    loss = loss * weight
                self.optimizer.zero_grad()
                self.accelerator.backward(loss)
                if self.max_grad_norm is not None:
                    self.accelerator.clip_grad_norm_(self._policy.parameters(), self.max_grad_norm)
                self.optimizer.step()
                self._n_updates += 1
                if not weight:
                    continue
                with torch.no_grad():
                    log_ratio = log_prob - old_log_prob[index]
                    totals["policy_loss"].append(policy_loss.item())
                    totals["value_loss"].append(value_loss.item())
                    totals["entropy"].append(entropy.mean().item())
                    totals["clip_fraction"].append(
                        ((ratio - 1).abs() > self.clip_range).float().mean().item()
                    )
                    totals["approx_kl"].append(((ratio - 1) - log_ratio).mean().item())
        # (value, weight): the weights average the processes' values (agents/distributed.py)
        episode_returns = [r for w in waves for r in w.episode_returns]
        local = {key: (float(np.mean(v)), len(v)) for key, v in totals.items() if v}
        local.update(
            kl=(float(kl.mean()), len(kl)),
            reward=(float(np.mean(episode_returns)), len(episode_returns)),
            tokens_trained=(float(len(kl)), 1),
            explained_variance=(_explained_variance(old_values, returns), len(kl)),
        )
        if self.processes.count > 1:
            stats = self.processes.merge_stats(local)
        else:
            stats = {key: value for key, (value, _) in local.items()}
        # Over all processes' tokens, so the coefficient stays equal in every process.
        self.kl_controller.update(stats["kl"], int(stats["tokens_trained"]))
        stats.update(kl_coef=self.kl_controller.coef, n_updates=float(self._n_updates))
        return stats

    def _score(
        self,
        model: torch.nn.Module,
        batch: _Batch,
        index: np.ndarray,
        *,
        grad: bool = False,
        reference: bool = False,
    ) -> tuple[torch.Tensor | None, torch.Tensor, torch.Tensor | None]:
        """(values, log-probabilities, entropies) of the batch's steps ``index``; for the
        frozen reference only the log-probabilities are needed."""
        with torch.set_grad_enabled(grad):
            if batch.sequence:
                rows = batch.segments_of(index)
                observations = batch.sequence_observations(rows, self.device)
                if reference:
                    outputs = model.evaluate_generated(observations, values=False, entropy=False)
                else:
                    outputs = model(observations)  # evaluate_generated, through accelerate
                keep = batch.columns_mask(rows, outputs[1].shape[1], self.device)
                return tuple(None if t is None else t[keep] for t in outputs)
            observations = batch.step_observations(index, self.device)
            actions = torch.as_tensor(batch.actions[index], device=self.device)
            module = self.accelerator.unwrap_model(model)
            values, log_prob, entropy = module.evaluate_actions(observations, actions)
            if values is not None:
                values = values.reshape(-1)
            return values, log_prob, entropy

    def _gae(
        self, batch: _Batch, rewards: torch.Tensor, values: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """GAE advantages and value targets, segment by segment (plain floats: a Python
        loop over tensor elements would cost more than the model)."""
        reward = rewards.detach().cpu().double().numpy()
        value = values.detach().cpu().double().numpy()
        advantages = np.zeros_like(reward)
        bootstrap = self._bootstrap_values(batch)
        discount = self.gamma * self.gae_lambda
        for k, (start, stop) in enumerate(batch.bounds):
            next_value, running = bootstrap[k], 0.0
            for t in range(stop - 1, start - 1, -1):
                running = reward[t] + self.gamma * next_value - value[t] + discount * running
                advantages[t] = running
                next_value = value[t]
        advantages_t = torch.as_tensor(advantages, device=values.device, dtype=values.dtype)
        return advantages_t, advantages_t + values

    def _bootstrap_values(self, batch: _Batch) -> list[float]:
        """Value after each segment: 0 at a terminal state, the learner's value of the
        next state at a truncation, the guide's discounted return after a roll-in."""
        out = []
        for segment in batch.segments:
            if segment.tail_rewards:
                discounts = self.gamma ** np.arange(len(segment.tail_rewards))
                out.append(float(np.dot(discounts, segment.tail_rewards)))
            elif segment.truncated:
                out.append(self._value_of(segment.next_observation))
            else:
                out.append(0.0)
        return out

    def _value_of(self, observation: Any) -> float:
        if not hasattr(self._policy, "predict_values"):
            return 0.0
        tensors = _as_batch_tensors(observation, self.device)
        with torch.no_grad():
            try:
                return float(self._policy.predict_values(tensors).reshape(-1)[0])
            except ValueError:  # a learner without a value head
                return 0.0

    def _value_loss(
        self, values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor
    ) -> torch.Tensor:
        values = values.float()
        loss = (values - returns) ** 2
        if self.clip_range_vf is not None:
            clipped = old_values + torch.clamp(
                values - old_values, -self.clip_range_vf, self.clip_range_vf
            )
            loss = torch.max(loss, (clipped - returns) ** 2)
        return 0.5 * loss.mean()

    def _sft_loss(self) -> torch.Tensor:
        demos = self.sft_demonstrations
        idx = self._rng.integers(len(demos), size=min(self.batch_size, len(demos)))
        batch = next(
            demos.select(np.sort(idx)).iter_batches(len(idx), shuffle=False, device=self.device)
        )
        actions = batch["actions"].long().reshape(-1)
        log_prob, _ = action_log_prob(self._policy, batch["observations"], actions)
        return -log_prob.mean()

    # -- files --------------------------------------------------------------------------

    FILE_MEMBERS = frozenset(
        {"optimizer.data", "trainer.data", "reference.json", "reference.safetensors"}
    )

    def _extra_members(self) -> dict[str, bytes]:
        trainer = {
            "rng": self._rng.bit_generator.state,
            "plan_rng": self._plan_rng.bit_generator.state,
            "torch_rng": torch.get_rng_state(),
            "iteration": self.iteration,
            "n_updates": self._n_updates,
            "kl_coef": float(self.kl_controller.coef),
        }
        members = {
            "optimizer.data": optimizer_bytes(self.optimizer),
            "trainer.data": data_bytes(trainer),
        }
        if self.reference is not None:
            members.update(policy_members(self.reference, prefix="reference"))
        return members

    @classmethod
    def _from_saved(cls, env, policy, hyperparameters, meta, members, device):
        agent = cls(env, policy=policy, device=device, **hyperparameters)
        if "reference.json" in members:
            agent.reference = read_policy(members, agent.device, prefix="reference")
            agent.reference.requires_grad_(False)
        members.load_optimizer("optimizer.data", agent.optimizer)
        trainer = members.data("trainer.data")
        with members.reading("trainer.data"):
            agent._rng.bit_generator.state = trainer["rng"]
            agent._plan_rng.bit_generator.state = trainer["plan_rng"]
            # Sampling draws from torch's global generator: restoring it makes a resumed run
            # repeat the uninterrupted one exactly.
            torch.set_rng_state(torch.from_numpy(np.array(trainer["torch_rng"], dtype=np.uint8)))
            agent.iteration = check_count(trainer["iteration"])
            agent._n_updates = check_count(trainer["n_updates"])
            agent.kl_controller.coef = float(trainer["kl_coef"])
        agent._reshard_restored_streams()
        return agent

    def _reshard_restored_streams(self) -> None:
        """In process ``r > 0`` of a multi-process resume (every process read the main
        process's streams): streams derived from the saved ones and ``r``, so that the
        processes' episodes differ again."""
        index = self.processes.index
        if index == 0:
            return
        saved = [int(self._rng.integers(2**32)), int(self._plan_rng.integers(2**32))]
        root = np.random.SeedSequence([*saved, index])
        self._rng, self._plan_rng = (np.random.default_rng(s) for s in root.spawn(2))
        torch.manual_seed(int(root.generate_state(1, np.uint64)[0] >> 1))


# -- the rollout batch ----------------------------------------------------------------------


class _Batch:
    """The learner's steps of one iteration, segment by segment (tokens contiguous)."""

    def __init__(self, segments: list[Segment], *, sequence: bool) -> None:
        self.segments = segments
        self.sequence = sequence
        lengths = np.array([len(s) for s in segments])
        ends = np.cumsum(lengths)
        self.bounds = list(zip((ends - lengths).tolist(), ends.tolist(), strict=True))
        self.segment_of_step = np.repeat(np.arange(len(segments)), lengths)
        self.rewards = np.concatenate([np.asarray(s.rewards, dtype=np.float64) for s in segments])
        self.actions = np.concatenate([np.asarray(s.actions) for s in segments])
        self.all_tokens = np.arange(len(self.actions))

    def minibatches(self, batch_size: int, rng: np.random.Generator):
        """Shuffled step indices; for sequences, whole segments adding up to ~batch_size."""
        if not self.sequence:
            order = rng.permutation(len(self.actions))
            for start in range(0, len(order), batch_size):
                yield np.sort(order[start : start + batch_size])
            return
        chosen: list[int] = []
        size = 0
        for k in rng.permutation(len(self.segments)).tolist():
            chosen.append(k)
            size += len(self.segments[k])
            if size >= batch_size:
                yield self._steps_of(chosen)
                chosen, size = [], 0
        if chosen:
            yield self._steps_of(chosen)

    def _steps_of(self, segments: list[int]) -> np.ndarray:
        return np.concatenate([np.arange(*self.bounds[k]) for k in sorted(segments)])

    def segments_of(self, index: np.ndarray) -> np.ndarray:
        return np.unique(self.segment_of_step[index])

    def sequence_observations(self, rows: np.ndarray, device: torch.device):
        keys = self.segments[0].next_observation.keys()
        return {
            key: torch.as_tensor(
                np.stack([self.segments[k].next_observation[key] for k in rows]), device=device
            )
            for key in keys
        }

    def columns_mask(self, rows: np.ndarray, width: int, device: torch.device) -> torch.Tensor:
        """Which of the ``width`` generated columns of each sequence are the segment's
        steps (row-major order matches the steps' order)."""
        mask = np.zeros((len(rows), width), dtype=bool)
        for i, k in enumerate(rows):
            segment = self.segments[k]
            mask[i, segment.start : segment.start + len(segment)] = True
        return torch.as_tensor(mask, device=device)

    def step_observations(self, index: np.ndarray, device: torch.device):
        steps = [
            self.segments[k].observations[i - self.bounds[k][0]]
            for i, k in zip(index, self.segment_of_step[index], strict=True)
        ]
        if isinstance(steps[0], dict):
            return {
                key: torch.as_tensor(np.stack([s[key] for s in steps]), device=device)
                for key in steps[0]
            }
        return torch.as_tensor(np.stack(steps), device=device)


# -- helpers ----------------------------------------------------------------------------


def _scores_sequences(policy: Any) -> bool:
    """True for learners that score a whole generated sequence in one pass (LMPolicy)."""
    return hasattr(policy, "evaluate_generated")


def _check_learner_spaces(policy: Any, env: Any) -> None:
    mismatch = space_mismatch(policy, row_spaces(env))
    if mismatch is not None:
        kind, got, expected = mismatch
        raise ValueError(f"the learner's {kind} is {got}, the env's is {expected}")


def _vectorize(env: Any, n_envs: int) -> gym.vector.VectorEnv:
    """A restartable vector env of ``n_envs`` rows made like ``env`` (or ``env`` itself).

    An SB3 ``DummyVecEnv`` gives its row envs to a :class:`RestartableSyncVectorEnv`, which
    steps them from then on (the guided algorithms restart rows from States, which SB3's
    VecEnv API cannot do); its own ``num_envs`` rows are used, not ``n_envs``.
    """
    if isinstance(env, gym.vector.VectorEnv):
        vec = env
    elif is_vector_env(env):  # SB3's VecEnv
        rows = getattr(env, "envs", None)
        if rows is None:
            raise TypeError(
                f"{type(env).__name__} keeps its envs in other processes, and the guided "
                "algorithms restart rows from their States; pass gym.make_vec(env_id, "
                "num_envs=n), an SB3 DummyVecEnv or a single env with n_envs=n"
            )
        vec = RestartableSyncVectorEnv([lambda row=row: row for row in rows])
    elif env.spec is not None:
        vec = gym.make_vec(env.spec.id, num_envs=n_envs, **(env.spec.kwargs or {}))
    else:
        if n_envs != 1:
            raise ValueError(
                "this env has no spec to make more rows from; pass n_envs=1 or a vector env"
            )
        vec = RestartableSyncVectorEnv([lambda: env])
    if not (hasattr(vec, "get_state") and hasattr(vec, "reset_to")):
        raise TypeError(
            f"{type(vec).__name__} does not implement the restart contract (get_state / "
            "reset_to); build it with gym.make_vec(lfi_gym_id, num_envs=n) in the default mode"
        )
    mode = vec.metadata.get("autoreset_mode", gym.vector.AutoresetMode.NEXT_STEP)
    if mode != gym.vector.AutoresetMode.NEXT_STEP:
        raise ValueError(f"the guided algorithms need NEXT_STEP autoreset, the env uses {mode}")
    return vec


def _as_batch_tensors(observation: Any, device: torch.device):
    if isinstance(observation, dict):
        return {
            k: torch.as_tensor(np.asarray(v)[None], device=device) for k, v in observation.items()
        }
    return torch.as_tensor(np.asarray(observation)[None], device=device)


def _explained_variance(values: torch.Tensor, returns: torch.Tensor) -> float:
    variance = float(returns.var()) if len(returns) > 1 else 0.0
    if variance == 0:
        return float("nan")
    return float(1 - (returns - values).var() / variance)
