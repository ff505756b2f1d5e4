"""Preferences to and from TRL's preference datasets (Hugging Face ``datasets``).

TRL's preference type with an explicit prompt, standard (plain text) format, has one row per
pair and the string columns ``prompt``, ``chosen`` and ``rejected``; a completion carries its
own leading space, so ``prompt + chosen`` is the full text (``{"prompt": "The sky is",
"chosen": " blue.", "rejected": " green."}``). TRL's ``DPOTrainer`` and ``RewardTrainer``
tokenize those columns themselves and append EOS to each completion.

:func:`to_trl` writes those three columns and, beside them (TRL ignores and drops columns it
does not use), the env's exact token ids and which completion was ``a``:

- ``prompt_token_ids``, ``chosen_token_ids``, ``rejected_token_ids`` (lists of int64): the
  prompt as the env encoded it and each completion as the policy generated it, EOS included
  where the episode ended on it. They are deliberately not TRL's ``chosen_ids`` /
  ``rejected_ids``, which ``RewardTrainer`` would read as prompt-and-completion ids and use
  instead of tokenizing;
- ``chosen_is_a`` (bool): whether ``chosen`` was the set's completion ``a``.

Ties (label 0.5) have no place in ``chosen`` / ``rejected`` and are left out, with a warning
that counts them. The env id, the tokenizer digest, the teacher metadata and the number of
ties left out travel in ``dataset.info.description`` as JSON under the key
``"lfi_gym.preferences"``, so ``save_to_disk`` / ``load_from_disk`` keep them.

:func:`fields_from_trl` (behind ``Preferences.from_trl``) reads such a dataset back exactly
(same env id and tokenizer: the stored ids are used) and also any dataset with only
``prompt`` / ``chosen`` / ``rejected``, such as one written for TRL, by tokenizing with the
env's tokenizer:

- the prompt as the env encodes prompts (``task.encode``), at most ``prompt_length`` tokens;
- a completion as the text it is (``task.encode(text, special=False)``, its leading space
  kept), with a trailing EOS token text removed, then EOS appended unless it already fills
  ``max_new_tokens``: an env episode shorter than the horizon ends on EOS, as TRL's trainers
  assume of every completion. A completion longer than ``max_new_tokens`` is refused.

Rows are imported with ``a`` = chosen and label 1 unless ``chosen_is_a`` says otherwise.
"""

from __future__ import annotations

import json
import warnings
from typing import TYPE_CHECKING, Any

import numpy as np

from lfi_gym.agents.env_kinds import text_task
from lfi_gym.agents.preference_common import PreferencesError, set_fields, tokenizer_digest
from lfi_gym.envs import codec
from lfi_gym.envs.codec import CodecError

if TYPE_CHECKING:
    import datasets

    from lfi_gym.envs.text.task import TextTask

# What to_trl takes is a Preferences; fields_from_trl gives back its fields
# (lfi_gym.agents.preferences imports this module, so it does not import that one).
Preferences = Any

#: The key of the lfi-gym metadata in a dataset's ``info.description``.
HF_METADATA_KEY = "lfi_gym.preferences"
METADATA_VERSION = 1
TRL_COLUMNS = ("prompt", "chosen", "rejected")
ID_COLUMNS = ("prompt_token_ids", "chosen_token_ids", "rejected_token_ids")
ORDER_COLUMN = "chosen_is_a"


