"""The restart contract, checked on every env id lfi-gym registers.

New env families are covered automatically: they only have to register their ids.
"""

from __future__ import annotations

import copy
import dataclasses
import pickle

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.envs.registration import EnvSpec
from gymnasium.utils.env_checker import check_env
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lfi_gym import envs
from lfi_gym.envs import StateError
from lfi_gym.envs.codec import tree_bytes, tree_from_bytes

ENV_IDS = envs.registered_ids()
MAX_EXAMPLES = 60


def _property_settings(max_examples: int) -> settings:
    # env_id is a parametrised fixture, the same for every example: the health check's
    # worry about function-scoped fixtures does not apply.
    return settings(
        max_examples=max_examples,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture],
    )


def _examples(env_id: str, max_examples: int) -> int:
    """Hypothesis examples for ``env_id``: an env class with slow steps (an emulator) sets
    ``conformance_examples_scale`` < 1 to draw fewer of them."""
    creator = gym.envs.registration.load_env_creator(gym.spec(env_id).entry_point)
    scale = float(getattr(creator, "conformance_examples_scale", 1.0))
    return max(3, round(max_examples * scale))


def test_every_family_registers_ids() -> None:
    assert "Control-CartPole-v0" in ENV_IDS


# gym.make keyword arguments per id: the text ids that load hub assets get local ones.
MAKE_KWARGS: dict[str, dict] = {}


@pytest.fixture(params=ENV_IDS)
def env_id(request: pytest.FixtureRequest, text_assets) -> str:
    MAKE_KWARGS[request.param] = _unmasked_sampling(
        request.param, text_assets.env_kwargs(request.param)
    )
    return request.param


_HAS_MASKS: dict[str, bool] = {}


def _unmasked_sampling(env_id: str, kwargs: dict) -> dict:
    """These tests (and Gymnasium's checker) draw unmasked random actions. Envs with
    ``action_masks()`` raise on a masked action by default, so they are made with
    ``invalid_action="penalty"``, their documented mode for unmasked samplers."""
    if env_id not in _HAS_MASKS:
        _HAS_MASKS[env_id] = callable(
            getattr(gym.make(env_id, **kwargs).unwrapped, "action_masks", None)
        )
    return {**kwargs, "invalid_action": "penalty"} if _HAS_MASKS[env_id] else kwargs


def make(env_id: str) -> gym.Env:
    return gym.make(env_id, **MAKE_KWARGS.get(env_id, {}))


def make_vec(env_id: str, num_envs: int):
    return gym.make_vec(env_id, num_envs=num_envs, **MAKE_KWARGS.get(env_id, {}))


def _equal(a, b) -> bool:
    """Deep equality for observations and infos (arrays compare exactly)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(map(_equal, a, b))
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        a, b = np.asarray(a), np.asarray(b)
        if a.dtype == object and b.dtype == object:  # e.g. vector infos of texts, dicts
            return a.shape == b.shape and all(map(_equal, a.ravel(), b.ravel()))
        return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()
    return a == b or (a != a and b != b)  # NaN equals NaN here


def _run(env: gym.Env, actions: list) -> list[tuple]:
    """Step through ``actions``; on episode end, reset without a seed (the env's own RNG
    decides the next start, so it must be part of the state) and go on."""
    out = []
    for action in actions:
        obs, reward, terminated, truncated, info = env.step(action)
        out.append(("step", obs, reward, terminated, truncated, info))
        if terminated or truncated:
            obs, info = env.reset()
            out.append(("reset", obs, info))
    return out


def test_gym_make_exposes_the_contract(env_id: str) -> None:
    env = make(env_id)
    assert callable(env.get_state) and callable(env.reset_to)
    env.reset(seed=0)
    state = env.get_state()
    assert state.env_id == env_id


def test_gymnasium_check_env(env_id: str) -> None:
    check_env(make(env_id), skip_render_check=True)


def test_sb3_check_env(env_id: str) -> None:
    """Stable-Baselines3's checker too. Like Gymnasium's, it steps unmasked random actions,
    hence the ranking envs' penalty mode here (see test_masked_envs_refuse_unmasked_samples)."""
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    sb3_check_env(make(env_id), warn=False)


def _has_action_masks(env_id: str) -> bool:
    creator = gym.envs.registration.load_env_creator(gym.spec(env_id).entry_point)
    return callable(getattr(creator, "action_masks", None))


