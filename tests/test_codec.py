"""The plain-data codec behind every lfi-gym file: exact round trips, and refusals that
never run code (the forged inputs carry pickle payloads that would create a file)."""

from __future__ import annotations

import dataclasses
import json
import math
import pathlib
import pickle

import gymnasium as gym
import numpy as np
import pytest

from lfi_gym.envs.atari.minatar import MinAtarImitationEnv, MinAtarState
from lfi_gym.envs.codec import (
    CodecError,
    from_tree,
    space_from_json,
    space_to_json,
    to_tree,
    tree_bytes,
    tree_from_bytes,
)
from lfi_gym.envs.control.cartpole import CartPoleState
from lfi_gym.envs.core import StateError


class _Payload:
    """Unpickling this creates ``marker``: proof that code ran."""

    def __init__(self, marker: pathlib.Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (self.marker,))


def _payload_bytes(marker: pathlib.Path) -> bytes:
    return pickle.dumps(_Payload(marker))


def test_the_payload_fires_under_plain_pickle(tmp_path: pathlib.Path) -> None:
    # The control for every refusal below: the same bytes do run code when unpickled.
    marker = tmp_path / "ran"
    pickle.loads(_payload_bytes(marker))
    assert marker.exists()


def test_values_round_trip_exactly() -> None:
    value = {
        "ints": [0, -3, 2**70],
        "floats": (0.1, -0.0, math.inf, -math.inf, 1e-310),
        "nested": {"list": [[1, None], (True, "x")], "empty": ()},
        "array": np.arange(6, dtype=np.float32).reshape(2, 3),
        "strings": np.array(["a", "bc"]),
        "bytes": b"\x00\xffabc",
        "scalars": [np.int64(7), np.float32(0.5), np.bool_(True), np.uint8(255)],
    }
    back = tree_from_bytes(tree_bytes(value))
    assert back.keys() == value.keys()
    assert back["ints"] == value["ints"] and type(back["nested"]["list"][1]) is tuple
    assert back["floats"] == value["floats"] and math.copysign(1, back["floats"][1]) == -1
    assert back["nested"] == value["nested"]
    for key in ("array", "strings"):
        assert back[key].dtype == value[key].dtype and np.array_equal(back[key], value[key])
        assert not back[key].flags.writeable
    assert back["bytes"] == value["bytes"]
    for got, want in zip(back["scalars"], value["scalars"], strict=True):
        assert type(got) is type(want) and got == want
    nan = tree_from_bytes(tree_bytes(math.nan))
    assert math.isnan(nan)


def test_a_state_round_trips_to_an_equal_state() -> None:
    state = CartPoleState(
        env_id="Control-CartPole-v0",
        version=2,
        physics=(0.1, -0.2, 0.03, 0.0),
        steps_beyond_terminated=None,
        step=4,
        horizon=500,
        rng="{}",
    )
    tree, arrays = to_tree(state)
    assert tree["state"][0] == "lfi_gym.envs.control.cartpole.CartPoleState"
    assert from_tree(json.loads(json.dumps(tree)), arrays) == state


@pytest.mark.parametrize(
    "value, message",
    [
        (object(), "cannot save a object"),
        ({1: "a"}, "string keys"),
        (np.array([object()], dtype=object), "dtype object"),
        (lambda: 0, "cannot save a function"),
    ],
)
def test_unsavable_values_are_refused_at_save_time(value, message: str) -> None:
    with pytest.raises(CodecError, match=message):
        tree_bytes(value)


def _forged(tree, arrays_layout=(), body: bytes = b"") -> bytes:
    header = json.dumps({"tree": tree, "arrays": list(arrays_layout)}).encode()
    return b"LFITREE1" + len(header).to_bytes(8, "little") + header + body


def _raw_header(header: bytes) -> bytes:
    return b"LFITREE1" + len(header).to_bytes(8, "little") + header


@pytest.mark.parametrize(
    "blob, message",
    [
        (_forged({"state": ["os.system", {"env_id": "x"}]}), "unknown State type 'os.system'"),
        (
            _forged({"state": ["lfi_gym.envs.os.system", {}]}),
            "unknown State type 'lfi_gym.envs.os.system'",
        ),
        (
            _forged({"state": ["lfi_gym.envs.control.cartpole.CartPoleState", {"env_id": "x"}]}),
            "has the fields",
        ),
        (_forged({"array": 0}), r"array index 0 out of range \(the data holds 0\)"),
        (
            _forged({"array": 0}, [{"dtype": "|O", "shape": [1], "offset": 0}], b"\0" * 8),
            "refusing dtype '|O'",
        ),
        (
            _forged({"array": 0}, [{"dtype": "<f8", "shape": [4], "offset": 0}], b"\0" * 8),
            "lies outside the data",
        ),
        (_forged({"eval": "print(1)"}), "malformed node"),
        (_forged({"scalar": ["|O", 1]}), "refusing dtype"),
        (b"\x80\x04K\x01.", "bad magic bytes"),
        (_raw_header(b'{"tree": ' + b"9" * 5000 + b', "arrays": []}'), "malformed JSON"),
        (
            _forged({"array": 0}, [{"dtype": "|S0", "shape": [2**40], "offset": 0}]),
            "refusing dtype",
        ),
        (
            _forged({"array": 0}, [{"dtype": "|u1", "shape": [1] * 40, "offset": 0}], b"\0"),
            "40 dimensions",
        ),
        (_forged(None)[:20], "truncated header"),
    ],
)
def test_forged_blobs_are_refused_with_a_codec_error(blob: bytes, message: str) -> None:
    with pytest.raises(CodecError, match=message):
        tree_from_bytes(blob, label="probe.bin")


