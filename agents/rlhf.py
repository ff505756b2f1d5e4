"""RLHF: a Bradley-Terry reward model learned from preferences, then RL on it with a per-token
KL penalty to the SFT policy (Christiano et al. 2017; Stiennon et al. 2020; Ouyang et al.
2022). Steps 2-4 of the pipeline as one agent; step 1 (SFT) is the policy it is given.

    sft = BC(env, demos, policy="LMPolicy").learn(...).policy
    teacher = SimulatedTeacher(max_queries=1000, seed=0)       # labels by env's own reward
    rlhf = RLHF(env, sft, teacher=teacher, rl="ppo++", rl_kwargs=TINYREVIEWS).learn(30_000)

* Offline (``preferences=``): the reward model is fitted once on a fixed set.
* Online (``teacher=``): ``initial_pairs`` pairs of the SFT policy's completions are
  labelled before RL; then every ``refit_every`` RL iterations ``pairs_per_refit`` pairs of
  the current policy's completions are labelled and the reward model is refitted on every
  pair so far, until the teacher's query budget is spent (RL goes on with the last model).

The reward model starts from the SFT policy's transformer (:meth:`RewardModel.from_policy`)
and is centred to mean 0 on the SFT policy's samples (drawn once) after every fit
(Ziegler et al. 2019).
The RL step is PPO, PPO++ or AggreVaTeD (their classes, unchanged) on the same env with the
reward model as its reward; it starts from a copy of the SFT policy, which is also its KL
reference and, for PPO++ and AggreVaTeD, its guide (as in Chang et al. 2023's RLHF runs).
The user's env keeps its own reward: it is the gold reward the teacher labels by.

``learn(total_timesteps)`` counts tokens: the RL step's (roll-ins included) plus the
completion tokens sampled to collect preferences online.

``save`` / ``RLHF.load(path, env=env)`` resume exactly ("learn, save, load, learn" ends
with the parameters, counters and labels of "learn" alone). Besides ``agent.json`` and the
RL learner (``policy.*``) the zip holds the frozen SFT policy (``sft.*``), the RL step's
own members under ``rl/`` (optimizer, RNG streams, KL reference: what it saves on its own),
the reward model (``reward_model.json``: offset, training settings and history;
``reward_model.safetensors``: every member's weights; ``reward_model_trainer.data``: its
optimizer and RNG states), the preferences so far (``preferences.lfip``) and ``rlhf.data``
(the counters, the SFT samples the reward is centred on, and the teacher: settings,
queries used and generator state). Loading runs no code, as for every agent file. The
saved teacher is restored (a teacher must be a ``SimulatedTeacher`` to be saved); assign
``agent.teacher`` after loading to change it.
"""

from __future__ import annotations

import copy
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.utils import get_device
from tqdm.auto import tqdm

from lfi_gym.agents.alignment_eval import sample
from lfi_gym.agents.base import BaseAgent
from lfi_gym.agents.guided import AggreVaTeD, PPOPlusPlus
from lfi_gym.agents.learners import make_learner
from lfi_gym.agents.ppo import PPO
from lfi_gym.agents.preferences import Preferences, PreferencesError
from lfi_gym.agents.reward_model import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_EPOCHS,
    DEFAULT_LEARNING_RATE,
    RewardModel,
)
from lfi_gym.agents.serialization import (
    MAX_DEMONSTRATIONS_BYTES,
    AgentFileError,
    check_count,
    data_bytes,
    json_bytes,
    policy_members,
    read_policy,
    weights_bytes,
)
from lfi_gym.agents.teachers import SimulatedTeacher
from lfi_gym.envs.validation import (
    check_non_negative_float,
    check_positive_float,
    check_positive_int,
)

__all__ = ["RLHF", "RL_STEPS"]

#: The RL step by name: the classes the rest of the library trains, unchanged.
RL_STEPS: dict[str, type[PPO]] = {"ppo": PPO, "ppo++": PPOPlusPlus, "aggrevated": AggreVaTeD}
#: Where an RLHF file keeps the RL step's own members (its optimizer, RNG streams, reference).
RL_PREFIX = "rl/"


