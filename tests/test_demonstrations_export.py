"""Demonstrations keep each episode's final observation (``collect``, ``record``, ``.lfid``
schema 3, schema-2 files still read) and convert losslessly to and from Minari datasets and
Hugging Face ``datasets``, for a control, a MinAtar and a text env (Dict observations)."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import datasets
import gymnasium as gym
import numpy as np
import pytest
from test_demofile_safety import edit_footer

from lfi_gym import envs
from lfi_gym.agents.data import Demonstrations, record
from lfi_gym.agents.demofile import DemonstrationsWriter

FIXTURE_SCHEMA_2 = Path(__file__).parent / "data" / "cartpole_schema2.lfid"
ENV_IDS = ["Control-CartPole-v0", "MinAtarImitation-Breakout-v0", "TextGen-TinyReviews-v0"]
# Short episodes: a time limit for the long-lived experts (CartPole, MinAtar) and a step
# budget that cuts their third episode off mid-way; TinyReviews' episodes end by themselves.
TIME_LIMITS = {"Control-CartPole-v0": 9, "MinAtarImitation-Breakout-v0": 9}
N_STEPS = 22
MINARI_METADATA = {
    "author": "lfi-gym tests",
    "author_email": "tests@example.invalid",
    "algorithm_name": "expert",
    "code_permalink": "https://example.invalid/lfi-gym",
    "description": "expert demonstrations",
}


def make_env(env_id: str) -> gym.Env:
    limit = TIME_LIMITS.get(env_id)
    return gym.make(env_id, max_episode_steps=limit) if limit else gym.make(env_id)


@pytest.fixture(scope="module", params=ENV_IDS)
def collected(request) -> Demonstrations:
    env = make_env(request.param)
    n_steps = N_STEPS if request.param in TIME_LIMITS else None
    return Demonstrations.collect(
        env, envs.make_expert(env), n_episodes=3, n_steps=n_steps, seed=0, record_states=True
    )


def observation_parts(observations) -> dict:
    return observations if isinstance(observations, dict) else {None: observations}


def assert_same_demonstrations(got: Demonstrations, want: Demonstrations) -> None:
    """Observations (final ones included), actions, rewards and flags equal, dtypes too."""
    for name in ("observations", "final_observations"):
        got_parts, want_parts = (observation_parts(getattr(d, name)) for d in (got, want))
        assert got_parts.keys() == want_parts.keys(), name
        for key, array in want_parts.items():
            np.testing.assert_array_equal(got_parts[key], array, err_msg=f"{name}[{key}]")
            assert got_parts[key].dtype == array.dtype, (name, key)
    for name in ("actions", "rewards", "episode_starts", "terminated", "truncated"):
        np.testing.assert_array_equal(getattr(got, name), getattr(want, name), err_msg=name)
        assert getattr(got, name).dtype == getattr(want, name).dtype, name
    assert got.observation_space == want.observation_space
    assert got.action_space == want.action_space
    assert got.env_id == want.env_id


# -- what collect records ---------------------------------------------------------------------


def test_collect_records_the_observation_after_each_episode(collected) -> None:
    env = make_env(collected.env_id)
    ends = np.cumsum(collected.episode_lengths()) - 1
    assert collected.n_episodes == 3
    finals = observation_parts(collected.final_observations)
    for episode, end in enumerate(ends):
        # Replay the episode's last step from its recorded State: the env returns the
        # final observation (terminal, truncated, or where the step budget stopped).
        env.reset(options={"state": collected.states[end]})
        obs = observation_parts(env.step(collected.actions[end])[0])
        for key, final in finals.items():
            np.testing.assert_array_equal(final[episode], obs[key])


def test_select_and_concatenate_keep_final_observations() -> None:
    env = make_env("Control-CartPole-v0")
    demos = Demonstrations.collect(env, envs.make_expert(env), n_steps=N_STEPS, seed=0)
    assert demos.episode_lengths().tolist() == [9, 9, 4]
    # Cut inside episode 0, its end, and a piece of episode 2 that stops before its end.
    picked = demos.select(np.array([0, 1, 2, 7, 8, 18, 19]))
    assert picked.episode_lengths().tolist() == [3, 2, 2]
    np.testing.assert_array_equal(picked.final_observations[0], demos.observations[3])
    np.testing.assert_array_equal(picked.final_observations[1], demos.final_observations[0])
    np.testing.assert_array_equal(picked.final_observations[2], demos.observations[20])
    twice = demos + demos
    np.testing.assert_array_equal(
        twice.final_observations, np.concatenate([demos.final_observations] * 2)
    )
    later, earlier = demos.episodes([2]), demos.episodes([0])
    np.testing.assert_array_equal(later.final_observations, demos.final_observations[2:])
    np.testing.assert_array_equal(earlier.final_observations, demos.final_observations[:1])
    unknown = dataclasses.replace(demos, final_observations=None)
    assert (demos + unknown).final_observations is None
    with pytest.raises(ValueError, match="one row per episode"):
        dataclasses.replace(demos, final_observations=demos.final_observations[:2])


# -- .lfid ------------------------------------------------------------------------------------


def test_lfid_round_trip_keeps_final_observations(collected, tmp_path) -> None:
    path = collected.save(tmp_path / "d.lfid")
    for loaded in (
        Demonstrations.load(path),
        Demonstrations.load(path, mmap=False),
        Demonstrations.from_bytes(collected.to_bytes()),
    ):
        assert_same_demonstrations(loaded, collected)


def test_the_streaming_writer_records_final_observations(collected, tmp_path) -> None:
    env = make_env(collected.env_id)
    path = record(env, envs.make_expert(env), 2, tmp_path / "r.lfid", seed=0)
    first_two = collected.episodes([0, 1])
    assert_same_demonstrations(Demonstrations.load(path), first_two)


def test_a_writer_without_next_observations_writes_none(tmp_path) -> None:
    demos = Demonstrations.load(FIXTURE_SCHEMA_2)
    with DemonstrationsWriter(
        tmp_path / "w.lfid", demos.observation_space, demos.action_space
    ) as writer:
        for i in range(len(demos)):
            writer.add(
                demos.observations[i],
                demos.actions[i],
                demos.rewards[i],
                demos.episode_starts[i],
                demos.terminated[i],
                demos.truncated[i],
            )
    assert Demonstrations.load(writer.path).final_observations is None


def test_a_schema_2_file_still_loads_without_final_observations(tmp_path) -> None:
    """The fixture was written by lfi-gym's schema-2 code (CartPole, 12 steps, seed 0)."""
    old = Demonstrations.load(FIXTURE_SCHEMA_2)
    env = gym.make("Control-CartPole-v0", max_episode_steps=5)
    fresh = Demonstrations.collect(env, envs.make_expert(env), n_steps=12, seed=0)
    assert old.final_observations is None
    np.testing.assert_array_equal(old.observations, fresh.observations)
    np.testing.assert_array_equal(old.actions, fresh.actions)
    np.testing.assert_array_equal(old.truncated, fresh.truncated)
    assert old.episode_lengths().tolist() == [5, 5, 2]
    # Saved again it is schema 3, still without final observations.
    assert Demonstrations.load(old.save(tmp_path / "again.lfid")).final_observations is None
    for convert in (old.to_hf_dataset, lambda: old.to_minari("never/written-v0")):
        with pytest.raises(ValueError, match=r"do not know it .*schema-2 \.lfid file"):
            convert()


