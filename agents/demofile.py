"""The ``.lfid`` demonstrations file: layout, checksum, schema version, reading, writing.

Layout::

    MAGIC | array and blob sections (arrays 64-byte aligned) | footer JSON | footer length | END

The footer names every section (kind, dtype, shape, offset, size), the schema version,
the number of transitions, the env id, whether observations are one array or a dict of
arrays, and a SHA-256 over all bytes before it plus the footer itself, so a truncated or
edited file is refused. Sections (:class:`lfi_gym.agents.data.Demonstrations` fills them):
``observations`` (or ``observations/<key>`` per key of a Dict space), ``actions``,
``rewards``, ``episode_starts``, ``terminated``, ``truncated`` (arrays); ``spaces`` and
optionally ``states`` and ``infos`` (pickles).

Files are written to a temporary file in the same folder, fsync'ed, then renamed over the
target (an interrupted save leaves the previous file intact); arrays are written from
memory without copies and can be read back as read-only memory maps, so a large image
dataset never needs to fit in RAM twice. The same bytes can be built and read in memory
(an agent file's member).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
from pathlib import Path
from typing import Any, BinaryIO, NamedTuple

import gymnasium as gym
import numpy as np

from lfi_gym.agents.files import atomic_write, pre_package_names

FORMAT = "lfi-gym.demonstrations"
SCHEMA_VERSION = 1
MAGIC = b"LFIDEMO\x01"
END_MAGIC = b"LFIDEND\x01"
_ALIGN = 64
_CHUNK = 1 << 20


class DemonstrationsFileError(ValueError):
    """A demonstrations file is truncated, edited, or not a demonstrations file."""


class Contents(NamedTuple):
    """What a file holds: its footer (checksum removed), arrays and unpickled blobs."""

    footer: dict[str, Any]
    arrays: dict[str, np.ndarray]
    blobs: dict[str, Any]


# -- writing --------------------------------------------------------------------------------


def encode_blobs(objects: dict[str, Any]) -> dict[str, bytes]:
    """The pickled sections, in the order given."""
    return {key: pickle.dumps(value, protocol=5) for key, value in objects.items()}


def check_arrays(arrays: dict[str, np.ndarray]) -> None:
    """Raise TypeError for arrays the format cannot hold (object dtype)."""
    for key, array in arrays.items():
        if array.dtype.hasobject:
            raise TypeError(f"cannot save {key}: object arrays are not supported")


def write(
    f: BinaryIO,
    arrays: dict[str, np.ndarray],
    blobs: dict[str, bytes],
    *,
    length: int,
    env_id: str | None,
    dict_observations: bool,
) -> None:
    """Write a whole file to ``f``: ``arrays`` (C-contiguous) then the pickled ``blobs``."""
    writer = _HashingWriter(f)
    writer.write(MAGIC)
    sections: dict[str, dict[str, Any]] = {}
    _write_arrays(writer, arrays, sections)
    _write_blobs(writer, blobs, sections)
    _write_footer(writer, sections, length, env_id, dict_observations)


def to_bytes(
    arrays: dict[str, np.ndarray],
    blobs: dict[str, bytes],
    *,
    length: int,
    env_id: str | None,
    dict_observations: bool,
) -> bytes:
    """:func:`write` into memory: the bytes a file would hold."""
    buffer = io.BytesIO()
    write(buffer, arrays, blobs, length=length, env_id=env_id, dict_observations=dict_observations)
    return buffer.getvalue()


def save(
    path: str | os.PathLike,
    arrays: dict[str, np.ndarray],
    blobs: dict[str, bytes],
    *,
    length: int,
    env_id: str | None,
    dict_observations: bool,
) -> Path:
    """:func:`write` to ``path`` atomically (temporary file + fsync + rename)."""
    path = Path(path)
    with atomic_write(path) as f:
        write(f, arrays, blobs, length=length, env_id=env_id, dict_observations=dict_observations)
    return path


class _HashingWriter:
    def __init__(self, f: BinaryIO) -> None:
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


def _write_blobs(
    writer: _HashingWriter, blobs: dict[str, bytes], sections: dict[str, dict[str, Any]]
) -> None:
    for key, blob in blobs.items():
        sections[key] = {"kind": "pickle", "offset": writer.position, "nbytes": len(blob)}
        writer.write(blob)


def _write_footer(
    writer: _HashingWriter,
    sections: dict[str, dict[str, Any]],
    length: int,
    env_id: str | None,
    dict_observations: bool,
) -> None:
    footer = {
        "format": FORMAT,
        "schema_version": SCHEMA_VERSION,
        "length": length,
        "env_id": env_id,
        "observations": "dict" if dict_observations else "array",
        "sections": sections,
    }
    footer["sha256"] = _footer_digest(writer.digest_copy(), footer)
    encoded = json.dumps(footer, sort_keys=True).encode()
    # Past the hashed part: written to the file directly.
    writer.f.write(encoded)
    writer.f.write(len(encoded).to_bytes(8, "little"))
    writer.f.write(END_MAGIC)


# -- reading --------------------------------------------------------------------------------


def read(
    source: str | os.PathLike | bytes, *, mmap: bool = True, name: str | None = None
) -> Contents:
    """Read a file (a path, or its bytes), verifying its checksum first.

    With ``mmap=True`` and a path, the arrays are read-only memory maps of the file;
    otherwise they are copies. ``name`` labels the source in error messages (default: the
    path, or ``<bytes>``). Like ``torch.load``, this unpickles: read files you trust.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        path, label = None, name or "<bytes>"
        f: BinaryIO = io.BytesIO(source)
        size = len(source) if not isinstance(source, memoryview) else source.nbytes
    else:
        path = Path(source)
        label = name or str(path)
        if not path.is_file():
            raise FileNotFoundError(f"no demonstrations file at {path}")
        size = path.stat().st_size
        f = open(path, "rb")
    with f:
        footer, data_end = _read_footer(f, size, label)
        _verify_checksum(f, footer, data_end, label)
        arrays: dict[str, np.ndarray] = {}
        blobs: dict[str, Any] = {}
        for key, section in footer["sections"].items():
            offset, nbytes = int(section["offset"]), int(section["nbytes"])
            if offset < len(MAGIC) or offset + nbytes > data_end:
                raise DemonstrationsFileError(f"{label}: section {key!r} lies outside the data")
            if section["kind"] == "array":
                dtype, shape = np.dtype(section["dtype"]), tuple(section["shape"])
                if int(np.prod(shape, dtype=np.int64)) * dtype.itemsize != nbytes:
                    raise DemonstrationsFileError(
                        f"{label}: section {key!r} has an inconsistent size"
                    )
                if mmap and path is not None and nbytes:
                    arrays[key] = np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape)
                else:
                    f.seek(offset)
                    arrays[key] = np.frombuffer(f.read(nbytes), dtype=dtype).reshape(shape).copy()
            else:
                f.seek(offset)
                with pre_package_names(label):
                    blobs[key] = pickle.loads(f.read(nbytes))
    return Contents(footer, arrays, blobs)


