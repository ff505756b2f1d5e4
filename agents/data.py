"""Demonstrations: trajectories for imitation (views, batches, collection, files).

They are saved as ``.lfid`` files (:mod:`lfi_gym.agents.demofile`: a single-file format with a
checksum against damage, written atomically, read back as memory maps, never unpickled) or as
the same bytes in memory (:meth:`Demonstrations.to_bytes`, e.g. a member of an agent file).
They convert to and from Minari datasets and Hugging Face ``datasets``
(:mod:`lfi_gym.agents.exchange`).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from tqdm.auto import tqdm

from lfi_gym.agents import demofile, exchange
from lfi_gym.agents.demofile import DemonstrationsFileError, DemonstrationsWriter
from lfi_gym.envs.policies import Policy, as_policy, check_spaces, space_mismatch
from lfi_gym.envs.validation import check_positive_int

Observations = np.ndarray | dict[str, np.ndarray]


@dataclasses.dataclass(eq=False)  # holds arrays: == is identity, compare fields yourself
class Demonstrations:
    """Transitions of one or more episodes, in order.

    ``actions`` are the expert's labels (for DAgger, the expert's action at a state the
    learner may have visited). ``episode_starts[i]`` marks the first transition of an
    episode, or of the recorded part of one (DAgger rounds may resume an episode the
    previous round left running); ``terminated`` / ``truncated`` mark how the last
    transition of an episode ended (a collection cut off by a step budget is marked
    truncated). ``states`` and ``infos`` hold what files can hold (lfi-gym States, numbers,
    strings, lists, tuples, dicts with string keys, numpy arrays; see
    :mod:`lfi_gym.envs.codec`).

    ``final_observations`` holds, for each episode in order, the observation after its last
    transition (the terminal or truncated observation, or where a cut-off recording
    stopped): the same structure as ``observations`` with one row per episode. It is
    ``None`` when unknown (demonstrations read from a schema-2 ``.lfid`` file or built
    without them); converters that need it (:meth:`to_minari`, :meth:`to_hf_dataset`) then
    refuse.
    """

    observations: Observations
    actions: np.ndarray
    rewards: np.ndarray
    episode_starts: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    states: list[Any] | None = None
    infos: list[dict[str, Any]] | None = None
    observation_space: gym.Space | None = None
    action_space: gym.Space | None = None
    env_id: str | None = None
    final_observations: Observations | None = None

    def __post_init__(self) -> None:
        self.rewards = np.asarray(self.rewards, dtype=np.float32)
        self.episode_starts = np.asarray(self.episode_starts, dtype=bool)
        self.terminated = np.asarray(self.terminated, dtype=bool)
        self.truncated = np.asarray(self.truncated, dtype=bool)
        n = len(self.actions)
        lengths = {
            "actions": n,
            "rewards": len(self.rewards),
            "episode_starts": len(self.episode_starts),
            "terminated": len(self.terminated),
            "truncated": len(self.truncated),
        }
        for key, array in _observation_items(self.observations):
            lengths[key] = len(array)
        if self.states is not None:
            lengths["states"] = len(self.states)
        if self.infos is not None:
            lengths["infos"] = len(self.infos)
        if len(set(lengths.values())) != 1:
            raise ValueError(f"Demonstrations fields have different lengths: {lengths}")
        if n > 0 and not self.episode_starts[0]:
            raise ValueError("episode_starts[0] must be True: the data must begin an episode")
        if self.final_observations is not None:
            _check_final_observations(self.observations, self.final_observations, self.n_episodes)

    # -- views ---------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.actions)

    @property
    def n_episodes(self) -> int:
        return int(self.episode_starts.sum())

    def episode_slices(self) -> list[slice]:
        starts = np.flatnonzero(self.episode_starts).tolist()
        ends = [*starts[1:], len(self)]
        return [slice(s, e) for s, e in zip(starts, ends, strict=True)]

    def episode_returns(self) -> np.ndarray:
        return np.array([self.rewards[s].sum() for s in self.episode_slices()], dtype=np.float64)

    def episode_lengths(self) -> np.ndarray:
        return np.array([s.stop - s.start for s in self.episode_slices()], dtype=np.int64)

    def select(self, indices: np.ndarray) -> Demonstrations:
        """Transitions at ``indices`` (kept in the given order); boundaries are recomputed
        so that a selection that splits an episode still starts one."""
        indices = np.asarray(indices, dtype=np.int64)
        starts = self.episode_starts[indices].copy()
        if len(indices):
            starts[0] = True
            starts[1:] |= indices[1:] != indices[:-1] + 1
        finals = None
        if self.final_observations is not None:
            # A selected episode ends where the next selected index starts one: what followed
            # its last transition is the next observation in the original data.
            last = np.append(np.flatnonzero(starts[1:]), len(indices) - 1) if len(indices) else []
            finals = self._next_observations(indices[np.asarray(last, dtype=np.int64)])
        return dataclasses.replace(
            self,
            observations=_map_observations(self.observations, lambda a: a[indices]),
            actions=self.actions[indices],
            rewards=self.rewards[indices],
            episode_starts=starts,
            terminated=self.terminated[indices],
            truncated=self.truncated[indices],
            states=None if self.states is None else [self.states[i] for i in indices],
            infos=None if self.infos is None else [self.infos[i] for i in indices],
            final_observations=finals,
        )

    def _next_observations(self, indices: np.ndarray) -> Observations:
        """The observation after each transition in ``indices`` (needs final observations):
        the next transition's, or its episode's final one at an episode's last transition."""
        episode = np.cumsum(self.episode_starts) - 1
        following = np.minimum(indices + 1, len(self) - 1)
        within = (indices + 1 < len(self)) & ~self.episode_starts[following]

        def pick(observed: np.ndarray, final: np.ndarray) -> np.ndarray:
            return np.where(
                within.reshape(-1, *[1] * (observed.ndim - 1)),
                observed[following],
                final[episode[indices]],
            )

        if isinstance(self.observations, dict):
            return {k: pick(v, self.final_observations[k]) for k, v in self.observations.items()}
        return pick(self.observations, self.final_observations)

    def episodes(self, episode_indices: Sequence[int]) -> Demonstrations:
        """The given whole episodes, in the given order."""
        slices = self.episode_slices()
        parts = [np.arange(slices[i].start, slices[i].stop) for i in episode_indices]
        return self.select(np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64))

    def split(
        self, fraction: float, *, seed: int | None = None
    ) -> tuple[Demonstrations, Demonstrations]:
        """Split whole episodes at random into (``fraction`` of them, the rest)."""
        if not 0.0 < fraction < 1.0:
            raise ValueError(f"fraction must be in (0, 1), got {fraction!r}")
        if self.n_episodes < 2:
            raise ValueError(f"cannot split {self.n_episodes} episode(s) into two non-empty parts")
        order = np.random.default_rng(seed).permutation(self.n_episodes)
        n_first = min(max(1, round(fraction * self.n_episodes)), self.n_episodes - 1)
        return self.episodes(order[:n_first]), self.episodes(order[n_first:])

    @classmethod
    def concatenate(cls, parts: Sequence[Demonstrations]) -> Demonstrations:
        """Join demonstrations of the same env, one after the other (DAgger's aggregate)."""
        parts = [p for p in parts if len(p)]
        if not parts:
            raise ValueError("nothing to concatenate: every part is empty")
        first = parts[0]
        for other in parts[1:]:
            mismatch = space_mismatch(first, other)
            if mismatch is not None:
                kind, mine, theirs = mismatch
                raise ValueError(
                    f"cannot concatenate demonstrations of different "
                    f"{kind.replace('_', ' ')}s: {mine} vs {theirs}"
                )
        env_ids = {p.env_id for p in parts if p.env_id is not None}
        if len(env_ids) > 1:
            raise ValueError(
                f"cannot concatenate demonstrations of different envs: {sorted(env_ids)}"
            )
        keep_states = all(p.states is not None for p in parts)
        keep_infos = all(p.infos is not None for p in parts)
        observations = _concatenate_observations([p.observations for p in parts])
        finals = None
        if all(p.final_observations is not None for p in parts):
            finals = _concatenate_observations([p.final_observations for p in parts])
        return dataclasses.replace(
            first,
            observations=observations,
            actions=np.concatenate([p.actions for p in parts]),
            rewards=np.concatenate([p.rewards for p in parts]),
            episode_starts=np.concatenate([p.episode_starts for p in parts]),
            terminated=np.concatenate([p.terminated for p in parts]),
            truncated=np.concatenate([p.truncated for p in parts]),
            states=[s for p in parts for s in p.states] if keep_states else None,
            infos=[i for p in parts for i in p.infos] if keep_infos else None,
            final_observations=finals,
        )

    def __add__(self, other: Demonstrations) -> Demonstrations:
        return Demonstrations.concatenate([self, other])

    def iter_batches(
        self,
        batch_size: int,
        *,
        shuffle: bool = True,
        seed: int | np.random.Generator | None = None,
        device: str | torch.device = "cpu",
        drop_last: bool = False,
    ) -> Iterator[dict[str, Any]]:
        """One pass over the data as dicts of torch tensors: ``observations`` (a tensor, or
        a dict of tensors for Dict spaces), ``actions``, ``rewards``, ``episode_starts``."""
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        n = len(self)
        rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        order = rng.permutation(n) if shuffle else np.arange(n)
        stop = n - n % batch_size if drop_last else n
        for start in range(0, stop, batch_size):
            idx = (
                np.sort(order[start : start + batch_size])
                if not shuffle
                else order[start : start + batch_size]
            )
            yield {
                "observations": _map_observations(
                    self.observations, lambda a, idx=idx: torch.as_tensor(a[idx], device=device)
                ),
                "actions": torch.as_tensor(self.actions[idx], device=device),
                "rewards": torch.as_tensor(self.rewards[idx], device=device),
                "episode_starts": torch.as_tensor(self.episode_starts[idx], device=device),
            }

    # -- collection ----------------------------------------------------------------------

    @classmethod
    def collect(
        cls,
        env: gym.Env,
        policy: Policy,
        n_episodes: int | None = None,
        *,
        n_steps: int | None = None,
        seed: int | None = None,
        deterministic: bool = True,
        record_states: bool = False,
        record_infos: bool = False,
        progress_bar: bool = False,
    ) -> Demonstrations:
        """Roll out ``policy`` in ``env`` for ``n_episodes`` episodes, or for exactly
        ``n_steps`` transitions (the last episode may be cut short), whichever comes first.

        The first reset uses ``seed``; later resets continue the env's RNG.
        """
        if n_episodes is None and n_steps is None:
            raise ValueError("collect needs n_episodes or n_steps (or both)")
        for name, value in (("n_episodes", n_episodes), ("n_steps", n_steps)):
            if value is not None:
                check_positive_int(value, name)
        policy = as_policy(policy)
        check_spaces(policy, env, role="policy")
        if record_states and not hasattr(env.unwrapped, "get_state"):
            raise ValueError("record_states=True needs an lfi-gym env (with get_state())")
        buffer = TransitionBuffer()
        episodes_done = 0
        bar = tqdm(
            total=n_steps or n_episodes,
            desc="collect",
            unit="step" if n_steps else "ep",
            disable=not progress_bar,
        )
        for transition in rollout(
            env, policy, seed=seed, deterministic=deterministic, record_states=record_states
        ):
            (
                obs,
                action,
                reward,
                episode_start,
                terminated,
                truncated,
                state,
                step_info,
                next_obs,
            ) = transition
            buffer.add(
                obs,
                action,
                reward,
                episode_start,
                terminated,
                truncated,
                state,
                step_info if record_infos else None,
                next_obs=next_obs,
            )
            if n_steps:
                bar.update(1)
            if terminated or truncated:
                episodes_done += 1
                if not n_steps:
                    bar.update(1)
            if (n_steps and len(buffer) >= n_steps) or (n_episodes and episodes_done >= n_episodes):
                break
        bar.close()
        buffer.truncated[-1] = buffer.truncated[-1] or not (buffer.terminated[-1])
        return buffer.build(env, record_states=record_states, record_infos=record_infos)

    # -- exchange formats (lfi_gym.agents.exchange) ----------------------------------------

    def to_minari(
        self,
        dataset_id: str,
        *,
        env: str | gym.envs.registration.EnvSpec | None = None,
        data_format: str = "arrow",
        **metadata: Any,
    ) -> Any:
        """Write a local Minari dataset (``pip install "lfi-gym[minari]"``): one episode per
        episode, T+1 observations (the final one included), lossless, with the env's spec
        (``env``: an id or spec; default :attr:`env_id`) so that
        ``dataset.recover_environment()`` makes the env; ``metadata`` goes to
        ``minari.create_dataset_from_buffers``. Needs :attr:`final_observations`. Returns
        the ``minari.MinariDataset``. See :mod:`lfi_gym.agents.exchange`."""
        return exchange.to_minari(self, dataset_id, env=env, data_format=data_format, **metadata)

    @classmethod
    def from_minari(cls, dataset: Any) -> Demonstrations:
        """Demonstrations from a ``minari.MinariDataset`` or the id of a local one (its
        observations, final observations, actions, rewards, flags, spaces and env id)."""
        return cls(**exchange.fields_from_minari(dataset))

    def to_hf_dataset(self) -> Any:
        """A Hugging Face ``datasets.Dataset``, one row per transition, with the final
        observation on each episode's last row and features derived from the spaces; see
        :mod:`lfi_gym.agents.exchange` for the columns. Needs :attr:`final_observations`."""
        return exchange.to_hf_dataset(self)

    @classmethod
    def from_hf_dataset(cls, dataset: Any) -> Demonstrations:
        """Demonstrations from a dataset :meth:`to_hf_dataset` made (also after
        ``save_to_disk`` / ``load_from_disk``)."""
        return cls(**exchange.fields_from_hf_dataset(dataset))

    # -- files ---------------------------------------------------------------------------

    def save(self, path: str | os.PathLike) -> Path:
        """Write to ``path`` as a ``.lfid`` file, atomically (temporary file + fsync +
        rename)."""
        return demofile.save(path, *self._sections(), **self._file_fields())

    def to_bytes(self) -> bytes:
        """The bytes :meth:`save` would write (for a file inside another file)."""
        return demofile.to_bytes(*self._sections(), **self._file_fields())

    @classmethod
    def load(cls, path: str | os.PathLike, *, mmap: bool = True) -> Demonstrations:
        """Read a file written by :meth:`save`, verifying its checksum first.

        With ``mmap=True`` the arrays are read-only memory maps of the file. Nothing is
        unpickled: spaces, states and infos are rebuilt from plain JSON and arrays, and a
        malformed or forged file raises :class:`DemonstrationsFileError`.
        """
        return cls._from_file(demofile.read(path, mmap=mmap), str(path))

    @classmethod
    def from_bytes(cls, data: bytes, *, name: str = "<bytes>") -> Demonstrations:
        """Read :meth:`to_bytes`'s bytes (checksum verified, arrays copied, nothing
        unpickled); ``name`` labels them in error messages."""
        return cls._from_file(demofile.read(data, mmap=False, name=name), name)

    def _sections(self) -> tuple[dict[str, np.ndarray], dict[str, demofile.EncodedValue]]:
        arrays: dict[str, np.ndarray] = {
            key: np.ascontiguousarray(array) for key, array in _observation_items(self.observations)
        }
        if self.final_observations is not None:
            for key, array in _observation_items(self.final_observations, "final_observations"):
                arrays[key] = np.ascontiguousarray(array)
        for key in ("actions", "rewards", "episode_starts", "terminated", "truncated"):
            arrays[key] = np.ascontiguousarray(getattr(self, key))
        demofile.check_arrays(arrays)
        values: dict[str, Any] = {
            "spaces": demofile.encode_spaces(self.observation_space, self.action_space)
        }
        if self.states is not None:
            values["states"] = list(self.states)
        if self.infos is not None:
            values["infos"] = list(self.infos)
        return arrays, demofile.encode_values(values)

    def _file_fields(self) -> dict[str, Any]:
        return {
            "length": len(self),
            "env_id": self.env_id,
            "dict_observations": isinstance(self.observations, dict),
        }

    @classmethod
    def _from_file(cls, contents: demofile.Contents, label: str) -> Demonstrations:
        footer, arrays, values = contents
        observations = _observations_from(arrays, "observations", footer["observations"])
        # Absent (schema 2, or saved without them): unknown.
        finals = _observations_from(arrays, "final_observations", footer["observations"])
        if finals is not None and observations is not None:
            mine = sorted(observations) if isinstance(observations, dict) else None
            theirs = sorted(finals) if isinstance(finals, dict) else None
            if mine != theirs:
                raise DemonstrationsFileError(
                    f"{label}: the final observations have keys {theirs}, the observations {mine}"
                )
        if "spaces" not in values:
            raise DemonstrationsFileError(f"{label}: the file has no 'spaces' section")
        observation_space, action_space = demofile.decode_spaces(values["spaces"], label)
        states, infos = values.get("states"), values.get("infos")
        if not isinstance(states, (list, type(None))) or not isinstance(infos, (list, type(None))):
            raise DemonstrationsFileError(f"{label}: states and infos must be lists")
        try:
            return cls(
                observations=arrays["observations"] if observations is None else observations,
                actions=arrays["actions"],
                rewards=arrays["rewards"],
                episode_starts=arrays["episode_starts"],
                terminated=arrays["terminated"],
                truncated=arrays["truncated"],
                states=states,
                infos=infos,
                observation_space=observation_space,
                action_space=action_space,
                env_id=footer.get("env_id"),
                final_observations=finals,
            )
        except (KeyError, ValueError) as exc:
            raise DemonstrationsFileError(f"{label}: inconsistent contents: {exc}") from exc

    def __repr__(self) -> str:
        return (
            f"Demonstrations(env_id={self.env_id!r}, transitions={len(self)}, "
            f"episodes={self.n_episodes})"
        )


