"""The round loop of aggregating imitation, shared by DAgger and label-driven agents.

A round rolls in for ``steps_per_round`` steps with a beta-mixture (the expert's action
with probability beta_i at each step of round i, else the learner's), labels every visited
state while the env is in it, adds the (observation, label) pairs to the aggregate and
retrains the learner on the whole aggregate for ``n_epochs`` passes with the supervised
trainer BC uses (:class:`lfi_gym.agents.supervised.SupervisedTrainer`). Ross, Gordon and
Bagnell (2011) give the loop (DAgger); Daumé, Langford and Marcu (2009, SEARN) and Chang
et al. (2015, LOLS) label a state by rolling out from it instead of asking the expert.

Subclasses say how a state is labelled (:meth:`AggregatingAgent._label_visited_state`)
and what the expert does when it rolls in (:meth:`AggregatingAgent._expert_rollin_action`).
One learned timestep is one labelled state: ``learn(n)`` labels exactly ``n`` states.
"""

from __future__ import annotations

import warnings
from abc import abstractmethod
from collections.abc import Callable
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.utils import set_random_seed
from tqdm.auto import tqdm

from lfi_gym.agents.base import BaseAgent
from lfi_gym.agents.data import Demonstrations, TransitionBuffer
from lfi_gym.agents.learners import LEARNER_CLASSES, POLICY_ALIASES, learner_for_env
from lfi_gym.agents.serialization import (
    check_count,
    data_bytes,
    decode_value,
    encode_value,
)
from lfi_gym.agents.supervised import BC_DEFAULTS, SupervisedTrainer, check_demonstrations
from lfi_gym.envs.core import RestartableEnv, StateError
from lfi_gym.envs.policies import OraclePolicy, as_policy, check_spaces
from lfi_gym.envs.validation import check_positive_int, check_probability

#: The named beta schedules (``beta_schedule=``); any callable ``round -> beta`` works too.
BETA_SCHEDULES = ("linear", "exponential", "first_round", "never")


def linear_beta(rounds: int) -> Callable[[int], float]:
    """beta_i = max(0, 1 - i / rounds): the expert acts always in round 0, never from round
    ``rounds`` on."""
    check_positive_int(rounds, "beta_rounds")
    return lambda i: max(0.0, 1.0 - i / rounds)


def exponential_beta(decay: float) -> Callable[[int], float]:
    """beta_i = decay ** i."""
    decay = check_probability(decay, "beta_decay")
    return lambda i: decay**i


def first_round_beta(i: int) -> float:
    """beta_i = 1 if i == 0 else 0: the expert rolls in for round 0 only (the parameter-free
    choice Ross, Gordon and Bagnell (2011) report works well in practice)."""
    return 1.0 if i == 0 else 0.0


def never_beta(i: int) -> float:
    """beta_i = 0: the learner always rolls in."""
    return 0.0


