"""What every lfi-gym agent shares: SB3-style callbacks, logger, progress bar and files.

An agent file is a zip, like an SB3 model, so that ``Agent.load(path, env)`` resumes
training: ``agent.json`` (class, hyperparameters, counters), ``policy.json`` (the learner's
class, by a name from an allow-list, and its constructor arguments) and
``policy.safetensors`` (its weights), then the agent's own members: optimizer states, RNG
states, counters and the env's State as :mod:`lfi_gym.envs.codec` blobs (``*.data``), more
weights as safetensors, demonstrations as ``.lfid``. Loading never unpickles nor imports by
name; it reads only the members the agent expects, each under a size cap, and refuses
anything else with :class:`~lfi_gym.agents.serialization.AgentFileError` (see
:mod:`lfi_gym.agents.serialization`). BC does not store its demonstrations: give them back
with ``set_demonstrations``.
"""

from __future__ import annotations

import inspect
import os
import zipfile
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.callbacks import BaseCallback, CallbackList, ConvertCallback
from stable_baselines3.common.logger import Logger, make_output_format
from stable_baselines3.common.utils import configure_logger, get_device, set_random_seed
from tqdm.auto import tqdm

from lfi_gym.agents.env_kinds import is_vector_env, refuse_vector_env, row_spaces
from lfi_gym.agents.files import atomic_write
from lfi_gym.agents.serialization import (
    AgentFileError,
    AgentFileReader,
    json_bytes,
    policy_members,
    read_policy,
)
from lfi_gym.envs.policies import check_spaces
from lfi_gym.envs.validation import check_positive_int

AGENT_FILE_VERSION = 2

#: How ``lfi-gym compare`` budgets an agent (:attr:`BaseAgent.BUDGET_UNIT`).
BUDGET_UNITS = ("expert_labels", "demonstrations", "env_steps", "preference_queries")