# -- helpers --------------------------------------------------------------------------


def _observation_items(
    observations: Observations, name: str = "observations"
) -> list[tuple[str, np.ndarray]]:
    if isinstance(observations, dict):
        return [(f"{name}/{k}", v) for k, v in observations.items()]
    return [(name, observations)]


def _observations_from(
    arrays: dict[str, np.ndarray], name: str, layout: str
) -> Observations | None:
    """The file's ``name`` sections as observations (None if it has none)."""
    if layout == "dict":
        prefix = f"{name}/"
        found = {k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)}
        return found or None
    return arrays.get(name)


def _concatenate_observations(parts: Sequence[Observations]) -> Observations:
    if isinstance(parts[0], dict):
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    return np.concatenate(parts)


def _check_final_observations(
    observations: Observations, finals: Observations, n_episodes: int
) -> None:
    """``finals`` has ``observations``' structure and per-row shapes, one row per episode."""
    if isinstance(observations, dict) != isinstance(finals, dict) or (
        isinstance(finals, dict) and finals.keys() != observations.keys()
    ):
        raise ValueError(
            "final_observations must have the structure of observations (the same Dict keys)"
        )
    for (key, array), (_, final) in zip(
        _observation_items(observations), _observation_items(finals), strict=True
    ):
        if len(final) != n_episodes or final.shape[1:] != array.shape[1:]:
            raise ValueError(
                f"final_{key} has shape {final.shape}: expected one row per episode "
                f"({n_episodes}) of shape {array.shape[1:]}"
            )


