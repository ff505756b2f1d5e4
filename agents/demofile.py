"""The ``.lfid`` demonstrations file: layout, checksum, schema version, reading, writing.

Layout::

    MAGIC | sections (each 64-byte aligned) | footer JSON | footer length | END

The footer names every section (kind, offset, size; an array's dtype and shape), the schema
version, the number of transitions, the env id, whether observations are one array or a dict
of arrays, and a SHA-256 over all bytes before it plus the footer itself. The checksum
detects damage (a truncated copy, a flipped bit, an accidental edit); it is not a signature:
anyone who edits a file can recompute it, so it says nothing about who wrote the file.

Reading never unpickles and never imports by name, whoever wrote the file. Sections are of
two kinds, and a file with any other kind is refused:

- ``array``: the raw bytes of a numpy array whose dtype is on an allow-list (booleans,
  numbers, fixed-width strings; never ``object``), checked to lie inside the file and
  memory-mapped read-only (or copied).
- ``json``: a value encoded by :mod:`lfi_gym.envs.codec` as a JSON tree plus arrays. The
  section holds ``{"tree": ..., "arrays": [{"dtype", "shape", "offset"}, ...]}`` (at most
  :data:`MAX_JSON_BYTES`); the arrays lie back to back in the byte array section
  ``<name>/arrays``, so a few thousand States (one per transition, each with its arrays)
  cost one JSON document and one array section; the arrays are read as read-only views of
  it (a State then keeps its own read-only copies).
  States are rebuilt only as registered lfi-gym State classes from their fields.

Sections (:class:`lfi_gym.agents.data.Demonstrations` fills them): arrays ``observations``
(or ``observations/<key>`` per key of a Dict space), ``actions``, ``rewards``,
``episode_starts``, ``terminated``, ``truncated`` and, since schema 3, optionally
``final_observations`` (or ``final_observations/<key>``: one row per episode, the observation
after its last step); values ``spaces`` (their JSON forms) and optionally ``states`` and
``infos``. Schema 2 files (no final observations) are still read: their final observations
are unknown (``Demonstrations.final_observations is None``), as they are in a schema 3 file
written without them.

The same container holds other lfi-gym contents (:data:`KINDS`): its footer's ``format``
names what it holds (:class:`ContentKind`), each kind with its own schema versions, and a
reader asked for one kind refuses a file of another with a message naming the right reader
(a preferences file is not read as demonstrations, nor the reverse). Demonstrations files
are the default kind everywhere, and their footer is unchanged.

Files are written to a temporary file in the same folder, fsync'ed, then renamed over the
target (an interrupted save leaves the previous file intact); arrays are written from
memory without copies and can be read back as read-only memory maps, so a large image
dataset never needs to fit in RAM twice. The same bytes can be built and read in memory
(an agent file's member).
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any, BinaryIO, NamedTuple

import gymnasium as gym
import numpy as np

from lfi_gym.agents.files import atomic_write
from lfi_gym.envs import codec
from lfi_gym.envs.codec import CodecError, parse_json

FORMAT = "lfi-gym.demonstrations"
SCHEMA_VERSION = 3
#: Versions this reader reads: 2 lacks the final observations, which are then unknown.
READABLE_SCHEMA_VERSIONS = (2, 3)
MAGIC = b"LFIDEMO\x01"
END_MAGIC = b"LFIDEND\x01"
#: The section kinds this reader knows; any other is refused.
SECTION_KINDS = ("array", "json")
#: Caps on what is parsed into memory (arrays are memory-mapped and only bounds-checked).
MAX_FOOTER_BYTES = 16 << 20
MAX_JSON_BYTES = codec.MAX_BLOB_BYTES
_ALIGN = 64
# Arrays of a value, inside its byte section: aligned for every allowed dtype's itemsize.
_VALUE_ALIGN = 16
_CHUNK = 1 << 20


class DemonstrationsFileError(ValueError):
    """A demonstrations file is truncated, damaged, malformed, from another schema version,
    or holds something this reader refuses to build (a pickle, an object array, a class
    that is not a registered lfi-gym State)."""


@dataclasses.dataclass(frozen=True)
class ContentKind:
    """What a file holds: its footer's ``format``, the schema version written and those
    read, a noun and the reader to name in messages, and whether its footer says if the
    observations are one array or a dict of arrays (demonstrations only)."""

    format: str
    noun: str
    schema_version: int
    readable_versions: tuple[int, ...]
    reader: str
    observations: bool


DEMONSTRATIONS = ContentKind(
    FORMAT, "demonstrations", SCHEMA_VERSION, READABLE_SCHEMA_VERSIONS, "Demonstrations.load", True
)
#: :class:`lfi_gym.agents.preferences.Preferences` (``.lfip`` files).
PREFERENCES = ContentKind("lfi-gym.preferences", "preferences", 1, (1,), "Preferences.load", False)
#: Every kind this reader knows, by footer ``format``.
KINDS = {kind.format: kind for kind in (DEMONSTRATIONS, PREFERENCES)}


class Contents(NamedTuple):
    """What a file holds: its footer (checksum removed), arrays and decoded values."""

    footer: dict[str, Any]
    arrays: dict[str, np.ndarray]
    values: dict[str, Any]


class EncodedValue(NamedTuple):
    """A value ready to be written: its JSON document and the arrays it refers to."""

    document: bytes
    arrays: list[np.ndarray]
    nbytes: int  # of the arrays packed back to back, alignment padding included


# -- encoding -------------------------------------------------------------------------------


def encode_values(values: dict[str, Any]) -> dict[str, EncodedValue]:
    """Encode each value through :mod:`lfi_gym.envs.codec`; raises TypeError (naming the
    key) for what files cannot hold, before anything is written."""
    encoded = {}
    for key, value in values.items():
        try:
            tree, arrays = codec.to_tree(value)
        except CodecError as exc:
            raise TypeError(f"cannot save {key}: {exc}") from None
        layout, offset = [], 0
        for array in arrays:
            offset = _aligned(offset, _VALUE_ALIGN)
            layout.append({"dtype": array.dtype.str, "shape": list(array.shape), "offset": offset})
            offset += array.nbytes
        document = json.dumps({"tree": tree, "arrays": layout}, separators=(",", ":")).encode()
        if len(document) > MAX_JSON_BYTES:
            raise ValueError(
                f"cannot save {key}: it encodes to {len(document)} bytes of JSON, over the "
                f"reader's cap of {MAX_JSON_BYTES}; save fewer transitions per file"
            )
        encoded[key] = EncodedValue(document, arrays, offset)
    return encoded


def encode_spaces(observation_space: gym.Space | None, action_space: gym.Space | None) -> dict:
    """The ``spaces`` value: each space's JSON form (or None)."""
    spaces = {"observation_space": observation_space, "action_space": action_space}
    try:
        return {k: None if s is None else codec.space_to_json(s) for k, s in spaces.items()}
    except CodecError as exc:
        raise TypeError(f"cannot save the spaces: {exc}") from None