class AggregatingAgent(BaseAgent):
    """Roll in, label every visited state, aggregate, retrain (see the module docstring).

    Holds what every aggregating agent has: the learner and its trainer, the aggregate
    (``demonstrations``), the beta schedule, the expert, the running episode (a round
    resumes the episode the previous one stopped in, so late-episode states are labelled
    too) and the files that let ``load`` resume exactly where ``save`` stopped.
    """

    BUDGET_UNIT = "expert_labels"
    USES_ENV_REWARD = False
    #: Prefix of the round statistics in the logger (``<prefix>/round``, ...).
    LOG_PREFIX: ClassVar[str] = "aggregation"

    def __init__(
        self,
        env: gym.Env | None,
        expert: Any,
        *,
        demonstrations: Demonstrations | None,
        policy: Any,
        policy_kwargs: dict[str, Any] | None,
        steps_per_round: int,
        beta_schedule: str | Callable[[int], float],
        beta_rounds: int,
        beta_decay: float,
        n_epochs: int,
        deterministic_rollouts: bool,
        retrain_from_scratch: bool,
        seed: int | None,
        device: str | torch.device,
        tensorboard_log: str | None,
        verbose: int,
        **trainer_kwargs: Any,
    ) -> None:
        super().__init__(
            env, seed=seed, device=device, tensorboard_log=tensorboard_log, verbose=verbose
        )
        name = type(self).__name__
        self.steps_per_round = check_positive_int(steps_per_round, "steps_per_round")
        self.n_epochs = check_positive_int(n_epochs, "n_epochs")
        self.beta_rounds = check_positive_int(beta_rounds, "beta_rounds")
        self.beta_decay = check_probability(beta_decay, "beta_decay")
        self._beta_fn = self._beta_function(beta_schedule)
        self.beta_schedule = beta_schedule if isinstance(beta_schedule, str) else "custom"
        self.deterministic_rollouts = bool(deterministic_rollouts)
        self.retrain_from_scratch = bool(retrain_from_scratch)
        self._policy_spec = (policy, policy_kwargs)
        unknown = sorted(set(trainer_kwargs) - set(BC_DEFAULTS))
        if unknown:
            raise TypeError(
                f"{name} got unexpected keyword argument(s) {', '.join(unknown)}; it accepts "
                f"its own ({', '.join(self.hyperparameter_names)}) and the BC learner's "
                f"({', '.join(BC_DEFAULTS)})"
            )
        self._trainer_settings = {**BC_DEFAULTS, **trainer_kwargs}
        self._policy = learner_for_env(name, env, policy, policy_kwargs, self.device)
        #: The aggregate: every labelled state so far (and the offline data it started from).
        self.demonstrations: Demonstrations | None = None
        if demonstrations is not None:
            self.demonstrations = check_demonstrations(demonstrations, self._policy)
        self.trainer = self._make_trainer(seed)
        self.expert = None
        if expert is not None:
            self.set_expert(expert)
        self.round = 0
        self._rng = np.random.default_rng(seed)
        self._needs_first_reset = True
        self._obs: Any = None
        self._episode_start, self._episode_return = True, 0.0
        self._expert_state: Any = None
        self._learner_state: Any = None

    def _beta_function(self, beta_schedule: Any) -> Callable[[int], float]:
        makers = {
            "linear": lambda: linear_beta(self.beta_rounds),
            "exponential": lambda: exponential_beta(self.beta_decay),
            "first_round": lambda: first_round_beta,
            "never": lambda: never_beta,
        }
        if isinstance(beta_schedule, str) and beta_schedule in makers:
            return makers[beta_schedule]()
        if not isinstance(beta_schedule, str) and callable(beta_schedule):
            return beta_schedule
        named = ", ".join(map(repr, BETA_SCHEDULES))
        raise ValueError(
            f"beta_schedule must be one of {named} or a callable, got {beta_schedule!r}"
        )

    def _make_trainer(self, seed: int | None) -> SupervisedTrainer:
        return SupervisedTrainer(
            self._policy, seed=seed, device=self.device, **self._trainer_settings
        )

    @property
    def policy(self) -> torch.nn.Module:
        return self._policy

    @property
    def expert_labels(self) -> int:
        return 0 if self.demonstrations is None else len(self.demonstrations)

    def beta(self, round_index: int | None = None) -> float:
        """The probability that the expert acts in ``round_index`` (default: the next round)."""
        value = self._beta_fn(self.round if round_index is None else round_index)
        return check_probability(value, "beta_schedule(round)")

    def set_env(self, env: gym.Env) -> None:
        """Attach another env; the next round starts a fresh episode in it."""
        super().set_env(env)
        self._obs, self._needs_first_reset = None, True

    def set_expert(self, expert: Any) -> None:
        expert = as_policy(expert, role="expert")
        if self.env is not None:
            check_spaces(expert, self.env, role="expert")
            if (
                isinstance(expert, OraclePolicy)
                and expert.privileged
                and expert.env.unwrapped is not self.env.unwrapped
            ):
                raise ValueError(
                    "the expert reads the internal state of another env instance; create it "
                    f"with lfi_gym.envs.make_expert(env) on the env passed to {type(self).__name__}"
                )
        self.expert = expert

    # -- what subclasses decide ----------------------------------------------------------

    @abstractmethod
    def _check_round(self) -> None:
        """Raise, naming the fix, when the next round cannot run (e.g. no expert)."""

    @abstractmethod
    def _label_visited_state(self, observation: Any, episode_start: np.ndarray) -> Any:
        """The label of the state the env is in now (``observation``); the env must be in
        that state again when this returns."""

    @abstractmethod
    def _expert_rollin_action(self, observation: Any, episode_start: np.ndarray, label: Any) -> Any:
        """The action the expert takes at this state when it rolls in (probability beta)."""

    def _round_statistics(self) -> dict[str, float]:
        """What the logger records after each round, under :attr:`LOG_PREFIX`."""
        return {"round": self.round, "beta": self.beta(), "expert_labels": self.expert_labels}

    # -- training ------------------------------------------------------------------------

    def _learn(self, target_timesteps: int, callback: BaseCallback, bar: tqdm) -> None:
        while self.num_timesteps < target_timesteps:
            self._check_round()
            n_steps = min(self.steps_per_round, target_timesteps - self.num_timesteps)
            callback.on_rollout_start()
            new_data, keep_going = self._collect_round(n_steps, callback, bar)
            callback.on_rollout_end()
            aggregate = new_data if self.demonstrations is None else self.demonstrations + new_data
            self.demonstrations = check_demonstrations(aggregate, self._policy)
            if self.retrain_from_scratch:
                self._reset_learner()
            self.trainer.train_samples(
                aggregate,
                self.n_epochs * len(aggregate),
                lambda stats, _: self.trainer.log_update(self.logger, stats, self.num_timesteps),
            )
            for key, value in self._round_statistics().items():
                self.logger.record(f"{self.LOG_PREFIX}/{key}", value)
            self.logger.dump(self.num_timesteps)
            self.round += 1
            if not keep_going:
                break

    def _collect_round(
        self, n_steps: int, callback: BaseCallback, bar: tqdm
    ) -> tuple[Demonstrations, bool]:
        env, beta = self.env, self.beta()
        buffer = TransitionBuffer()
        if self._needs_first_reset or self._obs is None:
            self._obs, _ = env.reset(seed=self.seed if self._needs_first_reset else None)
            self._needs_first_reset = False
            self._episode_start, self._episode_return = True, 0.0
        returns = []
        keep_going = True
        for _ in range(n_steps):
            obs, start = self._obs, np.array([self._episode_start])
            label = self._label_visited_state(obs, start)
            learner_action, self._learner_state = self._policy.predict(
                obs,
                state=self._learner_state,
                episode_start=start,
                deterministic=self.deterministic_rollouts,
            )
            if self._rng.random() < beta:
                action = self._expert_rollin_action(obs, start, label)
            else:
                action = learner_action
            next_obs, reward, terminated, truncated, _ = env.step(action)
            buffer.add(
                obs,
                label,
                reward,
                self._episode_start,
                terminated,
                truncated,
                None,
                None,
                next_obs=next_obs,
            )
            self._episode_return += float(reward)
            self.num_timesteps += 1
            bar.update(1)
            self._episode_start = terminated or truncated
            if self._episode_start:
                returns.append(self._episode_return)
                self._episode_return = 0.0
                next_obs, _ = env.reset()
            self._obs = next_obs
            callback.update_locals(locals())
            if not callback.on_step():
                keep_going = False
                break
        if returns:
            self.logger.record("rollout/ep_rew_mean", float(np.mean(returns)))
        # The next round resumes the running episode: late-episode states get labelled too.
        return buffer.build(env), keep_going

    def _reset_learner(self) -> None:
        policy, policy_kwargs = self._policy_spec
        if not isinstance(policy, str):
            raise ValueError("retrain_from_scratch needs policy given by name (e.g. 'auto')")
        # Reproducible, and new weights each round: the round's seed seeds the weights'
        # initialisation (the global RNGs) and the trainer's shuffling.
        seed = int(self._rng.integers(2**31))
        set_random_seed(seed)
        self._policy = learner_for_env(
            type(self).__name__, self.env, policy, policy_kwargs, self.device
        )
        self.trainer = self._make_trainer(seed)

    # -- files ---------------------------------------------------------------------------

    @classmethod
    def saved_hyperparameter_names(cls) -> tuple[str, ...]:
        return (*cls.hyperparameter_names, *BC_DEFAULTS)

    def get_hyperparameters(self) -> dict[str, Any]:
        params = super().get_hyperparameters()
        params.update(self.trainer.hyperparameters())
        return params

    FILE_MEMBERS = SupervisedTrainer.FILE_MEMBERS | {"aggregate.lfid", "rollout.data"}

    def _extra_metadata(self) -> dict[str, Any]:
        # retrain_from_scratch rebuilds the learner from its name and kwargs.
        spec = self._policy_spec if isinstance(self._policy_spec[0], str) else None
        what = f"{type(self).__name__}'s policy_kwargs"
        return {"round": self.round, "policy_spec": encode_value(spec, what)}

    def _extra_members(self) -> dict[str, bytes]:
        members = self.trainer.file_members()
        if self.demonstrations is not None:
            members["aggregate.lfid"] = self.demonstrations.to_bytes()
        rollout: dict[str, Any] = {
            "rng": self._rng.bit_generator.state,
            "env_state": None,
            "episode_return": float(self._episode_return),
        }
        # The restart contract lets a checkpoint resume mid-episode, exactly where the
        # rollout stopped, instead of starting a fresh episode.
        if self._obs is not None and isinstance(self.env.unwrapped, RestartableEnv):
            rollout["env_state"] = self.env.unwrapped.get_state()
            rollout["episode_start"] = bool(self._episode_start)
        members["rollout.data"] = data_bytes(rollout)
        return members

    @classmethod
    def _from_saved(cls, env, policy, hyperparameters, meta, members, device):
        name = cls.__name__
        if hyperparameters.get("beta_schedule") == "custom":
            raise ValueError(
                f"this {name} used a custom beta_schedule callable; pass "
                f"beta_schedule=<the same callable> to {name}.load"
            )
        demos = None
        if "aggregate.lfid" in members:
            demos = members.demonstrations("aggregate.lfid")
        with members.reading("agent.json"):
            spec = _saved_policy_spec(decode_value(meta["extra"].get("policy_spec")))
            round_ = check_count(meta["extra"]["round"])
        expert = hyperparameters.pop("expert", None)
        agent = cls(env, expert=expert, policy=policy, device=device, **hyperparameters)
        if demos is not None:
            agent.demonstrations = check_demonstrations(demos, agent.policy)
        agent.trainer.restore_file_members(members)
        agent.round = round_
        if spec is not None:
            agent._policy_spec = spec  # retrain_from_scratch needs it
        if "rollout.data" in members:
            rollout = members.data("rollout.data")
            with members.reading("rollout.data"):
                agent._rng.bit_generator.state = rollout["rng"]
                state = rollout["env_state"]
                episode_start = bool(rollout.get("episode_start", True))
                episode_return = float(rollout.get("episode_return", 0.0))
            if state is not None and env is not None and isinstance(env.unwrapped, RestartableEnv):
                try:
                    # Through the wrapper stack, so the user's wrappers see the restart.
                    agent._obs, _ = env.reset(options={"state": state})
                except StateError as exc:
                    warnings.warn(
                        f"{name} checkpoint: cannot resume the saved episode ({exc}); "
                        "the next round starts a fresh one",
                        stacklevel=3,
                    )
                else:
                    agent._episode_start = episode_start
                    agent._episode_return = episode_return
                    agent._needs_first_reset = False
        return agent


#: Settings a file may not give the learner that an agent rebuilds on retrain_from_scratch:
#: they would let the file choose to run a model repository's own code.
_REFUSED_LEARNER_SETTINGS = frozenset({"trust_remote_code", "code_revision"})


def _saved_policy_spec(spec: Any) -> tuple[str, dict[str, Any] | None] | None:
    """The ``(policy name, policy_kwargs)`` an agent file gives, if it names a learner
    lfi-gym builds itself and carries no setting that could run code."""
    if spec is None:
        return None
    if not (isinstance(spec, tuple) and len(spec) == 2 and isinstance(spec[1], (dict, type(None)))):
        raise ValueError(f"malformed policy_spec {spec!r}")
    name, kwargs = spec
    known = ("auto", *POLICY_ALIASES, *LEARNER_CLASSES)
    if name not in known:
        raise ValueError(f"policy_spec names {name!r}, not one of {', '.join(known)}")
    refused = sorted(_REFUSED_LEARNER_SETTINGS.intersection(kwargs or {}))
    if refused:
        raise ValueError(f"policy_spec sets {', '.join(refused)}, which a file may not set")
    return name, kwargs