@pytest.mark.parametrize("masked_id", [i for i in ENV_IDS if _has_action_masks(i)])
def test_masked_envs_refuse_unmasked_samples(masked_id: str) -> None:
    """Why the checkers run envs with ``action_masks()`` in penalty mode: the action space is
    fixed (``Discrete(max_candidates)``) while the valid slots change with the state, so a
    sample from it (all that SB3's and Gymnasium's checkers draw) can be a masked slot,
    which the default mode (``invalid_action="raise"``) refuses, naming penalty mode."""
    env = gym.make(masked_id)
    env.reset(seed=0)
    masked = np.flatnonzero(~np.asarray(env.unwrapped.action_masks(), dtype=bool))
    assert len(masked) > 0 and all(env.action_space.contains(int(a)) for a in masked)
    with pytest.raises(ValueError, match="invalid_action='penalty'"):
        env.step(int(masked[0]))


def test_spec_round_trips_through_json(env_id: str) -> None:
    """Specs hold import paths, not callables: they serialise (Minari stores them), and the
    spec read back makes the same env and the same restartable vector env."""
    spec = gym.spec(env_id)
    rebuilt = EnvSpec.from_json(spec.to_json())
    assert rebuilt == spec
    env = gym.make(rebuilt, **MAKE_KWARGS.get(env_id, {}))
    assert EnvSpec.from_json(env.spec.to_json()) == env.spec
    obs, _ = env.reset(seed=0)
    assert env.get_state().env_id == env_id
    vec = gym.make_vec(rebuilt, num_envs=2, **MAKE_KWARGS.get(env_id, {}))
    vec_obs, _ = vec.reset(seed=0)  # row 0 is seeded with 0 too
    assert [s.env_id for s in vec.get_state().states] == [env_id, env_id]
    assert _equal(_row(vec_obs, 0), obs)


