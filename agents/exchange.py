"""Demonstrations to and from the two common exchange formats: Minari datasets (the Farama
Foundation's standard for offline RL data) and Hugging Face ``datasets``.

Both need each episode's final observation (the observation after its last step), which
``Demonstrations.final_observations`` holds; demonstrations that lack it (read from a
schema-2 ``.lfid`` file) are refused with a hint to re-collect them. States and infos are not
converted: neither format has a place for lfi-gym States, and Minari aligns infos with the
observations (the reset's info first), which demonstrations do not keep.

**Minari** (optional: ``pip install "lfi-gym[minari]"``, Python 3.11+). One Minari episode per
episode, its observations the T steps' plus the final one (T+1, as Minari stores them), stored
losslessly (Arrow storage by default, no JPEG encoding of image observations) with the env's
spec, so ``dataset.recover_environment()`` makes the lfi-gym env again.

**Hugging Face** ``datasets.Dataset``: one row per transition, columns

- ``episode_index`` (int64), ``step_index`` (int64, 0 at the episode's first transition);
- ``observation``, ``action``: features derived from the spaces (:func:`hf_features`): a
  ``Value`` for a scalar, fixed-length ``Sequence``\\ s nested once per dimension for an
  array (the dtype of the space), a string for a ``Text`` space, a dict of those for a
  ``Dict`` space;
- ``reward`` (float32), ``terminated``, ``truncated`` (bool);
- ``final_observation``: the observation's feature, set on each episode's last row (the
  observation after that step) and null on every other row.

The spaces (their JSON forms, :func:`lfi_gym.envs.codec.space_to_json`) and the env id travel in
``dataset.info.description`` as a JSON document under the key ``"lfi_gym.demonstrations"``,
so ``save_to_disk`` / ``load_from_disk`` (and ``push_to_hub``) keep them.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np

from lfi_gym.envs import codec

if TYPE_CHECKING:
    import datasets
    import minari

# What the converters take is a Demonstrations; they give back its fields (lfi_gym.agents.data
# imports this module, so it does not import that one).
Demonstrations = Any
Observations = np.ndarray | dict[str, np.ndarray]

#: The key of the lfi-gym metadata in a Hugging Face dataset's ``info.description``.
HF_METADATA_KEY = "lfi_gym.demonstrations"
HF_COLUMNS = (
    "episode_index",
    "step_index",
    "observation",
    "action",
    "reward",
    "terminated",
    "truncated",
    "final_observation",
)
_ARRAY_SPACES = (
    gym.spaces.Box,
    gym.spaces.Discrete,
    gym.spaces.MultiBinary,
    gym.spaces.MultiDiscrete,
)


def require_final_observations(demos: Demonstrations, target: str) -> Observations:
    """``demos.final_observations``, or a ValueError saying why ``target`` needs them."""
    if demos.final_observations is None:
        raise ValueError(
            f"{target} stores each episode's final observation (the one after its last "
            "step), and these demonstrations do not know it (they were read from a schema-2 "
            ".lfid file, or built without final_observations): collect them again with "
            "Demonstrations.collect or `lfi-gym demos`, which record it"
        )
    return demos.final_observations


def _episode_observations(demos: Demonstrations, finals: Observations) -> list[Observations]:
    """Each episode's T observations followed by its final one (T+1 rows)."""
    out = []
    for i, part in enumerate(demos.episode_slices()):
        if isinstance(demos.observations, dict):
            out.append(
                {
                    k: np.concatenate([v[part], finals[k][i : i + 1]])
                    for k, v in demos.observations.items()
                }
            )
        else:
            out.append(np.concatenate([demos.observations[part], finals[i : i + 1]]))
    return out


# -- Minari ----------------------------------------------------------------------------------


def _import_minari():
    try:
        import minari
    except ImportError as exc:
        raise ImportError(
            "Minari export and import need the optional minari extra: "
            'pip install "lfi-gym[minari]" (Minari 0.5 needs Python 3.11+ and numpy 2); '
            f"importing it failed: {exc}"
        ) from exc
    return minari


def _env_spec(env: str | gym.envs.registration.EnvSpec | None, env_id: str | None):
    """The spec to store (None stores none), checked to serialise before anything is written."""
    if env is None and env_id is None:
        return None
    spec = env if isinstance(env, gym.envs.registration.EnvSpec) else gym.spec(env or env_id)
    try:
        spec.to_json()
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"the env spec of {spec.id} does not serialise to JSON, so a Minari dataset could "
            f"not recover the env ({exc}); pass env= a spec that does, e.g. "
            "dataclasses.replace(gym.spec(id), <field>=None) without the offending field"
        ) from None
    return spec


