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

__all__ = ["PreferencesError", "PreferencesFileError", "tokenizer_digest"]


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
