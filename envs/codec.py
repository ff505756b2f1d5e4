"""Plain-data encodings of what lfi-gym writes to files: values, States and spaces.

Nothing here unpickles or imports by name. A value becomes a JSON tree plus a list of numpy
arrays (:func:`to_tree` / :func:`from_tree`); :func:`tree_bytes` / :func:`tree_from_bytes`
pack both into one self-describing blob (a JSON header, then the raw array bytes). States
are rebuilt only as classes registered by subclassing :class:`~lfi_gym.envs.core.State`,
from their dataclass fields; spaces from their well-known parameters
(:func:`space_to_json` / :func:`space_from_json`). Reading checks every node's shape and
type and caps sizes, so a forged file gets :class:`CodecError`, never code execution.

The JSON tree: ``None``, booleans, ints, floats (NaN and infinities as JSON's common
extension) and strings stand for themselves; a JSON list is a Python list; every other
value is a one-key object naming its kind: ``{"tuple": [...]}``, ``{"dict": {...}}`` (string
keys), ``{"array": i}`` and ``{"bytes": i}`` (the i-th array), ``{"scalar": [dtype, value]}``
(a numpy scalar) and ``{"state": [class name, {field: node}]}``.
"""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any

import gymnasium as gym
import numpy as np

from lfi_gym.envs.core import State, qualified_name, state_class

#: Array dtypes a file may hold: booleans, integers, floats, complex and fixed-width
#: strings (never ``object``, which only pickle can fill).
ARRAY_KINDS = frozenset("biufcUS")
MAX_DEPTH = 64
MAX_DIMENSIONS = 32  # numpy's own limit is 64
MAX_DTYPE_CHARS = 16
#: Cap on the elements of a space's bounds (a forged shape must not allocate terabytes).
MAX_SPACE_ELEMENTS = 1 << 26
#: Default cap on one blob read by :func:`tree_from_bytes` (1 GiB).
MAX_BLOB_BYTES = 1 << 30
_HEADER_LENGTH_BYTES = 8
_MAGIC = b"LFITREE1"


class CodecError(ValueError):
    """Encoded data is malformed, oversized, or names something that may not be built."""


# -- values -----------------------------------------------------------------------------------


def to_tree(value: Any) -> tuple[Any, list[np.ndarray]]:
    """``value`` as a JSON-able tree and the arrays it refers to (see the module docstring)."""
    arrays: list[np.ndarray] = []
    return _encode(value, arrays, 0), arrays


def from_tree(tree: Any, arrays: list[np.ndarray]) -> Any:
    """Rebuild what :func:`to_tree` encoded; raises :class:`CodecError` on malformed input."""
    return _decode(tree, arrays, 0)


def _encode(value: Any, arrays: list[np.ndarray], depth: int) -> Any:
    if depth > MAX_DEPTH:
        raise CodecError(f"value nests deeper than {MAX_DEPTH} levels")
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, np.generic):
        _check_dtype(value.dtype)
        return {"scalar": [value.dtype.str, value.item()]}
    if isinstance(value, np.ndarray):
        _check_dtype(value.dtype)
        arrays.append(np.ascontiguousarray(value))
        return {"array": len(arrays) - 1}
    if isinstance(value, (bytes, bytearray)):
        arrays.append(np.frombuffer(bytes(value), dtype=np.uint8))
        return {"bytes": len(arrays) - 1}
    if isinstance(value, list):
        return [_encode(v, arrays, depth + 1) for v in value]
    if isinstance(value, tuple):
        return {"tuple": [_encode(v, arrays, depth + 1) for v in value]}
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise CodecError(f"only dicts with string keys can be saved, got keys {list(value)}")
        return {"dict": {k: _encode(v, arrays, depth + 1) for k, v in value.items()}}
    if isinstance(value, State):
        fields = {
            f.name: _encode(getattr(value, f.name), arrays, depth + 1)
            for f in dataclasses.fields(value)
        }
        return {"state": [qualified_name(type(value)), fields]}
    raise CodecError(
        f"cannot save a {type(value).__name__}: files hold numbers, strings, lists, tuples, "
        "dicts with string keys, numpy arrays, bytes and lfi-gym States"
    )