class RLHF(BaseAgent):
    """Reward model from preferences, then PPO / PPO++ / AggreVaTeD on it; see the module
    docstring.

    Args:
        env: a text env (single); its own reward is the gold reward (the teacher's).
        policy: the SFT policy (an ``LMPolicy``; copied, never changed), or ``"auto"``
            for the env's shipped LM.
        preferences: a fixed ``Preferences`` set of this env (offline RLHF), or
        teacher: a ``SimulatedTeacher`` that labels pairs as RL goes (online RLHF).
        rl: ``"ppo"`` (default), ``"ppo++"`` or ``"aggrevated"``.
        rl_kwargs: hyperparameters of the RL step (e.g. ``ppo.TINYREVIEWS``).
        kl_coef: per-token KL penalty to the SFT policy (default 0.05, the RLHF setting of
            Chang et al. 2024 (DR-PO); InstructGPT used about 0.02, RLGF's IMDB 0.1).
        initial_pairs, pairs_per_refit, refit_every: the online schedule.
        n_models, bootstrap: the reward model's ensemble (:class:`RewardModel`).
        rm_epochs, rm_learning_rate, rm_batch_size: each fit's settings.
        center_samples: SFT completions the reward is centred on.
    """

    #: ``lfi-gym compare`` budgets it in labelled pairs (its tokens are reported too).
    BUDGET_UNIT = "preference_queries"
    FAMILIES = frozenset({"text"})
    #: It learns from preferences (counted as preference queries), not the env's reward.
    USES_ENV_REWARD = False
    #: The preferences and the teacher are saved in their own members.
    NOT_HYPERPARAMETERS: ClassVar[frozenset[str]] = BaseAgent.NOT_HYPERPARAMETERS | {
        "preferences",
        "teacher",
    }

    def __init__(
        self,
        env: gym.Env | None,
        policy: Any = "auto",
        *,
        preferences: Preferences | None = None,
        teacher: Any = None,
        rl: str = "ppo",
        rl_kwargs: dict[str, Any] | None = None,
        kl_coef: float = 0.05,
        initial_pairs: int = 256,
        pairs_per_refit: int = 64,
        refit_every: int = 4,
        n_models: int = 1,
        bootstrap: bool = False,
        rm_epochs: int = DEFAULT_EPOCHS,
        rm_learning_rate: float = DEFAULT_LEARNING_RATE,
        rm_batch_size: int = DEFAULT_BATCH_SIZE,
        center_samples: int = 256,
        seed: int | None = None,
        device: str | torch.device = "auto",
        tensorboard_log: str | None = None,
        verbose: int = 0,
    ) -> None:
        super().__init__(
            env, seed=seed, device=device, tensorboard_log=tensorboard_log, verbose=verbose
        )
        if (preferences is None) == (teacher is None):
            raise ValueError(
                "RLHF learns from preferences: pass either preferences= (a fixed Preferences "
                "set: offline) or teacher= (a SimulatedTeacher that labels pairs as RL goes: "
                "online), not both and not neither"
            )
        if rl not in RL_STEPS:
            raise ValueError(f"rl must be one of {sorted(RL_STEPS)}, got {rl!r}")
        if env is None or getattr(env, "spec", None) is None:
            raise ValueError(
                "RLHF needs the text env made by gym.make(id): it makes the RL step's env "
                "from its id, with the reward model as the reward"
            )
        if teacher is not None and not callable(getattr(teacher, "label", None)):
            raise TypeError(
                f"teacher must answer label(rewards_a, rewards_b) (a SimulatedTeacher); got "
                f"{type(teacher).__name__}"
            )
        if preferences is not None:
            if not isinstance(preferences, Preferences):
                raise TypeError(
                    f"preferences must be a Preferences set, got {type(preferences).__name__}"
                )
            preferences.check_env(env)
        self.rl = rl
        self.rl_kwargs = dict(rl_kwargs or {})
        for key in ("kl_coef", "guide", "seed", "device"):
            if key in self.rl_kwargs:
                raise ValueError(
                    f"rl_kwargs has {key}, which RLHF sets itself (the KL coefficient to the SFT "
                    f"policy, its guide, seed and device): give it to RLHF, not in rl_kwargs "
                    f"(e.g. {{k: v for k, v in TINYREVIEWS.items() if k != {key!r}}})"
                )
        self.kl_coef = check_non_negative_float(kl_coef, "kl_coef")
        self.initial_pairs = check_positive_int(initial_pairs, "initial_pairs")
        self.pairs_per_refit = check_positive_int(pairs_per_refit, "pairs_per_refit")
        self.refit_every = check_positive_int(refit_every, "refit_every")
        self.n_models = check_positive_int(n_models, "n_models")
        self.bootstrap = bool(bootstrap)
        self.rm_epochs = check_positive_int(rm_epochs, "rm_epochs")
        self.rm_learning_rate = check_positive_float(rm_learning_rate, "rm_learning_rate")
        self.rm_batch_size = check_positive_int(rm_batch_size, "rm_batch_size")
        self.center_samples = check_positive_int(center_samples, "center_samples")
        self.teacher = teacher
        self.preferences = preferences

        spaces = (env.observation_space, env.action_space)
        sft = make_learner(policy, *spaces, None, self.device, env=env)
        #: The SFT policy, frozen: KL reference, guide, and what the reward is centred on.
        self.sft = copy.deepcopy(sft).requires_grad_(False).eval()
        self.reward_model = RewardModel.from_policy(
            self.sft, env, n_models=self.n_models, seed=seed or 0, bootstrap=self.bootstrap
        )
        spec = env.spec
        self.rl_env = gym.make(spec.id, **{**(spec.kwargs or {}), "reward": self.reward_model})
        self.rl_agent = RL_STEPS[rl](
            self.rl_env, copy.deepcopy(self.sft).requires_grad_(True), **self._rl_step_kwargs()
        )
        self.preference_queries = 0
        self.collection_tokens = 0
        self._iterations_since_refit = 0
        self._fitted = False
        #: The SFT completions every fit is centred on (prompt ids, completion ids), sampled once.
        self._sft_samples: tuple[list[np.ndarray], list[np.ndarray]] | None = None

    def _rl_step_kwargs(self) -> dict[str, Any]:
        """The RL step's constructor arguments besides its env and learner."""
        kwargs = {
            **self.rl_kwargs,
            "kl_coef": self.kl_coef,
            "seed": self.seed,
            "device": self.device,
            "tensorboard_log": self.tensorboard_log,
            "verbose": self.verbose,
        }
        if RL_STEPS[self.rl] is not PPO:
            kwargs["guide"] = self.sft
        return kwargs

    @property
    def policy(self) -> torch.nn.Module:
        return self.rl_agent.policy

    def budgets(self) -> dict[str, int]:
        return {
            "expert_labels": 0,
            "env_steps": int(self.num_timesteps),
            "reward_queries": 0,
            "preference_queries": int(self.preference_queries),
        }

    # -- training -------------------------------------------------------------------------

    def _learn(self, target_timesteps: int, callback: BaseCallback, bar: tqdm) -> None:
        if not self._fitted:
            if self.preferences is None:  # online: the first pairs come from the SFT policy
                self._collect(self.sft, self.initial_pairs)
            self._fit()
            bar.update(self.num_timesteps)
        while self.num_timesteps < target_timesteps:
            if self._online_refit_due():
                self._collect(self.policy, self.pairs_per_refit)
                self._fit()
            before = self.rl_agent.num_timesteps
            self.rl_agent.learn(
                self.rl_agent.n_steps, reset_num_timesteps=False, progress_bar=False
            )
            steps = self.rl_agent.num_timesteps - before
            self.num_timesteps += steps
            self._iterations_since_refit += 1
            bar.update(steps)
            self.logger.record("rlhf/preference_queries", self.preference_queries)
            self.logger.record("rlhf/collection_tokens", self.collection_tokens)
            callback.update_locals(locals())
            if not callback.on_step():
                return

    def _online_refit_due(self) -> bool:
        if self.teacher is None or self._iterations_since_refit < self.refit_every:
            return False
        left = self.teacher.queries_left
        return left is None or left > 0

    def _collect(self, policy: Any, n_pairs: int) -> None:
        left = self.teacher.queries_left
        n = n_pairs if left is None else min(n_pairs, left)
        seed = None if self.seed is None else int(self.seed) * 1_000_003 + self.preference_queries
        new = Preferences.collect(self.env, policy, n, self.teacher, seed=seed)
        self.preference_queries += int(new.teacher["queries"])
        self.collection_tokens += int(new.teacher["tokens"])
        self.num_timesteps += int(new.teacher["tokens"])
        self.preferences = new if self.preferences is None else self.preferences.concatenate(new)

    def _fit(self) -> None:
        """Fit the reward model on every pair so far, then centre it on SFT samples."""
        if self.teacher is None:
            self.preference_queries = len(self.preferences)
        self.reward_model.fit(
            self.preferences,
            epochs=self.rm_epochs,
            learning_rate=self.rm_learning_rate,
            batch_size=self.rm_batch_size,
        )
        if self._sft_samples is None:  # the SFT policy is frozen: one sample serves every fit
            drawn = sample(self.sft, self.env, self.center_samples, seed=0)
            self._sft_samples = (drawn.prompt_ids, drawn.completion_ids)
        prompt_ids, completion_ids = self._sft_samples
        self.reward_model.center(prompt_ids=prompt_ids, completion_ids=completion_ids)
        self._iterations_since_refit = 0
        self._fitted = True
        history = self.reward_model.history[-1]
        self.logger.record("rlhf/rm_loss", history["loss"])
        if history["accuracy"] is not None:
            self.logger.record("rlhf/rm_train_accuracy", history["accuracy"])
        self.logger.record("rlhf/rm_offset", self.reward_model.offset)

    # -- files ----------------------------------------------------------------------------

    FILE_MEMBERS = frozenset(
        {
            "sft.json",
            "sft.safetensors",
            "reward_model.json",
            "reward_model.safetensors",
            "reward_model_trainer.data",
            "preferences.lfip",
            "rlhf.data",
        }
        | {RL_PREFIX + name for step in RL_STEPS.values() for name in step.FILE_MEMBERS}
    )

    def _extra_metadata(self) -> dict[str, Any]:
        return {"env_id": self.env.spec.id}

    def _extra_members(self) -> dict[str, bytes]:
        if self.teacher is not None and not isinstance(self.teacher, SimulatedTeacher):
            raise TypeError(
                f"an RLHF file restores its teacher, which must be a SimulatedTeacher; this "
                f"one is a {type(self.teacher).__name__}"
            )
        # The RL step's own members (optimizer, RNG streams, reference) under rl/; its
        # learner is this agent's policy, which BaseAgent writes as policy.*.
        members = {RL_PREFIX + k: v for k, v in self.rl_agent._extra_members().items()}
        members.update(policy_members(self.sft, prefix="sft"))
        members["reward_model.json"] = json_bytes(self.reward_model._settings())
        members["reward_model.safetensors"] = weights_bytes(_members(self.reward_model))
        members["reward_model_trainer.data"] = self.reward_model._trainer_bytes()
        if self.preferences is not None:  # None only online, before the first pairs
            members["preferences.lfip"] = self.preferences.to_bytes()
        prompt_ids, completion_ids = self._sft_samples or (None, None)
        state = {
            "preference_queries": self.preference_queries,
            "collection_tokens": self.collection_tokens,
            "iterations_since_refit": self._iterations_since_refit,
            "fitted": self._fitted,
            "rl_num_timesteps": self.rl_agent.num_timesteps,
            "teacher": None if self.teacher is None else self.teacher.state(),
            "sft_prompt_ids": prompt_ids,
            "sft_completion_ids": completion_ids,
        }
        members["rlhf.data"] = data_bytes(state)
        return members

    @classmethod
    def _from_saved(cls, env, policy, hyperparameters, meta, members, device):
        for key in ("preferences", "teacher"):
            if key in hyperparameters:
                raise ValueError(
                    f"RLHF.load restores the saved {key} (the file holds them); load without "
                    f"{key}=, then set agent.teacher to change the teacher"
                )
        saved_rl = meta["hyperparameters"].get("rl")
        if saved_rl not in RL_STEPS:
            raise members.error(
                "agent.json", f"unknown RL step {saved_rl!r} (one of {sorted(RL_STEPS)})"
            )
        saved_env = meta["extra"].get("env_id")
        if not isinstance(saved_env, str):
            raise members.error("agent.json", "no env id")
        if env is None or getattr(env, "spec", None) is None:
            raise ValueError(
                f"RLHF.load needs the env it was trained on: RLHF.load(path, "
                f"env=gym.make({saved_env!r}))"
            )
        if env.spec.id != saved_env:
            raise ValueError(
                f"this RLHF agent was trained on {saved_env}, the env given is {env.spec.id}: "
                f"load it with env=gym.make({saved_env!r})"
            )
        state = members.data("rlhf.data")
        with members.reading("rlhf.data"):
            teacher = None
            if state["teacher"] is not None:
                teacher = SimulatedTeacher.from_state(state["teacher"])
            counters = {
                key: check_count(state[key])
                for key in (
                    "preference_queries",
                    "collection_tokens",
                    "iterations_since_refit",
                    "rl_num_timesteps",
                )
            }
            fitted = state["fitted"]
            if not isinstance(fitted, bool):
                raise ValueError(f"malformed 'fitted' {fitted!r}")
            sft_samples = _centring_samples(state["sft_prompt_ids"], state["sft_completion_ids"])
        preferences = None
        if "preferences.lfip" in members:
            data = members.read("preferences.lfip", MAX_DEMONSTRATIONS_BYTES)
            try:
                preferences = Preferences.from_bytes(data, name="preferences.lfip", env=env)
            except PreferencesError as exc:
                raise members.error("preferences.lfip", str(exc)) from None
        elif teacher is None or fitted:  # offline, or fitted: there were preferences
            raise AgentFileError(f"{members.label}: missing member 'preferences.lfip'")
        sft = read_policy(members, get_device(device), prefix="sft")
        agent = cls(
            env,
            sft,
            preferences=preferences if teacher is None else None,
            teacher=teacher,
            device=device,
            **hyperparameters,
        )
        agent.preferences = preferences
        rm = agent.reward_model
        members.load_weights("reward_model.safetensors", _members(rm))
        with members.reading("reward_model.json"):
            rm._restore_settings(members.json("reward_model.json"), "reward_model.json")
        data = members.read("reward_model_trainer.data", rm._trainer_cap())
        with members.reading("reward_model_trainer.data"):
            rm._restore_trainer_state(data, "reward_model_trainer.data")
        agent.preference_queries = counters["preference_queries"]
        agent.collection_tokens = counters["collection_tokens"]
        agent._iterations_since_refit = counters["iterations_since_refit"]
        agent._fitted = fitted
        agent._sft_samples = sft_samples
        # The RL step rebuilt from its members; last, as it restores torch's global generator.
        kwargs = agent._rl_step_kwargs()
        del kwargs["device"]
        agent.rl_agent = RL_STEPS[agent.rl]._from_saved(
            agent.rl_env, policy, kwargs, meta, members.under(RL_PREFIX), agent.device
        )
        agent.rl_agent.num_timesteps = counters["rl_num_timesteps"]
        return agent


def _members(reward_model: RewardModel) -> torch.nn.ModuleList:
    """The reward model's member networks as one module (one weights member holds all)."""
    return torch.nn.ModuleList(reward_model.models)


def _centring_samples(
    prompt_ids: Any, completion_ids: Any
) -> tuple[list[np.ndarray], list[np.ndarray]] | None:
    """The saved SFT centring samples: None (not drawn yet) or two equal-length lists of
    1-D integer arrays; ValueError otherwise."""
    if prompt_ids is None and completion_ids is None:
        return None
    rows = []
    for name, value in (("sft_prompt_ids", prompt_ids), ("sft_completion_ids", completion_ids)):
        if not isinstance(value, list) or not all(
            isinstance(a, np.ndarray) and a.ndim == 1 and np.issubdtype(a.dtype, np.integer)
            for a in value
        ):
            raise ValueError(f"{name!r} is not a list of token id arrays")
        rows.append([np.asarray(a, dtype=np.int64) for a in value])
    if len(rows[0]) != len(rows[1]) or not rows[0]:
        raise ValueError("the SFT centring samples' prompts and completions do not pair up")
    return rows[0], rows[1]