def _verify_checksum(f: BinaryIO, footer: dict[str, Any], data_end: int, label: str) -> None:
    """Hash the data and the footer as written; removes ``sha256`` from ``footer``."""
    f.seek(0)
    digest = hashlib.sha256()
    remaining = data_end
    while remaining:
        chunk = f.read(min(_CHUNK, remaining))
        if not chunk:
            raise DemonstrationsFileError(f"{label}: file is truncated")
        digest.update(chunk)
        remaining -= len(chunk)
    expected = footer.pop("sha256", None)
    if expected != _footer_digest(digest, footer):
        raise DemonstrationsFileError(
            f"{label}: checksum mismatch, the file was modified or corrupted after it "
            "was written; re-record or restore it from a backup"
        )


def _read_footer(f: BinaryIO, size: int, label: str) -> tuple[dict[str, Any], int]:
    head = f.read(len(MAGIC))
    if head != MAGIC:
        raise DemonstrationsFileError(
            f"{label}: not an lfi-gym demonstrations file (bad magic bytes)"
        )
    tail_size = 8 + len(END_MAGIC)
    if size < len(MAGIC) + tail_size:
        raise DemonstrationsFileError(f"{label}: file is truncated (no footer)")
    f.seek(size - tail_size)
    tail = f.read(tail_size)
    if tail[8:] != END_MAGIC:
        raise DemonstrationsFileError(
            f"{label}: file is truncated (no end marker); it was cut off while being "
            "written or copied"
        )
    footer_size = int.from_bytes(tail[:8], "little")
    data_end = size - tail_size - footer_size
    if footer_size <= 0 or data_end < len(MAGIC):
        raise DemonstrationsFileError(f"{label}: corrupt footer length")
    f.seek(data_end)
    try:
        footer = json.loads(f.read(footer_size))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DemonstrationsFileError(f"{label}: corrupt footer ({exc})") from exc
    if not isinstance(footer, dict) or footer.get("format") != FORMAT:
        raise DemonstrationsFileError(f"{label}: corrupt footer (not a demonstrations footer)")
    version = footer.get("schema_version")
    if version != SCHEMA_VERSION:
        raise DemonstrationsFileError(
            f"{label}: schema version {version!r}; this lfi-gym reads version {SCHEMA_VERSION}"
            + (
                " (the file was written by a newer lfi-gym: upgrade)"
                if isinstance(version, int) and version > SCHEMA_VERSION
                else ""
            )
        )
    return footer, data_end


