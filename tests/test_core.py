"""The State base class, with payloads the built-in envs do not use (arrays, NaN), and the
order of RestartableEnv's state checks (each refusal names its own fix)."""

from __future__ import annotations

import dataclasses
import pickle

import gymnasium as gym
import numpy as np
import pytest

from lfi_gym.envs import VectorState
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


def test_a_vector_state_given_to_a_single_env_is_refused_for_its_type() -> None:
    vec = gym.make_vec("Control-CartPole-v0", num_envs=2)
    vec.reset(seed=0)
    vector_state = vec.get_state()
    assert isinstance(vector_state, VectorState)
    env = gym.make("Control-CartPole-v0")
    env.reset(seed=0)
    before = env.get_state()
    # A VectorState has another format version (1) than CartPole's states (2): the type
    # is what is wrong, and the message says how to restore it instead.
    assert vector_state.version != before.version
    with pytest.raises(StateError) as refusal:
        env.reset_to(vector_state)
    message = str(refusal.value)
    assert "expected a CartPoleState" in message and "got a VectorState" in message
    assert "gym.make_vec('Control-CartPole-v0'" in message and "state.states[i]" in message
    assert "version" not in message
    with pytest.raises(StateError, match="got a VectorState"):
        env.reset(options={"state": vector_state})
    assert env.get_state() == before
    env.reset_to(vector_state.states[1])  # one row is a valid single-env state
    assert env.get_state() == vector_state.states[1]


def test_a_state_of_another_family_names_its_env() -> None:
    minatar = gym.make("MinAtarImitation-Breakout-v0")
    minatar.reset(seed=0)
    cartpole = gym.make("Control-CartPole-v0")
    cartpole.reset(seed=0)
    with pytest.raises(StateError) as refusal:
        cartpole.reset_to(minatar.get_state())
    message = str(refusal.value)
    assert "got a MinAtarState of env 'MinAtarImitation-Breakout-v0'" in message
    assert "gym.make('MinAtarImitation-Breakout-v0').reset_to(state)" in message


def test_same_type_checks_env_then_version() -> None:
    env = gym.make("Control-CartPole-v0")
    env.reset(seed=0)
    state = env.get_state()
    with pytest.raises(StateError, match="belongs to env 'Other-v0'"):
        env.reset_to(dataclasses.replace(state, env_id="Other-v0", version=1))
    with pytest.raises(StateError, match="format version 1, this env reads version 2"):
        env.reset_to(dataclasses.replace(state, version=1))


def test_vector_env_checks_env_then_version() -> None:
    vec = gym.make_vec("Control-CartPole-v0", num_envs=2)
    vec.reset(seed=0)
    state = vec.get_state()
    with pytest.raises(StateError, match=r"belongs to env 'Other-v0'.*gym.make_vec\('Other-v0'\)"):
        vec.reset_to(dataclasses.replace(state, env_id="Other-v0"))
    with pytest.raises(StateError, match="VectorState has format version 7"):
        vec.reset_to(dataclasses.replace(state, version=7))
    with pytest.raises(StateError, match="got a VectorState"):
        vec.reset_to([state, state])  # VectorStates where row states belong
    assert vec.get_state() == state
