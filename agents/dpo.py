"""Direct Preference Optimization (DPO): a language model trained on preference pairs alone.

DPO (Rafailov, Sharma, Mitchell, Ermon, Manning and Finn 2023) skips the reward model and
the RL loop of RLHF: the KL-regularised optimum ``pi*(y|x) ~ pi_ref(y|x) exp(r(x, y) /
beta)`` says a policy *is* a reward model, ``r(x, y) = beta log(pi(y|x) / pi_ref(y|x))``
up to a term of the prompt alone, so the Bradley-Terry likelihood of the preferences can
be maximised over the policy directly (the paper's eq. 7)::

    h    = beta * ((log pi(a|x) - log pi_ref(a|x)) - (log pi(b|x) - log pi_ref(b|x)))
    loss = -(y * log sigmoid(h) + (1 - y) * log sigmoid(-h))

with ``y = P(a preferred)`` (:func:`dpo_loss`). ``y = 1`` is the paper's sigmoid loss
(``a`` chosen, ``b`` rejected), ``y = 0`` the same with the roles swapped. The paper has no
ties; a tie (``y = 0.5``) here is the soft-label cross-entropy, minimised at ``h = 0``: it
pulls the two implicit rewards together (the form TRL's ``label_smoothing`` gives every
row, the "conservative DPO" of Mitchell 2023, here per row).

Log-probabilities are sums over a completion's tokens, scored as the policy acts in the
env: each pair's prompt and completions are laid out as the env's observations (prompt
padded on the left to ``prompt_length``, generated tokens after it, see
:mod:`lfi_gym.envs.text.rows`) and scored by :meth:`LMPolicy.evaluate_generated`, so a
token's log-probability is the one the policy's sampling distribution gives it (its
temperature and ``min_new_tokens`` rule included; ``predict``'s top-k cut is not, as in
PPO). The reference is a frozen copy of the initial policy (the SFT model), as in the
paper and TRL; its log-probabilities are computed once, before the first update. The model
stays in eval mode (no dropout), as TRL's default ``disable_dropout=True``, so that ``h``
is exactly 0 before the first update.

Defaults (paper, Appendix B): beta 0.1, batch 64 pairs, RMSprop with learning rate 1e-6,
linear warm-up over 150 updates; the authors' code clips the gradient norm at 10 and warms
up as ``lr * min(1, (k + 1) / (150 + 1))`` at update ``k``. :data:`TINYREVIEWS` is the
CPU-sized setting for TextGen-TinyReviews-v0 (a deviation: lr 1e-6 barely moves a 1M-
parameter model in a few hundred updates).
"""

from __future__ import annotations

import copy
import hashlib
from typing import Any, NamedTuple

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from stable_baselines3.common.callbacks import BaseCallback
from tqdm.auto import tqdm

from lfi_gym.agents.base import BaseAgent
from lfi_gym.agents.env_kinds import row_env, row_spaces, single_spaces, text_task
from lfi_gym.agents.learners import make_learner
from lfi_gym.agents.lm_policy import LMPolicy
from lfi_gym.agents.preferences import LABELS, Preferences, PreferencesError
from lfi_gym.agents.serialization import (
    check_count,
    data_bytes,
    optimizer_bytes,
    policy_members,
    read_policy,
)
from lfi_gym.envs.policies import check_spaces
from lfi_gym.envs.validation import (
    check_non_negative_int,
    check_positive_float,
    check_positive_int,
)

__all__ = ["DPO", "DPO_DEFAULTS", "TINYREVIEWS", "DPOLossOutput", "dpo_loss", "preference_metrics"]

#: The paper's settings (Rafailov et al. 2023, Appendix B; gradient clipping from the
#: authors' code, which the paper does not state).
DPO_DEFAULTS: dict[str, Any] = {
    "beta": 0.1,
    "learning_rate": 1e-6,
    "batch_size": 64,
    "max_grad_norm": 10.0,
    "warmup_steps": 150,
}

#: CPU-sized settings for TextGen-TinyReviews-v0 (1M-parameter LM, 32-token completions):
#: the paper's beta and optimizer, a learning rate that moves the tiny model within a few
#: hundred updates, smaller batches and no warm-up. A deviation from the paper.
TINYREVIEWS: dict[str, Any] = {
    "learning_rate": 1e-4,
    "batch_size": 16,
    "warmup_steps": 0,
}

