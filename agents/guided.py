"""PPO++, AggreVaTeD, LOLS and D2LOLS: PPO with a guide policy around restart points.

From "Learning to Generate Better Than Your LLM" (Chang et al. 2023, RLGF). Each episode
picks a restart point ``h`` uniformly in ``[0, H)`` (``H``: the env's horizon, e.g. max new
tokens); the roll-in policy acts for ``h`` steps, the env state there is captured with
``get_state`` and the roll-out policy continues after ``reset_to`` (``agents/rollouts.py``):

* :class:`PPOPlusPlus`: with probability ``beta`` per episode the guide rolls in and the
  learner rolls out from the restart point; it is trained on its own tokens only. Else the
  episode is an ordinary PPO episode. ``beta = 0`` is PPO, update for update.
* :class:`AggreVaTeD`: with probability ``beta`` per episode the learner rolls in and the
  guide completes from the restart point; the learner is trained on its roll-in tokens,
  and the guide's return is what credits them (GAE bootstrapped with the discounted
  return of the completion). Else an ordinary PPO episode.
* :class:`LOLS`: each iteration is a PPO++ iteration with probability ``tau`` (a seeded
  draw), else an AggreVaTeD one.
* :class:`D2LOLS`: AggreVaTeD for the first ``tau`` iterations, then PPO++.

``beta`` is the probability that an episode is guided, in both directions; AggreVaTeD's
roll-in, a "mixture of learner and guide with prob. beta", is read here as
the guide completing with probability beta, which is how the RLGF setting beta = 0.8 keeps
learner tokens in every guided episode. Paper defaults (Chang et al. 2023, IMDB):
PPO++ beta 0.2, AggreVaTeD beta 0.8, LOLS tau 0.8, D2LOLS tau 20 iterations; the PPO
settings are :class:`lfi_gym.agents.ppo.PPO`'s.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Any

import gymnasium as gym
import numpy as np

from lfi_gym.agents.ppo import PPO
from lfi_gym.agents.rollouts import GUIDE, LEARNER, EpisodePlan
from lfi_gym.agents.serialization import json_bytes
from lfi_gym.envs.policies import as_policy, space_mismatch
from lfi_gym.envs.validation import check_positive_int, check_probability, is_int

#: Roll-in length that never switches (an unguided AggreVaTeD episode stays the learner's).
NEVER = 2**62


class _Guided(PPO):
    """PPO whose episodes may be guided; ``guide`` is any Policy on the same spaces."""

    def __init__(
        self,
        env: gym.Env | gym.vector.VectorEnv | None,
        policy: Any = "auto",
        *,
        guide: Any = None,
        restart_horizon: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(env, policy, **kwargs)
        if restart_horizon is not None:
            check_positive_int(restart_horizon, "restart_horizon")
        self.restart_horizon = restart_horizon
        if guide is not None:
            self.set_guide(guide)

    def set_guide(self, guide: Any) -> None:
        """Set the guide (e.g. the BC model); checked against the learner and the env."""
        guide = as_policy(guide, role="guide")
        mismatch = space_mismatch(self._policy, guide)
        if mismatch is not None:
            kind, ours, theirs = mismatch
            raise ValueError(
                f"the guide's {kind} is {theirs}, the learner's is {ours}: a guide must "
                "act on the same env"
            )
        check_same_tokenizer(guide, self._policy, self.env)
        self.guide = guide

    def _learn(self, target_timesteps, callback, bar) -> None:
        if self.guide is None:
            raise ValueError(
                f"{type(self).__name__} needs a guide policy: pass guide= (e.g. a BC-trained "
                f"LMPolicy) to the constructor, to {type(self).__name__}.load(path, env=env, "
                "guide=guide), or call set_guide(guide)"
            )
        super()._learn(target_timesteps, callback, bar)

    def horizon(self) -> int:
        """The range ``[0, H)`` restart points are drawn from."""
        if self.restart_horizon is not None:
            return int(self.restart_horizon)
        return episode_horizon(self.env)

    def _guided_plans(self, n_rows: int, beta: float, guide_first: bool) -> list[EpisodePlan]:
        plans = []
        horizon = self.horizon()
        for _ in range(n_rows):
            guided = self._plan_rng.random() < beta
            if not guided:
                plans.append(EpisodePlan(LEARNER, LEARNER, 0 if guide_first else NEVER))
            elif guide_first:  # PPO++: the guide rolls in for h in [0, H)
                plans.append(EpisodePlan(GUIDE, LEARNER, int(self._plan_rng.integers(horizon))))
            else:  # AggreVaTeD: the learner rolls in at least one step
                plans.append(
                    EpisodePlan(LEARNER, GUIDE, int(self._plan_rng.integers(1, max(horizon, 2))))
                )
        return plans


class PPOPlusPlus(_Guided):
    """PPO++: the guide rolls in with probability ``beta`` (paper: 0.2), the learner rolls out."""

    def __init__(self, env, policy: Any = "auto", *, beta: float = 0.2, **kwargs: Any):
        self.beta = check_probability(beta, "beta")
        super().__init__(env, policy, **kwargs)

    def _plans(self, n_rows: int) -> list[EpisodePlan]:
        return self._guided_plans(n_rows, self.beta, guide_first=True)


class AggreVaTeD(_Guided):
    """AggreVaTeD: the learner rolls in, the guide completes with probability ``beta``
    (paper: 0.8); the completion's return credits the learner's roll-in tokens."""

    def __init__(self, env, policy: Any = "auto", *, beta: float = 0.8, **kwargs: Any):
        self.beta = check_probability(beta, "beta")
        super().__init__(env, policy, **kwargs)

    def _plans(self, n_rows: int) -> list[EpisodePlan]:
        return self._guided_plans(n_rows, self.beta, guide_first=False)


class _Alternating(_Guided):
    """Guided agents that run each iteration as PPO++ or as AggreVaTeD (``iteration_mode``),
    with ``ppo_beta`` / ``aggrevated_beta`` as the two modes' beta."""

    def __init__(self, env, policy: Any, *, ppo_beta: float, aggrevated_beta: float, **kwargs: Any):
        self.ppo_beta = check_probability(ppo_beta, "ppo_beta")
        self.aggrevated_beta = check_probability(aggrevated_beta, "aggrevated_beta")
        super().__init__(env, policy, **kwargs)

    @abstractmethod
    def iteration_mode(self) -> str:
        """``"ppo++"`` or ``"aggrevated"``: how this iteration runs."""

    def _plans(self, n_rows: int) -> list[EpisodePlan]:
        if self.iteration_mode() == "ppo++":
            return self._guided_plans(n_rows, self.ppo_beta, guide_first=True)
        return self._guided_plans(n_rows, self.aggrevated_beta, guide_first=False)