def to_minari(
    demos: Demonstrations,
    dataset_id: str,
    *,
    env: str | gym.envs.registration.EnvSpec | None = None,
    data_format: str = "arrow",
    **metadata: Any,
) -> minari.MinariDataset:
    """Write ``demos`` as the local Minari dataset ``dataset_id`` (in Minari's datasets folder,
    ``MINARI_DATASETS_PATH``); see the module docstring. ``env`` (an id or a spec) defaults to
    the demonstrations' env id; ``metadata`` goes to ``minari.create_dataset_from_buffers``
    (``algorithm_name``, ``author``, ``description``, ...)."""
    minari = _import_minari()
    from minari.data_collector import EpisodeBuffer

    finals = require_final_observations(demos, "a Minari dataset")
    if demos.observation_space is None or demos.action_space is None:
        raise ValueError("a Minari dataset needs the observation and action spaces; set them")
    if len(demos) == 0:
        raise ValueError("cannot write a Minari dataset without transitions")
    spec = _env_spec(env, demos.env_id)
    buffers = [
        EpisodeBuffer(
            id=i,
            observations=observations,
            actions=demos.actions[part],
            rewards=demos.rewards[part],
            terminations=demos.terminated[part],
            truncations=demos.truncated[part],
        )
        for i, (part, observations) in enumerate(
            zip(demos.episode_slices(), _episode_observations(demos, finals), strict=True)
        )
    ]
    return minari.create_dataset_from_buffers(
        dataset_id,
        buffers,
        env=spec,
        observation_space=demos.observation_space,
        action_space=demos.action_space,
        data_format=data_format,
        jpeg_encoding=False,  # lossless: JPEG would alter image observations
        **metadata,
    )


def fields_from_minari(dataset: minari.MinariDataset | str) -> dict[str, Any]:
    """Demonstrations' fields from a Minari dataset (or the id of a local one): its
    observations without each episode's last one, which becomes the final observation;
    actions, rewards, terminations and truncations; spaces; the env id of its env spec."""
    minari = _import_minari()
    if isinstance(dataset, str):
        dataset = minari.load_dataset(dataset)
    dict_observations = isinstance(dataset.observation_space, gym.spaces.Dict)
    steps: list[Observations] = []
    finals: list[Observations] = []
    actions, rewards, starts, terminated, truncated = [], [], [], [], []
    for episode in dataset.iterate_episodes():
        observations = episode.observations
        n = len(episode.rewards)
        if dict_observations:
            steps.append({k: np.asarray(v)[:n] for k, v in observations.items()})
            finals.append({k: np.asarray(v)[n : n + 1] for k, v in observations.items()})
        else:
            steps.append(np.asarray(observations)[:n])
            finals.append(np.asarray(observations)[n : n + 1])
        actions.append(np.asarray(episode.actions))
        rewards.append(np.asarray(episode.rewards))
        starts.append(np.arange(n) == 0)
        terminated.append(np.asarray(episode.terminations, dtype=bool))
        truncated.append(np.asarray(episode.truncations, dtype=bool))
    if not steps:
        raise ValueError(f"the Minari dataset {dataset.spec.dataset_id} has no episodes")
    env_spec = dataset.env_spec
    return {
        "observations": _concatenate(steps),
        "actions": np.concatenate(actions),
        "rewards": np.concatenate(rewards),
        "episode_starts": np.concatenate(starts),
        "terminated": np.concatenate(terminated),
        "truncated": np.concatenate(truncated),
        "observation_space": dataset.observation_space,
        "action_space": dataset.action_space,
        "env_id": None if env_spec is None else env_spec.id,
        "final_observations": _concatenate(finals),
    }


def _concatenate(parts: list[Observations]) -> Observations:
    if isinstance(parts[0], dict):
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    return np.concatenate(parts)


# -- Hugging Face datasets -------------------------------------------------------------------


def hf_feature(space: gym.Space) -> Any:
    """The ``datasets`` feature of one value of ``space`` (see the module docstring)."""
    import datasets

    if isinstance(space, gym.spaces.Dict):
        return {key: hf_feature(sub) for key, sub in space.spaces.items()}
    if isinstance(space, gym.spaces.Text):
        return datasets.Value("string")
    if isinstance(space, _ARRAY_SPACES):
        feature: Any = datasets.Value(np.dtype(space.dtype).name)
        for size in reversed(space.shape):
            feature = datasets.Sequence(feature, length=size)
        return feature
    raise TypeError(
        f"no Hugging Face feature for {space}: observations and actions must be Box, Discrete, "
        "MultiBinary, MultiDiscrete or Text spaces, or a Dict of them"
    )


def hf_features(observation_space: gym.Space, action_space: gym.Space) -> datasets.Features:
    """The columns of :func:`to_hf_dataset` for these spaces."""
    import datasets

    observation = hf_feature(observation_space)
    return datasets.Features(
        {
            "episode_index": datasets.Value("int64"),
            "step_index": datasets.Value("int64"),
            "observation": observation,
            "action": hf_feature(action_space),
            "reward": datasets.Value("float32"),
            "terminated": datasets.Value("bool"),
            "truncated": datasets.Value("bool"),
            "final_observation": hf_feature(observation_space),
        }
    )