class BaseAgent(ABC):
    """SB3-shaped base: ``learn`` / ``predict`` / ``save`` / ``load``.

    Subclasses implement ``_learn`` and the policy plumbing. Their hyperparameters are the
    keyword arguments of ``__init__`` (see :func:`constructor_hyperparameters`), saved by
    name from the attributes of the same names and given back to ``__init__`` on load.
    SB3 callbacks work unchanged: they see this object as ``model`` with
    ``num_timesteps``, ``logger``, ``get_env()`` and ``predict``.
    """

    #: Constructor arguments that are not hyperparameters: the env, data and policies
    #: (objects, saved in other members or given back on load) and run settings.
    NOT_HYPERPARAMETERS: ClassVar[frozenset[str]] = frozenset(
        {
            "env",
            "demonstrations",
            "sft_demonstrations",
            "expert",
            "guide",
            "policy",
            "policy_kwargs",
            "seed",
            "device",
            "tensorboard_log",
            "verbose",
        }
    )
    #: Why the agent needs a single env, for agents that refuse a vector env (Gymnasium's
    #: or SB3's); None when it takes every kind (see :mod:`lfi_gym.agents.env_kinds`).
    SINGLE_ENV_REASON: ClassVar[str | None] = None
    #: How ``lfi-gym compare`` gives this agent its budget. ``"expert_labels"``: the agent
    #: takes ``expert=`` and ``learn(n)`` labels ``n`` more states with it (DAgger); the
    #: curve is trained incrementally. ``"demonstrations"``: the agent takes
    #: ``demonstrations=`` (expert data, as many labels as the curve point) and a fresh one
    #: is trained for each curve point (BC, DRIL). ``"env_steps"``: ``learn(n)`` takes ``n``
    #: env steps (tokens on text envs) of RL; an agent taking ``guide=`` gets BC trained on
    #: the label budget (PPO, the guided agents, PGRank). ``"preference_queries"``: the agent
    #: takes ``preferences=`` (labelled pairs of completions) and learns offline (DPO).
    BUDGET_UNIT: ClassVar[str] = "env_steps"
    #: Whether the agent learns from the env's reward (counted as reward queries).
    USES_ENV_REWARD: ClassVar[bool] = True
    #: The env families it runs on (:data:`lfi_gym.envs.FAMILIES`), None for all;
    #: ``lfi-gym compare`` refuses other cells before any work.
    FAMILIES: ClassVar[frozenset[str] | None] = None
    #: Set for each subclass from its ``__init__`` when the class is created.
    hyperparameter_names: ClassVar[tuple[str, ...]] = ()
    #: The members a subclass's files may hold besides ``agent.json`` and the policy's
    #: (what ``_extra_members`` writes); any other member refuses the file.
    FILE_MEMBERS: ClassVar[frozenset[str]] = frozenset()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.BUDGET_UNIT not in BUDGET_UNITS:
            raise TypeError(
                f"{cls.__name__}.BUDGET_UNIT is {cls.BUDGET_UNIT!r}; use one of {BUDGET_UNITS}"
            )
        cls.hyperparameter_names = constructor_hyperparameters(cls)

    def __init__(
        self,
        env: gym.Env | None,
        *,
        seed: int | None = None,
        device: str | torch.device = "auto",
        tensorboard_log: str | None = None,
        verbose: int = 0,
    ) -> None:
        if env is not None and not (isinstance(env, gym.Env) or is_vector_env(env)):
            raise TypeError(
                f"env must be a gymnasium.Env (e.g. gym.make('Control-CartPole-v0')), a "
                f"Gymnasium vector env or an SB3 VecEnv, got {type(env).__name__}"
            )
        self._check_env_kind(env)
        if seed is not None and not isinstance(seed, (int, np.integer)):
            raise TypeError(f"seed must be an int or None, got {seed!r}")
        self.env = env
        self.seed = seed
        self.device = get_device(device)
        self.tensorboard_log = tensorboard_log
        self.verbose = verbose
        self.num_timesteps = 0
        self._logger: Logger | None = None
        self._vec_env = None
        if seed is not None:
            set_random_seed(int(seed))

    # -- SB3 compatibility ---------------------------------------------------------------

    @property
    def logger(self) -> Logger:
        if self._logger is None:
            if not self._is_main_process():  # only the main process of a run logs
                self._logger = Logger(folder=None, output_formats=[])
            elif self.tensorboard_log is None:
                # SB3's configure_logger would create an empty /tmp/SB3-<date> folder.
                formats = [make_output_format("stdout", "")] if self.verbose >= 1 else []
                self._logger = Logger(folder=None, output_formats=formats)
            else:
                self._logger = configure_logger(
                    self.verbose, self.tensorboard_log, type(self).__name__
                )
        return self._logger

    def _is_main_process(self) -> bool:
        """False in the other processes of a multi-process run: they neither log nor save."""
        return True

    def set_logger(self, logger: Logger) -> None:
        self._logger = logger

    def _check_env_kind(self, env: Any) -> None:
        if self.SINGLE_ENV_REASON is not None:
            refuse_vector_env(type(self).__name__, env, self.SINGLE_ENV_REASON)

    def get_env(self):
        """The training env as an SB3 VecEnv (what SB3 callbacks expect), or None; a
        Gymnasium vector env is returned as it is."""
        if self.env is None or is_vector_env(self.env):
            return self.env
        if self._vec_env is None:
            from stable_baselines3.common.vec_env import DummyVecEnv

            env = self.env
            self._vec_env = DummyVecEnv([lambda: env])
        return self._vec_env

    def set_env(self, env: gym.Env) -> None:
        """Attach an env (e.g. after ``load`` without one); its spaces must match the policy."""
        self._check_env_kind(env)
        check_spaces(self.policy, row_spaces(env), role="policy")
        self.env, self._vec_env = env, None

    def get_vec_normalize_env(self) -> None:
        """SB3 callbacks ask for it; lfi-gym agents do not normalise observations."""
        return None

    @property
    def observation_space(self) -> gym.Space:
        return self.policy.observation_space

    @property
    def action_space(self) -> gym.Space:
        return self.policy.action_space

    # -- learning ------------------------------------------------------------------------

    def learn(
        self,
        total_timesteps: int,
        callback: Any = None,
        progress_bar: bool = False,
        tb_log_name: str | None = None,
        reset_num_timesteps: bool = True,
    ) -> BaseAgent:
        """Train for ``total_timesteps`` (what a timestep is depends on the agent)."""
        check_positive_int(total_timesteps, "total_timesteps")
        if self.env is None:
            raise ValueError(
                f"{type(self).__name__}.learn needs an env: pass env= to the constructor or "
                f"to {type(self).__name__}.load(path, env=env)"
            )
        if tb_log_name is not None and self.tensorboard_log is not None and self._is_main_process():
            self._logger = configure_logger(
                self.verbose, self.tensorboard_log, tb_log_name, reset_num_timesteps
            )
        if reset_num_timesteps:
            self.num_timesteps = 0
        callback = _convert_callback(callback)
        callback.init_callback(self)
        target = self.num_timesteps + int(total_timesteps)
        bar = tqdm(
            total=int(total_timesteps),
            desc=type(self).__name__,
            disable=not (progress_bar and self._is_main_process()),
        )
        callback.on_training_start(locals(), globals())
        try:
            self._learn(target, callback, bar)
        finally:
            bar.close()
        callback.on_training_end()
        return self

    @abstractmethod
    def _learn(self, target_timesteps: int, callback: BaseCallback, bar: tqdm) -> None:
        """Train until ``num_timesteps`` reaches ``target_timesteps`` or a callback stops."""

    def budgets(self) -> dict[str, int]:
        """What the agent has used so far: ``expert_labels`` (expert actions it learned
        from), ``env_steps`` (steps it took in its env; tokens on text envs) and
        ``reward_queries`` (env rewards it learned from). Agents whose counters mean
        something else override it."""
        steps = 0 if self.BUDGET_UNIT == "demonstrations" else int(self.num_timesteps)
        return {
            "expert_labels": int(getattr(self, "expert_labels", 0)),
            "env_steps": steps,
            "reward_queries": steps if self.USES_ENV_REWARD else 0,
        }

    # -- acting --------------------------------------------------------------------------

    @property
    @abstractmethod
    def policy(self) -> Any:
        """The learner (an SB3 policy module)."""

    def predict(
        self,
        observation: Any,
        state: Any = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, Any]:
        """SB3's ``predict``: batched observations in, batched actions out."""
        return self.policy.predict(observation, state, episode_start, deterministic)

    # -- files ---------------------------------------------------------------------------

    @classmethod
    def saved_hyperparameter_names(cls) -> tuple[str, ...]:
        """The names :meth:`get_hyperparameters` may save (a file naming others is refused)."""
        return cls.hyperparameter_names

    def get_hyperparameters(self) -> dict[str, Any]:
        missing = [name for name in self.hyperparameter_names if not hasattr(self, name)]
        if missing:
            cls = type(self).__name__
            raise AttributeError(
                f"{cls}.__init__ takes the hyperparameter(s) {', '.join(missing)} but keeps no "
                "attribute of the same name: set self.<name> in __init__ (hyperparameters are "
                f"saved by name) or add the name to {cls}.NOT_HYPERPARAMETERS"
            )
        return {name: getattr(self, name) for name in self.hyperparameter_names}

    def save(self, path: str | os.PathLike) -> Path:
        """Write the agent to a zip file, atomically (an interrupted save keeps the old file).

        In a multi-process run only the main process writes; the others return the path."""
        path = _zip_path(path)
        if not self._is_main_process():
            return path
        meta = {
            "format": "lfi-gym.agent",
            "file_version": AGENT_FILE_VERSION,
            "class": type(self).__name__,
            "hyperparameters": _jsonable(self.get_hyperparameters()),
            "num_timesteps": self.num_timesteps,
            "seed": self.seed,
            "extra": _jsonable(self._extra_metadata()),
        }
        members = {"agent.json": json_bytes(meta)}
        members.update(self._extra_members())
        members.update(policy_members(self.policy))
        unexpected = set(members) - self.file_member_names()
        if unexpected:  # a subclass wrote a member that load would refuse
            raise RuntimeError(
                f"{type(self).__name__} writes {sorted(unexpected)}: add them to "
                f"{type(self).__name__}.FILE_MEMBERS"
            )
        with atomic_write(path) as raw, zipfile.ZipFile(raw, "w", zipfile.ZIP_DEFLATED) as zf:
            for name, data in members.items():
                zf.writestr(name, data)
        return path

    @classmethod
    def load(
        cls,
        path: str | os.PathLike,
        env: gym.Env | None = None,
        device: str = "auto",
        **kwargs: Any,
    ) -> BaseAgent:
        """Load an agent saved by :meth:`save`; pass ``env`` to continue training.

        Loading runs no code from the file (no pickle): a malformed, oversized or forged
        file raises :class:`~lfi_gym.agents.serialization.AgentFileError`.
        ``kwargs`` override saved hyperparameters and the seed (e.g. ``verbose=1``).
        """
        path = Path(path)
        if not path.exists() and _zip_path(path).exists():
            path = _zip_path(path)
        try:
            zf = zipfile.ZipFile(path)
        except zipfile.BadZipFile as exc:
            raise AgentFileError(f"{path}: not an lfi-gym agent file ({exc})") from exc
        with zf:
            if "agent.json" not in zf.namelist():
                raise AgentFileError(f"{path}: not an lfi-gym agent file (no agent.json)")
            meta = AgentFileReader(zf, str(path), {"agent.json"} | set(zf.namelist())).json(
                "agent.json"
            )
            _check_meta(meta, path, cls)
            members = AgentFileReader(zf, str(path), cls.file_member_names())
            device_obj = get_device(device)
            hyperparameters = {**meta["hyperparameters"], "seed": meta.get("seed"), **kwargs}
            policy = read_policy(members, device_obj)
            agent = cls._from_saved(env, policy, hyperparameters, meta, members, device=device)
        agent.num_timesteps = meta["num_timesteps"]
        return agent

    @classmethod
    def file_member_names(cls) -> frozenset[str]:
        """Every member this agent's files may hold."""
        return frozenset({"agent.json", "policy.json", "policy.safetensors"}) | cls.FILE_MEMBERS

    @classmethod
    @abstractmethod
    def _from_saved(
        cls,
        env,
        policy,
        hyperparameters: dict[str, Any],
        meta: dict[str, Any],
        members: AgentFileReader,
        device: str,
    ) -> BaseAgent:
        """Rebuild the agent from what :meth:`save` wrote; ``members`` reads its members."""

    def _extra_metadata(self) -> dict[str, Any]:
        return {}

    def _extra_members(self) -> dict[str, bytes]:
        return {}