def _map_observations(observations: Observations, fn) -> Any:
    if isinstance(observations, dict):
        return {k: fn(v) for k, v in observations.items()}
    return fn(observations)


class TransitionBuffer:
    """Per-step lists, stacked once at the end of a collection."""

    def __init__(self) -> None:
        self.observations: list[Any] = []
        self.actions: list[Any] = []
        self.rewards: list[float] = []
        self.episode_starts: list[bool] = []
        self.terminated: list[bool] = []
        self.truncated: list[bool] = []
        self.states: list[Any] = []
        self.infos: list[Any] = []
        # The ended episodes' final observations; the latest step's next observation.
        self.final_observations: list[Any] = []
        self._pending_final: Any = None
        self._finals_complete = True
        self._episode_open = False  # the latest step did not end its episode

    def __len__(self) -> int:
        return len(self.actions)

    def add(
        self, obs, action, reward, start, terminated, truncated, state, info, *, next_obs=None
    ) -> None:
        """One transition; ``next_obs`` (what the step returned, before any reset) gives the
        episode's final observation when the step ends it or is the last one recorded."""
        if start and self._episode_open:
            self._end_episode()  # the previous (partial) episode stops here
        self._pending_final = next_obs
        self._episode_open = not (terminated or truncated)
        if not self._episode_open:
            self._end_episode()
        self.observations.append(obs)
        self.actions.append(np.asarray(action))
        self.rewards.append(float(reward))
        self.episode_starts.append(bool(start))
        self.terminated.append(bool(terminated))
        self.truncated.append(bool(truncated))
        self.states.append(state)
        self.infos.append(info)

    def _end_episode(self) -> None:
        if self._pending_final is None:
            self._finals_complete = False
        self.final_observations.append(self._pending_final)
        self._pending_final = None

    def build(
        self, env: gym.Env, *, record_states: bool = False, record_infos: bool = False
    ) -> Demonstrations:
        """The recorded transitions as Demonstrations of ``env`` (its spaces and id); their
        final observations are known if every ended episode's ``next_obs`` was given."""
        finals = list(self.final_observations)
        if self._episode_open:
            finals.append(self._pending_final)  # the recording stopped mid-episode
        known = self._finals_complete and all(f is not None for f in finals)
        observations = _stack_observations(self.observations)
        self.observations.clear()
        return Demonstrations(
            observations=observations,
            actions=np.stack(self.actions),
            rewards=np.array(self.rewards),
            # A recording that resumed mid-episode still starts a (partial) episode.
            episode_starts=np.array([True, *self.episode_starts[1:]]),
            terminated=np.array(self.terminated),
            truncated=np.array(self.truncated),
            states=self.states if record_states else None,
            infos=self.infos if record_infos else None,
            observation_space=env.observation_space,
            action_space=env.action_space,
            env_id=env.unwrapped.spec.id if env.unwrapped.spec is not None else None,
            final_observations=_stack_observations(finals) if known else None,
        )