def to_trl(prefs: Preferences) -> datasets.Dataset:
    """``prefs`` as a TRL preference dataset (see the module docstring); ties are left out."""
    import datasets

    ties = int(np.sum(prefs.labels == 0.5))
    keep = np.flatnonzero(prefs.labels != 0.5)
    if ties:
        if not len(keep):
            raise PreferencesError(
                f"all {ties} pairs are ties (label 0.5), and TRL's chosen / rejected columns "
                "cannot hold a tie: nothing to export"
            )
        warnings.warn(
            f"{ties} of {len(prefs)} pairs are ties (label 0.5); TRL's chosen / rejected "
            f"columns cannot hold a tie, so the dataset has the other {len(keep)}",
            UserWarning,
            stacklevel=3,
        )
    columns: dict[str, list[Any]] = {name: [] for name in (*TRL_COLUMNS, *ID_COLUMNS, ORDER_COLUMN)}
    for i in keep:
        a_chosen = bool(prefs.labels[i] == 1.0)
        texts = (prefs.completions_a[i], prefs.completions_b[i])
        ids = (prefs.completion_ids_a[i], prefs.completion_ids_b[i])
        chosen, rejected = (0, 1) if a_chosen else (1, 0)
        columns["prompt"].append(prefs.prompts[i])
        columns["chosen"].append(texts[chosen])
        columns["rejected"].append(texts[rejected])
        columns["prompt_token_ids"].append(prefs.prompt_ids[i].tolist())
        columns["chosen_token_ids"].append(ids[chosen].tolist())
        columns["rejected_token_ids"].append(ids[rejected].tolist())
        columns[ORDER_COLUMN].append(a_chosen)
    token_ids = datasets.List(datasets.Value("int64"))
    features = datasets.Features(
        {
            **{name: datasets.Value("string") for name in TRL_COLUMNS},
            **{name: token_ids for name in ID_COLUMNS},
            ORDER_COLUMN: datasets.Value("bool"),
        }
    )
    metadata = {
        "version": METADATA_VERSION,
        "env_id": prefs.env_id,
        "tokenizer_digest": prefs.tokenizer_digest,
        "teacher": prefs.teacher,
        "ties_left_out": ties,
    }
    info = datasets.DatasetInfo(
        description=json.dumps({HF_METADATA_KEY: metadata}), features=features
    )
    return datasets.Dataset.from_dict(columns, features=features, info=info)


def fields_from_trl(dataset: Any, env: Any, teacher: Any = None) -> dict[str, Any]:
    """The fields of a :class:`~lfi_gym.agents.preferences.Preferences` set of ``env`` (a
    text env or its id) from a TRL preference dataset (see the module docstring).
    ``teacher`` (a dict, or a teacher with ``settings()``) records who labelled the rows; by
    default the dataset's own lfi-gym metadata, else ``{"source": "TRL dataset"}``."""
    _check_columns(dataset)
    task = text_task(env, "preferences are collected on text envs")
    digest = tokenizer_digest(task.tokenizer)
    metadata = _metadata(dataset)
    exact = (
        metadata is not None
        and metadata.get("env_id") == task.name
        and metadata.get("tokenizer_digest") == digest
        and all(name in dataset.column_names for name in ID_COLUMNS)
    )
    columns = {name: dataset[name] for name in TRL_COLUMNS}
    order = dataset[ORDER_COLUMN] if ORDER_COLUMN in dataset.column_names else [True] * len(dataset)
    if exact:
        ids = {name: dataset[name] for name in ID_COLUMNS}
    for name in TRL_COLUMNS:
        bad = next((i for i, v in enumerate(columns[name]) if not isinstance(v, str)), None)
        if bad is not None:
            raise PreferencesError(
                f"row {bad}: {name!r} must be a string, got {type(columns[name][bad]).__name__}"
            )
    rows: dict[str, list[Any]] = {
        key: [] for key in ("prompts", "a", "b", "prompt_ids", "ids_a", "ids_b", "labels")
    }
    for i in range(len(dataset)):
        prompt, chosen, rejected = (columns[name][i] for name in TRL_COLUMNS)
        if exact:
            prompt_ids = _checked_ids(ids["prompt_token_ids"][i], task, i, "prompt")
            chosen_ids = _checked_ids(ids["chosen_token_ids"][i], task, i, "completion")
            rejected_ids = _checked_ids(ids["rejected_token_ids"][i], task, i, "completion")
        else:
            chosen, chosen_ids = _completion(chosen, task, i, "chosen")
            rejected, rejected_ids = _completion(rejected, task, i, "rejected")
            prompt_ids = _checked_ids(task.encode(prompt), task, i, "prompt")
        a_chosen = order[i]
        if not isinstance(a_chosen, bool):
            raise PreferencesError(f"row {i}: {ORDER_COLUMN!r} must be a bool, got {a_chosen!r}")
        rows["prompts"].append(prompt)
        rows["prompt_ids"].append(prompt_ids)
        first, second = ((chosen, chosen_ids), (rejected, rejected_ids))[:: 1 if a_chosen else -1]
        rows["a"].append(first[0])
        rows["ids_a"].append(first[1])
        rows["b"].append(second[0])
        rows["ids_b"].append(second[1])
        rows["labels"].append(1.0 if a_chosen else 0.0)
    if teacher is None:
        teacher = metadata.get("teacher") if metadata is not None else None
        if not isinstance(teacher, dict):
            teacher = {"source": "TRL dataset"}
    elif callable(getattr(teacher, "settings", None)):
        teacher = teacher.settings()
    elif not isinstance(teacher, dict):
        raise TypeError(
            f"teacher must be a dict of metadata or a teacher with settings(), got "
            f"{type(teacher).__name__}"
        )
    return set_fields(
        task.name,
        digest,
        rows,
        teacher,
    )


