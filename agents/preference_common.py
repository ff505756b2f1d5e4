"""What every preference module shares: the errors of preference sets and the tokenizer
digest that says whose token ids a set holds.

:mod:`lfi_gym.agents.preferences` (the :class:`Preferences` set) imports the modules that
collect, save and convert sets; they take these from here, so that none of them imports the
set's module back. ``lfi_gym.agents.preferences`` re-exports all three.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

__all__ = ["PreferencesError", "PreferencesFileError", "set_fields", "tokenizer_digest"]


class PreferencesError(ValueError):
    """A preference set is malformed, empty, or does not belong to the env it is used with."""


class PreferencesFileError(PreferencesError):
    """A preferences file is truncated, damaged, malformed, of another schema version or of
    another kind (a demonstrations file)."""


def tokenizer_digest(tokenizer: Any) -> str:
    """SHA-256 of a tokenizer's vocabulary (token -> id) and special tokens: equal digests
    mean the same ids stand for the same text."""
    vocab = sorted(tokenizer.get_vocab().items())
    special = {
        key: getattr(tokenizer, key, None) for key in ("bos_token", "eos_token", "pad_token")
    }
    blob = json.dumps({"vocab": vocab, "special": special}, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()


def set_fields(
    env_id: str, digest: str, rows: dict[str, Any], teacher: dict[str, Any]
) -> dict[str, Any]:
    """The ``Preferences`` constructor's keywords from row lists keyed ``prompts``, ``a``,
    ``b``, ``prompt_ids``, ``ids_a``, ``ids_b`` and ``labels`` (how collection and import
    build their rows)."""
    return {
        "env_id": env_id,
        "tokenizer_digest": digest,
        "prompts": rows["prompts"],
        "completions_a": rows["a"],
        "completions_b": rows["b"],
        "prompt_ids": rows["prompt_ids"],
        "completion_ids_a": rows["ids_a"],
        "completion_ids_b": rows["ids_b"],
        "labels": rows["labels"],
        "teacher": teacher,
    }