def test_a_pickle_payload_is_never_unpickled(tmp_path: pathlib.Path) -> None:
    marker = tmp_path / "ran"
    payload = _payload_bytes(marker)
    for blob in (payload, b"LFITREE1" + payload, _forged({"bytes": 0}) + payload):
        try:
            value = tree_from_bytes(blob)
        except CodecError:
            continue
        assert value == b""  # a bytes node decodes to plain bytes, never an object
    assert not marker.exists()


def test_oversized_and_deeply_nested_data_is_refused() -> None:
    with pytest.raises(CodecError, match="exceed the cap of 100"):
        tree_from_bytes(tree_bytes(np.zeros(100)), max_bytes=100)
    deep: list = []
    for _ in range(100):
        deep = [deep]
    with pytest.raises(CodecError, match="deeper than 64 levels"):
        tree_bytes(deep)
    with pytest.raises(CodecError, match="deeper than 64 levels"):
        tree_from_bytes(_forged(deep))


@pytest.mark.parametrize(
    "space",
    [
        gym.spaces.Box(-np.inf, np.inf, (4,), np.float32),
        gym.spaces.Box(0, 255, (4, 84, 84), np.uint8),
        gym.spaces.Box(np.array([-1.0, 0.0]), np.array([1.0, 2.5]), dtype=np.float64),
        gym.spaces.Discrete(5, start=-2),
        gym.spaces.MultiBinary(7),
        gym.spaces.MultiBinary([2, 3]),
        gym.spaces.MultiDiscrete([3, 4], start=[1, 0]),
        gym.spaces.Text(12, min_length=2, charset="abc"),
        gym.spaces.Dict(
            {"features": gym.spaces.Box(-1, 1, (5, 3)), "mask": gym.spaces.MultiBinary(5)}
        ),
        gym.spaces.Tuple([gym.spaces.Discrete(2), gym.spaces.Box(0, 1, (2,))]),
    ],
    ids=lambda s: type(s).__name__,
)
def test_spaces_round_trip_through_json(space: gym.Space) -> None:
    back = space_from_json(json.loads(json.dumps(space_to_json(space))))
    assert type(back) is type(space) and back == space


@pytest.mark.parametrize(
    "node, message",
    [
        ({"type": "Graph"}, "unknown space type 'Graph'"),
        (
            {"type": "Box", "dtype": "|O", "shape": [1], "low": {"fill": 0}, "high": {"fill": 1}},
            "refusing dtype",
        ),
        (
            {
                "type": "Box",
                "dtype": "<f4",
                "shape": [2],
                "low": {"values": [0]},
                "high": {"fill": 1},
            },
            "expected 2 values",
        ),
        ({"type": "Discrete", "n": "5", "start": 0}, "expected an int"),
        ({"type": "Discrete"}, "malformed Discrete space"),
        (
            {
                "type": "Box",
                "dtype": "<f4",
                "shape": [2**40],
                "low": {"fill": 0},
                "high": {"fill": 1},
            },
            "more than 67108864 elements",
        ),
        ({"type": "MultiBinary", "n": [2**20, 2**20]}, "more than 67108864 elements"),
        ("Box(4,)", "malformed space"),
    ],
)
def test_malformed_spaces_are_refused(node, message: str) -> None:
    with pytest.raises(CodecError, match=message):
        space_from_json(node)


def test_unsupported_spaces_are_refused_at_save_time() -> None:
    with pytest.raises(CodecError, match="cannot save a Sequence space"):
        space_to_json(gym.spaces.Sequence(gym.spaces.Discrete(2)))


def test_a_minatar_state_holds_no_pickle_and_a_forged_one_never_runs(
    tmp_path: pathlib.Path,
) -> None:
    env = MinAtarImitationEnv("breakout")
    env.reset(seed=0)
    for _ in range(5):
        env.step(1)
    state = env.get_state()
    for value in (state.attributes, state.rng_key, *state.arrays):
        assert not (isinstance(value, bytes) and value.startswith(b"\x80"))
    marker = tmp_path / "ran"
    fields = {f.name: getattr(state, f.name) for f in dataclasses.fields(state)}
    forged_states = [
        MinAtarState(**{**fields, "attributes": _payload_bytes(marker)}),
        MinAtarState(**{**fields, "arrays": (_payload_bytes(marker),)}),
        MinAtarState(**{**fields, "attributes": json.dumps({"pickle": "gASV"})}),
    ]
    before = env.get_state()
    for forged in forged_states:
        with pytest.raises(StateError, match="cannot restore this state"):
            env.reset_to(forged)
        assert env.get_state() == before  # refused states leave the env as it was
    assert not marker.exists()


def test_every_state_of_lfi_gym_is_found_through_the_fixed_module_list() -> None:
    # A new env family's State must join _OWN_STATE_MODULES, or its files could not be read
    # before the family is imported.
    import importlib
    import pkgutil

    import lfi_gym.envs
    from lfi_gym.envs import core

    for info in pkgutil.walk_packages(lfi_gym.envs.__path__, "lfi_gym.envs."):
        importlib.import_module(info.name)
    own = {name for name in core._STATE_CLASSES if name.startswith("lfi_gym.envs.")}
    assert {name.rsplit(".", 1)[0] for name in own} == set(core._OWN_STATE_MODULES)