# -- streaming ------------------------------------------------------------------------------


class DemonstrationsWriter:
    """Write demonstrations to a ``.lfid`` file one transition at a time.

    Observations go straight to disk (the file's first section), so recording a large
    image dataset holds one observation in memory rather than the whole dataset twice;
    the small per-step arrays are kept until :meth:`close` writes them and the footer.
    The file is the same format ``Demonstrations.save`` writes (``Demonstrations.load``
    reads it), and it appears atomically at ``close``: an interrupted recording leaves no
    file and any previous file intact. Use as a context manager; an exception inside
    discards the recording.
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
        self._actions: list[np.ndarray] = []
        self._rewards: list[float] = []
        self._episode_starts: list[bool] = []
        self._terminated: list[bool] = []
        self._truncated: list[bool] = []
        self._context = atomic_write(self.path)
        self._file = self._context.__enter__()
        self._writer = _HashingWriter(self._file)
        self._writer.write(MAGIC)
        self._writer.pad_to(_ALIGN)
        self._obs_offset = self._writer.position
        self._closed = False

    def __len__(self) -> int:
        return len(self._actions)

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
        if not self._actions and not episode_start:
            raise ValueError("the first transition must start an episode (episode_start=True)")
        self._writer.write(memoryview(obs.reshape(-1)).cast("B") if obs.size else b"")
        self._actions.append(np.asarray(action))
        self._rewards.append(float(reward))
        self._episode_starts.append(bool(episode_start))
        self._terminated.append(bool(terminated))
        self._truncated.append(bool(truncated))

    def close(self) -> Path:
        """Write the remaining sections and the footer, then move the file into place."""
        if self._closed:
            return self.path
        self._closed = True
        n, writer = len(self._actions), self._writer
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
        # A recording cut off mid-episode ends truncated.
        truncated = list(self._truncated)
        truncated[-1] = truncated[-1] or not self._terminated[-1]
        arrays = {
            "actions": np.ascontiguousarray(np.stack(self._actions)),
            "rewards": np.asarray(self._rewards, dtype=np.float32),
            "episode_starts": np.asarray(self._episode_starts, dtype=bool),
            "terminated": np.asarray(self._terminated, dtype=bool),
            "truncated": np.asarray(truncated, dtype=bool),
        }
        _write_arrays(writer, arrays, sections)
        _write_blobs(
            writer, encode_blobs({"spaces": (self.observation_space, self.action_space)}), sections
        )
        _write_footer(writer, sections, n, self.env_id, dict_observations=False)
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