def test_a_spec_read_back_in_a_fresh_process_makes_the_env() -> None:
    """What Minari stores: the JSON alone rebuilds the env, lfi_gym imported by the entry
    point's import path."""
    import subprocess
    import sys

    code = (
        "import sys, gymnasium as gym\n"
        "from gymnasium.envs.registration import EnvSpec\n"
        "spec = EnvSpec.from_json(sys.stdin.read())\n"
        "env = gym.make(spec); env.reset(seed=0)\n"
        "vec = gym.make_vec(spec, num_envs=2); vec.reset(seed=0)\n"
        "print(env.get_state().env_id, type(vec).__name__)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        input=gym.spec("Control-CartPole-v0").to_json(),
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.split() == ["Control-CartPole-v0", "RestartableSyncVectorEnv"]


def test_registration_takes_import_paths_only() -> None:
    from lfi_gym.envs.vector import restartable_sync_vector_env

    with pytest.raises(TypeError, match="import path 'module:attr'"):
        envs.register_restartable(
            "Control-Other-v0",
            entry_point="lfi_gym.envs.control.cartpole:ControlCartPoleEnv",
            vector_entry_point=restartable_sync_vector_env,
        )
    assert "Control-Other-v0" not in gym.registry


@pytest.mark.parametrize(
    ("env_id", "mode", "supported"),
    [
        ("TextGen-TinyReviews-v0", "rgb_array", "'ansi'"),
        ("AtariImitation-Pong-v0", "ansi", "'rgb_array'"),
    ],
)
def test_an_unsupported_render_mode_is_refused(env_id: str, mode: str, supported: str) -> None:
    """As a TypeError too, like envs that take no render_mode, so that SB3's make_vec_env
    (which asks for "rgb_array") makes the env without one."""
    from lfi_gym.envs.validation import UnsupportedRenderModeError

    with pytest.raises(UnsupportedRenderModeError, match=f"supported modes: {supported}") as err:
        gym.make(env_id, render_mode=mode)
    assert isinstance(err.value, TypeError) and isinstance(err.value, ValueError)


def test_sb3_make_vec_env(env_id: str, text_assets) -> None:
    """SB3's make_vec_env in its defaults: it asks for ``render_mode="rgb_array"``, which the
    envs that can render honour; the others refuse it with a TypeError, on which SB3 makes
    them without one. The default mode steps: masked envs get valid actions."""
    from stable_baselines3.common.env_util import make_vec_env

    venv = make_vec_env(env_id, n_envs=2, seed=0, env_kwargs=text_assets.env_kwargs(env_id))
    render_modes = gym.spec(env_id).make(**text_assets.env_kwargs(env_id)).metadata["render_modes"]
    expected_mode = "rgb_array" if "rgb_array" in render_modes else None
    assert venv.get_attr("render_mode") == [expected_mode] * 2
    obs = venv.reset()
    for _ in range(3):
        if _HAS_MASKS.get(env_id):
            actions = np.array([np.flatnonzero(m)[0] for m in venv.env_method("action_masks")])
        else:
            actions = np.array([venv.action_space.sample() for _ in range(2)])
        obs, rewards, dones, _ = venv.step(actions)
        assert rewards.shape == dones.shape == (2,)
    row_obs = {k: v[0] for k, v in obs.items()} if isinstance(obs, dict) else obs[0]
    assert venv.observation_space.contains(row_obs)


def test_state_is_immutable_picklable_and_compares_by_value(env_id: str) -> None:
    env = make(env_id)
    env.reset(seed=1)
    state = env.get_state()
    clone = pickle.loads(pickle.dumps(state))
    assert clone == state and hash(clone) == hash(state)
    assert copy.deepcopy(state) == state
    assert env.get_state() == state  # taking a snapshot changes nothing
    with pytest.raises(dataclasses.FrozenInstanceError):
        state.env_id = "other"  # type: ignore[misc]
    for field in dataclasses.fields(state):
        value = getattr(clone, field.name)
        if isinstance(value, np.ndarray):
            assert not value.flags.writeable
    env.step(env.action_space.sample())
    assert env.get_state() != state


def test_states_round_trip_through_the_file_codec(env_id: str) -> None:
    """What files hold (plain JSON and arrays, no pickle) rebuilds an equal State, and
    restoring the rebuilt one gives the same future as restoring the original."""
    env = make(env_id)
    env.reset(seed=3)
    env.action_space.seed(3)
    _run(env, [env.action_space.sample() for _ in range(7)])
    state = env.get_state()
    rebuilt = tree_from_bytes(tree_bytes(state))
    assert type(rebuilt) is type(state) and rebuilt == state and hash(rebuilt) == hash(state)
    actions = [env.action_space.sample() for _ in range(15)]
    env.reset_to(state)
    original = _run(env, actions)
    env.reset_to(rebuilt)
    assert all(_equal(g, w) for g, w in zip(_run(env, actions), original, strict=True))

    vec = make_vec(env_id, 2)
    vec.reset(seed=4)
    vector_state = vec.get_state()
    assert tree_from_bytes(tree_bytes(vector_state)) == vector_state


def test_restart_is_deterministic(env_id: str) -> None:
    _property_settings(_examples(env_id, MAX_EXAMPLES))(
        given(
            env_id=st.just(env_id),
            seed=st.integers(0, 2**31 - 1),
            action_seed=st.integers(0, 2**31 - 1),
            steps_before=st.integers(0, 120),
            steps_after=st.integers(1, 120),
        )(_check_restart_is_deterministic)
    )()


def _check_restart_is_deterministic(env_id, seed, action_seed, steps_before, steps_after) -> None:
    env = make(env_id)
    env.reset(seed=seed)
    env.action_space.seed(action_seed)
    _run(env, [env.action_space.sample() for _ in range(steps_before)])
    state = env.get_state()
    base = env.unwrapped
    actions = [env.action_space.sample() for _ in range(steps_after)]
    original = _run(env, actions)

    restored_obs, _ = env.reset_to(state)
    assert env.get_state() == state
    replay = _run(env, actions)
    assert base is env.unwrapped  # restoring happens in place
    assert len(replay) == len(original)
    for got, want in zip(replay, original, strict=True):
        assert _equal(got, want), f"diverged after restart: {got} != {want}"

    # A fresh env restored from the pickled state behaves the same too.
    other = make(env_id)
    other_obs, _ = other.reset_to(pickle.loads(pickle.dumps(state)))
    assert _equal(other_obs, restored_obs)
    assert all(_equal(g, w) for g, w in zip(_run(other, actions), original, strict=True))


def test_reset_to_returns_the_observation_at_the_state(env_id: str) -> None:
    env = make(env_id)
    env.reset(seed=3)
    env.action_space.seed(3)
    for _ in range(5):
        obs, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated:  # e.g. a text env drew EOS: the state is terminal
            break
    state = env.get_state()
    env.reset(seed=4)
    restored, _ = env.reset_to(state)
    assert _equal(restored, obs)


def test_state_option_works_through_a_wrapper_stack(env_id: str) -> None:
    env = make(env_id)
    env.reset(seed=5)
    env.action_space.seed(5)
    _run(env, [env.action_space.sample() for _ in range(7)])  # resets if an episode ends
    state = env.get_state()
    expected_obs, _ = env.reset_to(state)
    actions = [env.action_space.sample() for _ in range(20)]
    expected = _run(env, actions)

    wrapped = gym.wrappers.RecordEpisodeStatistics(
        gym.wrappers.OrderEnforcing(gym.wrappers.PassiveEnvChecker(make(env_id)))
    )
    obs, _ = wrapped.reset(options={"state": state})
    assert _equal(obs, expected_obs)
    got = _run(wrapped, actions)
    # RecordEpisodeStatistics adds its own info keys: compare all but the infos.
    assert len(got) == len(expected)
    assert all(_equal(g[:-1], w[:-1]) for g, w in zip(got, expected, strict=True))

    with pytest.raises(ValueError, match="seed"):
        wrapped.reset(seed=0, options={"state": state})


def test_restart_forwarding_wrapper(env_id: str) -> None:
    from lfi_gym.wrappers import RestartForwarding

    env = RestartForwarding(gym.wrappers.RecordEpisodeStatistics(make(env_id)))
    env.reset(seed=0)
    state = env.get_state()
    obs, _ = env.reset_to(state)
    assert _equal(obs, make(env_id).reset_to(state)[0])


LIMIT, BEFORE = 8, 3  # gym.make(id, max_episode_steps=LIMIT), restarted at step BEFORE


def _how_it_ends(terminated, truncated):
    """(terminated, truncated and not terminated): on a step that terminates just as its
    count reaches the limit, Gymnasium's TimeLimit sets truncated too, which it cannot do
    after a restart (its count is lower then); terminated decides such a step either way."""
    terminated = np.asarray(terminated, dtype=bool)
    return terminated.tolist(), (np.asarray(truncated, dtype=bool) & ~terminated).tolist()


def _ends_until_the_end(env: gym.Env, actions: list) -> list:
    ends = []
    for action in actions:
        _, _, terminated, truncated, _ = env.step(action)
        ends.append(_how_it_ends(terminated, truncated))
        if terminated or truncated:
            break
    return ends


def test_max_episode_steps_keeps_the_remaining_steps_after_a_restart(env_id: str) -> None:
    """Gymnasium's TimeLimit restarts its count at reset(options={"state": s}); the env
    adopts its limit, so the restarted episode ends where the original one did."""
    env = gym.make(env_id, max_episode_steps=LIMIT, **MAKE_KWARGS.get(env_id, {}))
    env.reset(seed=3)
    env.action_space.seed(3)
    before = _ends_until_the_end(env, [env.action_space.sample() for _ in range(BEFORE)])
    assert len(before) == BEFORE and before[-1] == (False, False)
    state = env.unwrapped.get_state()
    actions = [env.action_space.sample() for _ in range(LIMIT)]
    original = _ends_until_the_end(env, actions)
    terminated, truncated = original[-1]
    assert terminated or (truncated and len(original) == LIMIT - BEFORE), original

    env.reset(seed=4)
    env.reset(options={"state": state})
    assert _ends_until_the_end(env, actions) == original
    fresh = gym.make(env_id, max_episode_steps=LIMIT, **MAKE_KWARGS.get(env_id, {}))
    fresh.reset(options={"state": state})
    assert _ends_until_the_end(fresh, actions) == original


def test_vector_max_episode_steps_keeps_the_remaining_steps_after_a_restart(env_id: str) -> None:
    def run(vec) -> list:
        steps = []
        for action in actions:
            obs, rewards, terminated, truncated, _ = vec.step(action)
            steps.append((obs, rewards, _how_it_ends(terminated, truncated)))
        return steps

    vec = gym.make_vec(env_id, num_envs=2, max_episode_steps=LIMIT, **MAKE_KWARGS.get(env_id, {}))
    vec.reset(seed=3)
    vec.action_space.seed(3)
    for _ in range(BEFORE):
        vec.step(vec.action_space.sample())
    state = vec.get_state()
    actions = [vec.action_space.sample() for _ in range(LIMIT - BEFORE)]
    original = run(vec)
    ended = np.array([np.logical_or(*ends) for *_, ends in original])
    assert ended.any(axis=0).all(), "every row's episode ends within LIMIT steps"

    vec.reset(seed=4)
    vec.reset_to(state)
    assert _equal(run(vec), original)
    fresh = gym.make_vec(env_id, num_envs=2, max_episode_steps=LIMIT, **MAKE_KWARGS.get(env_id, {}))
    fresh.reset_to(state)
    assert _equal(run(fresh), original)


def _malformed_variants(state: envs.State) -> list[tuple[str, object]]:
    variants: list[tuple[str, object]] = [
        ("other env id", dataclasses.replace(state, env_id="Some-Other-v0")),
        ("other version", dataclasses.replace(state, version=state.version + 1)),
        ("not a state", {"env_id": state.env_id}),
        ("None", None),
    ]
    for field in dataclasses.fields(state):
        if field.name in ("env_id", "version"):
            continue
        for bad in ("\x00malformed", [object()], -1.5e300):
            variants.append(
                (f"{field.name}={bad!r}", dataclasses.replace(state, **{field.name: bad}))
            )
    return variants


def test_bad_states_raise_state_error_and_leave_env_unchanged(env_id: str) -> None:
    env = make(env_id)
    env.reset(seed=7)
    env.action_space.seed(7)
    _run(env, [env.action_space.sample() for _ in range(3)])
    state = env.get_state()
    actions = [env.action_space.sample() for _ in range(10)]
    for label, bad in _malformed_variants(state):
        with pytest.raises(StateError):
            env.reset_to(bad)
        with pytest.raises(StateError):
            env.reset(options={"state": bad})
        assert env.get_state() == state, f"env changed after refusing {label}"
    # The env still continues exactly as before the refused calls.
    continued = _run(env, actions)
    env.reset_to(state)
    assert all(_equal(g, w) for g, w in zip(continued, _run(env, actions), strict=True))


def test_state_error_names_the_problem(env_id: str) -> None:
    env = make(env_id)
    env.reset(seed=0)
    state = env.get_state()
    with pytest.raises(StateError, match="Some-Other-v0"):
        env.reset_to(dataclasses.replace(state, env_id="Some-Other-v0"))
    with pytest.raises(StateError, match="version"):
        env.reset_to(dataclasses.replace(state, version=99))
    assert issubclass(StateError, ValueError)


def test_step_before_reset_is_refused(env_id: str) -> None:
    env = make(env_id)
    with pytest.raises(gym.error.ResetNeeded):
        env.step(env.action_space.sample())
    with pytest.raises(gym.error.ResetNeeded):
        env.get_state()


def test_invalid_action_is_refused(env_id: str) -> None:
    env = make(env_id)
    env.reset(seed=0)
    state = env.get_state()
    bad = _invalid_action(env.action_space)
    with pytest.raises(ValueError, match="action"):
        env.step(bad)
    assert env.get_state() == state


def _invalid_action(space: gym.Space):
    if isinstance(space, gym.spaces.Discrete):
        return space.start + space.n
    if isinstance(space, gym.spaces.Box):
        return np.full(space.shape, np.inf, dtype=space.dtype)
    return object()


def test_expert_is_a_bound_policy(env_id: str) -> None:
    env = make(env_id)
    try:
        expert = envs.make_expert(env)
    except NotImplementedError:
        pytest.skip(f"{env_id} has no oracle")
    obs, _ = env.reset(seed=0)
    action, _ = expert.predict(obs)
    assert env.action_space.contains(action)
    assert expert.action_space == env.action_space


# -- vector form ------------------------------------------------------------------------


def _run_vector(vec, actions: list) -> list[tuple]:
    return [vec.step(action) for action in actions]


def test_make_vec_exposes_the_contract(env_id: str) -> None:
    vec = make_vec(env_id, 2)
    assert callable(vec.get_state) and callable(vec.reset_to)
    vec.reset(seed=0)
    state = vec.get_state()
    assert pickle.loads(pickle.dumps(state)) == state
    assert len(state.states) == 2 and all(s.env_id == env_id for s in state.states)


def test_vector_restart_is_deterministic(env_id: str) -> None:
    _property_settings(_examples(env_id, MAX_EXAMPLES // 3))(
        given(
            env_id=st.just(env_id),
            seed=st.integers(0, 2**31 - 1),
            action_seed=st.integers(0, 2**31 - 1),
            steps_before=st.integers(0, 80),
            steps_after=st.integers(1, 80),
        )(_check_vector_restart_is_deterministic)
    )()


def _check_vector_restart_is_deterministic(
    env_id, seed, action_seed, steps_before, steps_after
) -> None:
    """Across Gymnasium's autoresets too: pending autoresets are part of the VectorState."""
    vec = make_vec(env_id, 3)
    vec.reset(seed=seed)
    vec.action_space.seed(action_seed)
    _run_vector(vec, [vec.action_space.sample() for _ in range(steps_before)])
    state = vec.get_state()
    actions = [vec.action_space.sample() for _ in range(steps_after)]
    original = _run_vector(vec, actions)
    vec.reset_to(state)
    assert vec.get_state() == state
    replay = _run_vector(vec, actions)
    assert all(_equal(g, w) for g, w in zip(replay, original, strict=True))


def test_vector_rows_restart_from_single_env_states(env_id: str) -> None:
    single = make(env_id)
    states, observations = [], []
    for seed in (11, 12, 13):
        single.reset(seed=seed)
        single.action_space.seed(seed)
        for _ in range(seed - 8):
            obs, _, terminated, truncated, _ = single.step(single.action_space.sample())
            if terminated or truncated:
                break
        states.append(single.get_state())
        observations.append(obs)
    vec = make_vec(env_id, 3)
    vec.reset(seed=0)
    obs, _ = vec.reset_to(states)
    for row in range(3):
        assert _equal(_row(obs, row), observations[row])
        assert vec.get_state().states[row] == states[row]

    # Per-row form: only row 2 restarts; rows 0 and 1 keep their situation.
    before = vec.get_state()
    obs, _ = vec.reset_to([states[0]], indices=[2])
    after = vec.get_state()
    assert after.states[:2] == before.states[:2] and after.states[2] == states[0]
    assert _equal(_row(obs, 2), observations[0])

    # Each row then evolves exactly as the single env does from its state.
    actions = [vec.action_space.sample() for _ in range(15)]
    vec.reset_to(states)
    results = _run_vector(vec, actions)
    single.reset_to(states[1])
    for step, action in enumerate(actions):
        want = single.step(_row(action, 1))
        assert _equal(_row(results[step][0], 1), want[0])
        assert results[step][1][1] == want[1]
        if want[2] or want[3]:
            break


def _row(batch, row: int):
    if isinstance(batch, dict):
        return {k: v[row] for k, v in batch.items()}
    return batch[row]


def test_vector_bad_states_raise_and_leave_rows_unchanged(env_id: str) -> None:
    vec = make_vec(env_id, 2)
    vec.reset(seed=0)
    state = vec.get_state()
    good = state.states[0]
    bad_rows = [good, dataclasses.replace(good, env_id="Some-Other-v0")]
    with pytest.raises(StateError):
        vec.reset_to(bad_rows)  # row 0 is fine, row 1 is not: nothing may change
    with pytest.raises(StateError):
        vec.reset_to(dataclasses.replace(state, env_id="Some-Other-v0"))
    with pytest.raises(StateError):
        vec.reset_to(dataclasses.replace(state, states=state.states[:1], autoreset=(False,)))
    with pytest.raises(StateError):
        vec.reset_to(good)  # a single State where a sequence is expected
    with pytest.raises(ValueError, match="indices"):
        vec.reset_to([good], indices=[5])
    assert vec.get_state() == state


def test_vector_state_keeps_a_pending_autoreset(env_id: str) -> None:
    vec = make_vec(env_id, 2)
    vec.reset(seed=0)
    vec.action_space.seed(0)
    for _ in range(10_000):
        _, _, terminated, truncated, _ = vec.step(vec.action_space.sample())
        if (terminated | truncated).any():
            break
    else:
        pytest.skip("no episode ended within 10,000 random steps")
    state = vec.get_state()
    assert any(state.autoreset)
    actions = [vec.action_space.sample() for _ in range(5)]
    original = _run_vector(vec, actions)
    vec.reset_to(state)
    assert all(_equal(g, w) for g, w in zip(_run_vector(vec, actions), original, strict=True))