# -- helpers --------------------------------------------------------------------------


def constructor_hyperparameters(cls: type[BaseAgent]) -> tuple[str, ...]:
    """The keyword arguments of ``cls.__init__`` less ``cls.NOT_HYPERPARAMETERS``.

    An ``__init__`` that takes ``**kwargs`` is taken to pass them to its parent's (PPO++ to
    PPO), so the parent's hyperparameters count too, listed first; the walk stops at
    BaseAgent, whose arguments are run settings. An agent whose ``**kwargs`` go elsewhere
    (DAgger's to its supervised trainer) adds them in ``get_hyperparameters``.
    """
    names: list[str] = []
    for klass in cls.__mro__:
        if klass is BaseAgent:
            break
        if "__init__" not in vars(klass):
            continue
        parameters = inspect.signature(klass.__init__).parameters.values()
        own = [
            p.name
            for p in parameters
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
            and p.name != "self"
            and p.name not in cls.NOT_HYPERPARAMETERS
        ]
        names = own + [name for name in names if name not in own]
        if not any(p.kind is p.VAR_KEYWORD for p in parameters):
            break
    return tuple(names)


def _zip_path(path: str | os.PathLike) -> Path:
    """``path`` with ``.zip`` appended unless it already ends so (``run.v1`` -> ``run.v1.zip``)."""
    path = Path(path)
    return path if path.suffix == ".zip" else path.with_name(path.name + ".zip")