def _decode(node: Any, arrays: list[np.ndarray], depth: int) -> Any:
    if depth > MAX_DEPTH:
        raise CodecError(f"data nests deeper than {MAX_DEPTH} levels")
    if node is None or isinstance(node, (bool, int, float, str)):
        return node
    if isinstance(node, list):
        return [_decode(v, arrays, depth + 1) for v in node]
    if not isinstance(node, dict) or len(node) != 1:
        raise CodecError(f"malformed node {preview(node)}")
    ((kind, body),) = node.items()
    if kind == "tuple" and isinstance(body, list):
        return tuple(_decode(v, arrays, depth + 1) for v in body)
    if kind == "dict" and isinstance(body, dict):
        return {k: _decode(v, arrays, depth + 1) for k, v in body.items()}
    if kind in ("array", "bytes") and _is_index(body, arrays):
        array = arrays[body]
        return array.tobytes() if kind == "bytes" else array
    if kind == "scalar" and isinstance(body, list) and len(body) == 2:
        dtype = _dtype(body[0])
        try:
            return dtype.type(body[1])
        except (TypeError, ValueError, OverflowError) as exc:
            raise CodecError(f"malformed {dtype} scalar {preview(body[1])}") from exc
    if kind == "state" and isinstance(body, list) and len(body) == 2:
        name, fields = body
        if not isinstance(name, str) or not isinstance(fields, dict):
            raise CodecError(f"malformed state node {preview(node)}")
        return build_state(name, {k: _decode(v, arrays, depth + 1) for k, v in fields.items()})
    raise CodecError(f"malformed node {preview(node)}")


def _is_index(value: Any, arrays: list[np.ndarray]) -> bool:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < len(arrays):
        raise CodecError(f"array index {value!r} out of range (the data holds {len(arrays)})")
    return True


def preview(node: Any) -> str:
    """``repr(node)`` cut to 80 characters, for messages about untrusted data."""
    text = repr(node)
    return text if len(text) <= 80 else text[:77] + "..."


def allowed_dtype(dtype: np.dtype) -> bool:
    """Whether a file may hold arrays of ``dtype``: bool, numeric or fixed-width string, of
    non-zero width; never object, structured or sub-array dtypes (every lfi-gym format reads
    arrays through this one check)."""
    return (
        dtype.kind in ARRAY_KINDS
        and dtype.fields is None
        and dtype.subdtype is None
        and dtype.itemsize > 0
    )


def _check_dtype(dtype: np.dtype) -> None:
    if not allowed_dtype(dtype):
        raise CodecError(
            f"arrays of dtype {dtype} cannot be saved (only plain numeric, bool "
            "and fixed-width string dtypes)"
        )


def _dtype(text: Any) -> np.dtype:
    if not isinstance(text, str) or len(text) > MAX_DTYPE_CHARS:
        raise CodecError(f"malformed dtype {preview(text)}")
    try:
        dtype = np.dtype(text)
    except (TypeError, ValueError) as exc:
        raise CodecError(f"unknown dtype {text!r}") from exc
    if not allowed_dtype(dtype):
        raise CodecError(
            f"refusing dtype {text!r}: only plain numeric, bool and string dtypes are read"
        )
    return dtype


# -- States -----------------------------------------------------------------------------------


def build_state(name: str, fields: dict[str, Any]) -> State:
    """The State ``name`` (a registered subclass) built from its dataclass ``fields``.

    Only the payload's *shape* is checked here; an env's ``check_state`` decides whether
    the values can be restored.
    """
    cls = state_class(name)
    if cls is None:
        raise CodecError(
            f"unknown State type {name!r}: import the module that defines it before loading "
            "(lfi-gym's own States are found automatically)"
        )
    expected = [f.name for f in dataclasses.fields(cls)]
    if sorted(fields) != sorted(expected):
        raise CodecError(
            f"{name} has the fields {expected}, the data gives {sorted(fields)}; it was written "
            "by another version: re-create it with this version of lfi-gym"
        )
    try:
        return cls(**fields)
    except Exception as exc:
        raise CodecError(f"cannot build {name} from the data: {exc}") from exc


def state_to_tree(state: State) -> tuple[Any, list[np.ndarray]]:
    """A State as a JSON tree and arrays; :func:`state_from_tree` inverts it."""
    if not isinstance(state, State):
        raise TypeError(f"expected an lfi-gym State, got {type(state).__name__}")
    return to_tree(state)


def state_from_tree(tree: Any, arrays: list[np.ndarray]) -> State:
    state = from_tree(tree, arrays)
    if not isinstance(state, State):
        raise CodecError(f"the data holds a {type(state).__name__}, not a State")
    return state


# -- one blob ---------------------------------------------------------------------------------


def tree_bytes(value: Any) -> bytes:
    """``value`` packed as one blob: magic, header length, JSON header, raw array bytes."""
    tree, arrays = to_tree(value)
    layout, offset = [], 0
    for array in arrays:
        layout.append({"dtype": array.dtype.str, "shape": list(array.shape), "offset": offset})
        offset += array.nbytes
    header = json.dumps({"tree": tree, "arrays": layout}, separators=(",", ":")).encode()
    parts = [_MAGIC, len(header).to_bytes(_HEADER_LENGTH_BYTES, "little"), header]
    parts.extend(array.tobytes() for array in arrays)
    return b"".join(parts)