class LOLS(_Alternating):
    """LOLS: per iteration, PPO++ (guide roll-in, ``ppo_beta``) with probability ``tau``
    (paper: 0.8), else AggreVaTeD (guide roll-out, ``aggrevated_beta``)."""

    def __init__(
        self,
        env,
        policy: Any = "auto",
        *,
        tau: float = 0.8,
        ppo_beta: float = 0.2,
        aggrevated_beta: float = 0.8,
        **kwargs: Any,
    ):
        self.tau = check_probability(tau, "tau")
        super().__init__(env, policy, ppo_beta=ppo_beta, aggrevated_beta=aggrevated_beta, **kwargs)
        self._mode_iteration = -1
        self.mode = "ppo++"

    def iteration_mode(self) -> str:
        """This iteration's choice, drawn once per iteration from the agent's seeded RNG."""
        if self._mode_iteration != self.iteration:
            self._mode_iteration = self.iteration
            # On several processes the main process's draw decides for all.
            draw = self.processes.main_value(self._plan_rng.random())
            self.mode = "ppo++" if draw < self.tau else "aggrevated"
        return self.mode

    FILE_MEMBERS = PPO.FILE_MEMBERS | {"lols.json"}

    def _extra_members(self) -> dict[str, bytes]:
        members = super()._extra_members()
        members["lols.json"] = json_bytes({"mode": self.mode, "iteration": self._mode_iteration})
        return members

    @classmethod
    def _from_saved(cls, env, policy, hyperparameters, meta, members, device):
        agent = super()._from_saved(env, policy, hyperparameters, meta, members, device)
        saved = members.json("lols.json")
        with members.reading("lols.json"):
            if saved["mode"] not in ("ppo++", "aggrevated"):
                raise ValueError(f"unknown mode {saved['mode']!r}")
            iteration = saved["iteration"]
            if isinstance(iteration, bool) or not isinstance(iteration, int) or iteration < -1:
                raise ValueError(f"malformed iteration {iteration!r}")
            agent.mode, agent._mode_iteration = saved["mode"], iteration
        return agent