def test_a_schema_2_dict_observation_file_loads(tmp_path) -> None:
    # The schema-2 layout is schema 3's without final sections: relabel such a file.
    env = gym.make("TextGen-TinyReviews-v0")
    demos = Demonstrations.collect(env, envs.make_expert(env), n_steps=8, seed=0)
    unknown = dataclasses.replace(demos, final_observations=None)
    raw = edit_footer(unknown.to_bytes(), lambda footer: footer.update(schema_version=2))
    loaded = Demonstrations.from_bytes(raw)
    assert loaded.final_observations is None
    for key, array in demos.observations.items():
        np.testing.assert_array_equal(loaded.observations[key], array)


# -- Hugging Face datasets --------------------------------------------------------------------


def test_hf_dataset_round_trip(collected, tmp_path) -> None:
    dataset = collected.to_hf_dataset()
    assert len(dataset) == len(collected)
    lengths = collected.episode_lengths()
    assert dataset["step_index"][: lengths[0] + 1] == [*range(lengths[0]), 0]
    finals = dataset["final_observation"]
    ends = set((np.cumsum(lengths) - 1).tolist())
    assert [i for i, row in enumerate(finals) if row is not None] == sorted(ends)
    dataset.save_to_disk(tmp_path / "hf")
    reloaded = datasets.load_from_disk(tmp_path / "hf")
    assert reloaded.features == dataset.features
    for restored in (
        Demonstrations.from_hf_dataset(dataset),
        Demonstrations.from_hf_dataset(reloaded),
    ):
        assert_same_demonstrations(restored, collected)