def tree_from_bytes(data: bytes, *, max_bytes: int = MAX_BLOB_BYTES, label: str = "data") -> Any:
    """Read :func:`tree_bytes`'s blob (arrays are read-only copies); refuses blobs over
    ``max_bytes`` and anything malformed with :class:`CodecError` naming ``label``."""
    try:
        return _tree_from_bytes(data, max_bytes)
    except CodecError as exc:
        raise CodecError(f"{label}: {exc}") from None


def _tree_from_bytes(data: bytes, max_bytes: int) -> Any:
    if len(data) > max_bytes:
        raise CodecError(f"{len(data)} bytes exceed the cap of {max_bytes}")
    start = len(_MAGIC) + _HEADER_LENGTH_BYTES
    if len(data) < start or data[: len(_MAGIC)] != _MAGIC:
        raise CodecError("not an lfi-gym data blob (bad magic bytes)")
    header_length = int.from_bytes(data[len(_MAGIC) : start], "little")
    if header_length > len(data) - start:
        raise CodecError("truncated header")
    header = parse_json(data[start : start + header_length])
    if not isinstance(header, dict) or not isinstance(header.get("arrays"), list):
        raise CodecError("malformed header")
    body = memoryview(data)[start + header_length :]
    arrays = [_array_from(entry, body) for entry in header["arrays"]]
    return from_tree(header.get("tree"), arrays)


def _array_from(entry: Any, body: memoryview) -> np.ndarray:
    if not isinstance(entry, dict):
        raise CodecError(f"malformed array entry {preview(entry)}")
    dtype = _dtype(entry.get("dtype"))
    shape, offset = entry.get("shape"), entry.get("offset")
    if not (
        isinstance(shape, list)
        and all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape)
        and isinstance(offset, int)
        and offset >= 0
    ):
        raise CodecError(f"malformed array entry {preview(entry)}")
    if len(shape) > MAX_DIMENSIONS:
        raise CodecError(f"array of {len(shape)} dimensions (at most {MAX_DIMENSIONS})")
    nbytes = math.prod(shape) * dtype.itemsize
    if offset + nbytes > len(body):
        raise CodecError(f"array at offset {offset} ({nbytes} bytes) lies outside the data")
    array = np.frombuffer(body[offset : offset + nbytes], dtype=dtype).reshape(shape).copy()
    array.setflags(write=False)
    return array


def parse_json(raw: bytes | str) -> Any:
    """``json.loads`` whose every failure on malformed input is a :class:`CodecError`
    (bad UTF-8 or syntax, nesting past the recursion limit, an int of over 4,300 digits)."""
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise CodecError(f"malformed JSON ({exc})") from None


# -- spaces -----------------------------------------------------------------------------------


def space_to_json(space: gym.Space) -> dict[str, Any]:
    """A Gymnasium space as plain JSON (Box, Discrete, MultiBinary, MultiDiscrete, Text,
    Dict and Tuple of them); :func:`space_from_json` rebuilds an equal space."""
    if isinstance(space, gym.spaces.Box):
        return {
            "type": "Box",
            "dtype": space.dtype.str,
            "shape": list(space.shape),
            "low": _bound_to_json(space.low),
            "high": _bound_to_json(space.high),
        }
    if isinstance(space, gym.spaces.Discrete):
        return {"type": "Discrete", "n": int(space.n), "start": int(space.start)}
    if isinstance(space, gym.spaces.MultiBinary):
        n = space.n
        return {"type": "MultiBinary", "n": int(n) if np.ndim(n) == 0 else np.asarray(n).tolist()}
    if isinstance(space, gym.spaces.MultiDiscrete):
        return {
            "type": "MultiDiscrete",
            "dtype": space.dtype.str,
            "nvec": space.nvec.tolist(),
            "start": space.start.tolist(),
        }
    if isinstance(space, gym.spaces.Text):
        return {
            "type": "Text",
            "min_length": int(space.min_length),
            "max_length": int(space.max_length),
            "charset": "".join(space.character_list),
        }
    if isinstance(space, gym.spaces.Dict):
        return {"type": "Dict", "spaces": {k: space_to_json(s) for k, s in space.spaces.items()}}
    if isinstance(space, gym.spaces.Tuple):
        return {"type": "Tuple", "spaces": [space_to_json(s) for s in space.spaces]}
    raise CodecError(
        f"cannot save a {type(space).__name__} space: files hold Box, Discrete, MultiBinary, "
        "MultiDiscrete, Text, Dict and Tuple spaces"
    )


