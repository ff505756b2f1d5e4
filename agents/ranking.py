"""Ranking learners: a masked Plackett-Luce policy and PG-Rank policy gradient.

:class:`PlackettLucePolicy` scores every candidate with one shared network and picks the
next document with probability ``softmax(scores)`` over the slots the mask allows, which
is the Plackett-Luce model of a whole ranking factored into the env's steps. It follows
SB3's policy shape (``predict``, ``evaluate_actions``, ``get_distribution``,
``set_training_mode``, ``_get_constructor_parameters``), so BC and DAgger train it in place
and guided agents (PPO++, AggreVaTeD) can use its optional value head.

:class:`PGRank` is the policy gradient of Neural PG-Rank (Gao et al. 2023) on the ranking
MDP: for each training query it samples several rankings from the current policy (each
from the same restart State, via ``reset_to``), credits every pick with its DCG-to-go and
subtracts the mean DCG-to-go of the other samples at the same position (a leave-one-out
baseline), then takes one gradient step per batch of queries.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.callbacks import BaseCallback
from torch import nn
from tqdm.auto import tqdm

from lfi_gym.agents.base import (
    BaseAgent,
    check_non_negative_float,
    check_positive_float,
    check_positive_int,
    torch_bytes,
    torch_load,
)
from lfi_gym.agents.learners import make_learner
from lfi_gym.agents.policies import batch_observation, check_spaces

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
        if activation not in _ACTIVATIONS:
            raise ValueError(
                f"activation must be one of {sorted(_ACTIVATIONS)}, got {activation!r}"
            )
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


# -- evaluation ---------------------------------------------------------------------------------


def evaluate_ranker(
    policy: Any,
    env: gym.Env,
    *,
    k: int = 10,
    queries: Sequence[int] | None = None,
    deterministic: bool = True,
) -> float:
    """Mean NDCG@k of ``policy`` over the queries of ``env``'s split (all by default),
    each run as one episode from ``reset(options={"query": q})``; queries without a
    relevant document count as 0. ``k`` must be 1, 5 or 10 (what the env reports)."""
    base = env.unwrapped
    if f"ndcg@{k}" not in ("ndcg@1", "ndcg@5", "ndcg@10"):
        raise ValueError(f"k must be 1, 5 or 10 (the cut-offs the env reports), got {k!r}")
    indices = range(base.queries.n_queries) if queries is None else queries
    total, count = 0.0, 0
    for q in indices:
        obs, _ = env.reset(options={"query": int(q)})
        done, state, start = False, None, True
        while not done:
            action, state = policy.predict(
                obs, state=state, episode_start=np.array([start]), deterministic=deterministic
            )
            obs, _, terminated, truncated, info = env.step(action)
            done, start = terminated or truncated, False
        total += info[f"ndcg@{k}"]
        count += 1
    return total / max(count, 1)


# -- PG-Rank ------------------------------------------------------------------------------------


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

    hyperparameter_names = (
        "learning_rate",
        "n_samples",
        "queries_per_update",
        "ent_coef",
        "max_grad_norm",
        "normalize_advantage",
    )

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
            # "auto" on a ranking env is this learner; elsewhere make_learner says why not.
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
            "optimizer.pt": torch_bytes(self.optimizer.state_dict()),
            "trainer.pt": torch_bytes(trainer),
        }

    @classmethod
    def _from_saved(cls, env, policy, hyperparameters, meta, members, device):
        agent = cls(env, policy, device=device, **hyperparameters)
        agent.optimizer.load_state_dict(torch_load(members["optimizer.pt"], agent.device))
        trainer = torch_load(members["trainer.pt"], torch.device("cpu"))
        agent._generator.set_state(trainer["generator"])
        agent._n_updates = meta["extra"]["n_updates"]
        state = trainer["env_state"]
        if state is not None and env is not None:
            # The env's RNG decides the next query: resume it exactly.
            env.reset(options={"state": state})
            agent._needs_first_reset = False
        return agent