def _stack_observations(observations: list[Any]) -> Observations:
    if isinstance(observations[0], dict):
        return {k: np.stack([o[k] for o in observations]) for k in observations[0]}
    return np.stack(observations)


def rollout(
    env: gym.Env,
    policy: Policy,
    *,
    seed: int | None = None,
    deterministic: bool = True,
    record_states: bool = False,
) -> Iterator[tuple[Any, Any, float, bool, bool, bool, Any, dict[str, Any], Any]]:
    """Transitions of ``policy`` in ``env``, without end: ``(obs, action, reward,
    episode_start, terminated, truncated, state, info, next_obs)``, where ``next_obs`` is
    what the step returned (at an episode's end, its final observation, before the reset).
    The first reset uses ``seed``; after an episode ends the env resets without one (its RNG
    goes on) when the next transition is asked for. ``state`` is the env's State before the
    step, or None unless ``record_states``. The policy's recurrent state is carried and reset
    at episode starts.
    """
    obs, _ = env.reset(seed=seed)
    episode_start, recurrent = True, None
    while True:
        state = env.unwrapped.get_state() if record_states else None
        action, recurrent = policy.predict(
            obs,
            state=recurrent,
            episode_start=np.array([episode_start]),
            deterministic=deterministic,
        )
        next_obs, reward, terminated, truncated, info = env.step(action)
        yield obs, action, reward, episode_start, terminated, truncated, state, info, next_obs
        episode_start = terminated or truncated
        obs = env.reset()[0] if episode_start else next_obs


