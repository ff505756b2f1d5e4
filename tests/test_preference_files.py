"""The ``.lfip`` preferences file: exact round trips, damage and truncation refused, the
other kind of ``.lfid`` container refused both ways, forged offsets refused, and an
interrupted save that keeps the previous file."""

from __future__ import annotations

import dataclasses
import os
import re

import gymnasium as gym
import numpy as np
import pytest
from paused_save import paused_save
from test_demofile_safety import assemble, edit_footer, split_sections

from lfi_gym import envs
from lfi_gym.agents.data import Demonstrations
from lfi_gym.agents.demofile import DemonstrationsFileError
from lfi_gym.agents.preferences import (
    Preferences,
    PreferencesError,
    PreferencesFileError,
    tokenizer_digest,
)

ENV_ID = "TextGen-TinyReviews-v0"


def synthetic(n: int, seed: int, digest: str = "d" * 64) -> Preferences:
    """``n`` pairs of random ids and texts (no env needed: a subprocess builds it too)."""
    rng = np.random.default_rng(seed)

    def ids(low: int, high: int) -> list[np.ndarray]:
        return [rng.integers(0, 1600, size=rng.integers(low, high)) for _ in range(n)]

    return Preferences(
        env_id=ENV_ID,
        tokenizer_digest=digest,
        prompts=[f"prompt {i} ünïcode {seed}" for i in range(n)],
        completions_a=[f" a{i}" * (i % 5) for i in range(n)],
        completions_b=[f" b{i}" for i in range(n)],
        prompt_ids=ids(1, 33),
        completion_ids_a=ids(1, 33),
        completion_ids_b=ids(1, 33),
        labels=rng.choice([0.0, 0.5, 1.0], size=n),
        teacher={"kind": "test", "beta": "inf", "nested": {"seed": seed, "none": None}},
    )


def assert_same(first: Preferences, second: Preferences) -> None:
    for field in dataclasses.fields(Preferences):
        mine, theirs = getattr(first, field.name), getattr(second, field.name)
        if field.name in ("prompt_ids", "completion_ids_a", "completion_ids_b"):
            assert len(mine) == len(theirs)
            for x, y in zip(mine, theirs, strict=True):
                assert x.dtype == y.dtype == np.int64
                np.testing.assert_array_equal(x, y)
        elif field.name == "labels":
            np.testing.assert_array_equal(mine, theirs)
        else:
            assert mine == theirs, field.name


@pytest.fixture(scope="module")
def env() -> gym.Env:
    return gym.make(ENV_ID)


def test_a_round_trip_is_equal_field_by_field(tmp_path, env):
    prefs = synthetic(50, 0, digest=tokenizer_digest(env.unwrapped.task.tokenizer))
    path = prefs.save(tmp_path / "prefs.lfip")
    assert_same(Preferences.load(path), prefs)
    assert_same(Preferences.load(path, env=env), prefs)
    assert_same(Preferences.from_bytes(prefs.to_bytes()), prefs)
    assert path.read_bytes() == prefs.to_bytes()
    with pytest.raises(PreferencesError, match="come from TextGen-TinyReviews-v0, the env is"):
        Preferences.load(path, env=gym.make("TextGen-TinyConcepts-v0"))
    single = synthetic(1, 1)
    assert_same(Preferences.from_bytes(single.to_bytes()), single)


def test_a_flipped_byte_or_a_truncated_file_is_refused(tmp_path):
    raw = synthetic(20, 0).to_bytes()
    damaged = bytearray(raw)
    damaged[200] ^= 0x01
    path = tmp_path / "damaged.lfip"
    path.write_bytes(bytes(damaged))
    with pytest.raises(PreferencesFileError, match="checksum mismatch"):
        Preferences.load(path)
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(PreferencesFileError, match="truncated"):
        Preferences.load(path)
    with pytest.raises(PreferencesFileError, match="bad magic bytes"):
        Preferences.from_bytes(b"not a file at all, just text", name="x.lfip")
    with pytest.raises(FileNotFoundError, match="no preferences file at"):
        Preferences.load(tmp_path / "missing.lfip")
    assert issubclass(PreferencesFileError, PreferencesError)


def test_each_kind_of_file_is_refused_as_the_other(tmp_path):
    cartpole = gym.make("Control-CartPole-v0")
    demos = Demonstrations.collect(cartpole, envs.make_expert(cartpole), n_steps=5, seed=0)
    demos_path = demos.save(tmp_path / "demos.lfid")
    with pytest.raises(
        PreferencesFileError,
        match=re.escape(
            "this is an lfi-gym demonstrations file, not preferences; read it with "
            "Demonstrations.load"
        ),
    ):
        Preferences.load(demos_path)
    prefs_path = synthetic(3, 0).save(tmp_path / "prefs.lfip")
    with pytest.raises(
        DemonstrationsFileError,
        match=re.escape(
            "this is an lfi-gym preferences file, not demonstrations; read it with Preferences.load"
        ),
    ):
        Demonstrations.load(prefs_path)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda f: f.update(schema_version=2), "reads versions 1 of preferences files"),
        (lambda f: f.update(format="someone.else"), r"corrupt footer \(not a preferences footer"),
        (lambda f: f.update(length=4), "section 'labels' is missing or not 4 float64s"),
        (lambda f: f.update(env_id=""), "env_id must be an env id string"),
    ],
)
def test_footer_edits_with_a_recomputed_checksum_are_refused(edit, message):
    raw = edit_footer(synthetic(3, 0).to_bytes(), edit)
    with pytest.raises(PreferencesFileError, match=message):
        Preferences.from_bytes(raw)


def test_forged_offsets_and_labels_are_refused():
    footer, contents = split_sections(synthetic(3, 0).to_bytes())
    entry, data = contents["prompt_offsets"]
    offsets = np.frombuffer(data, np.int64).copy()
    offsets[1], offsets[2] = offsets[2], offsets[1]  # falling: rows would overlap
    contents["prompt_offsets"] = (entry, offsets.tobytes())
    with pytest.raises(PreferencesFileError, match="'prompt_offsets' must be 4 rising offsets"):
        Preferences.from_bytes(assemble(footer, contents))

    footer, contents = split_sections(synthetic(3, 0).to_bytes())
    entry, _ = contents["labels"]
    contents["labels"] = (entry, np.array([1.0, 0.25, 0.0]).tobytes())
    with pytest.raises(PreferencesFileError, match=r"labels must be 1 .* row 1 has 0\.25"):
        Preferences.from_bytes(assemble(footer, contents))


def test_an_interrupted_save_leaves_the_previous_file_intact(tmp_path):
    path = tmp_path / "big.lfip"
    synthetic(4000, 0).save(path)
    old = path.read_bytes()
    half = len(old) // 2
    code = f"from test_preference_files import synthetic; synthetic(4000, 1).save({str(path)!r})"
    with paused_save(code, tmp_path, half):
        (leftover,) = [name for name in os.listdir(tmp_path) if name.endswith(".tmp")]
        assert (tmp_path / leftover).stat().st_size == half  # killed mid-file
    assert path.read_bytes() == old
    assert_same(Preferences.load(path), synthetic(4000, 0))
