"""Reading a ``.lfid`` file never runs code: forged files that pass every integrity check
(the checksum recomputed exactly as the writer computes it) are refused with our own error,
and the payload they carry never fires. Also: what files hold round-trips exactly."""

from __future__ import annotations

import hashlib
import json
import pathlib
import pickle
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces

import lfi_gym.agents.demofile as demofile
from lfi_gym import envs
from lfi_gym.agents.data import Demonstrations
from lfi_gym.agents.demofile import (
    END_MAGIC,
    MAGIC,
    DemonstrationsFileError,
    _footer_digest,
)

# -- forging --------------------------------------------------------------------------------


class Payload:
    """Unpickling this creates ``marker``: proof that a reader ran code from a file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (self.marker,))


def payload_bytes(marker: Path) -> bytes:
    return pickle.dumps(Payload(marker), protocol=5)


def assert_payload_fires_under_pickle(payload: bytes, marker: Path) -> None:
    """The control: the same bytes do run code when unpickled."""
    assert not marker.exists()
    pickle.loads(payload)
    assert marker.exists(), "the payload is inert: the refusal above would prove nothing"
    marker.unlink()


def split_sections(raw: bytes) -> tuple[dict[str, Any], dict[str, tuple[dict, bytes]]]:
    """(footer without checksum, {name: (section entry, its bytes)}) of a file."""
    tail = raw[-(8 + len(END_MAGIC)) :]
    footer_size = int.from_bytes(tail[:8], "little")
    data_end = len(raw) - len(tail) - footer_size
    footer = json.loads(raw[data_end : data_end + footer_size])
    footer.pop("sha256")
    contents = {}
    for name, entry in footer["sections"].items():
        start = entry["offset"]
        contents[name] = (entry, raw[start : start + entry["nbytes"]])
    return footer, contents


def assemble(footer: dict[str, Any], contents: dict[str, tuple[dict, bytes]]) -> bytes:
    """A file holding ``contents`` (sections 64-byte aligned, offsets and sizes filled in)
    with the checksum computed as the writer computes it: every integrity check passes."""
    body = bytearray(MAGIC)
    sections = {}
    for name, (entry, data) in contents.items():
        body += b"\0" * (-len(body) % 64)
        sections[name] = {**entry, "offset": len(body), "nbytes": len(data)}
        body += data
    footer = {**footer, "sections": sections}
    footer["sha256"] = _footer_digest(hashlib.sha256(bytes(body)), footer)
    encoded = json.dumps(footer, sort_keys=True).encode()
    return bytes(body) + encoded + len(encoded).to_bytes(8, "little") + END_MAGIC


def edit_footer(raw: bytes, edit) -> bytes:
    """``raw`` with ``edit(footer)`` applied and the checksum recomputed as the writer does."""
    tail = 8 + len(END_MAGIC)
    body_end = len(raw) - tail - int.from_bytes(raw[-tail : -len(END_MAGIC)], "little")
    footer = json.loads(raw[body_end : len(raw) - tail])
    footer.pop("sha256")
    edit(footer)
    footer["sha256"] = _footer_digest(hashlib.sha256(raw[:body_end]), footer)
    encoded = json.dumps(footer, sort_keys=True).encode()
    return raw[:body_end] + encoded + len(encoded).to_bytes(8, "little") + END_MAGIC


def document(tree: Any, arrays: list[dict] = ()) -> bytes:
    return json.dumps({"tree": tree, "arrays": list(arrays)}).encode()


@pytest.fixture(scope="module")
def honest() -> tuple[Demonstrations, bytes]:
    """CartPole demonstrations with states, and infos that hold arrays."""
    env = gym.make("Control-CartPole-v0")
    demos = Demonstrations.collect(
        env, envs.make_expert(env), n_steps=20, seed=0, record_states=True, record_infos=True
    )
    demos.infos = [{"step": i, "frame": np.full((2, 3), i, np.uint8)} for i in range(len(demos))]
    return demos, demos.to_bytes()


def load_both_ways(raw: bytes, tmp_path: Path) -> str:
    """Load from a file (memory-mapped) and from bytes: both raise our error; its message."""
    path = tmp_path / "forged.lfid"
    path.write_bytes(raw)
    with pytest.raises(DemonstrationsFileError) as from_file:
        Demonstrations.load(path)
    with pytest.raises(DemonstrationsFileError) as from_bytes:
        Demonstrations.from_bytes(raw, name="forged.lfid")
    assert str(path) in str(from_file.value)
    assert str(from_bytes.value).startswith("forged.lfid: ")
    return str(from_file.value)


def test_the_forger_builds_files_that_load(honest, tmp_path) -> None:
    # Guards every test below: re-assembled honest sections pass all checks and load equal.
    demos, raw = honest
    footer, contents = split_sections(raw)
    loaded = Demonstrations.from_bytes(assemble(footer, contents))
    np.testing.assert_array_equal(loaded.observations, demos.observations)
    assert loaded.states == demos.states and len(loaded.states) == 20
    frames = [(a["frame"], b["frame"]) for a, b in zip(loaded.infos, demos.infos, strict=True)]
    assert len(frames) == 20 and all(np.array_equal(a, b) for a, b in frames)
    assert loaded.observation_space == demos.observation_space


# -- payloads -------------------------------------------------------------------------------


@pytest.mark.parametrize("target", ["spaces", "states", "infos"])
def test_a_pickle_section_is_refused(honest, tmp_path, target) -> None:
    """The schema-1 way: the section declares kind "pickle" and holds the payload."""
    marker = tmp_path / "ran"
    payload = payload_bytes(marker)
    footer, contents = split_sections(honest[1])
    contents[target] = ({"kind": "pickle"}, payload)
    message = load_both_ways(assemble(footer, contents), tmp_path)
    assert not marker.exists(), "loading ran the file's payload"
    assert f"section {target!r} has kind 'pickle'" in message
    assert "reads only 'array' and 'json' sections and never unpickles" in message
    assert_payload_fires_under_pickle(payload, marker)


@pytest.mark.parametrize("target", ["spaces", "states", "infos"])
def test_a_pickle_in_a_json_section_is_refused(honest, tmp_path, target) -> None:
    marker = tmp_path / "ran"
    payload = payload_bytes(marker)
    footer, contents = split_sections(honest[1])
    contents[target] = ({"kind": "json"}, payload)
    message = load_both_ways(assemble(footer, contents), tmp_path)
    assert not marker.exists(), "loading ran the file's payload"
    assert f"section {target!r} is malformed (not valid JSON" in message
    assert_payload_fires_under_pickle(payload, marker)


@pytest.mark.parametrize("target", ["spaces", "states", "infos"])
def test_a_pickle_behind_an_object_dtype_is_refused(honest, tmp_path, target) -> None:
    """The value names an object array whose bytes are the payload."""
    marker = tmp_path / "ran"
    payload = payload_bytes(marker)
    footer, contents = split_sections(honest[1])
    entry = {"dtype": "|O", "shape": [len(payload) // 8], "offset": 0}
    contents[target] = ({"kind": "json"}, document({"array": 0}, [entry]))
    contents[f"{target}/arrays"] = (
        {"kind": "array", "dtype": "|u1", "shape": [len(payload)]},
        payload,
    )
    message = load_both_ways(assemble(footer, contents), tmp_path)
    assert not marker.exists(), "loading ran the file's payload"
    assert f"section {target!r} has dtype '|O': refused" in message
    assert_payload_fires_under_pickle(payload, marker)


@pytest.mark.parametrize("target", ["actions", "observations", "final_observations"])
def test_an_object_dtype_array_section_is_refused(honest, tmp_path, target) -> None:
    marker = tmp_path / "ran"
    payload = payload_bytes(marker)
    payload += b"\0" * (-len(payload) % 8)
    footer, contents = split_sections(honest[1])
    contents[target] = ({"kind": "array", "dtype": "|O", "shape": [len(payload) // 8]}, payload)
    message = load_both_ways(assemble(footer, contents), tmp_path)
    assert not marker.exists(), "loading ran the file's payload"
    assert f"section {target!r} has dtype '|O': refused" in message
    assert "object arrays would need unpickling" in message
    assert_payload_fires_under_pickle(payload, marker)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("pathlib.Path", "unknown State type 'pathlib.Path'"),
        ("builtins.eval", "unknown State type 'builtins.eval'"),
        ("os.system", "unknown State type 'os.system'"),
    ],
)
def test_a_state_naming_any_other_class_is_refused(honest, tmp_path, name, message) -> None:
    """A State node builds only registered lfi-gym States: an import path builds nothing."""
    marker = tmp_path / "ran"
    footer, contents = split_sections(honest[1])
    fields = {"args": {"tuple": [str(marker)]}}
    contents["states"] = ({"kind": "json"}, document([{"state": [name, fields]}] * 20))
    text = load_both_ways(assemble(footer, contents), tmp_path)
    assert not marker.exists(), "loading ran the file's payload"
    assert "section 'states'" in text and message in text


def test_a_space_of_an_unknown_type_is_refused(honest, tmp_path) -> None:
    footer, contents = split_sections(honest[1])
    forged = {"dict": {"observation_space": {"dict": {"type": "pathlib.Path"}}}}
    forged["dict"]["action_space"] = None
    contents["spaces"] = ({"kind": "json"}, document(forged))
    message = load_both_ways(assemble(footer, contents), tmp_path)
    assert "section 'spaces': unknown space type 'pathlib.Path'" in message


def test_a_schema_1_file_is_refused_with_a_re_record_hint(honest, tmp_path) -> None:
    """What the previous lfi-gym wrote: pickled spaces (here, the payload)."""
    marker = tmp_path / "ran"
    payload = payload_bytes(marker)
    footer, contents = split_sections(honest[1])
    footer["schema_version"] = 1
    contents["spaces"] = ({"kind": "pickle"}, payload)
    message = load_both_ways(assemble(footer, contents), tmp_path)
    assert not marker.exists(), "loading ran the file's payload"
    assert (
        "written by an older lfi-gym (schema 1, which pickled spaces/states): re-record it "
        "with this version" in message
    )
    assert_payload_fires_under_pickle(payload, marker)


# -- bounds and caps ------------------------------------------------------------------------


def test_an_array_section_past_the_data_is_refused(honest, tmp_path) -> None:
    raw = honest[1]

    def edit(footer):  # int64 actions far past the end, with a consistent size
        footer["sections"]["actions"].update(shape=[len(raw)], nbytes=8 * len(raw))

    message = load_both_ways(edit_footer(raw, edit), tmp_path)
    assert "section 'actions' lies outside the data" in message


def test_an_array_outside_its_byte_section_is_refused(honest, tmp_path) -> None:
    footer, contents = split_sections(honest[1])
    entry = {"dtype": "<f8", "shape": [1000], "offset": 0}
    contents["infos"] = ({"kind": "json"}, document([{"array": 0}] * 20, [entry]))
    contents["infos/arrays"] = ({"kind": "array", "dtype": "|u1", "shape": [64]}, b"\0" * 64)
    message = load_both_ways(assemble(footer, contents), tmp_path)
    assert "section 'infos' has an array outside its byte section" in message


@pytest.mark.parametrize(
    ("entry", "fragment"),
    [
        # Zero-width items: no bytes to bound, yet a shape numpy cannot build.
        ({"dtype": "|S0", "shape": [2**40], "offset": 0}, "has dtype '|S0': refused"),
        ({"dtype": "|u1", "shape": [1] * 40, "offset": 0}, "has a malformed array entry"),
    ],
)
def test_array_entries_the_codec_refuses_are_refused(honest, tmp_path, entry, fragment) -> None:
    footer, contents = split_sections(honest[1])
    contents["infos"] = ({"kind": "json"}, document([{"array": 0}] * 20, [entry]))
    contents["infos/arrays"] = ({"kind": "array", "dtype": "|u1", "shape": [64]}, b"\0" * 64)
    message = load_both_ways(assemble(footer, contents), tmp_path)
    assert f"section 'infos' {fragment}" in message


def test_an_oversized_json_section_is_refused(honest, tmp_path, monkeypatch) -> None:
    raw = honest[1]
    _, contents = split_sections(raw)
    monkeypatch.setattr(demofile, "MAX_JSON_BYTES", len(contents["states"][1]) - 1)
    message = load_both_ways(raw, tmp_path)
    assert "section 'states' holds" in message and "over the cap" in message


def test_an_oversized_footer_is_refused(honest, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(demofile, "MAX_FOOTER_BYTES", 100)
    message = load_both_ways(honest[1], tmp_path)
    assert "corrupt footer" in message and "over the cap of 100" in message


@pytest.mark.parametrize(
    "edit",
    [
        lambda f: f.update(length=-1),
        lambda f: f.update(observations="pickle"),
        lambda f: f.update(sections=[]),
        lambda f: f["sections"]["actions"].update(offset="0"),
        lambda f: f["sections"]["actions"].update(shape=[True]),
    ],
)
def test_malformed_footer_fields_are_refused(honest, tmp_path, edit) -> None:
    message = load_both_ways(edit_footer(honest[1], edit), tmp_path)
    assert "malformed" in message


# -- final observations (schema 3) ----------------------------------------------------------


def test_the_honest_file_has_final_observations(honest) -> None:
    demos, raw = honest
    footer, contents = split_sections(raw)
    assert footer["schema_version"] == 3
    entry, data = contents["final_observations"]
    assert entry["shape"] == [demos.n_episodes, 4] and entry["dtype"] == "<f4"
    np.testing.assert_array_equal(np.frombuffer(data, "<f4"), demos.final_observations.ravel())


@pytest.mark.parametrize(
    ("shape", "fragment"),
    [
        ([2, 4], "final_observations has shape (2, 4): expected one row per episode (1)"),
        ([1, 5], "final_observations has shape (1, 5): expected one row per episode (1) of "),
        ([4], "final_observations has shape (4,)"),
    ],
)
def test_final_observations_of_the_wrong_shape_are_refused(honest, tmp_path, shape, fragment):
    footer, contents = split_sections(honest[1])
    data = np.zeros(shape, np.float32).tobytes()
    contents["final_observations"] = ({"kind": "array", "dtype": "<f4", "shape": shape}, data)
    message = load_both_ways(assemble(footer, contents), tmp_path)
    assert "inconsistent contents" in message and fragment in message


def test_final_observations_past_the_data_are_refused(honest, tmp_path) -> None:
    raw = honest[1]

    def edit(footer):
        footer["sections"]["final_observations"].update(shape=[len(raw), 4], nbytes=16 * len(raw))

    message = load_both_ways(edit_footer(raw, edit), tmp_path)
    assert "section 'final_observations' lies outside the data" in message


@pytest.fixture(scope="module")
def honest_dict() -> bytes:
    env = gym.make("TextGen-TinyReviews-v0")
    return Demonstrations.collect(env, envs.make_expert(env), n_steps=6, seed=0).to_bytes()


def test_final_observations_with_other_dict_keys_are_refused(honest_dict, tmp_path) -> None:
    footer, contents = split_sections(honest_dict)
    entry, data = contents.pop("final_observations/attention_mask")
    contents["final_observations/other"] = (entry, data)
    message = load_both_ways(assemble(footer, contents), tmp_path)
    assert "the final observations have keys ['input_ids', 'other']" in message


def test_a_dict_file_missing_one_final_key_is_refused(honest_dict, tmp_path) -> None:
    footer, contents = split_sections(honest_dict)
    del contents["final_observations/input_ids"]
    message = load_both_ways(assemble(footer, contents), tmp_path)
    assert "the final observations have keys ['attention_mask']" in message


def test_a_file_without_final_observations_loads_them_as_unknown(honest, tmp_path) -> None:
    # Written without them (they were unknown): not damage, and the checksum covers the
    # footer, so only an edit that recomputes it can remove them.
    footer, contents = split_sections(honest[1])
    del contents["final_observations"]
    loaded = Demonstrations.from_bytes(assemble(footer, contents))
    assert loaded.final_observations is None
    np.testing.assert_array_equal(loaded.observations, honest[0].observations)


# -- round trips ----------------------------------------------------------------------------

SPACES = [
    spaces.Box(0, 255, shape=(4, 84, 84), dtype=np.uint8),
    spaces.Box(np.array([-1.0, -np.inf]), np.array([2.5, np.inf]), dtype=np.float64),
    spaces.Discrete(7, start=-2),
    spaces.MultiBinary([2, 3]),
    spaces.MultiDiscrete([3, 5, 2]),
    spaces.Text(12, min_length=2),
    spaces.Tuple([spaces.Discrete(2), spaces.Box(-1, 1, shape=(2,), dtype=np.float32)]),
    spaces.Dict(
        {"features": spaces.Box(-np.inf, np.inf, (5, 3), np.float32), "mask": spaces.MultiBinary(5)}
    ),
]


@pytest.mark.parametrize("space", SPACES, ids=lambda s: type(s).__name__)
def test_spaces_round_trip(tmp_path, space) -> None:
    demos = Demonstrations(
        observations=np.zeros((3, 1), np.float32),
        actions=np.zeros(3, np.int64),
        rewards=np.zeros(3),
        episode_starts=[True, False, False],
        terminated=[False, False, True],
        truncated=[False, False, False],
        observation_space=space,
        action_space=SPACES[2],
    )
    for loaded in (
        Demonstrations.load(demos.save(tmp_path / "s.lfid")),
        Demonstrations.from_bytes(demos.to_bytes()),
    ):
        assert loaded.observation_space == space and type(loaded.observation_space) is type(space)
        assert loaded.action_space == SPACES[2]


FAMILIES = [
    "Control-CartPole-v0",
    "MinAtarImitation-Breakout-v0",
    "TextGen-TinyReviews-v0",
    "Rank-Synthetic-v0",
]


@pytest.mark.parametrize("env_id", FAMILIES)
def test_states_and_infos_of_every_family_round_trip(tmp_path, env_id) -> None:
    env = gym.make(env_id)
    demos = Demonstrations.collect(
        env, envs.make_expert(env), n_steps=25, seed=0, record_states=True, record_infos=True
    )
    # Infos with what envs put there: numpy scalars and arrays, nested tuples, strings, None.
    demos.infos = [
        {**info, "i": np.int32(i), "x": np.float32(i / 3), "a": np.arange(i), "t": (i, "s", None)}
        for i, info in enumerate(demos.infos)
    ]
    path = demos.save(tmp_path / "d.lfid")
    for loaded in (
        Demonstrations.load(path),
        Demonstrations.load(path, mmap=False),
        Demonstrations.from_bytes(demos.to_bytes()),
    ):
        assert loaded.states == demos.states
        assert [type(s) for s in loaded.states] == [type(s) for s in demos.states]
        assert len(loaded.infos) == len(demos.infos)
        for got, want in zip(loaded.infos, demos.infos, strict=True):
            assert got.keys() == want.keys()
            for key in want:
                assert type(got[key]) is type(want[key]), key
                np.testing.assert_array_equal(got[key], want[key])
        assert loaded.observation_space == env.observation_space
        assert loaded.action_space == env.action_space
        # The loaded States restore the env to the recorded observations.
        for i in (0, 7, len(demos) - 1):
            obs, _ = env.reset_to(loaded.states[i])
            want = demos.observations
            if isinstance(want, dict):
                for key in want:
                    np.testing.assert_array_equal(obs[key], want[key][i])
            else:
                np.testing.assert_array_equal(obs, want[i])


def test_arrays_inside_values_are_read_only_views_of_the_file(honest, tmp_path) -> None:
    _, raw = honest
    path = tmp_path / "d.lfid"
    path.write_bytes(raw)
    frame = Demonstrations.load(path).infos[5]["frame"]
    np.testing.assert_array_equal(frame, np.full((2, 3), 5, np.uint8))
    assert not frame.flags.writeable
    base = frame
    while base is not None and not isinstance(base, np.memmap):
        base = base.base
    assert base is not None, "the arrays were copied instead of mapped"
    copied = Demonstrations.load(path, mmap=False).infos[5]["frame"]
    assert not copied.flags.writeable


def test_states_stay_picklable_in_memory(tmp_path) -> None:
    # Process pools move States between our own processes; only files never unpickle.
    env = gym.make("MinAtarImitation-Breakout-v0")
    demos = Demonstrations.collect(env, envs.make_expert(env), n_steps=5, record_states=True)
    loaded = Demonstrations.load(demos.save(tmp_path / "m.lfid"))
    assert pickle.loads(pickle.dumps(loaded.states)) == demos.states


def test_what_files_cannot_hold_is_refused_before_writing(tmp_path) -> None:
    demos = Demonstrations(
        observations=np.zeros((2, 1), np.float32),
        actions=np.zeros(2, np.int64),
        rewards=np.zeros(2),
        episode_starts=[True, False],
        terminated=[False, True],
        truncated=[False, False],
        infos=[{"callback": print}, {}],
    )
    with pytest.raises(TypeError, match=r"cannot save infos: cannot save a builtin_function"):
        demos.save(tmp_path / "x.lfid")
    demos.infos, demos.states = None, [object(), object()]
    with pytest.raises(TypeError, match=r"cannot save states: cannot save a object"):
        demos.save(tmp_path / "x.lfid")
    demos.states = None
    demos.observation_space = spaces.Graph(spaces.Discrete(2), None)
    with pytest.raises(TypeError, match=r"cannot save the spaces: cannot save a Graph space"):
        demos.save(tmp_path / "x.lfid")
    assert list(tmp_path.iterdir()) == []