def test_hf_features_follow_the_spaces(collected) -> None:
    features = collected.to_hf_dataset().features
    space = collected.observation_space
    if isinstance(space, gym.spaces.Dict):
        assert features["observation"]["input_ids"] == datasets.Sequence(
            datasets.Value("int64"), length=64
        )
    elif len(space.shape) == 3:  # MinAtar: (10, 10, channels) uint8
        inner = datasets.Sequence(datasets.Value("uint8"), length=space.shape[2])
        assert features["observation"] == datasets.Sequence(
            datasets.Sequence(inner, length=10), length=10
        )
    else:
        assert features["observation"] == datasets.Sequence(datasets.Value("float32"), length=4)
    assert features["final_observation"] == features["observation"]
    assert features["action"] == datasets.Value("int64")


def test_from_hf_dataset_names_missing_columns(collected) -> None:
    dataset = collected.to_hf_dataset().remove_columns(["final_observation"])
    with pytest.raises(ValueError, match=r"lacks the columns \['final_observation'\]"):
        Demonstrations.from_hf_dataset(dataset)


# -- Minari -----------------------------------------------------------------------------------


def serialisable_spec(env_id: str) -> gym.envs.registration.EnvSpec:
    """The env's spec; without its vector entry point where that is a callable JSON cannot
    hold (the single env Minari recovers does not use it)."""
    spec = gym.spec(env_id)
    if callable(spec.vector_entry_point):
        spec = dataclasses.replace(spec, vector_entry_point=None)
    return spec


@pytest.mark.filterwarnings("ignore:`eval_env` is set to None")
def test_minari_round_trip(collected, tmp_path, monkeypatch) -> None:
    minari = pytest.importorskip("minari")
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    dataset_id = f"lfi/{collected.env_id.split('-')[1].lower()}/expert-v0"
    collected.to_minari(dataset_id, env=serialisable_spec(collected.env_id), **MINARI_METADATA)
    dataset = minari.load_dataset(dataset_id)
    assert dataset.total_episodes == collected.n_episodes
    assert dataset.total_steps == len(collected)
    first = next(dataset.iterate_episodes())
    assert len(first.rewards) == collected.episode_lengths()[0]
    observations = observation_parts(first.observations)
    assert all(len(v) == len(first.rewards) + 1 for v in observations.values())
    assert_same_demonstrations(Demonstrations.from_minari(dataset), collected)
    assert_same_demonstrations(Demonstrations.from_minari(dataset_id), collected)
    env = dataset.recover_environment()
    assert env.unwrapped.spec.id == collected.env_id
    assert hasattr(env.unwrapped, "get_state") and hasattr(env.unwrapped, "reset_to")
    obs, _ = env.reset(seed=0)
    for key, array in observation_parts(obs).items():
        np.testing.assert_array_equal(array, observation_parts(collected.observations)[key][0])


def test_to_minari_refuses_a_spec_that_does_not_serialise(tmp_path, monkeypatch) -> None:
    pytest.importorskip("minari")
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    env = make_env("Control-CartPole-v0")
    demos = Demonstrations.collect(env, envs.make_expert(env), n_steps=5, seed=0)
    spec = dataclasses.replace(gym.spec("Control-CartPole-v0"), vector_entry_point=print)
    with pytest.raises(ValueError, match="does not serialise to JSON"):
        demos.to_minari("lfi/cartpole/bad-v0", env=spec)
    assert not (tmp_path / "lfi").exists(), "a dataset was written before the refusal"


def test_a_missing_minari_names_the_extra(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "minari", None)  # import minari now raises ImportError
    env = make_env("Control-CartPole-v0")
    demos = Demonstrations.collect(env, envs.make_expert(env), n_steps=5, seed=0)
    with pytest.raises(ImportError, match=r'pip install "lfi-gym\[minari\]"'):
        demos.to_minari("lfi/cartpole/none-v0")
    with pytest.raises(ImportError, match=r'pip install "lfi-gym\[minari\]"'):
        Demonstrations.from_minari("lfi/cartpole/none-v0")
