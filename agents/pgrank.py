"""PG-Rank: the policy gradient of Neural PG-Rank (Gao et al. 2023) on the ranking MDP.

For each training query it samples several rankings from the current policy (each from the
same restart State, via ``reset_to``), credits every pick with its DCG-to-go and subtracts
the mean DCG-to-go of the other samples at the same position (a leave-one-out baseline),
then takes one gradient step per batch of queries. The policy is a
:class:`~lfi_gym.agents.plackett_luce.PlackettLucePolicy`.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.callbacks import BaseCallback
from torch import nn
from tqdm.auto import tqdm

from lfi_gym.agents.base import BaseAgent
from lfi_gym.agents.learners import is_ranking_space, make_learner
from lfi_gym.agents.serialization import check_count, data_bytes, optimizer_bytes
from lfi_gym.envs.policies import check_spaces
from lfi_gym.envs.validation import (
    check_non_negative_float,
    check_positive_float,
    check_positive_int,
)


class PGRank(BaseAgent):
    """Policy gradient with a leave-one-out baseline on a ranking env (Neural PG-Rank).

    ``learn(total_timesteps)`` counts env steps. Each query (drawn by ``env.reset()``)
    gets ``n_samples`` sampled rankings, all started from the query's State with
    ``reset_to``; pick t of sample i is credited with ``G_i,t - mean_{j != i} G_j,t``
    where ``G`` is the DCG still to come, and a gradient step averages
    ``queries_per_update`` queries. Defaults follow PG-Rank's setup scaled to small
    scorers: Adam 1e-3, 8 samples per query, 16 queries per update, no entropy bonus.
    ``policy`` is a :class:`PlackettLucePolicy` (built from ``policy_kwargs`` when None,
    ``"auto"`` or ``"PlackettLucePolicy"``) or any module with its methods. Saving stores
    the optimizer, both RNGs and the env's State, so ``PGRank.load(path, env)`` continues
    exactly where training stopped.
    """

    SINGLE_ENV_REASON = "it restarts one env from each query's State for every sample"

    FAMILIES = frozenset({"ranking"})

    def __init__(
        self,
        env: gym.Env | None,
        policy: nn.Module | str | None = None,
        *,
        policy_kwargs: dict[str, Any] | None = None,
        learning_rate: float = 1e-3,
        n_samples: int = 8,
        queries_per_update: int = 16,
        ent_coef: float = 0.0,
        max_grad_norm: float | None = 1.0,
        normalize_advantage: bool = True,
        seed: int | None = None,
        device: str | torch.device = "auto",
        tensorboard_log: str | None = None,
        verbose: int = 0,
    ) -> None:
        super().__init__(
            env, seed=seed, device=device, tensorboard_log=tensorboard_log, verbose=verbose
        )
        self.learning_rate = check_positive_float(learning_rate, "learning_rate")
        self.n_samples = check_positive_int(n_samples, "n_samples")
        if self.n_samples < 2:
            raise ValueError(
                f"n_samples must be >= 2: the baseline of a sample is the mean of the others, "
                f"got {n_samples!r}"
            )
        self.queries_per_update = check_positive_int(queries_per_update, "queries_per_update")
        self.ent_coef = check_non_negative_float(ent_coef, "ent_coef")
        self.max_grad_norm = (
            None if max_grad_norm is None else check_positive_float(max_grad_norm, "max_grad_norm")
        )
        self.normalize_advantage = bool(normalize_advantage)
        if policy is None or (isinstance(policy, str) and policy in ("auto", "PlackettLucePolicy")):
            if env is None:
                raise ValueError("PGRank needs an env to build its policy; pass env=")
            if not is_ranking_space(env.observation_space):
                raise ValueError(
                    "PGRank trains a PlackettLucePolicy on a ranking env (Rank-*: Dict "
                    f"observations with 'features' and 'mask'); this env observes "
                    f"{env.observation_space}. Use BC, DAgger or PPO here"
                )
            policy = make_learner(
                "PlackettLucePolicy", env.observation_space, env.action_space, policy_kwargs
            )
        elif policy_kwargs:
            raise ValueError("policy_kwargs only apply when PGRank builds the policy (policy=None)")
        if not isinstance(policy, nn.Module) or not hasattr(policy, "get_distribution"):
            raise TypeError(
                "policy must be a PlackettLucePolicy (or a torch module with get_distribution "
                f"and evaluate_actions), got {type(policy).__name__}"
            )
        self._policy = policy.to(self.device)
        if env is not None:
            check_spaces(self._policy, env, role="policy")
            if not hasattr(env.unwrapped, "get_state"):
                raise ValueError(
                    "PGRank restarts each query several times: it needs an lfi-gym env"
                )
        self.optimizer = torch.optim.Adam(self._policy.parameters(), lr=self.learning_rate)
        self._generator = torch.Generator(device="cpu")
        self._generator.manual_seed(0 if seed is None else int(seed))
        self._needs_first_reset = True
        self._n_updates = 0

    @property
    def policy(self) -> nn.Module:
        return self._policy

    # -- training -----------------------------------------------------------------------------

    def _sample(self, obs: dict[str, np.ndarray]) -> int:
        tensors, _ = self._policy.obs_to_tensor(obs)
        with torch.no_grad():
            probs = self._policy.get_distribution(tensors).probs[0].cpu()
        return int(torch.multinomial(probs, 1, generator=self._generator))

    def _rollout_query(self, bar: tqdm) -> tuple[list, list, list, int]:
        """``n_samples`` rankings of one query: observations, actions, advantages."""
        env = self.env
        if self._needs_first_reset:
            env.reset(seed=self.seed)
            self._needs_first_reset = False
        else:
            env.reset()
        start = env.unwrapped.get_state()
        samples = []
        steps = 0
        for _ in range(self.n_samples):
            obs, _ = env.reset(options={"state": start})
            observations, actions, rewards = [], [], []
            done = False
            while not done:
                action = self._sample(obs)
                observations.append(obs)
                actions.append(action)
                obs, reward, terminated, truncated, _ = env.step(action)
                rewards.append(float(reward))
                done = terminated or truncated
                steps += 1
            samples.append((observations, actions, np.cumsum(rewards[::-1])[::-1]))
        # After the samples the env sits at the end of an episode; the next query resets.
        length = max(len(s[2]) for s in samples)
        to_go = np.zeros((self.n_samples, length))
        valid = np.zeros((self.n_samples, length), dtype=bool)
        for i, (_, _, g) in enumerate(samples):
            to_go[i, : len(g)], valid[i, : len(g)] = g, True
        counts = valid.sum(axis=0)
        totals = (to_go * valid).sum(axis=0)
        obs_out, act_out, adv_out = [], [], []
        for observations, actions, g in samples:
            others = np.maximum(counts[: len(g)] - 1, 1)
            baseline = (totals[: len(g)] - g) / others
            obs_out.extend(observations)
            act_out.extend(actions)
            adv_out.extend((g - baseline).tolist())
        bar.update(steps)
        return obs_out, act_out, adv_out, steps

    def _learn(self, target_timesteps: int, callback: BaseCallback, bar: tqdm) -> None:
        while self.num_timesteps < target_timesteps:
            callback.on_rollout_start()
            observations, actions, advantages = [], [], []
            for _ in range(self.queries_per_update):
                obs, act, adv, steps = self._rollout_query(bar)
                observations += obs
                actions += act
                advantages += adv
                self.num_timesteps += steps
                if self.num_timesteps >= target_timesteps:
                    break
            callback.update_locals(locals())
            keep_going = callback.on_step()
            callback.on_rollout_end()
            self._update(observations, actions, advantages)
            if not keep_going:
                break

    def _update(self, observations: list, actions: list, advantages: list) -> None:
        batch = {
            key: torch.as_tensor(np.stack([o[key] for o in observations]), device=self.device)
            for key in observations[0]
        }
        act = torch.as_tensor(np.array(actions), device=self.device)
        adv = torch.as_tensor(np.array(advantages), dtype=torch.float32, device=self.device)
        if self.normalize_advantage and len(adv) > 1:
            adv = adv / (adv.std() + 1e-8)
        self._policy.set_training_mode(True)
        _, log_prob, entropy = self._policy.evaluate_actions(batch, act)
        loss = -(log_prob * adv).mean() - self.ent_coef * entropy.mean()
        self.optimizer.zero_grad()
        loss.backward()
        if self.max_grad_norm is not None:
            nn.utils.clip_grad_norm_(self._policy.parameters(), self.max_grad_norm)
        self.optimizer.step()
        self._policy.set_training_mode(False)
        self._n_updates += 1
        self.logger.record("train/loss", loss.item())
        self.logger.record("train/entropy", entropy.mean().item())
        self.logger.record("train/n_updates", self._n_updates)
        self.logger.dump(self.num_timesteps)

    # -- files --------------------------------------------------------------------------------

    FILE_MEMBERS = frozenset({"optimizer.data", "trainer.data"})

    def _extra_metadata(self) -> dict[str, Any]:
        return {"n_updates": self._n_updates}

    def _extra_members(self) -> dict[str, bytes]:
        trainer: dict[str, Any] = {
            "generator": self._generator.get_state(),
            "env_state": None,
        }
        if self.env is not None and not self._needs_first_reset:
            trainer["env_state"] = self.env.unwrapped.get_state()
        return {
            "optimizer.data": optimizer_bytes(self.optimizer),
            "trainer.data": data_bytes(trainer),
        }

    @classmethod
    def _from_saved(cls, env, policy, hyperparameters, meta, members, device):
        agent = cls(env, policy, device=device, **hyperparameters)
        members.load_optimizer("optimizer.data", agent.optimizer)
        trainer = members.data("trainer.data")
        with members.reading("trainer.data"):
            state = np.array(trainer["generator"], dtype=np.uint8)
            agent._generator.set_state(torch.from_numpy(state))
            env_state = trainer["env_state"]
        with members.reading("agent.json"):
            agent._n_updates = check_count(meta["extra"]["n_updates"])
        if env_state is not None and env is not None:
            # The env's RNG decides the next query: resume it exactly.
            env.reset(options={"state": env_state})
            agent._needs_first_reset = False
        return agent
