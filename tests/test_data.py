"""lfi_gym.agents.data.Demonstrations: collection, views, batching, and the file format (see
test_demofile_safety.py for forged files)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import mmap
import os
import pickle
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces

import lfi_gym.agents.demofile as demofile_module
from lfi_gym import envs
from lfi_gym.agents.data import Demonstrations
from lfi_gym.agents.demofile import (
    END_MAGIC,
    MAGIC,
    SCHEMA_VERSION,
    DemonstrationsFileError,
    DemonstrationsWriter,
    _footer_digest,
)

torch.set_num_threads(1)

ENV_ID = "Control-CartPole-v0"


# -- helpers --------------------------------------------------------------------------


class ConstantPolicy:
    """Always pushes the same way: the pole falls within a few dozen steps."""

    def __init__(self, env: gym.Env, action: int = 0) -> None:
        self.observation_space = env.observation_space
        self.action_space = env.action_space
        self.action = action

    def predict(self, observation, state=None, episode_start=None, deterministic=False):
        obs = np.asarray(observation)
        if obs.ndim == 1:
            return np.int64(self.action), state
        return np.full(len(obs), self.action, dtype=np.int64), state


class RandomPolicy(ConstantPolicy):
    """Seeded uniformly random actions: short episodes of varying length."""

    def __init__(self, env: gym.Env, seed: int = 0) -> None:
        super().__init__(env)
        self.rng = np.random.default_rng(seed)

    def predict(self, observation, state=None, episode_start=None, deterministic=False):
        obs = np.asarray(observation)
        if obs.ndim == 1:
            return np.int64(self.rng.integers(2)), state
        return self.rng.integers(2, size=len(obs)).astype(np.int64), state


@pytest.fixture(scope="module")
def oracle_demos():
    env = gym.make(ENV_ID)
    return Demonstrations.collect(
        env, envs.make_expert(env), n_episodes=2, seed=0, record_states=True
    )


@pytest.fixture(scope="module")
def random_demos():
    env = gym.make(ENV_ID)
    return Demonstrations.collect(
        env, RandomPolicy(env, seed=0), n_episodes=10, seed=0, record_states=True, record_infos=True
    )


def assert_boundaries_consistent(demos: Demonstrations) -> None:
    """Each episode: one start, and only its last transition may be terminal/truncated."""
    slices = demos.episode_slices()
    assert len(slices) == demos.n_episodes
    ends = demos.terminated | demos.truncated
    for s in slices:
        assert demos.episode_starts[s.start]
        assert not demos.episode_starts[s.start + 1 : s.stop].any()
        assert not ends[s.start : s.stop - 1].any(), "an episode ends before its last transition"
        assert ends[s.stop - 1], "every episode's last transition is terminated or truncated"
        assert not (demos.terminated[s.stop - 1] and demos.truncated[s.stop - 1])


def dict_demos(n: int = 12) -> Demonstrations:
    """Hand-built demonstrations with Dict observations, Box actions, states and infos."""
    rng = np.random.default_rng(42)
    obs_space = spaces.Dict(
        {
            "image": spaces.Box(0, 255, shape=(3, 4, 4), dtype=np.uint8),
            "vector": spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32),
        }
    )
    act_space = spaces.Box(-2.0, 2.0, shape=(2,), dtype=np.float32)
    starts = np.zeros(n, dtype=bool)
    starts[[0, 5]] = True
    terminated = np.zeros(n, dtype=bool)
    terminated[4] = True
    truncated = np.zeros(n, dtype=bool)
    truncated[-1] = True
    return Demonstrations(
        observations={
            "image": rng.integers(0, 256, size=(n, 3, 4, 4), dtype=np.uint8),
            "vector": rng.uniform(-1, 1, size=(n, 2)).astype(np.float32),
        },
        actions=rng.uniform(-2, 2, size=(n, 2)).astype(np.float32),
        rewards=rng.normal(size=n).astype(np.float32),
        episode_starts=starts,
        terminated=terminated,
        truncated=truncated,
        states=[("state", i, {"nested": [i, i * 0.5]}) for i in range(n)],
        infos=[{"step": i, "text": f"info {i}"} for i in range(n)],
        observation_space=obs_space,
        action_space=act_space,
        env_id="Custom-Dict-v3",
    )


def indexed_demos(n: int = 103) -> Demonstrations:
    """Observation row i is [i, 2i, 3i, 4i] and action i is i: batches reveal indices."""
    idx = np.arange(n)
    starts = np.zeros(n, dtype=bool)
    starts[::10] = True
    truncated = np.zeros(n, dtype=bool)
    truncated[np.r_[np.flatnonzero(starts)[1:] - 1, n - 1]] = True
    return Demonstrations(
        observations=(idx[:, None] * np.arange(1, 5)).astype(np.float32),
        actions=idx.astype(np.int64),
        rewards=idx.astype(np.float32),
        episode_starts=starts,
        terminated=np.zeros(n, dtype=bool),
        truncated=truncated,
    )


def assert_demos_equal(a: Demonstrations, b: Demonstrations) -> None:
    assert type(a.observations) is type(b.observations) or (
        isinstance(a.observations, np.ndarray) and isinstance(b.observations, np.ndarray)
    )
    if isinstance(a.observations, dict):
        assert a.observations.keys() == b.observations.keys()
        for key in a.observations:
            assert a.observations[key].dtype == b.observations[key].dtype
            np.testing.assert_array_equal(a.observations[key], b.observations[key])
    else:
        assert a.observations.dtype == b.observations.dtype
        np.testing.assert_array_equal(a.observations, b.observations)
    for key in ("actions", "rewards", "episode_starts", "terminated", "truncated"):
        x, y = getattr(a, key), getattr(b, key)
        assert x.dtype == y.dtype, key
        assert x.shape == y.shape, key
        np.testing.assert_array_equal(x, y, err_msg=key)
    assert a.states == b.states
    assert a.infos == b.infos
    assert a.observation_space == b.observation_space
    assert a.action_space == b.action_space
    assert a.env_id == b.env_id


def split_file(raw: bytes) -> tuple[bytes, dict, int]:
    """(data bytes before the footer, footer dict, footer start offset)."""
    tail = raw[-(8 + len(END_MAGIC)) :]
    assert tail[8:] == END_MAGIC
    footer_size = int.from_bytes(tail[:8], "little")
    data_end = len(raw) - len(tail) - footer_size
    return raw[:data_end], json.loads(raw[data_end : data_end + footer_size]), data_end


def rewrite_footer(raw: bytes, edit, *, fix_checksum: bool) -> bytes:
    """Apply ``edit(footer)`` and re-encode, recomputing the checksum as save does if asked."""
    body, footer, _ = split_file(raw)
    edit(footer)
    if fix_checksum:
        footer.pop("sha256")
        footer["sha256"] = _footer_digest(hashlib.sha256(body), footer)
    encoded = json.dumps(footer, sort_keys=True).encode()
    return body + encoded + len(encoded).to_bytes(8, "little") + END_MAGIC


def backed_by_mmap(array: np.ndarray) -> bool:
    base = array
    while base is not None:
        if isinstance(base, mmap.mmap):
            return True
        base = getattr(base, "base", None)
    return False


# -- collection ---------------------------------------------------------------------


def test_collect_n_episodes_oracle(oracle_demos, env):
    demos = oracle_demos
    assert len(demos) == 1000
    assert demos.n_episodes == 2
    np.testing.assert_array_equal(demos.episode_returns(), [500.0, 500.0])
    np.testing.assert_array_equal(demos.episode_lengths(), [500, 500])
    np.testing.assert_array_equal(np.flatnonzero(demos.episode_starts), [0, 500])
    np.testing.assert_array_equal(np.flatnonzero(demos.truncated), [499, 999])
    assert not demos.terminated.any()
    assert_boundaries_consistent(demos)
    assert demos.env_id == ENV_ID
    assert demos.observation_space == env.observation_space
    assert demos.action_space == env.action_space
    assert demos.observations.shape == (1000, 4) and demos.observations.dtype == np.float32
    assert demos.actions.shape == (1000,)
    assert np.issubdtype(demos.actions.dtype, np.integer)
    # The labels are the oracle's actions on the recorded observations.
    labels, _ = envs.make_expert(env).predict(demos.observations)
    np.testing.assert_array_equal(demos.actions, labels)
    # The second episode starts from a fresh reset, not from the first one's end.
    assert not np.array_equal(demos.observations[0], demos.observations[500])


def test_collect_is_seeded(env):
    expert = envs.make_expert(env)
    a = Demonstrations.collect(env, expert, n_steps=50, seed=3)
    b = Demonstrations.collect(env, expert, n_steps=50, seed=3)
    c = Demonstrations.collect(env, expert, n_steps=50, seed=4)
    np.testing.assert_array_equal(a.observations, b.observations)
    assert not np.array_equal(a.observations, c.observations)


@pytest.mark.parametrize("n_steps", [1, 123, 500, 650])
def test_collect_n_steps_exact_length_and_cut(env, n_steps):
    demos = Demonstrations.collect(env, envs.make_expert(env), n_steps=n_steps, seed=0)
    assert len(demos) == n_steps
    assert demos.truncated[-1], "the last transition is truncated (cut or at the horizon)"
    assert not demos.terminated[-1]
    assert_boundaries_consistent(demos)
    expected_starts = [0] if n_steps <= 500 else [0, 500]
    np.testing.assert_array_equal(np.flatnonzero(demos.episode_starts), expected_starts)
    expected_truncated = [n_steps - 1] if n_steps <= 500 else [499, n_steps - 1]
    np.testing.assert_array_equal(np.flatnonzero(demos.truncated), expected_truncated)


def test_collect_terminating_episodes(env):
    demos = Demonstrations.collect(env, ConstantPolicy(env), n_episodes=3, seed=0)
    assert demos.n_episodes == 3
    assert_boundaries_consistent(demos)
    ends = [s.stop - 1 for s in demos.episode_slices()]
    assert demos.terminated[ends].all()
    assert not demos.truncated.any()
    # CartPole pays 1 per step, including the terminating one.
    np.testing.assert_array_equal(demos.episode_returns(), demos.episode_lengths())
    assert (demos.episode_lengths() < 100).all()


def test_collect_whichever_budget_comes_first(env):
    expert = envs.make_expert(env)
    assert len(Demonstrations.collect(env, expert, n_episodes=1, n_steps=700, seed=0)) == 500
    demos = Demonstrations.collect(env, expert, n_episodes=3, n_steps=700, seed=0)
    assert len(demos) == 700 and demos.n_episodes == 2 and demos.truncated[-1]


def test_collect_cut_inside_terminating_run_marks_truncated(env):
    full = Demonstrations.collect(env, ConstantPolicy(env), n_episodes=1, seed=0)
    cut = Demonstrations.collect(env, ConstantPolicy(env), n_steps=len(full) - 1, seed=0)
    assert cut.truncated[-1] and not cut.terminated[-1]
    assert full.terminated[-1] and not full.truncated[-1]
    np.testing.assert_array_equal(cut.observations, full.observations[:-1])


@pytest.mark.parametrize("kwargs", [{}, {"n_episodes": 0}, {"n_steps": -1}, {"n_steps": 2.5}])
def test_collect_bad_budget(env, kwargs):
    with pytest.raises(ValueError, match=r"n_episodes|n_steps"):
        Demonstrations.collect(env, envs.make_expert(env), **kwargs)


def test_record_states_restore_observations(oracle_demos, env):
    demos = oracle_demos
    assert demos.states is not None and len(demos.states) == len(demos)
    for i in (0, 1, 137, 499, 500, 731, 999):
        obs, _ = env.reset_to(demos.states[i])
        np.testing.assert_array_equal(obs, demos.observations[i])
        if i + 1 < len(demos) and not demos.episode_starts[i + 1]:
            next_obs, reward, *_ = env.step(demos.actions[i])
            np.testing.assert_array_equal(next_obs, demos.observations[i + 1])
            assert reward == demos.rewards[i]
    assert demos.states[0] != demos.states[1]


def test_record_infos(random_demos):
    assert random_demos.infos is not None
    assert len(random_demos.infos) == len(random_demos)
    assert all(isinstance(info, dict) for info in random_demos.infos)


# -- save / load ----------------------------------------------------------------------


@pytest.mark.parametrize("mmap_load", [False, True])
def test_round_trip_dict_observations(tmp_path, mmap_load):
    demos = dict_demos()
    path = demos.save(tmp_path / "dict.lfid")
    assert path == tmp_path / "dict.lfid"
    loaded = Demonstrations.load(path, mmap=mmap_load)
    assert_demos_equal(demos, loaded)
    assert isinstance(loaded.observations, dict)
    assert loaded.n_episodes == 2


@pytest.mark.parametrize("mmap_load", [False, True])
def test_round_trip_collected_with_states(tmp_path, random_demos, env, mmap_load):
    path = random_demos.save(str(tmp_path / "sub" / "random.lfid"))  # str path, new folder
    loaded = Demonstrations.load(path, mmap=mmap_load)
    assert_demos_equal(random_demos, loaded)
    obs, _ = env.reset_to(loaded.states[7])
    np.testing.assert_array_equal(obs, random_demos.observations[7])
    assert sorted(os.listdir(tmp_path / "sub")) == ["random.lfid"]


def test_mmap_load_is_read_only_memmaps(tmp_path):
    demos = dict_demos()
    path = demos.save(tmp_path / "d.lfid")
    loaded = Demonstrations.load(path, mmap=True)
    arrays = {f"observations/{k}": v for k, v in loaded.observations.items()}
    arrays.update(
        {
            k: getattr(loaded, k)
            for k in ("actions", "rewards", "episode_starts", "terminated", "truncated")
        }
    )
    for key, array in arrays.items():
        assert not array.flags.writeable, key
        assert backed_by_mmap(array), f"{key} was copied into memory instead of mapped"
    assert isinstance(loaded.observations["image"], np.memmap)
    assert isinstance(loaded.actions, np.memmap)
    with pytest.raises(ValueError):
        loaded.observations["image"][0, 0, 0, 0] = 1
    with pytest.raises(ValueError):
        loaded.actions[0] = 0
    copied = Demonstrations.load(path, mmap=False)
    assert not backed_by_mmap(copied.actions)
    copied.actions[0] = 0  # in-memory copies are writable and do not touch the file
    np.testing.assert_array_equal(Demonstrations.load(path).actions, demos.actions)


def test_round_trip_without_states_infos_or_spaces(tmp_path):
    demos = indexed_demos()
    loaded = Demonstrations.load(demos.save(tmp_path / "i.lfid"))
    assert loaded.states is None and loaded.infos is None
    assert loaded.observation_space is None and loaded.env_id is None
    assert_demos_equal(demos, loaded)


@pytest.mark.parametrize("make", [dict_demos, indexed_demos])
def test_bytes_in_memory_are_the_files_bytes(tmp_path, make):
    demos = make()
    data = demos.to_bytes()
    assert data == demos.save(tmp_path / "d.lfid").read_bytes()
    loaded = Demonstrations.from_bytes(data)
    assert_demos_equal(demos, loaded)
    assert loaded.actions.flags.writeable  # copies, not views of the caller's bytes


def test_bytes_in_memory_are_checked_like_files(random_demos):
    data = random_demos.to_bytes()
    _, footer, data_end = split_file(data)
    section = footer["sections"]["actions"]
    corrupted = bytearray(data)
    corrupted[section["offset"]] ^= 0x01
    with pytest.raises(DemonstrationsFileError, match=r"^aggregate\.lfid: checksum mismatch"):
        Demonstrations.from_bytes(bytes(corrupted), name="aggregate.lfid")
    with pytest.raises(DemonstrationsFileError, match=r"^<bytes>: file is truncated"):
        Demonstrations.from_bytes(data[: data_end + 5])
    with pytest.raises(DemonstrationsFileError, match="not an lfi-gym demonstrations file"):
        Demonstrations.from_bytes(b"PK\x03\x04" + data[4:])


def test_load_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"missing\.lfid"):
        Demonstrations.load(tmp_path / "missing.lfid")


# -- file safety ----------------------------------------------------------------------


@pytest.fixture
def saved(tmp_path, random_demos):
    path = random_demos.save(tmp_path / "demos.lfid")
    return path, path.read_bytes()


@pytest.mark.parametrize(
    "where",
    ["after_magic", "inside_data", "at_footer", "inside_footer", "inside_length", "last_byte"],
)
def test_truncated_file_is_refused(saved, where):
    path, raw = saved
    _, _, data_end = split_file(raw)
    cut = {
        "after_magic": len(MAGIC),
        "inside_data": data_end // 2,
        "at_footer": data_end,
        "inside_footer": data_end + (len(raw) - 16 - data_end) // 2,
        "inside_length": len(raw) - len(END_MAGIC) - 3,
        "last_byte": len(raw) - 1,
    }[where]
    path.write_bytes(raw[:cut])
    with pytest.raises(DemonstrationsFileError) as info:
        Demonstrations.load(path)
    message = str(info.value)
    assert str(path) in message
    assert "truncated" in message or "corrupt" in message


def test_flipped_data_byte_is_refused(saved, random_demos):
    path, raw = saved
    _, footer, _ = split_file(raw)
    for key in ("actions", "observations", "states"):  # arrays and a JSON value
        section = footer["sections"][key]
        position = section["offset"] + section["nbytes"] // 2
        corrupted = bytearray(raw)
        corrupted[position] ^= 0x01
        path.write_bytes(bytes(corrupted))
        with pytest.raises(DemonstrationsFileError, match="checksum") as info:
            Demonstrations.load(path)
        assert str(path) in str(info.value)
    path.write_bytes(raw)  # the untouched bytes still load
    assert len(Demonstrations.load(path)) == len(random_demos)


def test_padding_byte_flip_is_refused(tmp_path):
    path = dict_demos().save(tmp_path / "d.lfid")
    raw = path.read_bytes()
    _, footer, _ = split_file(raw)
    # Sections start 64-byte aligned, after zero padding: flip a padding byte.
    offset = footer["sections"]["actions"]["offset"]
    assert raw[offset - 1] == 0
    corrupted = bytearray(raw)
    corrupted[offset - 1] = 0xFF
    path.write_bytes(bytes(corrupted))
    with pytest.raises(DemonstrationsFileError, match="checksum"):
        Demonstrations.load(path)


def test_edited_footer_same_length_is_refused(saved):
    path, raw = saved
    assert ENV_ID.encode() in raw

    def edit(footer):
        footer["env_id"] = "Control-CartPole-v9"

    edited = rewrite_footer(raw, edit, fix_checksum=False)
    assert len(edited) == len(raw) and edited != raw
    path.write_bytes(edited)
    with pytest.raises(DemonstrationsFileError, match="checksum") as info:
        Demonstrations.load(path)
    assert str(path) in str(info.value)


def test_edited_footer_in_place_bytes_is_refused(saved):
    path, raw = saved
    needle = b'"env_id": "Control-CartPole-v0"'
    assert raw.count(needle) == 1
    path.write_bytes(raw.replace(needle, b'"env_id": "Control-CartPole-v1"'))
    with pytest.raises(DemonstrationsFileError, match="checksum"):
        Demonstrations.load(path)


def test_edited_section_shape_is_refused(saved):
    path, raw = saved

    def edit(footer):
        footer["length"] = footer["length"] - 1
        footer["sections"]["rewards"]["shape"] = [footer["length"]]

    path.write_bytes(rewrite_footer(raw, edit, fix_checksum=False))
    with pytest.raises(DemonstrationsFileError, match="checksum"):
        Demonstrations.load(path)


def test_rewrite_helper_keeps_a_valid_file(saved, random_demos):
    # Guards the crafted-file tests below: re-encoding with a recomputed checksum loads.
    path, raw = saved
    path.write_bytes(rewrite_footer(raw, lambda footer: None, fix_checksum=True))
    assert_demos_equal(random_demos, Demonstrations.load(path))


def test_newer_schema_version_is_refused(saved):
    path, raw = saved

    def edit(footer):
        footer["schema_version"] = SCHEMA_VERSION + 1

    path.write_bytes(rewrite_footer(raw, edit, fix_checksum=True))
    with pytest.raises(DemonstrationsFileError) as info:
        Demonstrations.load(path)
    message = str(info.value)
    assert str(path) in message
    assert str(SCHEMA_VERSION + 1) in message
    assert "newer" in message and "upgrade" in message


def test_unknown_older_schema_version_is_refused(saved):
    path, raw = saved
    path.write_bytes(rewrite_footer(raw, lambda f: f.update(schema_version=0), fix_checksum=True))
    with pytest.raises(DemonstrationsFileError, match=f"reads versions 2, {SCHEMA_VERSION}"):
        Demonstrations.load(path)


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"hello, this is a text file and not demonstrations\n" * 20,
        pickle.dumps({"observations": np.zeros(3)}),
    ],
)
def test_non_demo_file_is_refused(tmp_path, content):
    path = tmp_path / "other.lfid"
    path.write_bytes(content)
    with pytest.raises(DemonstrationsFileError, match="not an lfi-gym demonstrations file") as info:
        Demonstrations.load(path)
    assert str(path) in str(info.value)


def test_npy_file_is_refused(tmp_path):
    path = tmp_path / "array.npy"
    np.save(path, np.arange(100))
    with pytest.raises(DemonstrationsFileError, match="not an lfi-gym demonstrations file"):
        Demonstrations.load(path)


def test_right_magic_wrong_footer_is_refused(tmp_path):
    path = tmp_path / "fake.lfid"
    footer = json.dumps({"format": "something else"}).encode()
    path.write_bytes(MAGIC + b"\0" * 10 + footer + len(footer).to_bytes(8, "little") + END_MAGIC)
    with pytest.raises(DemonstrationsFileError, match="corrupt footer"):
        Demonstrations.load(path)


class Interrupt(Exception):
    pass


def _assert_untouched(path: Path, raw: bytes) -> None:
    assert path.read_bytes() == raw
    assert os.listdir(path.parent) == [path.name], "a temporary file was left behind"


def test_interrupted_replace_keeps_previous_file(saved, monkeypatch):
    path, raw = saved

    def failing_replace(*args, **kwargs):
        raise Interrupt("disk full")

    monkeypatch.setattr(demofile_module.os, "replace", failing_replace)
    with pytest.raises(Interrupt):
        dict_demos().save(path)
    _assert_untouched(path, raw)


@pytest.mark.parametrize("exception", [Interrupt, KeyboardInterrupt])
def test_interrupted_section_write_keeps_previous_file(saved, monkeypatch, exception):
    path, raw = saved
    original_write = demofile_module._HashingWriter.write
    sections_started = []

    def write(self, data):
        is_padding = isinstance(data, bytes) and len(data) < 64 and not data.strip(b"\0")
        if self.position > 0 and not is_padding:
            sections_started.append(self.position)
            if len(sections_started) == 2:  # half-way through the file: the second section
                original_write(self, bytes(data)[: len(data) // 2])
                raise exception("interrupted mid-write")
        return original_write(self, data)

    monkeypatch.setattr(demofile_module._HashingWriter, "write", write)
    with pytest.raises(exception):
        dict_demos().save(path)
    assert len(sections_started) == 2
    _assert_untouched(path, raw)
    monkeypatch.undo()
    # The next save works and replaces the file.
    dict_demos().save(path)
    assert_demos_equal(dict_demos(), Demonstrations.load(path))
    assert os.listdir(path.parent) == [path.name]


def test_interrupted_first_save_leaves_nothing(tmp_path, monkeypatch):
    def failing_fsync(fd):
        raise Interrupt("power cut")

    monkeypatch.setattr(demofile_module.os, "fsync", failing_fsync)
    with pytest.raises(Interrupt):
        dict_demos().save(tmp_path / "new.lfid")
    assert os.listdir(tmp_path) == []


def test_object_arrays_are_refused(tmp_path):
    demos = dataclasses.replace(indexed_demos(), actions=np.array([object()] * 103))
    with pytest.raises(TypeError, match="actions"):
        demos.save(tmp_path / "o.lfid")
    assert os.listdir(tmp_path) == []


# -- streaming writer -------------------------------------------------------------------


def _write_stream(path, demos: Demonstrations) -> Path:
    with DemonstrationsWriter(
        path, demos.observation_space, demos.action_space, env_id=demos.env_id
    ) as writer:
        for i in range(len(demos)):
            obs = {k: v[i] for k, v in demos.observations.items()}
            writer.add(
                obs,
                demos.actions[i],
                demos.rewards[i],
                demos.episode_starts[i],
                demos.terminated[i],
                demos.truncated[i],
            )
    return writer.path


def test_writer_streams_dict_observations(tmp_path):
    demos = dataclasses.replace(dict_demos(), states=None, infos=None)
    path = _write_stream(tmp_path / "w.lfid", demos)
    # The same file save() writes, byte for byte, and no temporary file stays behind.
    assert path.read_bytes() == demos.to_bytes()
    assert os.listdir(tmp_path) == ["w.lfid"]
    loaded = Demonstrations.load(path)
    assert_demos_equal(demos, loaded)
    assert isinstance(loaded.observations["image"], np.memmap)


def test_writer_checks_dict_observations_before_writing(tmp_path):
    demos = dict_demos()
    target = tmp_path / "w.lfid"
    obs = {k: v[0] for k, v in demos.observations.items()}
    with DemonstrationsWriter(target, demos.observation_space, demos.action_space) as writer:
        with pytest.raises(ValueError, match=r"keys \['image'\], the Dict space has"):
            writer.add({"image": obs["image"]}, demos.actions[0], 0.0, True, False, False)
        with pytest.raises(ValueError, match=r"observation\['vector'\] has shape \(3,\)"):
            writer.add({**obs, "vector": np.zeros(3)}, demos.actions[0], 0.0, True, False, False)
        assert len(writer) == 0
        writer.add(obs, demos.actions[0], 1.0, True, False, True)
    loaded = Demonstrations.load(target)
    assert len(loaded) == 1
    np.testing.assert_array_equal(loaded.observations["vector"][0], obs["vector"])


def test_interrupted_dict_recording_leaves_no_file(tmp_path):
    demos = dict_demos()
    obs = {k: v[0] for k, v in demos.observations.items()}
    with (
        pytest.raises(RuntimeError),
        DemonstrationsWriter(tmp_path / "w.lfid", demos.observation_space, demos.action_space) as w,
    ):
        w.add(obs, demos.actions[0], 0.0, True, False, False)
        raise RuntimeError("interrupted")
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(
    "space",
    [
        spaces.Text(8),
        spaces.Tuple([spaces.Discrete(2)]),
        spaces.Dict({"nested": spaces.Dict({"x": spaces.Discrete(2)})}),
    ],
)
def test_writer_refuses_observations_it_cannot_stream(tmp_path, space):
    with pytest.raises(TypeError, match="streams observations that are arrays"):
        DemonstrationsWriter(tmp_path / "w.lfid", space, spaces.Discrete(2))
    assert os.listdir(tmp_path) == []


# -- views: split, concatenate, batches ------------------------------------------------


def _episode_keys(demos: Demonstrations) -> list[bytes]:
    """Identify each episode by all of its observations."""
    return [demos.observations[s].tobytes() for s in demos.episode_slices()]


def test_split_partitions_whole_episodes(random_demos):
    demos = random_demos
    first, second = demos.split(0.3, seed=0)
    assert first.n_episodes == 3 and second.n_episodes == 7
    assert len(first) + len(second) == len(demos)
    original = _episode_keys(demos)
    assert len(set(original)) == demos.n_episodes
    keys_first, keys_second = _episode_keys(first), _episode_keys(second)
    assert not set(keys_first) & set(keys_second), "an episode is in both parts"
    assert sorted(keys_first + keys_second) == sorted(original)
    for part in (first, second):
        assert_boundaries_consistent(part)
        # Fields stay aligned with their observations.
        for s in part.episode_slices():
            j = original.index(part.observations[s].tobytes())
            src = demos.episode_slices()[j]
            np.testing.assert_array_equal(part.actions[s], demos.actions[src])
            np.testing.assert_array_equal(part.terminated[s], demos.terminated[src])
            assert part.states[s] == demos.states[src]
            assert part.infos[s] == demos.infos[src]
    assert first.env_id == ENV_ID and first.action_space == demos.action_space


def test_split_is_seeded(random_demos):
    a1, _ = random_demos.split(0.5, seed=1)
    a2, _ = random_demos.split(0.5, seed=1)
    assert _episode_keys(a1) == _episode_keys(a2)
    partitions = {frozenset(_episode_keys(random_demos.split(0.5, seed=s)[0])) for s in range(8)}
    assert len(partitions) > 1, "the seed does not change the split"


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.5, 1.5])
def test_split_bad_fraction(random_demos, fraction):
    with pytest.raises(ValueError, match="fraction"):
        random_demos.split(fraction)


def test_split_single_episode_is_refused(env):
    demos = Demonstrations.collect(env, ConstantPolicy(env), n_episodes=1, seed=0)
    with pytest.raises(ValueError, match="episode"):
        demos.split(0.5)


def test_concatenate_and_add(random_demos, oracle_demos):
    a, b = random_demos, oracle_demos
    joined = a + b
    assert len(joined) == len(a) + len(b)
    assert joined.n_episodes == a.n_episodes + b.n_episodes
    np.testing.assert_array_equal(joined.observations[: len(a)], a.observations)
    np.testing.assert_array_equal(joined.observations[len(a) :], b.observations)
    np.testing.assert_array_equal(joined.actions, np.concatenate([a.actions, b.actions]))
    np.testing.assert_array_equal(joined.truncated, np.concatenate([a.truncated, b.truncated]))
    assert joined.states == a.states + b.states
    assert joined.infos is None, "b has no infos, so the join cannot keep them"
    assert_boundaries_consistent(joined)
    via_classmethod = Demonstrations.concatenate([a, b])
    assert_demos_equal(joined, via_classmethod)
    three = Demonstrations.concatenate([a, a.select(np.zeros(0, dtype=np.int64)), b, a])
    assert len(three) == 2 * len(a) + len(b)


def test_concatenate_dict_observations():
    d = dict_demos()
    joined = d + d
    assert set(joined.observations) == {"image", "vector"}
    assert joined.observations["image"].shape == (2 * len(d), 3, 4, 4)
    np.testing.assert_array_equal(joined.observations["vector"][len(d) :], d.observations["vector"])


def test_concatenate_refuses_nothing_and_mismatches(random_demos):
    with pytest.raises(ValueError, match="empty"):
        Demonstrations.concatenate([])
    with pytest.raises(ValueError, match="observation space"):
        Demonstrations.concatenate(
            [
                random_demos,
                dataclasses.replace(random_demos, observation_space=spaces.Box(-1, 1, (4,))),
            ]
        )


def test_concatenate_refuses_other_action_space(random_demos):
    other = dataclasses.replace(random_demos, action_space=spaces.Discrete(3))
    with pytest.raises(ValueError, match="action space"):
        random_demos + other


def test_iter_batches_cover_every_index_once():
    demos = indexed_demos(103)
    for seed in (0, 1):
        batches = list(demos.iter_batches(10, seed=seed))
        assert [len(b["actions"]) for b in batches] == [10] * 10 + [3]
        seen = torch.cat([b["actions"] for b in batches]).numpy()
        np.testing.assert_array_equal(np.sort(seen), np.arange(103))
        assert not np.array_equal(seen, np.arange(103)), "shuffle=True did not shuffle"
        for batch in batches:
            obs, actions = batch["observations"], batch["actions"]
            assert isinstance(obs, torch.Tensor) and obs.dtype == torch.float32
            assert obs.shape == (len(actions), 4)
            assert actions.dtype == torch.int64 and actions.shape == (len(actions),)
            assert batch["rewards"].dtype == torch.float32
            assert batch["episode_starts"].dtype == torch.bool
            # All fields of a batch come from the same transitions.
            np.testing.assert_array_equal(obs[:, 0].numpy(), actions.numpy())
            np.testing.assert_array_equal(batch["rewards"].numpy(), actions.numpy())
            np.testing.assert_array_equal(
                batch["episode_starts"].numpy(), actions.numpy() % 10 == 0
            )


def test_iter_batches_seeded_drop_last_and_ordered():
    demos = indexed_demos(103)
    order = lambda **kw: torch.cat([b["actions"] for b in demos.iter_batches(10, **kw)]).numpy()  # noqa: E731
    np.testing.assert_array_equal(order(seed=5), order(seed=5))
    assert not np.array_equal(order(seed=5), order(seed=6))
    np.testing.assert_array_equal(order(shuffle=False), np.arange(103))
    dropped = list(demos.iter_batches(10, seed=0, drop_last=True))
    assert [len(b["actions"]) for b in dropped] == [10] * 10
    assert len(set(torch.cat([b["actions"] for b in dropped]).tolist())) == 100
    assert len(list(demos.iter_batches(200, drop_last=True))) == 0
    assert [len(b["actions"]) for b in demos.iter_batches(200)] == [103]
    with pytest.raises(ValueError, match="batch_size"):
        next(demos.iter_batches(0))


def test_iter_batches_dict_observations():
    demos = dict_demos(12)
    batches = list(demos.iter_batches(5, shuffle=False))
    assert [len(b["actions"]) for b in batches] == [5, 5, 2]
    first = batches[0]["observations"]
    assert set(first) == {"image", "vector"}
    assert first["image"].dtype == torch.uint8 and first["image"].shape == (5, 3, 4, 4)
    assert batches[0]["actions"].shape == (5, 2)
    np.testing.assert_array_equal(first["vector"].numpy(), demos.observations["vector"][:5])


def test_iter_batches_from_mmap_file(tmp_path):
    demos = indexed_demos(50)
    loaded = Demonstrations.load(demos.save(tmp_path / "i.lfid"), mmap=True)
    seen = torch.cat([b["actions"] for b in loaded.iter_batches(7, seed=0)]).numpy()
    np.testing.assert_array_equal(np.sort(seen), np.arange(50))


def test_fields_of_different_lengths_are_refused():
    demos = indexed_demos(10)
    with pytest.raises(ValueError, match="different lengths"):
        dataclasses.replace(demos, rewards=np.zeros(9))
    with pytest.raises(ValueError, match="episode_starts"):
        dataclasses.replace(demos, episode_starts=np.zeros(10, dtype=bool))
