"""The restart contract shared by every lfi-gym environment.

An environment that follows it can hand out a snapshot of everything that decides its
future (``get_state()``) and be put back into that exact situation later
(``reset_to(state)`` or, equivalently and through any wrapper stack,
``reset(options={"state": state})``). Guided algorithms (DAgger, PPO++, AggreVaTeD, ...)
are written against this contract alone.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import math
import sys
from abc import abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar, Generic, TypeVar

import gymnasium as gym
import numpy as np
from gymnasium.error import ResetNeeded
from gymnasium.wrappers import TimeLimit

from lfi_gym.envs.validation import check_positive_int

ObsType = TypeVar("ObsType")
ActType = TypeVar("ActType")


class StateError(ValueError):
    """A State does not fit the environment it was given to (other env, version or payload)."""


@dataclasses.dataclass(frozen=True, eq=False)
class State:
    """Immutable, picklable snapshot of an environment.

    Subclasses are declared with ``@dataclasses.dataclass(frozen=True, eq=False)`` and add
    their payload fields. Equality and hashing compare the concrete type and every field;
    numpy arrays compare by dtype, shape and exact bytes, and are stored read-only.
    """

    env_id: str
    version: int

    #: How to restore a state of this type, for the message when it reaches the wrong env.
    restore_hint: ClassVar[str] = "gym.make({env_id!r}).reset_to(state)"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # Files name States by this registry key, never by an import path to follow.
        _STATE_CLASSES[qualified_name(cls)] = cls

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if isinstance(value, np.ndarray):
                object.__setattr__(self, field.name, _read_only_copy(value))

    def __setstate__(self, state: dict[str, Any]) -> None:
        # Unpickling bypasses __init__: keep arrays read-only here too.
        for name, value in state.items():
            if isinstance(value, np.ndarray):
                value = _read_only_copy(value)
            object.__setattr__(self, name, value)

    def __eq__(self, other: object) -> bool:
        if type(self) is not type(other):
            return NotImplemented
        return all(
            _values_equal(getattr(self, f.name), getattr(other, f.name))
            for f in dataclasses.fields(self)
        )

    def __hash__(self) -> int:
        values = (_hashable(getattr(self, f.name)) for f in dataclasses.fields(self))
        return hash((type(self).__qualname__, *values))


_STATE_CLASSES: dict[str, type[State]] = {}


def qualified_name(cls: type) -> str:
    """``module.QualName``: how files name a class (a State, or an allow-listed class of an
    agent file), to be looked up in a registry, never imported."""
    return f"{cls.__module__}.{cls.__qualname__}"


#: The modules that define lfi-gym's own States: a file may hold States of a family not yet
#: imported, so these (and only these, a fixed list) are imported when one is looked up.
_OWN_STATE_MODULES = (
    "lfi_gym.envs.control.cartpole",
    "lfi_gym.envs.atari.minatar",
    "lfi_gym.envs.atari.ale",
    "lfi_gym.envs.text.rows",
    "lfi_gym.envs.ranking.env",
    "lfi_gym.envs.vector",
)


def state_class(name: str) -> type[State] | None:
    """The State subclass registered as ``name`` (``module.QualName``), or None.

    A name from a file only selects among registered classes; the one import it can cause
    is of a module in :data:`_OWN_STATE_MODULES`.
    """
    module = name.rsplit(".", 1)[0]
    if name not in _STATE_CLASSES and module in _OWN_STATE_MODULES:
        importlib.import_module(module)
    return _STATE_CLASSES.get(name)


def _read_only_copy(array: np.ndarray) -> np.ndarray:
    copy = np.array(array, copy=True)
    copy.setflags(write=False)
    return copy


def _values_equal(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        if not (isinstance(a, np.ndarray) and isinstance(b, np.ndarray)):
            return False
        return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    if isinstance(a, (tuple, list)) and isinstance(b, (tuple, list)):
        return type(a) is type(b) and len(a) == len(b) and all(map(_values_equal, a, b))
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(_values_equal(a[k], b[k]) for k in a)
    try:
        return bool(a == b)
    except (TypeError, ValueError):
        return False


def _hashable(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return (value.dtype.str, value.shape, value.tobytes())
    if isinstance(value, (tuple, list)):
        return tuple(_hashable(v) for v in value)
    if isinstance(value, Mapping):
        return tuple(sorted((str(k), _hashable(v)) for k, v in value.items()))
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    return value


class RestartableEnv(gym.Env[ObsType, ActType], Generic[ObsType, ActType]):
    """Base class of every lfi-gym environment: Gymnasium's API plus the restart contract.

    Subclasses implement ``_reset``, ``_step``, ``_capture_state``, ``_validate_state``
    and ``_restore_state``; this class owns the public ``reset`` / ``step`` /
    ``get_state`` / ``reset_to`` so that every env checks states and call order the same
    way. The env owns its horizon: ``_step`` reports truncation itself, so a restart in
    the middle of an episode keeps the right number of remaining steps.

    Gymnasium's ``make(id, max_episode_steps=N)`` puts a ``TimeLimit`` around the env whose
    count restarts at every ``reset``, ``reset(options={"state": s})`` included: alone, it
    would give a restart at step 30 of 50 another 50 steps. So the env adopts N as its own
    horizon (the smaller of the two, see :meth:`adopt_time_limit`) when it is reset
    through that wrapper; its own count starts at the state's step, so its truncation
    always comes first and the TimeLimit's never decides.
    """

    #: Id used in states when the env was built without ``gym.make`` (``spec`` is None).
    default_id: ClassVar[str]
    #: Bump when the State layout changes; states of another version are refused.
    state_version: ClassVar[int] = 1
    #: The concrete State subclass this env produces and accepts.
    state_type: ClassVar[type[State]]

    _has_reset: bool = False

    @property
    def env_id(self) -> str:
        """The registered id (``spec.id``), or ``default_id`` for a directly built env."""
        spec = self.unwrapped.spec
        return spec.id if spec is not None else self.default_id

    # -- Gymnasium API -------------------------------------------------------------------

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[ObsType, dict[str, Any]]:
        time_limit = _time_limit_of_callers(self)
        if time_limit is not None:
            self.adopt_time_limit(time_limit)
        if options is not None and "state" in options:
            if seed is not None:
                raise ValueError(
                    "reset() got both seed and options['state']; the state carries its own "
                    "RNG, so pass only one of them"
                )
            return self.reset_to(options["state"])
        observation, info = self._reset(seed=seed, options=options)
        self._has_reset = True
        return observation, info

    def step(self, action: ActType) -> tuple[ObsType, float, bool, bool, dict[str, Any]]:
        if not self._has_reset:
            raise ResetNeeded(f"{self.env_id}: call reset() or reset_to(state) before step()")
        if not self._is_valid_action(action):
            raise ValueError(
                f"{self.env_id}: action {action!r} is not in the action space {self.action_space}"
            )
        return self._step(action)

    def _is_valid_action(self, action: Any) -> bool:
        space = self.action_space
        # Fast path for the common case; Discrete.contains costs more than a CartPole step.
        if (
            type(space) is gym.spaces.Discrete
            and isinstance(action, (int, np.integer))
            and not isinstance(action, bool)
        ):
            return int(space.start) <= action < int(space.start + space.n)
        return space.contains(action)

    # -- restart contract ----------------------------------------------------------------

    def get_state(self) -> State:
        """Snapshot of everything that decides the future of this env."""
        if not self._has_reset:
            raise ResetNeeded(f"{self.env_id}: call reset() before get_state()")
        return self._capture_state()

    def reset_to(self, state: State) -> tuple[ObsType, dict[str, Any]]:
        """Restore ``state`` exactly and return the observation and info at that point.

        Raises :class:`StateError` (and leaves the env as it was) when ``state`` belongs to
        another env id, another format version, or has a malformed payload.
        """
        self.check_state(state)
        observation, info = self._restore_state(state)
        self._has_reset = True
        return observation, info

    def check_state(self, state: Any) -> None:
        """Raise :class:`StateError` unless ``state`` can be restored into this env."""
        if not isinstance(state, State):
            raise StateError(
                f"{self.env_id}: expected a {self.state_type.__name__} from get_state(), "
                f"got {type(state).__name__}"
            )
        # Kind of state, then env, then format version: each message names the fix.
        if type(state) is not self.state_type:
            hint = type(state).restore_hint.format(env_id=state.env_id)
            raise StateError(
                f"{self.env_id}: expected a {self.state_type.__name__} from this env's "
                f"get_state(), got a {type(state).__name__} of env {state.env_id!r}; "
                f"restore it with {hint}"
            )
        if state.env_id != self.env_id:
            raise StateError(
                f"state belongs to env {state.env_id!r}, but this env is {self.env_id!r}; "
                f"restore it into gym.make({state.env_id!r})"
            )
        if state.version != self.state_version:
            raise StateError(
                f"{self.env_id}: state has format version {state.version!r}, this env reads "
                f"version {self.state_version}; re-create the state with this version of "
                "lfi-gym"
            )
        try:
            self._validate_state(state)
        except Exception as exc:  # any failure to read the payload means it is malformed
            raise StateError(f"{self.env_id}: cannot restore this state: {exc}") from exc

    def adopt_time_limit(self, max_episode_steps: int) -> None:
        """Truncate episodes after at most ``max_episode_steps`` steps from now on.

        The env's horizon becomes the smaller of its own and ``max_episode_steps``, for the
        rest of its life (a TimeLimit around it stays there). :meth:`reset` calls this for
        a Gymnasium ``TimeLimit`` it is reset through; a vector env calls it for the
        TimeLimit around each row when it is built.
        """
        self._limit_horizon(check_positive_int(max_episode_steps, "max_episode_steps"))

    # -- to implement --------------------------------------------------------------------

    @abstractmethod
    def _limit_horizon(self, max_steps: int) -> None:
        """Truncate every episode after at most ``max_steps`` steps counted from its start
        (lower the env's own horizon to it; never raise it)."""

    @abstractmethod
    def _reset(
        self, *, seed: int | None, options: dict[str, Any] | None
    ) -> tuple[ObsType, dict[str, Any]]: ...

    @abstractmethod
    def _step(self, action: ActType) -> tuple[ObsType, float, bool, bool, dict[str, Any]]: ...

    @abstractmethod
    def _capture_state(self) -> State: ...

    @abstractmethod
    def _validate_state(self, state: State) -> None:
        """Raise (any exception) if the payload cannot be restored. Must not mutate self."""

    @abstractmethod
    def _restore_state(self, state: State) -> tuple[ObsType, dict[str, Any]]:
        """Restore a validated state and return the observation and info at that point."""

    def make_expert(self) -> Any:
        """The env's computational oracle as a Policy; see :func:`lfi_gym.envs.make_expert`."""
        raise NotImplementedError(f"{self.env_id} has no computational oracle")


def time_limit_of(env: gym.Env) -> int | None:
    """The smallest ``max_episode_steps`` of the Gymnasium ``TimeLimit`` wrappers in
    ``env``'s wrapper stack, or None if there is none."""
    limit = None
    while isinstance(env, gym.Wrapper):
        if isinstance(env, TimeLimit):
            steps = int(env._max_episode_steps)
            limit = steps if limit is None else min(limit, steps)
        env = env.env
    return limit


def _time_limit_of_callers(env: RestartableEnv) -> int | None:
    """The smallest ``max_episode_steps`` of the ``TimeLimit`` wrappers around ``env`` that
    the running ``env.reset`` call came through, or None.

    ``gym.make(id, max_episode_steps=N)`` gives N to the TimeLimit only (the env's own
    ``spec.max_episode_steps`` stays None, Gymnasium issue #871) and the env has no link
    to its wrappers, so the wrapper methods on the call stack are where to read it. The
    walk skips frames without ``self`` (functions between wrappers) and stops at the
    first method of anything other than a wrapper of ``env`` (the caller of the stack).
    """
    outermost = None
    frame = sys._getframe(2)  # above this function and RestartableEnv.reset
    while frame is not None:
        code = frame.f_code
        if code.co_argcount and code.co_varnames[0] == "self":
            caller = frame.f_locals.get("self")
            if caller is not env:
                if not (isinstance(caller, gym.Wrapper) and caller.unwrapped is env):
                    break
                outermost = caller
        frame = frame.f_back
    return None if outermost is None else time_limit_of(outermost)


_BIT_GENERATORS = {
    cls.__name__: cls
    for cls in (
        np.random.PCG64,
        np.random.PCG64DXSM,
        np.random.MT19937,
        np.random.Philox,
        np.random.SFC64,
    )
}


def rng_state(generator: np.random.Generator) -> str:
    """A numpy Generator's full state as a canonical JSON string (immutable, hashable)."""
    return json.dumps(generator.bit_generator.state, sort_keys=True)


def generator_from_state(state: str) -> np.random.Generator:
    """Rebuild a Generator from :func:`rng_state`; raises StateError if it is malformed."""
    if not isinstance(state, str):
        raise StateError(f"RNG state must be a JSON string, got {type(state).__name__}")
    try:
        payload = json.loads(state)
        bit_generator = _BIT_GENERATORS[payload["bit_generator"]]()
        bit_generator.state = payload
    except Exception as exc:
        raise StateError(f"malformed RNG state: {exc!r}") from exc
    return np.random.Generator(bit_generator)