def _check_columns(dataset: Any) -> None:
    import datasets

    if isinstance(dataset, (datasets.DatasetDict, datasets.IterableDatasetDict)):
        raise TypeError(
            f"got a DatasetDict with splits {list(dataset)}; pass one split, e.g. dataset['train']"
        )
    if not isinstance(dataset, datasets.Dataset):
        raise TypeError(f"expected a datasets.Dataset, got {type(dataset).__name__}")
    missing = [name for name in TRL_COLUMNS if name not in dataset.column_names]
    if missing == ["prompt"]:
        raise PreferencesError(
            "the dataset has an implicit prompt (only chosen / rejected); split the prompt off "
            "first, e.g. dataset.map(trl.extract_prompt)"
        )
    if missing:
        raise PreferencesError(
            f"a TRL preference dataset needs the columns prompt, chosen and rejected; this one "
            f"lacks {', '.join(missing)} (it has {', '.join(dataset.column_names)})"
        )
    if len(dataset) and not isinstance(dataset[0]["prompt"], str):
        raise PreferencesError(
            "the dataset is conversational (lists of messages); text envs take plain text: "
            "render it with the chat template first (trl.apply_chat_template)"
        )


def _metadata(dataset: datasets.Dataset) -> dict[str, Any] | None:
    description = dataset.info.description or ""
    try:
        document = codec.parse_json(description) if description else None
    except CodecError:
        return None  # someone else's description
    metadata = document.get(HF_METADATA_KEY) if isinstance(document, dict) else None
    return metadata if isinstance(metadata, dict) else None


def _completion(text: str, task: TextTask, row: int, column: str) -> tuple[str, np.ndarray]:
    """The completion text (a trailing EOS text removed) and its env token ids."""
    eos_text = task.tokenizer.eos_token
    if eos_text and text.endswith(eos_text):
        text = text[: -len(eos_text)]
    ids = task.encode(text, special=False) if text else np.zeros(0, np.int64)
    if len(ids) > task.max_new_tokens:
        raise PreferencesError(
            f"row {row}: {column!r} has {len(ids)} tokens, more than {task.name}'s "
            f"max_new_tokens={task.max_new_tokens}; the env's policy could not have written it "
            "(filter such rows out, or use an env with a longer horizon)"
        )
    if len(ids) < task.max_new_tokens:
        ids = np.append(ids, np.int64(task.eos_token_id))
    return text, ids


def _checked_ids(values: Any, task: TextTask, row: int, what: str) -> np.ndarray:
    ids = np.asarray(values)
    if ids.ndim != 1 or (ids.size and not np.issubdtype(ids.dtype, np.integer)):
        raise PreferencesError(f"row {row}: the {what} token ids must be a list of ints")
    ids = ids.astype(np.int64)
    limit = task.prompt_length if what == "prompt" else task.max_new_tokens
    if what == "prompt" and not len(ids):
        raise PreferencesError(f"row {row}: the prompt is empty")
    if len(ids) > limit:
        name = "prompt_length" if what == "prompt" else "max_new_tokens"
        raise PreferencesError(
            f"row {row}: the {what} has {len(ids)} tokens, more than {task.name}'s "
            f"{name}={limit}; shorten it or use an env with a larger {name}"
        )
    if ids.size and (ids.min() < 0 or ids.max() >= task.vocab_size):
        raise PreferencesError(
            f"row {row}: the {what} token ids lie outside the vocabulary [0, {task.vocab_size})"
        )
    return ids
