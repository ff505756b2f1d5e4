"""The restart contract for vector envs.

``gym.make_vec(id, num_envs=n)`` on an lfi-gym id returns a vector env whose
``get_state()`` snapshots every row (plus Gymnasium's pending autoresets) and whose
``reset_to`` restarts every row, or only some rows, each from its own State::

    vec = gym.make_vec("Control-CartPole-v0", num_envs=8)
    vec.reset(seed=0)
    snapshot = vec.get_state()             # VectorState: exact restore of the whole batch
    vec.reset_to(snapshot)
    vec.reset_to(list_of_8_states)         # each row from its own single-env State
    vec.reset_to([s0, s5], indices=[0, 5]) # only rows 0 and 5; the others keep running

Families with a native batched env (text) implement the same methods.

Gymnasium's other modes do not know the contract: ``vectorization_mode="sync"`` or
``"async"`` build plain Gymnasium vector envs without ``get_state`` / ``reset_to``, and
the vector-entry-point mode refuses ``wrappers=``; wrap each row's env yourself and build
a :class:`RestartableSyncVectorEnv` from those if you need both.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import gymnasium as gym
from gymnasium.vector import SyncVectorEnv
from gymnasium.vector.utils import concatenate

from lfi_gym.envs.core import RestartableEnv, State, StateError, time_limit_of


@dataclasses.dataclass(frozen=True, eq=False)
class VectorState(State):
    """One State per row, and which rows Gymnasium will autoreset at the next step."""

    states: tuple[State, ...]
    autoreset: tuple[bool, ...]

    restore_hint: ClassVar[str] = (
        "gym.make_vec({env_id!r}, num_envs=len(state.states)).reset_to(state), or give a "
        "single env one row, state.states[i]"
    )


class RestartableSyncVectorEnv(SyncVectorEnv):
    """Gymnasium's ``SyncVectorEnv`` over lfi-gym envs, with ``get_state`` / ``reset_to``.

    A row wrapped in a ``TimeLimit`` (``gym.make_vec(id, max_episode_steps=N)``) adopts N
    as its horizon here, so that a row restarted from a State keeps the right remaining
    steps: the TimeLimit's count restarts at ``reset_to``, the env's own does not.
    """

    state_version = 1

    def __init__(self, env_fns: Sequence[Callable[[], gym.Env]], **kwargs: Any) -> None:
        super().__init__(env_fns, **kwargs)
        for index, env in enumerate(self.envs):
            if not isinstance(env.unwrapped, RestartableEnv):
                raise TypeError(
                    f"row {index} is a {type(env.unwrapped).__name__}, not an lfi-gym env; "
                    "a restartable vector env needs lfi-gym envs in every row"
                )
        self._bases: list[RestartableEnv] = [env.unwrapped for env in self.envs]
        for env, base in zip(self.envs, self._bases, strict=True):
            time_limit = time_limit_of(env)
            if time_limit is not None:
                base.adopt_time_limit(time_limit)

    @property
    def env_id(self) -> str:
        return self._bases[0].env_id

    def get_state(self) -> VectorState:
        """Snapshot of every row and of the pending autoresets."""
        return VectorState(
            env_id=self.env_id,
            version=self.state_version,
            states=tuple(base.get_state() for base in self._bases),
            autoreset=tuple(bool(flag) for flag in self._autoreset_envs),
        )

    def reset_to(
        self, states: VectorState | Sequence[State], indices: Sequence[int] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        """Restore a VectorState exactly, or restart rows from single-env States.

        With ``indices``, ``states[k]`` goes to row ``indices[k]`` and other rows are left
        as they are. Returns the batched observations of all rows and the infos of the
        restarted rows. Every state is checked before any row changes, so a bad one raises
        :class:`StateError` and leaves the vector env untouched.
        """
        rows, row_states, autoreset = plan_restart(
            states, indices, num_envs=self.num_envs, env_id=self.env_id, version=self.state_version
        )
        autoreset = autoreset or [False] * len(rows)
        for row, state in zip(rows, row_states, strict=True):
            self._bases[row].check_state(state)
        infos: dict[str, Any] = {}
        for row, state, pending in zip(rows, row_states, autoreset, strict=True):
            self._env_obs[row], info = self.envs[row].reset(options={"state": state})
            self._terminations[row] = self._truncations[row] = False
            self._autoreset_envs[row] = pending
            infos = self._add_info(infos, info, row)
        self._observations = concatenate(
            self.single_observation_space, self._env_obs, self._observations
        )
        observations = self._observations
        return (copy.deepcopy(observations) if self.copy else observations), infos


def plan_restart(
    states: Any, indices: Sequence[int] | None, *, num_envs: int, env_id: str, version: int
) -> tuple[list[int], list[State], list[bool] | None]:
    """Check the shape of a vector ``reset_to`` call: which rows get which State.

    Returns the rows, their states, and the pending-autoreset flags of a VectorState (None
    for a sequence of single-env states). Row payloads are checked by the caller.
    """
    if isinstance(states, VectorState):
        if indices is not None:
            raise ValueError("indices apply to a sequence of row states, not a VectorState")
        if states.env_id != env_id:
            raise StateError(
                f"VectorState belongs to env {states.env_id!r}, but this vector env is "
                f"{env_id!r}; restore it into gym.make_vec({states.env_id!r})"
            )
        if states.version != version:
            raise StateError(
                f"{env_id}: VectorState has format version {states.version!r}, this vector "
                f"env reads version {version}; re-create the state with this version of lfi-gym"
            )
        if not (
            isinstance(states.states, tuple)
            and isinstance(states.autoreset, tuple)
            and len(states.states) == len(states.autoreset) == num_envs
        ):
            raise StateError(f"VectorState must hold {num_envs} row states and autoreset flags")
        return list(range(num_envs)), list(states.states), list(states.autoreset)
    if isinstance(states, State) or not isinstance(states, Sequence):
        raise StateError(
            "reset_to takes a VectorState from get_state() or a sequence of one State per "
            f"row; got {type(states).__name__}"
        )
    rows = list(range(num_envs)) if indices is None else [int(i) for i in indices]
    if len(rows) != len(states):
        raise ValueError(f"got {len(states)} states for {len(rows)} rows")
    if len(set(rows)) != len(rows) or not all(0 <= r < num_envs for r in rows):
        raise ValueError(f"indices must be distinct rows in [0, {num_envs}), got {rows}")
    return rows, list(states), None


def restartable_sync_vector_env(
    env_id: str, num_envs: int = 1, **kwargs: Any
) -> RestartableSyncVectorEnv:
    """``num_envs`` rows of ``gym.make(env_id, **kwargs)`` as a :class:`RestartableSyncVectorEnv`.

    The families' vector entry points call this with their id: Gymnasium calls a vector
    entry point with the keyword arguments only, and a spec must name it by import path
    (``"module:attr"``) to stay JSON-serialisable, so the id cannot travel in a closure.
    ``autoreset_mode`` and ``copy`` go to the vector env, everything else to every row.
    """
    vector_kwargs = {k: kwargs.pop(k) for k in ("autoreset_mode", "copy") if k in kwargs}
    return RestartableSyncVectorEnv(
        [lambda: gym.make(env_id, **kwargs) for _ in range(num_envs)], **vector_kwargs
    )