#: Pairs scored per forward pass where no gradient is needed (reference, evaluation).
SCORE_CHUNK = 64


# -- the loss ---------------------------------------------------------------------------------


class DPOLossOutput(NamedTuple):
    """:func:`dpo_loss`'s result: the mean loss (with gradients) and each row's implicit
    rewards ``beta * (log pi - log pi_ref)`` of ``a`` and ``b`` (detached, for logging)."""

    loss: torch.Tensor
    rewards_a: torch.Tensor
    rewards_b: torch.Tensor


def dpo_loss(
    policy_logps_a: torch.Tensor,
    policy_logps_b: torch.Tensor,
    reference_logps_a: torch.Tensor,
    reference_logps_b: torch.Tensor,
    labels: torch.Tensor | np.ndarray | list[float],
    beta: float,
) -> DPOLossOutput:
    """The DPO loss of a batch of pairs (sigmoid loss, Rafailov et al. 2023, eq. 7).

    Inputs are per-row sequence log-probabilities (the sum over the completion's tokens)
    under the policy and the reference, and ``labels`` = P(a preferred) in {0, 0.5, 1}::

        h    = beta * ((policy_a - reference_a) - (policy_b - reference_b))
        loss = mean(-(y * logsigmoid(h) + (1 - y) * logsigmoid(-h)))

    ``y = 1`` is the paper's loss with ``a`` chosen, ``y = 0`` the same with ``b`` chosen;
    a tie (``y = 0.5``, which the paper does not have) is minimised at ``h = 0`` and pulls
    the two implicit rewards together. The gradient with respect to ``h`` is
    ``sigmoid(h) - y``.
    """
    beta = check_positive_float(beta, "beta")
    logps = (policy_logps_a, policy_logps_b, reference_logps_a, reference_logps_b)
    shape = policy_logps_a.shape
    if policy_logps_a.ndim != 1 or any(t.shape != shape for t in logps):
        raise ValueError(
            "dpo_loss takes four 1-D tensors of equal length (one sequence log-probability "
            f"per pair), got shapes {[tuple(t.shape) for t in logps]}"
        )
    if not isinstance(labels, torch.Tensor):  # a copy: a set's labels are read-only arrays
        labels = torch.from_numpy(np.array(labels, dtype=np.float64))
    y = labels.to(dtype=policy_logps_a.dtype, device=policy_logps_a.device)
    if y.shape != shape:
        raise ValueError(f"labels has shape {tuple(y.shape)}, the log-probabilities {shape}")
    allowed = torch.tensor(LABELS, dtype=y.dtype, device=y.device)
    if not bool(torch.isin(y, allowed).all()):
        raise ValueError(
            "labels must be 1 (a preferred), 0 (b preferred) or 0.5 (equal), got "
            f"{y.unique().tolist()}"
        )
    rewards_a = beta * (policy_logps_a - reference_logps_a)
    rewards_b = beta * (policy_logps_b - reference_logps_b)
    h = rewards_a - rewards_b
    losses = -(y * F.logsigmoid(h) + (1 - y) * F.logsigmoid(-h))
    return DPOLossOutput(losses.mean(), rewards_a.detach(), rewards_b.detach())


def preference_metrics(
    rewards_a: torch.Tensor | np.ndarray,
    rewards_b: torch.Tensor | np.ndarray,
    labels: torch.Tensor | np.ndarray,
) -> dict[str, float]:
    """TRL's DPO statistics over the decided rows (ties left out): ``rewards/chosen`` and
    ``rewards/rejected`` (mean implicit rewards), ``rewards/accuracies`` (the fraction
    whose chosen reward is strictly higher), ``rewards/margins`` (mean chosen minus
    rejected). Empty when every row is a tie."""
    a, b, y = _float64(rewards_a), _float64(rewards_b), _float64(labels)
    decided = y != 0.5
    if not decided.any():
        return {}
    a_chosen = y[decided] == 1.0
    chosen = np.where(a_chosen, a[decided], b[decided])
    rejected = np.where(a_chosen, b[decided], a[decided])
    return {
        "rewards/chosen": float(chosen.mean()),
        "rewards/rejected": float(rejected.mean()),
        "rewards/accuracies": float((chosen > rejected).mean()),
        "rewards/margins": float((chosen - rejected).mean()),
    }