def decode_spaces(value: Any, label: str) -> tuple[gym.Space | None, gym.Space | None]:
    """(observation space, action space) from the ``spaces`` value of a file."""
    keys = ("observation_space", "action_space")
    if not isinstance(value, dict) or sorted(value) != sorted(keys):
        raise DemonstrationsFileError(f"{label}: section 'spaces' is malformed")
    try:
        observation_space, action_space = (
            None if value[k] is None else codec.space_from_json(value[k]) for k in keys
        )
    except CodecError as exc:
        raise DemonstrationsFileError(f"{label}: section 'spaces': {exc}") from None
    return observation_space, action_space


def check_arrays(arrays: dict[str, np.ndarray]) -> None:
    """Raise TypeError for arrays the format cannot hold (object or structured dtypes)."""
    for key, array in arrays.items():
        if not codec.allowed_dtype(array.dtype):
            raise TypeError(
                f"cannot save {key}: arrays of dtype {array.dtype} are not supported (only "
                "bool, numeric and fixed-width string dtypes; object arrays never)"
            )


def _aligned(position: int, alignment: int) -> int:
    return -(-position // alignment) * alignment


# -- writing --------------------------------------------------------------------------------


def write(
    f: BinaryIO,
    arrays: dict[str, np.ndarray],
    values: dict[str, EncodedValue],
    *,
    length: int,
    env_id: str | None,
    dict_observations: bool | None,
    kind: ContentKind = DEMONSTRATIONS,
) -> None:
    """Write a whole file to ``f``: ``arrays`` (C-contiguous) then the encoded ``values``.
    ``dict_observations`` is None for a kind without observations."""
    writer = _HashingWriter(f)
    writer.write(MAGIC)
    sections: dict[str, dict[str, Any]] = {}
    _write_arrays(writer, arrays, sections)
    _write_values(writer, values, sections)
    _write_footer(writer, sections, length, env_id, dict_observations, kind)


def to_bytes(
    arrays: dict[str, np.ndarray],
    values: dict[str, EncodedValue],
    *,
    length: int,
    env_id: str | None,
    dict_observations: bool | None,
    kind: ContentKind = DEMONSTRATIONS,
) -> bytes:
    """:func:`write` into memory: the bytes a file would hold."""
    buffer = io.BytesIO()
    write(
        buffer,
        arrays,
        values,
        length=length,
        env_id=env_id,
        dict_observations=dict_observations,
        kind=kind,
    )
    return buffer.getvalue()


def save(
    path: str | os.PathLike,
    arrays: dict[str, np.ndarray],
    values: dict[str, EncodedValue],
    *,
    length: int,
    env_id: str | None,
    dict_observations: bool | None,
    kind: ContentKind = DEMONSTRATIONS,
) -> Path:
    """:func:`write` to ``path`` atomically (temporary file + fsync + rename)."""
    path = Path(path)
    with atomic_write(path) as f:
        write(
            f,
            arrays,
            values,
            length=length,
            env_id=env_id,
            dict_observations=dict_observations,
            kind=kind,
        )
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


def _raw(array: np.ndarray) -> memoryview:
    """The bytes of a C-contiguous array, without a copy."""
    return memoryview(array.reshape(-1).view(np.uint8))


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
        sections[key] = _array_section(array.dtype, array.shape, writer.position)
        writer.write(_raw(array))


def _array_section(dtype: np.dtype, shape: tuple[int, ...], offset: int) -> dict[str, Any]:
    return {
        "kind": "array",
        "dtype": dtype.str,
        "shape": list(shape),
        "offset": offset,
        "nbytes": math.prod(shape) * dtype.itemsize,
    }


def _write_values(
    writer: _HashingWriter, values: dict[str, EncodedValue], sections: dict[str, dict[str, Any]]
) -> None:
    """Each value's JSON document, then its arrays packed into one byte section."""
    for key, value in values.items():
        writer.pad_to(_ALIGN)
        sections[key] = {"kind": "json", "offset": writer.position, "nbytes": len(value.document)}
        writer.write(value.document)
        if not value.arrays:
            continue
        writer.pad_to(_ALIGN)
        start = writer.position
        sections[f"{key}/arrays"] = _array_section(np.dtype(np.uint8), (value.nbytes,), start)
        for array in value.arrays:
            writer.pad_to(_VALUE_ALIGN)  # the section starts 64-byte aligned: same as layout
            writer.write(_raw(array))
        assert writer.position - start == value.nbytes


def _write_footer(
    writer: _HashingWriter,
    sections: dict[str, dict[str, Any]],
    length: int,
    env_id: str | None,
    dict_observations: bool | None,
    kind: ContentKind = DEMONSTRATIONS,
) -> None:
    if (dict_observations is None) == kind.observations:
        raise ValueError(
            f"{kind.noun} files {'need' if kind.observations else 'have no'} observations: "
            f"dict_observations must be {'a bool' if kind.observations else 'None'}"
        )
    footer: dict[str, Any] = {
        "format": kind.format,
        "schema_version": kind.schema_version,
        "length": length,
        "env_id": env_id,
    }
    if kind.observations:
        footer["observations"] = "dict" if dict_observations else "array"
    footer["sections"] = sections
    footer["sha256"] = _footer_digest(writer.digest_copy(), footer)
    encoded = json.dumps(footer, sort_keys=True).encode()
    # Past the hashed part: written to the file directly.
    writer.f.write(encoded)
    writer.f.write(len(encoded).to_bytes(8, "little"))
    writer.f.write(END_MAGIC)


# -- reading --------------------------------------------------------------------------------


def read(
    source: str | os.PathLike | bytes,
    *,
    mmap: bool = True,
    name: str | None = None,
    kind: ContentKind = DEMONSTRATIONS,
) -> Contents:
    """Read a file (a path, or its bytes), verifying its checksum first.

    With ``mmap=True`` and a path, the arrays (and the arrays inside States and infos) are
    read-only memory maps of the file; otherwise observations and the other per-step arrays
    are writable copies. ``name`` labels the source in error messages (default: the path,
    or ``<bytes>``). Nothing is unpickled: a malformed or forged file raises
    :class:`DemonstrationsFileError`, and so does a file of another ``kind``.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        path, label = None, name or "<bytes>"
        f: BinaryIO = io.BytesIO(source)
        size = len(source) if not isinstance(source, memoryview) else source.nbytes
    else:
        path = Path(source)
        label = name or str(path)
        if not path.is_file():
            raise FileNotFoundError(f"no {kind.noun} file at {path}")
        size = path.stat().st_size
        f = open(path, "rb")
    with f:
        footer, data_end = _read_footer(f, size, label, kind)
        _verify_checksum(f, footer, data_end, label)
        sections = _check_footer(footer, data_end, label, kind)
        arrays = {
            key: _read_array(f, path if mmap else None, section)
            for key, section in sections.items()
            if section["kind"] == "array"
        }
        values = {}
        for key, section in sections.items():
            if section["kind"] == "json":
                data = arrays.pop(f"{key}/arrays", None)
                values[key] = _read_value(f, key, section, data, label)
    return Contents(footer, arrays, values)


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
            f"{label}: checksum mismatch, the file was damaged or changed after it was "
            "written; re-record it or restore it from a backup"
        )


def _read_footer(
    f: BinaryIO, size: int, label: str, kind: ContentKind
) -> tuple[dict[str, Any], int]:
    head = f.read(len(MAGIC))
    if head != MAGIC:
        raise DemonstrationsFileError(f"{label}: not an lfi-gym {kind.noun} file (bad magic bytes)")
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
    if footer_size > MAX_FOOTER_BYTES:
        raise DemonstrationsFileError(
            f"{label}: corrupt footer: {footer_size} bytes, over the cap of {MAX_FOOTER_BYTES}"
        )
    f.seek(data_end)
    footer = _json(f.read(footer_size), f"{label}: corrupt footer")
    written = footer.get("format") if isinstance(footer, dict) else None
    if written != kind.format:
        other = KINDS.get(written) if isinstance(written, str) else None
        if other is not None:
            raise DemonstrationsFileError(
                f"{label}: this is an lfi-gym {other.noun} file, not {kind.noun}; read it "
                f"with {other.reader}"
            )
        raise DemonstrationsFileError(f"{label}: corrupt footer (not a {kind.noun} footer)")
    version = footer.get("schema_version")
    if kind is DEMONSTRATIONS and version == 1:
        raise DemonstrationsFileError(
            f"{label}: written by an older lfi-gym (schema 1, which pickled spaces/states): "
            f"re-record it with this version (it reads schema {SCHEMA_VERSION}, which never "
            "unpickles)"
        )
    if version not in kind.readable_versions:
        raise DemonstrationsFileError(
            f"{label}: schema version {version!r}; this lfi-gym reads versions "
            f"{', '.join(map(str, kind.readable_versions))} of {kind.noun} files"
            + (
                " (the file was written by a newer lfi-gym: upgrade)"
                if isinstance(version, int) and version > kind.schema_version
                else ""
            )
        )
    return footer, data_end


def _json(raw: bytes, context: str) -> Any:
    try:
        return parse_json(raw)
    except CodecError as exc:
        raise DemonstrationsFileError(f"{context} (not valid JSON: {exc})") from None


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_shape(value: Any) -> bool:
    # The codec's bound on dimensions: numpy refuses more than 64 with its own error.
    return (
        isinstance(value, list)
        and len(value) <= codec.MAX_DIMENSIONS
        and all(_is_count(n) for n in value)
    )


def _check_footer(
    footer: dict[str, Any], data_end: int, label: str, kind: ContentKind
) -> dict[str, dict[str, Any]]:
    """Check every field and section entry before anything is read; returns the sections."""
    if not (
        _is_count(footer.get("length"))
        and (footer.get("env_id") is None or isinstance(footer["env_id"], str))
        and (not kind.observations or footer.get("observations") in ("array", "dict"))
        and isinstance(footer.get("sections"), dict)
    ):
        raise DemonstrationsFileError(f"{label}: corrupt footer (malformed fields)")
    sections = footer["sections"]
    for key, section in sections.items():
        where = f"{label}: section {key!r}"
        if not isinstance(section, dict):
            raise DemonstrationsFileError(f"{where} is malformed")
        kind = section.get("kind")
        if kind not in SECTION_KINDS:
            raise DemonstrationsFileError(
                f"{where} has kind {kind!r}: this lfi-gym reads only "
                f"{' and '.join(map(repr, SECTION_KINDS))} sections and never unpickles"
            )
        offset, nbytes = section.get("offset"), section.get("nbytes")
        if not (_is_count(offset) and _is_count(nbytes)):
            raise DemonstrationsFileError(f"{where} has a malformed offset or size")
        if offset < len(MAGIC) or offset + nbytes > data_end:
            raise DemonstrationsFileError(f"{where} lies outside the data")
        if kind == "array":
            dtype = _read_dtype(section.get("dtype"), where)
            shape = section.get("shape")
            if not _is_shape(shape):
                raise DemonstrationsFileError(f"{where} has a malformed shape")
            if math.prod(shape) * dtype.itemsize != nbytes:
                raise DemonstrationsFileError(f"{where} has an inconsistent size")
        elif nbytes > MAX_JSON_BYTES:
            raise DemonstrationsFileError(
                f"{where} holds {nbytes} bytes of JSON, over the cap of {MAX_JSON_BYTES}"
            )
    return sections


def _read_dtype(text: Any, where: str) -> np.dtype:
    """A dtype from the allow-list (never object, structured or sub-array dtypes)."""
    if not isinstance(text, str) or len(text) > codec.MAX_DTYPE_CHARS:
        raise DemonstrationsFileError(f"{where} has a malformed dtype")
    try:
        dtype = np.dtype(text)
    except (TypeError, ValueError):
        raise DemonstrationsFileError(f"{where} has an unknown dtype {text!r}") from None
    if not codec.allowed_dtype(dtype):
        raise DemonstrationsFileError(
            f"{where} has dtype {text!r}: refused, this lfi-gym reads only bool, numeric and "
            "fixed-width string arrays (object arrays would need unpickling)"
        )
    return dtype


def _read_array(f: BinaryIO, path: Path | None, section: dict[str, Any]) -> np.ndarray:
    """One checked array section: a read-only memory map (given a path) or a copy."""
    dtype, shape = np.dtype(section["dtype"]), tuple(section["shape"])
    offset, nbytes = section["offset"], section["nbytes"]
    if path is not None and nbytes:
        return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape)
    f.seek(offset)
    return np.frombuffer(f.read(nbytes), dtype=dtype).reshape(shape).copy()


def _read_value(
    f: BinaryIO, key: str, section: dict[str, Any], data: np.ndarray | None, label: str
) -> Any:
    """Decode a ``json`` section (and its arrays in ``data``) through the codec."""
    where = f"{label}: section {key!r}"
    f.seek(section["offset"])
    document = _json(f.read(section["nbytes"]), f"{where} is malformed")
    layout = document.get("arrays") if isinstance(document, dict) else None
    if not isinstance(layout, list) or sorted(document) != ["arrays", "tree"]:
        raise DemonstrationsFileError(f"{where} is malformed (expected a tree and its arrays)")
    if layout and (data is None or data.dtype != np.uint8 or data.ndim != 1):
        raise DemonstrationsFileError(f"{where}: its byte section {key + '/arrays'!r} is missing")
    arrays = [_array_in(entry, data, where) for entry in layout]
    try:
        return codec.from_tree(document["tree"], arrays)
    except CodecError as exc:
        raise DemonstrationsFileError(f"{where}: {exc}") from None


def _array_in(entry: Any, data: np.ndarray, where: str) -> np.ndarray:
    """A read-only view of ``data`` described by a layout entry, bounds-checked."""
    if not isinstance(entry, dict) or sorted(entry) != ["dtype", "offset", "shape"]:
        raise DemonstrationsFileError(f"{where} has a malformed array entry")
    dtype = _read_dtype(entry["dtype"], where)
    shape, offset = entry["shape"], entry["offset"]
    if not (_is_shape(shape) and _is_count(offset)):
        raise DemonstrationsFileError(f"{where} has a malformed array entry")
    count = math.prod(shape)
    if offset + count * dtype.itemsize > len(data):
        raise DemonstrationsFileError(f"{where} has an array outside its byte section")
    array = np.frombuffer(data, dtype=dtype, count=count, offset=offset).reshape(shape)
    array.flags.writeable = False
    return array


# -- streaming ------------------------------------------------------------------------------

_ARRAY_SPACES = (
    gym.spaces.Box,
    gym.spaces.Discrete,
    gym.spaces.MultiBinary,
    gym.spaces.MultiDiscrete,
)


def _observation_layout(space: gym.Space) -> dict[str | None, tuple[tuple[int, ...], np.dtype]]:
    """(shape, dtype) of each streamed array: one (key None) or one per key of a Dict."""
    parts = dict(space.spaces) if isinstance(space, gym.spaces.Dict) else {None: space}
    if parts and all(
        isinstance(s, _ARRAY_SPACES) and codec.allowed_dtype(np.dtype(s.dtype))
        for s in parts.values()
    ):
        return {key: (tuple(s.shape), np.dtype(s.dtype)) for key, s in parts.items()}
    raise TypeError(
        "DemonstrationsWriter streams observations that are arrays (a Box, Discrete, "
        f"MultiBinary or MultiDiscrete space) or a Dict of them; got {space}; build a "
        "Demonstrations and call save() instead"
    )


class DemonstrationsWriter:
    """Write demonstrations to a ``.lfid`` file one transition at a time.

    Observations go straight to disk, so recording a large image dataset holds one
    observation in memory rather than the whole dataset twice: one array (the file's first
    section), or for a Dict space the first key's array to the file and every other key's
    to an anonymous temporary file beside it, copied in at :meth:`close`. The small
    per-step arrays are kept until :meth:`close` writes them and the footer. The file is
    the same format ``Demonstrations.save`` writes (``Demonstrations.load`` reads it), and it
    appears atomically at ``close``: an interrupted recording leaves no file and any
    previous file intact. Use as a context manager; an exception inside discards the
    recording.

    Final observations (the observation after each episode's last step) are kept in memory,
    one per episode, and written at :meth:`close` when every episode's is known: pass
    ``next_observation`` to :meth:`add` on each episode's last step and on the recording's
    last step (passing it on every step is simplest). Otherwise the file has none, and
    ``Demonstrations.load`` gives ``final_observations=None``.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        observation_space: gym.Space,
        action_space: gym.Space,
        *,
        env_id: str | None = None,
    ) -> None:
        self._layout = _observation_layout(observation_space)
        self._spaces = encode_values({"spaces": encode_spaces(observation_space, action_space)})
        self.path = Path(path)
        self.observation_space, self.action_space, self.env_id = (
            observation_space,
            action_space,
            env_id,
        )
        self._actions: list[np.ndarray] = []
        self._rewards: list[float] = []
        self._episode_starts: list[bool] = []
        self._terminated: list[bool] = []
        self._truncated: list[bool] = []
        # Final observations of the ended episodes (their arrays), then the pending one of
        # the running episode: the next observation of the latest step, if given.
        self._final_observations: list[dict[str | None, np.ndarray]] = []
        self._pending_final: dict[str | None, np.ndarray] | None = None
        self._finals_complete = True
        self._closed = False
        self._context = atomic_write(self.path)
        self._file = self._context.__enter__()
        self._writer = _HashingWriter(self._file)
        self._writer.write(MAGIC)
        self._writer.pad_to(_ALIGN)
        self._obs_offset = self._writer.position
        # The first array streams into the file; the others wait in unnamed temporary files.
        self._spools: dict[str, BinaryIO] = {}
        try:
            for key in list(self._layout)[1:]:
                self._spools[key] = tempfile.TemporaryFile(dir=self.path.parent)
        except BaseException as exc:
            self._abort(exc)

    def __len__(self) -> int:
        return len(self._actions)

    def add(
        self,
        observation: np.ndarray | dict[str, np.ndarray],
        action: Any,
        reward: float,
        episode_start: bool,
        terminated: bool,
        truncated: bool,
        next_observation: np.ndarray | dict[str, np.ndarray] | None = None,
    ) -> None:
        """Append one transition (the observation is written to disk now).

        ``next_observation`` is the observation the step returned (before any reset): it is
        kept if the step ends the episode, or may end the recording.
        """
        if self._closed:
            raise ValueError(f"{self.path}: the writer is closed")
        parts = self._observation_parts(observation)
        next_parts = None if next_observation is None else self._observation_parts(next_observation)
        if not self._actions and not episode_start:
            raise ValueError("the first transition must start an episode (episode_start=True)")
        if self._actions and episode_start and not (self._terminated[-1] or self._truncated[-1]):
            # The previous episode was cut off (a resumed or partial recording): the
            # observation after its last step is the one that step returned.
            self._end_episode()
        for key, part in parts.items():
            self._spools.get(key, self._writer).write(_raw(part))
        self._actions.append(np.asarray(action))
        self._rewards.append(float(reward))
        self._episode_starts.append(bool(episode_start))
        self._terminated.append(bool(terminated))
        self._truncated.append(bool(truncated))
        self._pending_final = next_parts
        if terminated or truncated:
            self._end_episode()

    def _end_episode(self) -> None:
        if self._pending_final is None:
            self._finals_complete = False
        else:
            self._final_observations.append(self._pending_final)
        self._pending_final = None

    def _final_observation_arrays(self) -> dict[str, np.ndarray]:
        """The ``final_observations`` sections, or none if any episode's is unknown."""
        if not self._finals_complete:
            return {}
        arrays = {}
        for key in self._layout:
            name = "final_observations" if key is None else f"final_observations/{key}"
            arrays[name] = np.ascontiguousarray(
                np.stack([f[key] for f in self._final_observations])
            )
        return arrays

    def _observation_parts(self, observation: Any) -> dict[str | None, np.ndarray]:
        """The observation's arrays in the layout's order, checked before any is written."""
        if None in self._layout:
            given = {None: observation}
        elif not isinstance(observation, dict) or observation.keys() != self._layout.keys():
            keys = sorted(observation) if isinstance(observation, dict) else type(observation)
            raise ValueError(
                f"observation has keys {keys}, the Dict space has {sorted(self._layout)}"
            )
        else:
            given = observation
        parts = {}
        for key, (shape, dtype) in self._layout.items():
            part = np.ascontiguousarray(given[key], dtype=dtype)
            if part.shape != shape:
                name = "observation" if key is None else f"observation[{key!r}]"
                raise ValueError(f"{name} has shape {part.shape}, the space says {shape}")
            parts[key] = part
        return parts

    def close(self) -> Path:
        """Write the remaining sections and the footer, then move the file into place."""
        if self._closed:
            return self.path
        n, writer = len(self._actions), self._writer
        if n == 0:
            self._abort(ValueError("no transitions were recorded"))
        try:
            sections = self._observation_sections(n)
            # A recording cut off mid-episode ends truncated.
            truncated = list(self._truncated)
            if not (truncated[-1] or self._terminated[-1]):
                self._end_episode()
            truncated[-1] = truncated[-1] or not self._terminated[-1]
            arrays = {
                **self._final_observation_arrays(),
                "actions": np.ascontiguousarray(np.stack(self._actions)),
                "rewards": np.asarray(self._rewards, dtype=np.float32),
                "episode_starts": np.asarray(self._episode_starts, dtype=bool),
                "terminated": np.asarray(self._terminated, dtype=bool),
                "truncated": np.asarray(truncated, dtype=bool),
            }
            check_arrays(arrays)
            _write_arrays(writer, arrays, sections)
            _write_values(writer, self._spaces, sections)
            _write_footer(
                writer, sections, n, self.env_id, dict_observations=None not in self._layout
            )
        except BaseException as exc:
            self._abort(exc)
        self._closed = True
        self._close_spools()
        self._context.__exit__(None, None, None)
        return self.path

    def _observation_sections(self, n: int) -> dict[str, dict[str, Any]]:
        """Describe the streamed first array; copy each spooled one in after it."""
        sections: dict[str, dict[str, Any]] = {}
        for i, (key, (shape, dtype)) in enumerate(self._layout.items()):
            name = "observations" if key is None else f"observations/{key}"
            if i == 0:
                offset = self._obs_offset
            else:
                self._writer.pad_to(_ALIGN)
                offset = self._writer.position
                self._copy_spool(self._spools[key])
            sections[name] = _array_section(dtype, (n, *shape), offset)
            written, expected = self._writer.position - offset, sections[name]["nbytes"]
            if written != expected:  # a spool lost bytes: never write a short section
                raise RuntimeError(f"{self.path}: {name} has {written} bytes, not {expected}")
        return sections

    def _copy_spool(self, spool: BinaryIO) -> None:
        spool.seek(0)
        while chunk := spool.read(_CHUNK):
            self._writer.write(chunk)

    def _close_spools(self) -> None:
        for spool in self._spools.values():
            spool.close()

    def _abort(self, exc: BaseException) -> None:
        self._closed = True
        try:
            self._close_spools()
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
            self._close_spools()
            self._context.__exit__(exc_type, exc, tb)
