"""The State base class, with payloads the built-in envs do not use (arrays, NaN)."""

from __future__ import annotations

import dataclasses
import pickle

import numpy as np
import pytest

from lfi_gym.envs.core import State, StateError, generator_from_state, rng_state


@dataclasses.dataclass(frozen=True, eq=False)
class ArrayState(State):
    frame: np.ndarray
    score: float
    extras: dict


def _state(**changes) -> ArrayState:
    values = dict(
        env_id="Toy-v0",
        version=1,
        frame=np.arange(12, dtype=np.uint8).reshape(3, 4),
        score=float("nan"),
        extras={"lives": 3, "history": (1, 2)},
    )
    values.update(changes)
    return ArrayState(**values)


def test_arrays_are_copied_and_read_only() -> None:
    frame = np.zeros((2, 2), dtype=np.uint8)
    state = _state(frame=frame)
    frame[0, 0] = 7  # the caller's array is not shared
    assert state.frame[0, 0] == 0
    with pytest.raises(ValueError):
        state.frame[0, 0] = 1
    clone = pickle.loads(pickle.dumps(state))
    assert not clone.frame.flags.writeable


def test_equality_and_hash_by_value() -> None:
    a, b = _state(), _state()
    assert a == b and hash(a) == hash(b)  # NaN score compares equal to itself here
    assert pickle.loads(pickle.dumps(a)) == a
    assert a != _state(frame=np.ones((3, 4), dtype=np.uint8))
    assert a != _state(frame=np.arange(12, dtype=np.int64).reshape(3, 4))  # dtype matters
    assert a != _state(extras={"lives": 2, "history": (1, 2)})
    assert a != _state(env_id="Toy-v1")
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.score = 1.0  # type: ignore[misc]


def test_rng_state_round_trip_and_bad_payloads() -> None:
    generator = np.random.default_rng(5)
    generator.random(3)
    restored = generator_from_state(rng_state(generator))
    assert restored.random() == generator.random()
    for bad in ("{", '{"bit_generator": "os.system"}', 3, '{"bit_generator": "PCG64"}'):
        with pytest.raises(StateError):
            generator_from_state(bad)