# -- pairs as env observations ------------------------------------------------------------------


class PairObservations:
    """Each pair's two completions as the env's observations, built once.

    ``input_ids`` / ``attention_mask`` are ``(2, n, width)``: side 0 is completion ``a``,
    side 1 is ``b``; row ``i`` holds pair ``i``'s prompt padded on the left to
    ``prompt_length`` and the completion after it, padded on the right, as
    :class:`lfi_gym.envs.text.rows.TextRows` writes an observation.
    """

    def __init__(self, preferences: Preferences, task: Any) -> None:
        p, g = task.prompt_length, task.max_new_tokens
        n = len(preferences)
        self.prompt_length = p
        self.input_ids = np.full((2, n, p + g), task.pad_token_id, dtype=np.int64)
        self.attention_mask = np.zeros((2, n, p + g), dtype=np.int64)
        for i in range(n):
            prompt = preferences.prompt_ids[i]
            if not 1 <= len(prompt) <= p:
                raise PreferencesError(
                    f"row {i}: the prompt has {len(prompt)} tokens; {task.name} takes 1 to {p}"
                )
            _check_vocabulary(prompt, task, i, "prompt_ids")
            for side, completion in enumerate(
                (preferences.completion_ids_a[i], preferences.completion_ids_b[i])
            ):
                name = "completion_ids_" + "ab"[side]
                _check_completion(completion, task, i, name)
                ids, mask = self.input_ids[side, i], self.attention_mask[side, i]
                ids[p - len(prompt) : p] = prompt
                ids[p : p + len(completion)] = completion
                mask[p - len(prompt) : p + len(completion)] = 1

    def batch(
        self, rows: np.ndarray, device: torch.device
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """The observations of ``rows``' completions ``a`` then ``b`` (``2 * len(rows)``
        sequences), and which generated columns are the completions' tokens."""
        ids = np.concatenate([self.input_ids[0, rows], self.input_ids[1, rows]])
        mask = np.concatenate([self.attention_mask[0, rows], self.attention_mask[1, rows]])
        observations = {
            "input_ids": torch.as_tensor(ids, device=device),
            "attention_mask": torch.as_tensor(mask, device=device),
        }
        generated = torch.as_tensor(mask[:, self.prompt_length :] == 1, device=device)
        return observations, generated


def _check_vocabulary(ids: np.ndarray, task: Any, row: int, name: str) -> None:
    outside = ids[ids >= task.vocab_size]
    if len(outside):
        raise PreferencesError(
            f"row {row}: {name} holds token ids outside {task.name}'s vocabulary "
            f"[0, {task.vocab_size}): {outside[:5].tolist()}"
        )


def _check_completion(ids: np.ndarray, task: Any, row: int, name: str) -> None:
    """A completion the env's episode could have generated: at most ``max_new_tokens``
    tokens, EOS only as the last one and not before ``min_new_tokens`` (where the policy
    gives it probability 0)."""
    if len(ids) > task.max_new_tokens:
        raise PreferencesError(
            f"row {row}: {name} has {len(ids)} tokens; {task.name} generates at most "
            f"{task.max_new_tokens}"
        )
    _check_vocabulary(ids, task, row, name)
    eos = np.flatnonzero(ids == task.eos_token_id)
    if len(eos) and (eos[0] != len(ids) - 1 or eos[0] < task.min_new_tokens):
        raise PreferencesError(
            f"row {row}: {name} has EOS at token {int(eos[0])} of {len(ids)}; in {task.name} "
            f"EOS ends the episode and only after {task.min_new_tokens} tokens, so it can "
            "only be the last token"
        )


def sequence_log_probs(
    policy: LMPolicy, observations: dict[str, torch.Tensor], generated: torch.Tensor
) -> torch.Tensor:
    """Each observation's sum of its generated tokens' log-probabilities under ``policy``
    (one forward pass; gradients flow when enabled). ``generated`` marks the real
    generated columns; the others are left out (their entries are meaningless, and can
    be -inf where a padding id is EOS under the ``min_new_tokens`` rule)."""
    _, token_log_probs, _ = policy.evaluate_generated(observations, values=False, entropy=False)
    return torch.where(generated, token_log_probs, 0.0).sum(1)


# -- the agent --------------------------------------------------------------------------------


class DPO(BaseAgent):
    """Offline DPO on a language-model policy, SB3-shaped.

    >>> env = gym.make("TextGen-TinyReviews-v0")
    >>> dpo = DPO(env, "LMPolicy", preferences=prefs, **TINYREVIEWS).learn(4 * len(prefs))

    ``preferences`` (:class:`lfi_gym.agents.preferences.Preferences`) must come from
    ``env`` (same env id and tokenizer). ``policy`` is ``"auto"`` / ``"LMPolicy"`` (the
    env's policy LM; ``policy_kwargs`` carry ``name_or_path``, e.g. an SFT model's folder)
    or an :class:`LMPolicy` to train in place. ``reference`` is the frozen reference;
    by default a copy of the policy as given (the SFT model).

    ``learn(total_timesteps)`` counts preference pairs processed: it updates on minibatches
    of ``batch_size`` pairs drawn from shuffled passes over the set (the last minibatch of
    a pass holds the remainder) until ``num_timesteps`` reaches the target, stopping at the
    first minibatch boundary at or past it; ``learn(k * len(preferences))`` is ``k``
    epochs. Callbacks' ``on_step`` runs once per update. The env is never stepped:
    :meth:`budgets` reports ``preference_queries`` (the pairs in the set) and no env steps,
    expert labels or reward queries.

    ``save`` writes the policy, the reference, the optimizer, the shuffling state and the
    reference log-probabilities, not the preferences (the data, as BC's demonstrations):
    ``DPO.load(path, env=env, preferences=prefs)`` takes the same set back, checked by a
    digest of its token ids and labels, and training resumes exactly.
    """

    BUDGET_UNIT = "preference_queries"
    USES_ENV_REWARD = False
    FAMILIES = frozenset({"text"})
    NOT_HYPERPARAMETERS = BaseAgent.NOT_HYPERPARAMETERS | {"preferences", "reference"}
    #: Training statistics go to the logger every this many updates, and after each learn.
    log_every_updates = 10

    def __init__(
        self,
        env: gym.Env | gym.vector.VectorEnv,
        policy: Any = "auto",
        *,
        preferences: Preferences,
        reference: LMPolicy | None = None,
        policy_kwargs: dict[str, Any] | None = None,
        beta: float = DPO_DEFAULTS["beta"],
        learning_rate: float = DPO_DEFAULTS["learning_rate"],
        batch_size: int = DPO_DEFAULTS["batch_size"],
        max_grad_norm: float | None = DPO_DEFAULTS["max_grad_norm"],
        warmup_steps: int = DPO_DEFAULTS["warmup_steps"],
        seed: int | None = None,
        device: str | torch.device = "auto",
        tensorboard_log: str | None = None,
        verbose: int = 0,
    ) -> None:
        super().__init__(
            env, seed=seed, device=device, tensorboard_log=tensorboard_log, verbose=verbose
        )
        self.beta = check_positive_float(beta, "beta")
        self.learning_rate = check_positive_float(learning_rate, "learning_rate")
        self.batch_size = check_positive_int(batch_size, "batch_size")
        self.max_grad_norm = (
            None if max_grad_norm is None else check_positive_float(max_grad_norm, "max_grad_norm")
        )
        self.warmup_steps = check_non_negative_int(warmup_steps, "warmup_steps")
        if env is None:
            raise ValueError(
                "DPO needs the env its preferences come from: pass env= (e.g. "
                "gym.make('TextGen-TinyReviews-v0'))"
            )
        if not isinstance(preferences, Preferences):
            raise TypeError(
                "DPO needs preferences=Preferences(...) (pairs of completions with labels), "
                f"got {type(preferences).__name__}"
            )
        preferences.check_env(row_env(env))
        self.preferences = preferences
        self._pairs = PairObservations(preferences, _task(env))
        self._policy = _language_model(
            make_learner(policy, *single_spaces(env), policy_kwargs, self.device, env=row_env(env)),
            env,
            "policy",
        )
        if reference is None:
            reference = copy.deepcopy(self._policy)
        self.reference = _language_model(reference, env, "reference").to(self.device)
        self.reference.requires_grad_(False)
        self.reference.set_training_mode(False)
        self._policy.set_training_mode(False)  # no dropout: h is 0 before the first update
        self.optimizer = torch.optim.RMSprop(self._policy.parameters(), lr=self.learning_rate)
        self._rng = np.random.default_rng(seed)
        self._order: np.ndarray | None = None  # this pass's shuffled rows
        self._cursor = 0  # rows of the pass already used
        self.epoch = 0
        self.n_updates = 0
        self._reference_logps: tuple[torch.Tensor, torch.Tensor] | None = None
        self._pending_stats: list[dict[str, Any]] = []

    @property
    def policy(self) -> LMPolicy:
        return self._policy

    def set_env(self, env: gym.Env | gym.vector.VectorEnv) -> None:
        """Attach another instance of the preferences' env (same id and tokenizer)."""
        self.preferences.check_env(row_env(env))
        super().set_env(env)
        self._pairs = PairObservations(self.preferences, _task(env))

    def budgets(self) -> dict[str, int]:
        """``preference_queries``: the labelled pairs DPO learns from (all of them from the
        first update on: the set is given whole); it takes no env steps, expert labels or
        env rewards."""
        return {
            "expert_labels": 0,
            "env_steps": 0,
            "reward_queries": 0,
            "preference_queries": len(self.preferences),
        }

    # -- scoring --------------------------------------------------------------------------

    def log_probs(
        self, preferences: Preferences | None = None, *, reference: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Sequence log-probabilities of each pair's completions ``a`` and ``b`` under the
        policy (or the reference), without gradients, on the CPU; ``preferences`` defaults
        to the training set (another set must come from the same env)."""
        model = self.reference if reference else self._policy
        return self._score_all(model, self._pairs_of(preferences))

    def evaluate(self, preferences: Preferences | None = None) -> dict[str, float]:
        """The DPO loss and TRL's statistics (:func:`preference_metrics`) on a set (e.g.
        held-out pairs), plus ``logps/chosen`` / ``logps/rejected``: mean policy
        log-probabilities of the chosen and rejected completions."""
        pairs = self._pairs_of(preferences)
        labels = (self.preferences if preferences is None else preferences).labels
        policy_a, policy_b = self._score_all(self._policy, pairs)
        if preferences is None:
            reference_a, reference_b = (t.cpu() for t in self._reference_log_probs())
        else:
            reference_a, reference_b = self._score_all(self.reference, pairs)
        out = dpo_loss(policy_a, policy_b, reference_a, reference_b, labels, self.beta)
        stats = {
            "loss": float(out.loss),
            **preference_metrics(out.rewards_a, out.rewards_b, labels),
        }
        stats.update(_logps_metrics(policy_a, policy_b, labels))
        return stats

    def _pairs_of(self, preferences: Preferences | None) -> PairObservations:
        if preferences is None:
            return self._pairs
        preferences.check_env(row_env(self.env))
        return PairObservations(preferences, _task(self.env))

    def _score_all(
        self, model: LMPolicy, pairs: PairObservations
    ) -> tuple[torch.Tensor, torch.Tensor]:
        n = pairs.input_ids.shape[1]
        out_a, out_b = [], []
        with torch.no_grad():
            for start in range(0, n, SCORE_CHUNK):
                rows = np.arange(start, min(start + SCORE_CHUNK, n))
                logps = sequence_log_probs(model, *pairs.batch(rows, self.device)).cpu()
                out_a.append(logps[: len(rows)])
                out_b.append(logps[len(rows) :])
        return torch.cat(out_a), torch.cat(out_b)

    def _reference_log_probs(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The reference's log-probabilities of the training pairs, computed once."""
        if self._reference_logps is None:
            a, b = self._score_all(self.reference, self._pairs)
            self._reference_logps = (a.to(self.device), b.to(self.device))
        return self._reference_logps

    # -- training -------------------------------------------------------------------------

    def _learn(self, target_timesteps: int, callback: BaseCallback, bar: tqdm) -> None:
        reference_a, reference_b = self._reference_log_probs()
        # a copy: a set's labels are a read-only array
        labels = torch.tensor(
            np.array(self.preferences.labels, dtype=np.float32), device=self.device
        )
        while self.num_timesteps < target_timesteps:
            rows = self._next_rows()
            stats = self._update(rows, reference_a, reference_b, labels)
            self.num_timesteps += len(rows)
            bar.update(len(rows))
            self._pending_stats.append(stats)
            if self.n_updates % self.log_every_updates == 0:
                self._dump_stats()
            callback.update_locals(locals())
            if callback.on_step() is False:
                break
        self._dump_stats()

    def _next_rows(self) -> np.ndarray:
        """The next minibatch's pair indices: shuffled passes over the set, in order."""
        if self._order is None or self._cursor >= len(self._order):
            self._order = self._rng.permutation(len(self.preferences))
            self._cursor = 0
            self.epoch += 1
        rows = self._order[self._cursor : self._cursor + self.batch_size]
        self._cursor += len(rows)
        return rows

    def _update(
        self,
        rows: np.ndarray,
        reference_a: torch.Tensor,
        reference_b: torch.Tensor,
        labels: torch.Tensor,
    ) -> dict[str, Any]:
        """One RMSprop step on the pairs ``rows``; the learning rate warms up linearly."""
        warmup = min(1.0, (self.n_updates + 1) / (self.warmup_steps + 1))
        for group in self.optimizer.param_groups:
            group["lr"] = self.learning_rate * warmup
        logps = sequence_log_probs(self._policy, *self._pairs.batch(rows, self.device))
        policy_a, policy_b = logps[: len(rows)], logps[len(rows) :]
        index = torch.as_tensor(rows, device=self.device)
        out = dpo_loss(
            policy_a, policy_b, reference_a[index], reference_b[index], labels[index], self.beta
        )
        self.optimizer.zero_grad()
        out.loss.backward()
        if self.max_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_(self._policy.parameters(), self.max_grad_norm)
        self.optimizer.step()
        self.n_updates += 1
        return {
            "loss": out.loss.item(),
            "learning_rate": self.learning_rate * warmup,
            "rewards_a": out.rewards_a.cpu(),
            "rewards_b": out.rewards_b.cpu(),
            "logps_a": policy_a.detach().cpu(),
            "logps_b": policy_b.detach().cpu(),
            "labels": labels[index].cpu(),
        }

    def _dump_stats(self) -> None:
        """Log the updates since the last dump: mean loss, TRL's reward statistics over
        their pairs, the learning rate and the counters."""
        pending, self._pending_stats = self._pending_stats, []
        if not pending:
            return
        joined = {
            key: torch.cat([s[key] for s in pending])
            for key in ("rewards_a", "rewards_b", "logps_a", "logps_b", "labels")
        }
        self.logger.record("train/loss", float(np.mean([s["loss"] for s in pending])))
        self.logger.record("train/learning_rate", pending[-1]["learning_rate"])
        metrics = preference_metrics(joined["rewards_a"], joined["rewards_b"], joined["labels"])
        metrics.update(_logps_metrics(joined["logps_a"], joined["logps_b"], joined["labels"]))
        for key, value in metrics.items():
            self.logger.record(key, value)
        self.logger.record("train/n_updates", self.n_updates)
        self.logger.record("train/epoch", self.epoch)
        self.logger.dump(self.num_timesteps)

    # -- files ----------------------------------------------------------------------------

    FILE_MEMBERS = frozenset(
        {"optimizer.data", "trainer.data", "reference.json", "reference.safetensors"}
    )

    def _extra_members(self) -> dict[str, bytes]:
        reference_a, reference_b = (t.cpu().numpy() for t in self._reference_log_probs())
        trainer = {
            "rng": self._rng.bit_generator.state,
            "order": np.zeros(0, np.int64) if self._order is None else self._order,
            "cursor": self._cursor,
            "has_order": self._order is not None,
            "epoch": self.epoch,
            "n_updates": self.n_updates,
            "preferences_digest": preferences_digest(self.preferences),
            "reference_logps_a": reference_a,
            "reference_logps_b": reference_b,
        }
        return {
            "optimizer.data": optimizer_bytes(self.optimizer),
            "trainer.data": data_bytes(trainer),
            **policy_members(self.reference, prefix="reference"),
        }

    @classmethod
    def _from_saved(cls, env, policy, hyperparameters, meta, members, device):
        preferences = hyperparameters.pop("preferences", None)
        if env is None or preferences is None:
            raise ValueError(
                "DPO.load needs the env and the preferences the agent was trained on (an "
                "agent file does not store its data): DPO.load(path, env=env, "
                "preferences=prefs)"
            )
        reference = read_policy(members, torch.device("cpu"), prefix="reference")
        agent = cls(
            env,
            policy=policy,
            preferences=preferences,
            reference=reference,
            device=device,
            **hyperparameters,
        )
        trainer = members.data("trainer.data")
        with members.reading("trainer.data"):
            saved_digest = str(trainer["preferences_digest"])
        if saved_digest != preferences_digest(preferences):
            raise PreferencesError(
                "these preferences are not the ones the agent was trained on (their token ids "
                "or labels differ); pass the same set to DPO.load, or train a new DPO on them "
                "with policy=loaded.policy, reference=loaded.reference"
            )
        members.load_optimizer("optimizer.data", agent.optimizer)
        with members.reading("trainer.data"):
            agent._rng.bit_generator.state = trainer["rng"]
            order = np.array(trainer["order"], dtype=np.int64)
            if bool(trainer["has_order"]):
                if sorted(order.tolist()) != list(range(len(preferences))):
                    raise ValueError("'order' is not a permutation of the pairs")
                agent._order = order
            agent._cursor = check_count(trainer["cursor"])
            agent.epoch = check_count(trainer["epoch"])
            agent.n_updates = check_count(trainer["n_updates"])
            logps = []
            for side in "ab":
                values = np.array(trainer[f"reference_logps_{side}"], dtype=np.float32)
                if values.shape != (len(preferences),):
                    raise ValueError(f"reference_logps_{side} has shape {values.shape}")
                logps.append(torch.as_tensor(values, device=agent.device))
            agent._reference_logps = (logps[0], logps[1])
        return agent


# -- helpers ----------------------------------------------------------------------------------


def preferences_digest(preferences: Preferences) -> str:
    """SHA-256 of a set's env, tokenizer, token ids and labels: equal digests mean the same
    pairs in the same order."""
    digest = hashlib.sha256()
    digest.update(f"{preferences.env_id}\n{preferences.tokenizer_digest}\n".encode())
    for rows in (
        preferences.prompt_ids,
        preferences.completion_ids_a,
        preferences.completion_ids_b,
    ):
        for ids in rows:
            digest.update(len(ids).to_bytes(8, "little"))
            digest.update(np.ascontiguousarray(ids, dtype="<i8").tobytes())
    digest.update(np.ascontiguousarray(preferences.labels, dtype="<f8").tobytes())
    return digest.hexdigest()


def _task(env: Any) -> Any:
    return text_task(env, "DPO trains on text envs", PreferencesError)


def _language_model(module: Any, env: Any, role: str) -> LMPolicy:
    """``module`` if it is an LMPolicy that reads ``env``'s observations, else a clear error."""
    if not isinstance(module, LMPolicy):
        raise TypeError(
            f"DPO trains a language model: its {role} must be an LMPolicy ('auto' or "
            f"'LMPolicy' builds the env's LM; LMPolicy.from_pretrained(path, env=env) loads "
            f"another), got {type(module).__name__}"
        )
    check_spaces(module, row_spaces(env), role=role)
    prompt_length = _task(env).prompt_length
    if module.prompt_length != prompt_length:
        raise ValueError(
            f"the {role} reads prompts of {module.prompt_length} tokens, the env's are "
            f"{prompt_length}; build it with LMPolicy.from_pretrained(path, env=env)"
        )
    return module


def _float64(values: torch.Tensor | np.ndarray | list[float]) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        return values.detach().cpu().double().numpy()
    return np.asarray(values, dtype=np.float64)


def _logps_metrics(
    logps_a: torch.Tensor, logps_b: torch.Tensor, labels: torch.Tensor | np.ndarray
) -> dict[str, float]:
    """TRL's ``logps/chosen`` / ``logps/rejected`` over the decided rows."""
    a, b, y = _float64(logps_a), _float64(logps_b), _float64(labels)
    decided = y != 0.5
    if not decided.any():
        return {}
    a_chosen = y[decided] == 1.0
    return {
        "logps/chosen": float(np.where(a_chosen, a[decided], b[decided]).mean()),
        "logps/rejected": float(np.where(a_chosen, b[decided], a[decided]).mean()),
    }
