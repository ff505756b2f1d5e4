"""The ``.lfip`` preferences file: a :class:`Preferences` set in the ``.lfid`` container.

The container (:mod:`lfi_gym.agents.demofile`: 64-byte aligned sections, a JSON footer, a
SHA-256 over everything, atomic writes, no pickle) holds the kind
:data:`~lfi_gym.agents.demofile.PREFERENCES`, schema 1, so a demonstrations file is not read
as preferences nor the reverse. Sections:

- arrays: ``labels`` (float64, one per pair); ``prompt_ids``, ``completion_ids_a``,
  ``completion_ids_b`` (int64, every row's token ids back to back) with ``prompt_offsets``,
  ``completion_offsets_a``, ``completion_offsets_b`` (int64, ``n + 1`` each: row ``i`` is
  ``ids[offsets[i]:offsets[i + 1]]``);
- JSON values: ``texts`` (``prompts``, ``completions_a``, ``completions_b``: lists of
  strings) and ``source`` (``tokenizer_digest`` and the ``teacher`` metadata).

The footer holds the env id and the number of pairs. Reading parses at most the
container's caps (a 16 MiB footer, JSON values up to ``demofile.MAX_JSON_BYTES``), checks
every section's size and offset against the file and every row's offsets against its
section before a row is built, and the rows then pass the checks of :class:`Preferences`
itself. Nothing is unpickled.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from lfi_gym.agents import demofile
from lfi_gym.agents.demofile import PREFERENCES, DemonstrationsFileError
from lfi_gym.agents.preference_common import PreferencesFileError

# What these functions take is a Preferences; read_fields gives back its fields
# (lfi_gym.agents.preferences imports this module, so it does not import that one).
Preferences = Any

#: The suggested file extension.
EXTENSION = ".lfip"
_ID_COLUMNS = (
    ("prompt_ids", "prompt_ids", "prompt_offsets"),
    ("completion_ids_a", "completion_ids_a", "completion_offsets_a"),
    ("completion_ids_b", "completion_ids_b", "completion_offsets_b"),
)
_TEXTS = ("prompts", "completions_a", "completions_b")


def _sections(prefs: Preferences) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    arrays: dict[str, np.ndarray] = {"labels": np.ascontiguousarray(prefs.labels, np.float64)}
    for field, ids_key, offsets_key in _ID_COLUMNS:
        rows = getattr(prefs, field)
        offsets = np.zeros(len(rows) + 1, np.int64)
        offsets[1:] = np.cumsum([len(row) for row in rows])
        arrays[ids_key] = np.ascontiguousarray(
            np.concatenate(rows) if rows else np.zeros(0), np.int64
        )
        arrays[offsets_key] = offsets
    values = {
        "texts": {name: list(getattr(prefs, name)) for name in _TEXTS},
        "source": {"tokenizer_digest": prefs.tokenizer_digest, "teacher": prefs.teacher},
    }
    return arrays, demofile.encode_values(values)


def _fields(prefs: Preferences) -> dict[str, Any]:
    return {"length": len(prefs), "env_id": prefs.env_id, "dict_observations": None}


def save(prefs: Preferences, path: str | os.PathLike) -> Path:
    """Write ``prefs`` to ``path`` atomically (temporary file + fsync + rename)."""
    return demofile.save(path, *_sections(prefs), **_fields(prefs), kind=PREFERENCES)


def to_bytes(prefs: Preferences) -> bytes:
    """The bytes :func:`save` would write (for a file inside another file)."""
    return demofile.to_bytes(*_sections(prefs), **_fields(prefs), kind=PREFERENCES)


def read_fields(source: str | os.PathLike | bytes, label: str) -> dict[str, Any]:
    """The fields of the :class:`Preferences` a file (a path, or its bytes) holds; raises
    :class:`~lfi_gym.agents.preference_common.PreferencesFileError` for a damaged,
    truncated or malformed file, or one of another kind. ``label`` names the source in
    messages."""
    try:
        footer, arrays, values = demofile.read(source, mmap=False, name=label, kind=PREFERENCES)
    except DemonstrationsFileError as exc:
        raise PreferencesFileError(str(exc)) from None
    n = footer["length"]
    labels = arrays.get("labels")
    if labels is None or labels.dtype != np.float64 or labels.shape != (n,):
        raise PreferencesFileError(f"{label}: section 'labels' is missing or not {n} float64s")
    rows = {field: _rows(arrays, ids, offsets, n, label) for field, ids, offsets in _ID_COLUMNS}
    texts, source_value = values.get("texts"), values.get("source")
    if not (
        isinstance(texts, dict)
        and sorted(texts) == sorted(_TEXTS)
        and all(isinstance(texts[k], list) and len(texts[k]) == n for k in _TEXTS)
    ):
        raise PreferencesFileError(f"{label}: section 'texts' is missing or malformed")
    if not (
        isinstance(source_value, dict)
        and isinstance(source_value.get("tokenizer_digest"), str)
        and isinstance(source_value.get("teacher"), dict)
    ):
        raise PreferencesFileError(f"{label}: section 'source' is missing or malformed")
    return {
        "env_id": footer["env_id"],
        "tokenizer_digest": source_value["tokenizer_digest"],
        **{k: texts[k] for k in _TEXTS},
        **rows,
        "labels": labels,
        "teacher": source_value["teacher"],
    }


def _rows(
    arrays: dict[str, np.ndarray], ids_key: str, offsets_key: str, n: int, label: str
) -> list[np.ndarray]:
    """Rows of a flat id array split at its offsets, after checking both."""
    ids, offsets = arrays.get(ids_key), arrays.get(offsets_key)
    if ids is None or offsets is None:
        raise PreferencesFileError(f"{label}: sections {ids_key!r} / {offsets_key!r} are missing")
    if ids.dtype != np.int64 or ids.ndim != 1:
        raise PreferencesFileError(f"{label}: section {ids_key!r} must be 1-D int64")
    if (
        offsets.dtype != np.int64
        or offsets.shape != (n + 1,)
        or offsets[0] != 0
        or offsets[-1] != len(ids)
        or np.any(np.diff(offsets) < 0)
    ):
        raise PreferencesFileError(
            f"{label}: section {offsets_key!r} must be {n + 1} rising offsets into {ids_key!r}"
        )
    return [ids[offsets[i] : offsets[i + 1]] for i in range(n)]
