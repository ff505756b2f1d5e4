"""Label-driven agents: write the labelling rule, get the rest of a DAgger-family agent.

SEARN (Daumé, Langford and Marcu, 2009), LOLS (Chang et al., 2015) and DAgger (Ross, Gordon
and Bagnell, 2011) share a loop: roll in, label the visited states, aggregate, retrain. They
differ in the label. Subclass :class:`LabelDrivenAgent` and write only ``label``::

    class MyAgent(LabelDrivenAgent):
        def label(self, env, observation):
            state = env.get_state()
            returns = [rollout_return(env, self.expert, state, first_action=a) for a in (0, 1)]
            return int(np.argmax(returns))

The loop, the aggregate, the supervised retraining, the counters, callbacks, logging and
``save`` / ``load`` are :class:`lfi_gym.agents.aggregation.AggregatingAgent`'s, the same as
DAgger's.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from lfi_gym.agents.aggregation import AggregatingAgent
from lfi_gym.agents.serialization import check_count
from lfi_gym.envs.core import RestartableEnv, State


class StepCountingEnv(gym.Wrapper):
    """The agent's env as a labelling rule gets it: every ``step`` taken through it is
    counted (``steps``), and it restarts like an lfi-gym env (``get_state`` /
    ``reset_to``, the latter through the agent's wrapper stack)."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.steps = 0

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        self.steps += 1
        return self.env.step(action)

    def get_state(self) -> State:
        """A snapshot of the env (:meth:`lfi_gym.envs.core.RestartableEnv.get_state`)."""
        return self.env.unwrapped.get_state()

    def reset_to(self, state: State) -> tuple[Any, dict[str, Any]]:
        """Restore ``state`` (:meth:`lfi_gym.envs.core.RestartableEnv.reset_to`)."""
        return self.env.reset(options={"state": state})


class LabelDrivenAgent(AggregatingAgent):
    """A DAgger-family agent whose labels come from :meth:`label`, the one method to write.

    Each round rolls in for ``steps_per_round`` steps (at most what ``learn`` has left); at
    every visited state it calls ``label(env, observation)`` with the env in that state and
    restores the env to it afterwards (``get_state`` before, ``reset_to`` after), so the rule
    may step, reset and restart the env freely. The (observation, label) pairs join the
    aggregate and the learner is retrained on all of it for ``n_epochs`` passes with the
    supervised trainer BC and DAgger use (``learning_rate``, ``batch_size``, ... as in BC).

    Roll-in: the learner's action, or with probability beta_i (round i) the expert's. The
    default ``beta_schedule="first_round"`` has the expert roll in for round 0 only (beta_0 = 1,
    then 0): the untrained learner's states are not worth labelling, later rounds label the
    learner's own states. ``"never"`` rolls in with the learner from the start (needed when
    there is no expert); ``"linear"``, ``"exponential"`` and callables are DAgger's.

    Counters, what ``lfi-gym compare`` budgets by (``BUDGET_UNIT = "expert_labels"``):
    ``learn(n)`` labels exactly ``n`` states (``num_timesteps`` counts them) and
    ``expert_labels`` is the number of labelled states. :meth:`budgets` counts as
    ``env_steps`` every ``env.step`` the agent causes: one roll-in step per labelled state
    plus every step the rule takes through the env it is given (``label_env_steps``, e.g.
    :func:`lfi_gym.agents.rollout_return`'s), and as ``reward_queries`` the rule's steps
    (it may read their rewards; set ``USES_ENV_REWARD = False`` for a rule that does not).
    Steps taken through ``env.unwrapped`` bypass the count: step the env you are given.
    Expert calls inside the rule are not labels.

    Callbacks (SB3's): ``on_step`` after each labelled state, ``on_rollout_start`` /
    ``on_rollout_end`` around each round's roll-in; the logger records
    ``label_driven/round``, ``/beta``, ``/expert_labels`` and ``/env_steps`` after each round,
    ``train/*`` while training and ``rollout/ep_rew_mean`` for the roll-in's episodes.

    ``save`` writes what DAgger's files hold (learner, optimizer, aggregate, RNGs, round,
    the running episode's State) under the subclass's class name; ``MyAgent.load(path,
    env=env, expert=...)`` resumes exactly (experts are not saved). A subclass's own
    ``__init__`` keyword arguments are hyperparameters: keep each as ``self.<name>``.

    The env must follow lfi-gym's restart contract (an lfi-gym env) and be a single env.
    """

    USES_ENV_REWARD = True
    LOG_PREFIX = "label_driven"
    SINGLE_ENV_REASON = (
        "it labels each visited state by restarting its one env there (get_state / reset_to)"
    )

    def __init__(
        self,
        env: gym.Env | None,
        expert: Any = None,
        *,
        policy: Any = "auto",
        policy_kwargs: dict[str, Any] | None = None,
        steps_per_round: int = 500,
        beta_schedule: str | Callable[[int], float] = "first_round",
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
        if isinstance(env, gym.Env):  # other kinds get BaseAgent's message
            _check_restartable(type(self).__name__, env)
        super().__init__(
            env,
            expert,
            demonstrations=None,
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
        #: Env steps the labelling rule took (through the env ``label`` is given).
        self.label_env_steps = 0
        self._labelling_env: StepCountingEnv | None = None

    @abstractmethod
    def label(self, env: StepCountingEnv, observation: Any) -> Any:
        """The action to label the state ``env`` is in (``observation`` is its observation).

        ``env`` is the agent's env with a step counter; ``env.get_state()`` snapshots the
        state, ``env.reset_to(state)`` returns to it, and the agent restores it after this
        returns. ``self.expert`` is the expert given to the constructor (or None).
        """

    def budgets(self) -> dict[str, int]:
        labels = self.expert_labels
        return {
            "expert_labels": labels,
            "env_steps": labels + self.label_env_steps,  # one roll-in step per label
            "reward_queries": self.label_env_steps if self.USES_ENV_REWARD else 0,
        }

    def set_env(self, env: gym.Env) -> None:
        _check_restartable(type(self).__name__, env)
        super().set_env(env)
        self._labelling_env = None

    # -- the round loop's hooks ----------------------------------------------------------

    def _check_round(self) -> None:
        beta = self.beta()
        if beta > 0 and self.expert is None:
            name = type(self).__name__
            raise ValueError(
                f"{name} rolls in with the expert in round {self.round} (beta={beta:g}, "
                f"beta_schedule={self.beta_schedule!r}) but has none: pass "
                f"{name}(env, expert=lfi_gym.envs.make_expert(env)), or "
                "beta_schedule='never' to roll in with the learner only"
            )

    def _label_visited_state(self, observation: Any, episode_start: np.ndarray) -> Any:
        if self._labelling_env is None or self._labelling_env.env is not self.env:
            self._labelling_env = StepCountingEnv(self.env)
        env = self._labelling_env
        state = self.env.unwrapped.get_state()
        steps_before = env.steps
        label = self.label(env, observation)
        self.label_env_steps += env.steps - steps_before
        self.env.reset(options={"state": state})  # through the user's wrappers
        self._check_label(label)
        return label

    def _check_label(self, label: Any) -> None:
        name, space = type(self).__name__, self.env.action_space
        if not space.contains(label):
            raise ValueError(
                f"{name}.label returned {label!r}, which is not an action of the env's action "
                f"space {space}: return one action for the state the env is in"
            )
        action_masks = getattr(self.env.unwrapped, "action_masks", None)
        if action_masks is not None and not action_masks()[int(label)]:
            raise ValueError(
                f"{name}.label returned {label!r}, which the env does not allow in this state "
                "(env.unwrapped.action_masks(), observation['mask'] on ranking envs): return "
                "an allowed action"
            )

    def _expert_rollin_action(self, observation: Any, episode_start: np.ndarray, label: Any) -> Any:
        # Asked only when it acts, at the restored state: a feed-forward expert (the
        # oracles of lfi_gym.envs.make_expert are).
        action, _ = self.expert.predict(
            observation, episode_start=episode_start, deterministic=True
        )
        return action

    def _round_statistics(self) -> dict[str, float]:
        return {**super()._round_statistics(), "env_steps": self.budgets()["env_steps"]}

    # -- files ---------------------------------------------------------------------------

    def _extra_metadata(self) -> dict[str, Any]:
        return {**super()._extra_metadata(), "label_env_steps": self.label_env_steps}

    @classmethod
    def _from_saved(cls, env, policy, hyperparameters, meta, members, device):
        agent = super()._from_saved(env, policy, hyperparameters, meta, members, device)
        with members.reading("agent.json"):
            agent.label_env_steps = check_count(meta["extra"]["label_env_steps"])
        return agent


def _check_restartable(agent: str, env: Any) -> None:
    """Raise a TypeError unless ``env`` restarts from any state (an lfi-gym env)."""
    if not isinstance(getattr(env, "unwrapped", None), RestartableEnv):
        raise TypeError(
            f"{agent} restarts its env at every visited state, so the env must follow "
            "lfi-gym's restart contract (get_state / reset_to): make it with gym.make of an "
            f"lfi-gym id (e.g. gym.make('Control-CartPole-v0')); got {env!r}"
        )