def space_from_json(node: Any, _depth: int = 0) -> gym.Space:
    """Rebuild :func:`space_to_json`'s space; :class:`CodecError` for anything else."""
    if _depth > MAX_DEPTH:
        raise CodecError(f"space nests deeper than {MAX_DEPTH} levels")
    if not isinstance(node, dict) or not isinstance(node.get("type"), str):
        raise CodecError(f"malformed space {preview(node)}")
    kind = node["type"]
    try:
        if kind == "Box":
            dtype, shape = _dtype(node["dtype"]), tuple(_int_list(node["shape"]))
            _check_space_size(shape)
            low = _bound_from_json(node["low"], dtype, shape)
            high = _bound_from_json(node["high"], dtype, shape)
            return gym.spaces.Box(low, high, shape, dtype=dtype)
        if kind == "Discrete":
            return gym.spaces.Discrete(_int(node["n"]), start=_int(node["start"]))
        if kind == "MultiBinary":
            n = _int(node["n"]) if not isinstance(node["n"], list) else _int_list(node["n"])
            _check_space_size(n if isinstance(n, list) else [n])
            return gym.spaces.MultiBinary(n)
        if kind == "MultiDiscrete":
            dtype = _dtype(node["dtype"])
            nvec = np.asarray(_nested_ints(node["nvec"]), dtype=dtype)
            start = np.asarray(_nested_ints(node["start"]), dtype=dtype)
            return gym.spaces.MultiDiscrete(nvec, dtype=dtype, start=start)
        if kind == "Text":
            charset = node["charset"]
            if not isinstance(charset, str):
                raise CodecError("Text charset must be a string")
            return gym.spaces.Text(
                _int(node["max_length"]), min_length=_int(node["min_length"]), charset=charset
            )
        if kind == "Dict" and isinstance(node.get("spaces"), dict):
            return gym.spaces.Dict(
                {k: space_from_json(s, _depth + 1) for k, s in node["spaces"].items()}
            )
        if kind == "Tuple" and isinstance(node.get("spaces"), list):
            return gym.spaces.Tuple([space_from_json(s, _depth + 1) for s in node["spaces"]])
    except CodecError:
        raise
    except (KeyError, TypeError, ValueError, OverflowError) as exc:
        raise CodecError(f"malformed {kind} space {preview(node)} ({exc})") from None
    raise CodecError(f"unknown space type {preview(kind)}")


def _check_space_size(shape: Any) -> None:
    if len(shape) > MAX_DIMENSIONS or any(n < 0 for n in shape):
        raise CodecError(f"malformed space shape {preview(list(shape))}")
    if math.prod(shape) > MAX_SPACE_ELEMENTS:
        raise CodecError(
            f"space of shape {list(shape)} has more than {MAX_SPACE_ELEMENTS} elements"
        )


def _bound_to_json(bound: np.ndarray) -> Any:
    # Most bounds are one repeated value (0 and 255 over a frame stack): store it once.
    flat = bound.reshape(-1)
    if flat.size and np.all(flat == flat[0]):
        return {"fill": _float_to_json(flat[0].item())}
    return {"values": [_float_to_json(v) for v in flat.tolist()]}


def _float_to_json(value: float | int) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    return value


def _bound_from_json(node: Any, dtype: np.dtype, shape: tuple[int, ...]) -> np.ndarray:
    def number(v: Any) -> float | int:
        if v in ("inf", "-inf", "nan"):
            return float(v)
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise CodecError(f"malformed bound value {preview(v)}")
        return v

    if not isinstance(node, dict) or len(node) != 1:
        raise CodecError(f"malformed bound {preview(node)}")
    if "fill" in node:
        return np.full(shape, number(node["fill"]), dtype=dtype)
    values = node.get("values")
    if not isinstance(values, list) or len(values) != math.prod(shape):
        raise CodecError(f"bound holds {preview(values)}, expected {math.prod(shape)} values")
    return np.asarray([number(v) for v in values], dtype=dtype).reshape(shape)


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise CodecError(f"expected an int, got {preview(value)}")
    return value


def _int_list(value: Any) -> list[int]:
    if not isinstance(value, list):
        raise CodecError(f"expected a list of ints, got {preview(value)}")
    return [_int(v) for v in value]


def _nested_ints(value: Any) -> Any:
    if isinstance(value, list):
        return [_nested_ints(v) for v in value]
    return _int(value)


__all__ = [
    "CodecError",
    "allowed_dtype",
    "build_state",
    "from_tree",
    "parse_json",
    "preview",
    "space_from_json",
    "space_to_json",
    "state_from_tree",
    "state_to_tree",
    "to_tree",
    "tree_bytes",
    "tree_from_bytes",
]
