"""Preference data: pairs of completions of one prompt and which of the two is preferred.

A :class:`Preferences` set is the data of the RLHF pipeline's step 2 (Christiano et al.
2017; Stiennon et al. 2020; Ouyang et al. 2022): for each row, a prompt, two completions
``a`` and ``b`` of it, and a label, the probability that ``a`` is preferred: 1 (``a``), 0
(``b``) or 0.5 (the teacher found them equal). Texts come with the token ids they have in
the env (the prompt as the env encodes it, each completion as the env's generated tokens,
EOS included where the episode ended on it), so a reward model and DPO score exactly what
the policy wrote. Each set names the env it came from and a digest of that env's
tokenizer: ids of another tokenizer mean other text, so a set is refused by an env whose
tokenizer differs (:meth:`Preferences.check_env`).

A set is collected by sampling a policy and asking a simulated teacher
(:meth:`Preferences.collect`, :mod:`lfi_gym.agents.preference_collection`), saved as a
checksummed ``.lfip`` file (:meth:`Preferences.save` / :meth:`Preferences.load`,
:mod:`lfi_gym.agents.preference_files`) and moved to and from TRL's ``prompt`` / ``chosen`` /
``rejected`` datasets (:meth:`Preferences.to_trl` / :meth:`Preferences.from_trl`,
:mod:`lfi_gym.agents.preference_exchange`).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from lfi_gym.agents.env_kinds import text_task
from lfi_gym.agents.preference_common import (
    PreferencesError,
    PreferencesFileError,
    tokenizer_digest,
)

if TYPE_CHECKING:
    import datasets

__all__ = ["LABELS", "Preferences", "PreferencesError", "PreferencesFileError", "tokenizer_digest"]

#: Allowed labels: P(completion a is preferred).
LABELS = (0.0, 0.5, 1.0)


def _ids(values: Any, what: str, row: int) -> np.ndarray:
    array = np.asarray(values)
    if array.size == 0:
        return np.zeros(0, np.int64)
    if array.ndim != 1 or not np.issubdtype(array.dtype, np.integer) or array.min() < 0:
        raise PreferencesError(f"row {row}: {what} must be a 1-D list of token ids (ints >= 0)")
    out = array.astype(np.int64)
    out.flags.writeable = False
    return out


@dataclasses.dataclass(frozen=True, eq=False)
class Preferences:
    """Rows of (prompt, completion a, completion b, label), all of one env.

    ``labels[i]`` is the probability that ``completions_a[i]`` is preferred: 1.0, 0.0 or
    0.5. ``teacher`` is JSON-able metadata of whoever labelled the rows (a simulated
    teacher's settings and its query count, or the source of imported data).
    """

    env_id: str
    tokenizer_digest: str
    prompts: tuple[str, ...]
    completions_a: tuple[str, ...]
    completions_b: tuple[str, ...]
    prompt_ids: tuple[np.ndarray, ...]
    completion_ids_a: tuple[np.ndarray, ...]
    completion_ids_b: tuple[np.ndarray, ...]
    labels: np.ndarray
    teacher: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.prompts)
        if n == 0:
            raise PreferencesError(
                "a preference set needs at least one labelled pair; got none (did the teacher "
                "skip every pair, or was the query budget 0?)"
            )
        for name in ("completions_a", "completions_b", "prompt_ids", "completion_ids_a"):
            if len(getattr(self, name)) != n:
                raise PreferencesError(f"{name} has {len(getattr(self, name))} rows, prompts {n}")
        if len(self.completion_ids_b) != n:
            raise PreferencesError(
                f"completion_ids_b has {len(self.completion_ids_b)} rows, prompts {n}"
            )
        for name in ("prompts", "completions_a", "completions_b"):
            values = getattr(self, name)
            bad = next((i for i, v in enumerate(values) if not isinstance(v, str)), None)
            if bad is not None:
                raise PreferencesError(
                    f"{name}[{bad}] must be a str, got {type(values[bad]).__name__}"
                )
            object.__setattr__(self, name, tuple(values))
        for name in ("prompt_ids", "completion_ids_a", "completion_ids_b"):
            rows = tuple(_ids(v, name, i) for i, v in enumerate(getattr(self, name)))
            object.__setattr__(self, name, rows)
        labels = np.asarray(self.labels, dtype=np.float64).reshape(-1)
        if labels.shape != (n,):
            raise PreferencesError(f"labels has {labels.size} values for {n} rows")
        bad_labels = np.flatnonzero(~np.isin(labels, LABELS))
        if bad_labels.size:
            i = int(bad_labels[0])
            raise PreferencesError(
                f"labels must be 1 (a preferred), 0 (b preferred) or 0.5 (equal); row {i} "
                f"has {float(labels[i])!r}"
            )
        labels.flags.writeable = False
        object.__setattr__(self, "labels", labels)
        if not isinstance(self.env_id, str) or not self.env_id:
            raise PreferencesError(f"env_id must be an env id string, got {self.env_id!r}")
        object.__setattr__(self, "teacher", dict(self.teacher))

    def __len__(self) -> int:
        return len(self.prompts)

    def __repr__(self) -> str:
        counts = {label: int(np.sum(self.labels == label)) for label in LABELS}
        return (
            f"Preferences({len(self)} pairs of {self.env_id}: a preferred {counts[1.0]}, "
            f"b preferred {counts[0.0]}, equal {counts[0.5]})"
        )

    @property
    def chosen_is_a(self) -> np.ndarray:
        """Per row, True where ``a`` is preferred (label 1); ties (0.5) are False."""
        return self.labels == 1.0

    def select(self, indices: Sequence[int] | np.ndarray) -> Preferences:
        """The rows ``indices``, in that order."""
        index = np.asarray(indices, dtype=np.int64).reshape(-1)
        if index.size and (index.min() < -len(self) or index.max() >= len(self)):
            raise IndexError(f"row indices must be in [0, {len(self)}), got {index.tolist()[:5]}")

        def pick(values: tuple) -> tuple:
            return tuple(values[i] for i in index)

        return dataclasses.replace(
            self,
            prompts=pick(self.prompts),
            completions_a=pick(self.completions_a),
            completions_b=pick(self.completions_b),
            prompt_ids=pick(self.prompt_ids),
            completion_ids_a=pick(self.completion_ids_a),
            completion_ids_b=pick(self.completion_ids_b),
            labels=self.labels[index],
        )

    def split(self, held_out: float, seed: int | None = None) -> tuple[Preferences, Preferences]:
        """(train, held-out): a random ``held_out`` fraction of the rows (at least one row
        in each part), drawn with ``seed``."""
        if not 0.0 < float(held_out) < 1.0:
            raise ValueError(f"held_out must be a fraction in (0, 1), got {held_out!r}")
        if len(self) < 2:
            raise PreferencesError(f"cannot split {len(self)} pair into two non-empty parts")
        order = np.random.default_rng(seed).permutation(len(self))
        n_held = min(max(1, round(held_out * len(self))), len(self) - 1)
        return self.select(np.sort(order[n_held:])), self.select(np.sort(order[:n_held]))

    def concatenate(self, other: Preferences) -> Preferences:
        """These rows, then ``other``'s (same env and tokenizer)."""
        self._check_same_source(other.env_id, other.tokenizer_digest, "the other set")
        return dataclasses.replace(
            self,
            prompts=self.prompts + other.prompts,
            completions_a=self.completions_a + other.completions_a,
            completions_b=self.completions_b + other.completions_b,
            prompt_ids=self.prompt_ids + other.prompt_ids,
            completion_ids_a=self.completion_ids_a + other.completion_ids_a,
            completion_ids_b=self.completion_ids_b + other.completion_ids_b,
            labels=np.concatenate([self.labels, other.labels]),
            teacher={"parts": [self.teacher, other.teacher]},
        )

    # -- collecting ------------------------------------------------------------------------

    @classmethod
    def collect(
        cls,
        env: Any,
        policy: Any,
        n_pairs: int,
        teacher: Any,
        seed: int | None = None,
        batch_size: int = 16,
    ) -> Preferences:
        """``n_pairs`` pairs of ``policy``'s completions of ``env``'s prompts, two per
        prompt, labelled by ``teacher`` from the env's rewards; see
        :func:`lfi_gym.agents.preference_collection.collect_fields`."""
        from lfi_gym.agents.preference_collection import collect_fields

        return cls(**collect_fields(env, policy, n_pairs, teacher, seed, batch_size))

    # -- files ---------------------------------------------------------------------------

    def save(self, path: str | os.PathLike) -> Path:
        """Write to ``path`` (suggested extension ``.lfip``) atomically: a temporary file,
        fsync'ed and renamed, so an interrupted save leaves the previous file intact."""
        from lfi_gym.agents import preference_files

        return preference_files.save(self, path)

    def to_bytes(self) -> bytes:
        """The bytes :meth:`save` would write (for a file inside another file)."""
        from lfi_gym.agents import preference_files

        return preference_files.to_bytes(self)

    @classmethod
    def load(cls, path: str | os.PathLike, env: Any = None) -> Preferences:
        """Read a file :meth:`save` wrote, checksum verified, nothing unpickled; with
        ``env``, refuse a set of another env or tokenizer (:meth:`check_env`). Raises
        :class:`PreferencesFileError` for a damaged file or one of another kind."""
        return cls._from_file(path, str(path), env)

    @classmethod
    def from_bytes(cls, data: bytes, *, name: str = "<bytes>", env: Any = None) -> Preferences:
        """Read :meth:`to_bytes`'s bytes; ``name`` labels them in error messages."""
        return cls._from_file(bytes(data), name, env)

    @classmethod
    def _from_file(cls, source: str | os.PathLike | bytes, label: str, env: Any) -> Preferences:
        from lfi_gym.agents import preference_files

        fields = preference_files.read_fields(source, label)
        try:
            prefs = cls(**fields)
        except PreferencesError as exc:
            raise PreferencesFileError(f"{label}: {exc}") from None
        if env is not None:
            prefs.check_env(env)
        return prefs

    # -- TRL -----------------------------------------------------------------------------

    def to_trl(self) -> datasets.Dataset:
        """A TRL preference dataset (``prompt`` / ``chosen`` / ``rejected`` strings, plus
        the exact token ids); ties are left out, with a warning. See
        :mod:`lfi_gym.agents.preference_exchange`."""
        from lfi_gym.agents.preference_exchange import to_trl

        return to_trl(self)

    @classmethod
    def from_trl(cls, dataset: datasets.Dataset, env: Any, teacher: Any = None) -> Preferences:
        """A set of ``env`` from a TRL preference dataset: :meth:`to_trl`'s exactly, or any
        with ``prompt`` / ``chosen`` / ``rejected``, tokenized with the env's tokenizer. See
        :mod:`lfi_gym.agents.preference_exchange`."""
        from lfi_gym.agents.preference_exchange import fields_from_trl

        return cls(**fields_from_trl(dataset, env, teacher))

    # -- checks --------------------------------------------------------------------------

    def check_env(self, env: Any) -> None:
        """Refuse ``env`` (a text env, single or vector, or its id) unless the set came from
        the same env id and a tokenizer with the same vocabulary."""
        if isinstance(env, str):
            env_id, digest = env, None
        else:
            task = text_task(env, "preferences are for text envs", PreferencesError)
            env_id, digest = task.name, tokenizer_digest(task.tokenizer)
        self._check_same_source(env_id, digest, "the env")

    def _check_same_source(self, env_id: str, digest: str | None, what: str) -> None:
        if env_id != self.env_id:
            raise PreferencesError(
                f"these preferences come from {self.env_id}, {what} is {env_id}: collect or "
                f"import preferences on {env_id}"
            )
        if digest is not None and digest != self.tokenizer_digest:
            raise PreferencesError(
                f"these preferences were tokenized with another tokenizer than {what}'s "
                "(its vocabulary differs), so their token ids mean other text; re-import "
                "them from text (Preferences.from_trl) with this env"
            )