def to_hf_dataset(demos: Demonstrations) -> datasets.Dataset:
    """``demos`` as a ``datasets.Dataset``, one row per transition (see the module docstring)."""
    import datasets

    finals = require_final_observations(demos, "a Hugging Face dataset")
    if demos.observation_space is None or demos.action_space is None:
        raise ValueError("a Hugging Face dataset needs the observation and action spaces; set them")
    features = hf_features(demos.observation_space, demos.action_space)
    episode = np.cumsum(demos.episode_starts) - 1
    starts = np.flatnonzero(demos.episode_starts)
    step = np.arange(len(demos)) - starts[episode] if len(demos) else np.zeros(0, np.int64)
    last = np.append(starts[1:] - 1, len(demos) - 1) if len(demos) else []
    final_column: list[Any] = [None] * len(demos)
    for i, row in enumerate(last):
        final_column[row] = _row(finals, i)
    metadata = {
        HF_METADATA_KEY: {
            "observation_space": codec.space_to_json(demos.observation_space),
            "action_space": codec.space_to_json(demos.action_space),
            "env_id": demos.env_id,
        }
    }
    columns = {
        "episode_index": episode.astype(np.int64),
        "step_index": step.astype(np.int64),
        "observation": _column(demos.observations),
        "action": demos.actions,
        "reward": demos.rewards,
        "terminated": demos.terminated,
        "truncated": demos.truncated,
        "final_observation": final_column,
    }
    info = datasets.DatasetInfo(description=json.dumps(metadata), features=features)
    return datasets.Dataset.from_dict(columns, features=features, info=info)


def _row(observations: Observations, i: int) -> Any:
    if isinstance(observations, dict):
        return {k: v[i] for k, v in observations.items()}
    return observations[i]


def _column(observations: Observations) -> Any:
    """A column ``datasets`` accepts: an array, or a list of per-row dicts."""
    if isinstance(observations, dict):
        return [_row(observations, i) for i in range(len(next(iter(observations.values()))))]
    return observations


def fields_from_hf_dataset(dataset: datasets.Dataset) -> dict[str, Any]:
    """Demonstrations' fields from a dataset :func:`to_hf_dataset` made (also after
    ``save_to_disk`` / ``load_from_disk``): rows in order, episodes where ``episode_index``
    changes; the spaces and env id from its description (None if it has none)."""
    missing = [c for c in HF_COLUMNS if c not in dataset.column_names]
    if missing:
        raise ValueError(
            f"the dataset lacks the columns {missing}: from_hf_dataset reads datasets made by "
            f"Demonstrations.to_hf_dataset (columns {list(HF_COLUMNS)})"
        )
    table = dataset.with_format("arrow")[:]
    episode = _arrow_to_numpy(table.column("episode_index"))
    starts = np.ones(len(episode), dtype=bool)
    starts[1:] = episode[1:] != episode[:-1]
    ends = np.append(np.flatnonzero(starts)[1:] - 1, len(episode) - 1) if len(episode) else []
    final_rows = table.column("final_observation").take(np.asarray(ends, dtype=np.int64))
    if final_rows.null_count:
        raise ValueError("the dataset lacks a final_observation on some episode's last row")
    observation_space, action_space, env_id = _hf_metadata(dataset)
    return {
        "observations": _arrow_to_numpy(table.column("observation"), observation_space),
        "actions": _arrow_to_numpy(table.column("action"), action_space),
        "rewards": _arrow_to_numpy(table.column("reward")),
        "episode_starts": starts,
        "terminated": _arrow_to_numpy(table.column("terminated")),
        "truncated": _arrow_to_numpy(table.column("truncated")),
        "observation_space": observation_space,
        "action_space": action_space,
        "env_id": env_id,
        "final_observations": _arrow_to_numpy(final_rows, observation_space),
    }


def _hf_metadata(dataset: datasets.Dataset) -> tuple[gym.Space | None, gym.Space | None, Any]:
    try:
        metadata = codec.parse_json(dataset.info.description or "")[HF_METADATA_KEY]
    except (ValueError, TypeError, KeyError):
        return None, None, None
    try:
        spaces = [
            None if metadata[k] is None else codec.space_from_json(metadata[k])
            for k in ("observation_space", "action_space")
        ]
    except (KeyError, codec.CodecError) as exc:
        raise ValueError(f"the dataset's lfi-gym metadata is malformed: {exc}") from None
    return spaces[0], spaces[1], metadata.get("env_id")


def _arrow_to_numpy(column: Any, space: gym.Space | None = None) -> Any:
    """An Arrow column as numpy: fixed-size lists become dimensions, structs dicts, strings
    a string array; cast to the space's dtype when the space is known."""
    import pyarrow as pa

    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if pa.types.is_struct(column.type):
        names = [column.type.field(i).name for i in range(column.type.num_fields)]
        return {
            name: _arrow_to_numpy(child, None if space is None else space[name])
            for name, child in zip(names, column.flatten(), strict=True)
        }
    shape = []
    values = column
    while pa.types.is_fixed_size_list(values.type):
        shape.append(values.type.list_size)
        values = values.flatten()
    if pa.types.is_string(values.type) or pa.types.is_large_string(values.type):
        array = np.array(values.to_pylist())
    else:
        array = values.to_numpy(zero_copy_only=False)
    array = array.reshape(len(column), *shape)
    if space is not None and isinstance(space, _ARRAY_SPACES):
        array = array.astype(space.dtype, copy=False)
    return array