class D2LOLS(_Alternating):
    """D2LOLS: AggreVaTeD for the first ``tau`` iterations (paper: 20), then PPO++."""

    def __init__(
        self,
        env,
        policy: Any = "auto",
        *,
        tau: int = 20,
        ppo_beta: float = 0.2,
        aggrevated_beta: float = 0.8,
        **kwargs: Any,
    ):
        if not is_int(tau) or tau < 0:
            raise ValueError(f"tau must be a number of iterations >= 0, got {tau!r}")
        self.tau = int(tau)
        super().__init__(env, policy, ppo_beta=ppo_beta, aggrevated_beta=aggrevated_beta, **kwargs)

    def iteration_mode(self) -> str:
        return "aggrevated" if self.iteration < self.tau else "ppo++"


# -- checks ---------------------------------------------------------------------------------


def episode_horizon(env: Any) -> int:
    """The env's episode length bound: max new tokens, ``horizon``, Atari ``max_steps`` or
    ranking ``k_positions``; pass ``restart_horizon=`` for other envs."""
    if isinstance(env, gym.vector.VectorEnv):
        base = env
    else:
        base = env.unwrapped
    task = getattr(base, "task", None)
    if task is not None and hasattr(task, "max_new_tokens"):
        return int(task.max_new_tokens)
    for name in ("horizon", "max_steps", "k_positions"):
        value = getattr(base, name, None)
        if value is None and hasattr(base, "envs"):
            value = getattr(base.envs[0].unwrapped, name, None)
        if isinstance(value, (int, np.integer)):
            return int(value)
    raise ValueError(
        f"cannot tell the episode horizon of {type(base).__name__}: pass restart_horizon=H "
        "(restart points are drawn uniformly in [0, H))"
    )


def check_same_tokenizer(guide: Any, learner: Any, env: Any) -> None:
    """Refuse a language-model guide whose tokenizer is not the learner's / the env's.

    Token ids mean different strings under different tokenizers, so a guide token would be
    nonsense to the learner. The check compares the vocabulary of the guide's tokenizer
    (saved next to its weights) with the env's tokenizer.
    """
    model = getattr(guide, "model", None)
    if model is None or not hasattr(model, "config"):
        return
    vocab = model.config.get_text_config().vocab_size
    ours = getattr(getattr(learner, "model", None), "config", None)
    env_tokenizer = _env_tokenizer(env)
    path = getattr(model, "name_or_path", "") or ""
    guide_tokenizer = _load_tokenizer(path)
    if guide_tokenizer is not None and env_tokenizer is not None:
        if guide_tokenizer.get_vocab() != env_tokenizer.get_vocab():
            raise ValueError(
                f"the guide's tokenizer ({path}) differs from the env's: the same token id "
                "means different text. Use a guide trained with the env's tokenizer (e.g. "
                "fine-tune the guide with BC on this env), or make the env with the guide's "
                "tokenizer (gym.make(id, policy_tokenizer=...))"
            )
    elif ours is not None and vocab != ours.get_text_config().vocab_size:
        raise ValueError(
            f"the guide's vocabulary has {vocab} tokens, the learner's "
            f"{ours.get_text_config().vocab_size}: they do not share a tokenizer"
        )


def _env_tokenizer(env: Any) -> Any:
    if env is None:
        return None
    base = env if isinstance(env, gym.vector.VectorEnv) else env.unwrapped
    task = getattr(base, "task", None)
    return getattr(task, "tokenizer", None)


def _load_tokenizer(path: str) -> Any:
    import os

    if not path or not os.path.isdir(path):
        return None
    if not any(os.path.exists(os.path.join(path, f)) for f in ("tokenizer.json", "vocab.json")):
        return None
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError):
        return None