def record(
    env: gym.Env,
    policy: Policy,
    n_episodes: int,
    path: str | os.PathLike,
    *,
    seed: int | None = None,
    deterministic: bool = True,
    progress_bar: bool = False,
) -> Path:
    """Roll out ``policy`` for ``n_episodes`` episodes straight into a ``.lfid`` file.

    Like :meth:`Demonstrations.collect` followed by ``save``, but the observations are
    streamed to disk as they come (see :class:`DemonstrationsWriter`).
    """
    check_positive_int(n_episodes, "n_episodes")
    policy = as_policy(policy)
    check_spaces(policy, env, role="policy")
    spec = env.unwrapped.spec
    with DemonstrationsWriter(
        path, env.observation_space, env.action_space, env_id=spec.id if spec else None
    ) as writer:
        bar = tqdm(total=n_episodes, desc="demos", unit="ep", disable=not progress_bar)
        episodes_done = 0
        for obs, action, reward, start, terminated, truncated, _, _, next_obs in rollout(
            env, policy, seed=seed, deterministic=deterministic
        ):
            writer.add(obs, action, reward, start, terminated, truncated, next_observation=next_obs)
            if terminated or truncated:
                episodes_done += 1
                bar.update(1)
                if episodes_done >= n_episodes:
                    break
        bar.close()
    return writer.path
