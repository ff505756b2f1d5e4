"""Demonstrations: trajectories for imitation, with a safe single-file format.

File layout (``.lfid``)::

    MAGIC | array and blob sections (64-byte aligned) | footer JSON | footer length | END

The footer names every section (dtype, shape, offset, size), the schema version and a
SHA-256 over all bytes before it plus the footer itself, so a truncated or edited file is
refused. Writes go to a temporary file in the same folder, are fsync'ed, then renamed over
the target: an interrupted save leaves the previous file intact. Arrays are written from
memory without copies and loaded as read-only memory maps, so a large image dataset never
needs to fit in RAM twice.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import pickle
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from tqdm.auto import tqdm

from lfi_gym.agents.files import atomic_write
from lfi_gym.envs.policies import Policy, as_policy, check_spaces, same_space
from lfi_gym.envs.validation import check_positive_int

SCHEMA_VERSION = 1
MAGIC = b"LFIDEMO\x01"
END_MAGIC = b"LFIDEND\x01"
_ALIGN = 64
_CHUNK = 1 << 20

Observations = np.ndarray | dict[str, np.ndarray]


class DemonstrationsFileError(ValueError):
    """A demonstrations file is truncated, edited, or not a demonstrations file."""


@dataclasses.dataclass(eq=False)  # holds arrays: == is identity, compare fields yourself
class Demonstrations:
    """Transitions of one or more episodes, in order.

    ``actions`` are the expert's labels (for DAgger, the expert's action at a state the
    learner may have visited). ``episode_starts[i]`` marks the first transition of an
    episode, or of the recorded part of one (DAgger rounds may resume an episode the
    previous round left running); ``terminated`` / ``truncated`` mark how the last
    transition of an episode ended (a collection cut off by a step budget is marked
    truncated).
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
        )

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
            for kind in ("observation_space", "action_space"):
                mine, theirs = getattr(first, kind), getattr(other, kind)
                if mine is not None and theirs is not None and not same_space(mine, theirs):
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
        if isinstance(first.observations, dict):
            observations = {
                k: np.concatenate([p.observations[k] for p in parts]) for k in first.observations
            }
        else:
            observations = np.concatenate([p.observations for p in parts])
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
            obs, action, reward, episode_start, terminated, truncated, state, step_info = transition
            buffer.add(
                obs,
                action,
                reward,
                episode_start,
                terminated,
                truncated,
                state,
                step_info if record_infos else None,
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

    # -- files ---------------------------------------------------------------------------

    def save(self, path: str | os.PathLike) -> Path:
        """Write to ``path`` atomically (temporary file + fsync + rename)."""
        path = Path(path)
        arrays: dict[str, np.ndarray] = {
            key: np.ascontiguousarray(array) for key, array in _observation_items(self.observations)
        }
        for key in ("actions", "rewards", "episode_starts", "terminated", "truncated"):
            arrays[key] = np.ascontiguousarray(getattr(self, key))
        for key, array in arrays.items():
            if array.dtype.hasobject:
                raise TypeError(f"cannot save {key}: object arrays are not supported")
        blobs = {
            "spaces": pickle.dumps((self.observation_space, self.action_space), protocol=5),
        }
        if self.states is not None:
            blobs["states"] = pickle.dumps(self.states, protocol=5)
        if self.infos is not None:
            blobs["infos"] = pickle.dumps(self.infos, protocol=5)

        with atomic_write(path) as f:
            writer = _HashingWriter(f)
            writer.write(MAGIC)
            sections: dict[str, dict[str, Any]] = {}
            _write_arrays(writer, arrays, sections)
            for key, blob in blobs.items():
                sections[key] = {
                    "kind": "pickle",
                    "offset": writer.position,
                    "nbytes": len(blob),
                }
                writer.write(blob)
            footer = {
                "format": "lfi-gym.demonstrations",
                "schema_version": SCHEMA_VERSION,
                "length": len(self),
                "env_id": self.env_id,
                "observations": "dict" if isinstance(self.observations, dict) else "array",
                "sections": sections,
            }
            footer["sha256"] = _footer_digest(writer.digest_copy(), footer)
            encoded = json.dumps(footer, sort_keys=True).encode()
            f.write(encoded)
            f.write(len(encoded).to_bytes(8, "little"))
            f.write(END_MAGIC)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike, *, mmap: bool = True) -> Demonstrations:
        """Read a file written by :meth:`save`, verifying its checksum first.

        With ``mmap=True`` the arrays are read-only memory maps of the file.
        Like ``torch.load``, this unpickles states and spaces: load files you trust.
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no demonstrations file at {path}")
        footer, data_end = _read_footer(path)
        sections = footer["sections"]
        with open(path, "rb") as f:
            digest = hashlib.sha256()
            remaining = data_end
            while remaining:
                chunk = f.read(min(_CHUNK, remaining))
                if not chunk:
                    raise DemonstrationsFileError(f"{path}: file is truncated")
                digest.update(chunk)
                remaining -= len(chunk)
            expected = footer.pop("sha256", None)
            if expected != _footer_digest(digest, footer):
                raise DemonstrationsFileError(
                    f"{path}: checksum mismatch, the file was modified or corrupted after it "
                    "was written; re-record or restore it from a backup"
                )
            arrays: dict[str, np.ndarray] = {}
            blobs: dict[str, Any] = {}
            for key, section in sections.items():
                offset, nbytes = int(section["offset"]), int(section["nbytes"])
                if offset < len(MAGIC) or offset + nbytes > data_end:
                    raise DemonstrationsFileError(f"{path}: section {key!r} lies outside the data")
                if section["kind"] == "array":
                    dtype, shape = np.dtype(section["dtype"]), tuple(section["shape"])
                    if int(np.prod(shape, dtype=np.int64)) * dtype.itemsize != nbytes:
                        raise DemonstrationsFileError(
                            f"{path}: section {key!r} has an inconsistent size"
                        )
                    if mmap and nbytes:
                        arrays[key] = np.memmap(
                            path, dtype=dtype, mode="r", offset=offset, shape=shape
                        )
                    else:
                        f.seek(offset)
                        arrays[key] = (
                            np.frombuffer(f.read(nbytes), dtype=dtype).reshape(shape).copy()
                        )
                else:
                    f.seek(offset)
                    blobs[key] = pickle.loads(f.read(nbytes))
        if footer["observations"] == "dict":
            prefix = "observations/"
            observations: Observations = {
                k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)
            }
        else:
            observations = arrays["observations"]
        observation_space, action_space = blobs["spaces"]
        try:
            return cls(
                observations=observations,
                actions=arrays["actions"],
                rewards=arrays["rewards"],
                episode_starts=arrays["episode_starts"],
                terminated=arrays["terminated"],
                truncated=arrays["truncated"],
                states=blobs.get("states"),
                infos=blobs.get("infos"),
                observation_space=observation_space,
                action_space=action_space,
                env_id=footer.get("env_id"),
            )
        except (KeyError, ValueError) as exc:
            raise DemonstrationsFileError(f"{path}: inconsistent contents: {exc}") from exc

    def __repr__(self) -> str:
        return (
            f"Demonstrations(env_id={self.env_id!r}, transitions={len(self)}, "
            f"episodes={self.n_episodes})"
        )


# -- helpers --------------------------------------------------------------------------


def _observation_items(observations: Observations) -> list[tuple[str, np.ndarray]]:
    if isinstance(observations, dict):
        return [(f"observations/{k}", v) for k, v in observations.items()]
    return [("observations", observations)]


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

    def __len__(self) -> int:
        return len(self.actions)

    def add(self, obs, action, reward, start, terminated, truncated, state, info) -> None:
        self.observations.append(obs)
        self.actions.append(np.asarray(action))
        self.rewards.append(float(reward))
        self.episode_starts.append(bool(start))
        self.terminated.append(bool(terminated))
        self.truncated.append(bool(truncated))
        self.states.append(state)
        self.infos.append(info)

    def build(
        self, env: gym.Env, *, record_states: bool = False, record_infos: bool = False
    ) -> Demonstrations:
        """The recorded transitions as Demonstrations of ``env`` (its spaces and id)."""
        if isinstance(self.observations[0], dict):
            observations: Observations = {
                k: np.stack([o[k] for o in self.observations]) for k in self.observations[0]
            }
        else:
            observations = np.stack(self.observations)
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
        )


class _HashingWriter:
    def __init__(self, f: io.BufferedWriter) -> None:
        self.f, self.position, self.hash = f, 0, hashlib.sha256()

    def write(self, data) -> None:
        self.f.write(data)
        self.hash.update(data)
        self.position += len(data) if not isinstance(data, memoryview) else data.nbytes

    def pad_to(self, alignment: int) -> None:
        if self.position % alignment:
            self.write(b"\0" * (alignment - self.position % alignment))

    def digest_copy(self):
        return self.hash.copy()


def _footer_digest(data_hash, footer: dict[str, Any]) -> str:
    digest = data_hash.copy()
    digest.update(json.dumps(footer, sort_keys=True).encode())
    return digest.hexdigest()


def _write_arrays(
    writer: _HashingWriter, arrays: dict[str, np.ndarray], sections: dict[str, dict[str, Any]]
) -> None:
    """Write each array 64-byte aligned and describe it in ``sections``."""
    for key, array in arrays.items():
        writer.pad_to(_ALIGN)
        sections[key] = {
            "kind": "array",
            "dtype": array.dtype.str,
            "shape": list(array.shape),
            "offset": writer.position,
            "nbytes": array.nbytes,
        }
        writer.write(memoryview(array.reshape(-1)).cast("B") if array.size else b"")


def _read_footer(path: Path) -> tuple[dict[str, Any], int]:
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(len(MAGIC))
        if head != MAGIC:
            raise DemonstrationsFileError(
                f"{path}: not an lfi-gym demonstrations file (bad magic bytes)"
            )
        tail_size = 8 + len(END_MAGIC)
        if size < len(MAGIC) + tail_size:
            raise DemonstrationsFileError(f"{path}: file is truncated (no footer)")
        f.seek(size - tail_size)
        tail = f.read(tail_size)
        if tail[8:] != END_MAGIC:
            raise DemonstrationsFileError(
                f"{path}: file is truncated (no end marker); it was cut off while being "
                "written or copied"
            )
        footer_size = int.from_bytes(tail[:8], "little")
        data_end = size - tail_size - footer_size
        if footer_size <= 0 or data_end < len(MAGIC):
            raise DemonstrationsFileError(f"{path}: corrupt footer length")
        f.seek(data_end)
        try:
            footer = json.loads(f.read(footer_size))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise DemonstrationsFileError(f"{path}: corrupt footer ({exc})") from exc
    if not isinstance(footer, dict) or footer.get("format") != "lfi-gym.demonstrations":
        raise DemonstrationsFileError(f"{path}: corrupt footer (not a demonstrations footer)")
    version = footer.get("schema_version")
    if version != SCHEMA_VERSION:
        raise DemonstrationsFileError(
            f"{path}: schema version {version!r}; this lfi-gym reads version {SCHEMA_VERSION}"
            + (
                " (the file was written by a newer lfi-gym: upgrade)"
                if isinstance(version, int) and version > SCHEMA_VERSION
                else ""
            )
        )
    return footer, data_end


class DemonstrationsWriter:
    """Write demonstrations to a ``.lfid`` file one transition at a time.

    Observations go straight to disk (the file's first section), so recording a large
    image dataset holds one observation in memory rather than the whole dataset twice;
    the small per-step arrays are kept until :meth:`close` writes them and the footer.
    The file is the same format :meth:`Demonstrations.save` writes (``load`` reads it),
    and it appears atomically at ``close``: an interrupted recording leaves no file and
    any previous file intact. Use as a context manager; an exception inside discards the
    recording.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        observation_space: gym.Space,
        action_space: gym.Space,
        *,
        env_id: str | None = None,
    ) -> None:
        if not isinstance(observation_space, gym.spaces.Box):
            raise TypeError(
                "DemonstrationsWriter streams array observations (a Box space); got "
                f"{observation_space}; build a Demonstrations and call save() instead"
            )
        self.path = Path(path)
        self.observation_space, self.action_space, self.env_id = (
            observation_space,
            action_space,
            env_id,
        )
        self._shape = tuple(observation_space.shape)
        self._dtype = np.dtype(observation_space.dtype)
        self._steps = TransitionBuffer()
        self._context = atomic_write(self.path)
        self._file = self._context.__enter__()
        self._writer = _HashingWriter(self._file)
        self._writer.write(MAGIC)
        self._writer.pad_to(_ALIGN)
        self._obs_offset = self._writer.position
        self._closed = False

    def __len__(self) -> int:
        return len(self._steps)

    def add(
        self,
        observation: np.ndarray,
        action: Any,
        reward: float,
        episode_start: bool,
        terminated: bool,
        truncated: bool,
    ) -> None:
        """Append one transition (the observation is written to disk now)."""
        if self._closed:
            raise ValueError(f"{self.path}: the writer is closed")
        obs = np.ascontiguousarray(observation, dtype=self._dtype)
        if obs.shape != self._shape:
            raise ValueError(f"observation has shape {obs.shape}, the space says {self._shape}")
        if not len(self._steps) and not episode_start:
            raise ValueError("the first transition must start an episode (episode_start=True)")
        self._writer.write(memoryview(obs.reshape(-1)).cast("B") if obs.size else b"")
        self._steps.add(None, action, reward, episode_start, terminated, truncated, None, None)

    def close(self) -> Path:
        """Write the remaining sections and the footer, then move the file into place."""
        if self._closed:
            return self.path
        self._closed = True
        n, writer = len(self._steps), self._writer
        if n == 0:
            self._abort(ValueError("no transitions were recorded"))
        sections: dict[str, dict[str, Any]] = {
            "observations": {
                "kind": "array",
                "dtype": self._dtype.str,
                "shape": [n, *self._shape],
                "offset": self._obs_offset,
                "nbytes": n * int(np.prod(self._shape, dtype=np.int64)) * self._dtype.itemsize,
            }
        }
        steps = self._steps
        truncated = list(steps.truncated)
        truncated[-1] = truncated[-1] or not steps.terminated[-1]
        arrays = {
            "actions": np.ascontiguousarray(np.stack(steps.actions)),
            "rewards": np.asarray(steps.rewards, dtype=np.float32),
            "episode_starts": np.asarray(steps.episode_starts, dtype=bool),
            "terminated": np.asarray(steps.terminated, dtype=bool),
            "truncated": np.asarray(truncated, dtype=bool),
        }
        _write_arrays(writer, arrays, sections)
        blob = pickle.dumps((self.observation_space, self.action_space), protocol=5)
        sections["spaces"] = {"kind": "pickle", "offset": writer.position, "nbytes": len(blob)}
        writer.write(blob)
        footer = {
            "format": "lfi-gym.demonstrations",
            "schema_version": SCHEMA_VERSION,
            "length": n,
            "env_id": self.env_id,
            "observations": "array",
            "sections": sections,
        }
        footer["sha256"] = _footer_digest(writer.digest_copy(), footer)
        encoded = json.dumps(footer, sort_keys=True).encode()
        self._file.write(encoded)
        self._file.write(len(encoded).to_bytes(8, "little"))
        self._file.write(END_MAGIC)
        self._context.__exit__(None, None, None)
        return self.path

    def _abort(self, exc: BaseException) -> None:
        self._closed = True
        try:
            self._context.__exit__(type(exc), exc, exc.__traceback__)
        finally:
            raise exc

    def __enter__(self) -> DemonstrationsWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc is None:
            self.close()
        elif not self._closed:
            self._closed = True
            self._context.__exit__(exc_type, exc, tb)


def rollout(
    env: gym.Env,
    policy: Policy,
    *,
    seed: int | None = None,
    deterministic: bool = True,
    record_states: bool = False,
) -> Iterator[tuple[Any, Any, float, bool, bool, bool, Any, dict[str, Any]]]:
    """Transitions of ``policy`` in ``env``, without end: ``(obs, action, reward,
    episode_start, terminated, truncated, state, info)``. The first reset uses ``seed``; after
    an episode ends the env resets without one (its RNG goes on) when the next transition
    is asked for. ``state`` is the env's State before the step, or None unless
    ``record_states``. The policy's recurrent state is carried and reset at episode starts.
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
        yield obs, action, reward, episode_start, terminated, truncated, state, info
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
        for obs, action, reward, start, terminated, truncated, _, _ in rollout(
            env, policy, seed=seed, deterministic=deterministic
        ):
            writer.add(obs, action, reward, start, terminated, truncated)
            if terminated or truncated:
                episodes_done += 1
                bar.update(1)
                if episodes_done >= n_episodes:
                    break
        bar.close()
    return writer.path