def _convert_callback(callback: Any) -> BaseCallback:
    if callback is None:
        return CallbackList([])
    if isinstance(callback, list):
        return CallbackList([_convert_callback(c) for c in callback])
    if isinstance(callback, BaseCallback):
        return callback
    if callable(callback):
        return ConvertCallback(callback)
    raise TypeError(
        f"callback must be an SB3 BaseCallback, a list of them or a callable, got {callback!r}"
    )


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(
        f"cannot save hyperparameter value {value!r}; use plain numbers, strings, lists or dicts"
    )


def _check_meta(meta: Any, path: Path, cls: type[BaseAgent]) -> None:
    """``agent.json``'s fields: an agent file of this lfi-gym, for ``cls``."""
    if not isinstance(meta, dict) or meta.get("format") != "lfi-gym.agent":
        raise AgentFileError(f"{path}: not an lfi-gym agent file (agent.json is not one)")
    version = meta.get("file_version")
    if version != AGENT_FILE_VERSION:
        older = isinstance(version, int) and not isinstance(version, bool)
        if older and version < AGENT_FILE_VERSION:
            raise AgentFileError(
                f"{path}: agent file version {version} was written by an older lfi-gym; this "
                f"one reads version {AGENT_FILE_VERSION}. Re-create it (train the agent again) "
                "with this version"
            )
        raise AgentFileError(
            f"{path}: agent file version {version!r}, this lfi-gym reads version "
            f"{AGENT_FILE_VERSION}; load it with the lfi-gym that wrote it"
        )
    if meta.get("class") != cls.__name__:
        raise AgentFileError(
            f"{path} holds a {meta.get('class')} agent; load it with {meta.get('class')}.load(path)"
        )
    fields = {
        "hyperparameters": dict,
        "num_timesteps": int,
        "extra": dict,
    }
    for key, kind in fields.items():
        if not isinstance(meta.get(key), kind) or isinstance(meta.get(key), bool):
            raise AgentFileError(f"{path}: member 'agent.json': malformed {key!r}")
    if meta["num_timesteps"] < 0:
        raise AgentFileError(f"{path}: member 'agent.json': negative 'num_timesteps'")
    unknown = sorted(set(meta["hyperparameters"]) - set(cls.saved_hyperparameter_names()))
    if unknown:
        raise AgentFileError(
            f"{path}: member 'agent.json': {cls.__name__} has no hyperparameter(s) "
            f"{', '.join(map(repr, unknown))}"
        )
    seed = meta.get("seed")
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
        raise AgentFileError(f"{path}: member 'agent.json': malformed 'seed'")
