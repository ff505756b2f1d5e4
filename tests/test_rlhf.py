"""The RLHF agent: reward model from preferences, RL on it with a KL penalty to the SFT
policy, online collection within the teacher's budget, and the token and query counts."""

from __future__ import annotations

import json
import pathlib
import pickle
import re
import zipfile

import gymnasium as gym
import numpy as np
import pytest
import torch

from lfi_gym.agents import LMPolicy, Preferences, SimulatedTeacher
from lfi_gym.agents.guided import PPOPlusPlus
from lfi_gym.agents.lm_policy import TINYREVIEWS_LM
from lfi_gym.agents.rlhf import RLHF
from lfi_gym.agents.serialization import AgentFileError

ENV_ID = "TextGen-TinyReviews-v0"
SMALL = {"n_envs": 4, "n_steps": 64, "batch_size": 32, "n_epochs": 1, "learning_rate": 1e-3}
FAST_RM = {"rm_epochs": 1, "center_samples": 8}


@pytest.fixture(scope="module")
def env() -> gym.Env:
    return gym.make(ENV_ID)


@pytest.fixture(scope="module")
def sft(env) -> LMPolicy:
    return LMPolicy.from_pretrained(TINYREVIEWS_LM, env=env)


@pytest.fixture(scope="module")
def preferences(env, sft) -> Preferences:
    torch.manual_seed(0)
    return Preferences.collect(env, sft, 24, SimulatedTeacher(seed=0), seed=0, batch_size=8)


def _params(module: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in module.model.parameters()])


def test_offline_rlhf_fits_centres_and_trains_on_the_reward_model(env, sft, preferences):
    before = _params(sft).clone()
    agent = RLHF(env, sft, preferences=preferences, rl_kwargs=SMALL, seed=0, **FAST_RM)
    assert agent.rl_agent.kl_controller.coef == 0.05
    # the RL step's reference, start and (for guided steps) guide are the SFT policy
    assert torch.equal(_params(agent.rl_agent.reference), before)
    assert torch.equal(_params(agent.policy), before)
    # the RL step's env scores with the reward model; the user's env keeps the gold reward
    assert agent.rl_env.unwrapped.task.reward_fn is agent.reward_model
    assert env.unwrapped.task.reward_fn is not agent.reward_model
    agent.learn(128)
    assert agent.reward_model.epochs_done == 1
    assert agent.reward_model.offset != 0.0  # centred on the SFT's samples
    assert agent.num_timesteps == agent.rl_agent.num_timesteps >= 128
    assert agent.budgets() == {
        "expert_labels": 0,
        "env_steps": agent.num_timesteps,
        "reward_queries": 0,
        "preference_queries": 24,
    }
    assert not torch.equal(_params(agent.policy), before)
    assert torch.equal(_params(sft), before)  # the user's SFT policy is never trained
    assert torch.equal(_params(agent.sft), before)


def test_online_rlhf_spends_the_teachers_budget_exactly_and_counts_its_tokens(env, sft):
    torch.manual_seed(1)
    teacher = SimulatedTeacher(max_queries=40, seed=0)
    agent = RLHF(
        env,
        sft,
        teacher=teacher,
        initial_pairs=16,
        pairs_per_refit=16,
        refit_every=1,
        rl_kwargs=SMALL,
        seed=0,
        **FAST_RM,
    )
    # the sampled pairs' tokens count: about 800 per 16 pairs, so RL runs a few iterations
    agent.learn(3000)
    # 16 before RL, 16 after the first iteration, the last 8 after the second; then none
    assert teacher.queries_used == 40
    assert agent.preference_queries == 40 == len(agent.preferences)
    assert agent.reward_model.epochs_done == 3
    assert agent.collection_tokens > 0
    assert agent.rl_agent.iteration >= 3
    assert agent.num_timesteps == agent.rl_agent.num_timesteps + agent.collection_tokens
    labels = agent.preferences.labels
    assert set(np.unique(labels)) <= {0.0, 0.5, 1.0}


def test_a_guided_rl_step_is_guided_by_the_sft_policy(env, sft, preferences):
    agent = RLHF(env, sft, preferences=preferences, rl="ppo++", rl_kwargs=SMALL, **FAST_RM)
    assert isinstance(agent.rl_agent, PPOPlusPlus)
    assert agent.rl_agent.guide is agent.sft
    agent.learn(64)
    assert torch.equal(_params(agent.sft), _params(sft))


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({}, ValueError, "either preferences= .* or teacher="),
        ({"teacher": "x", "preferences": "y"}, ValueError, "not both"),
        ({"teacher": object()}, TypeError, "teacher must answer label"),
        ({"preferences": [1, 2]}, TypeError, "must be a Preferences set"),
        ({"teacher": SimulatedTeacher(), "rl": "dqn"}, ValueError, "rl must be one of"),
        ({"teacher": SimulatedTeacher(), "kl_coef": -1.0}, ValueError, "kl_coef"),
        (
            {"teacher": SimulatedTeacher(), "rl_kwargs": {"kl_coef": 0.1}},
            ValueError,
            "not in rl_kwargs",
        ),
    ],
)
def test_bad_settings_fail_at_construction(env, sft, kwargs, error, message):
    with pytest.raises(error, match=message):
        RLHF(env, sft, **kwargs)


def test_preferences_of_another_env_are_refused(sft, preferences):
    from lfi_gym.agents import PreferencesError

    with pytest.raises(PreferencesError, match="come from TextGen-TinyReviews-v0"):
        RLHF(gym.make("TextGen-TinyConcepts-v0"), preferences=preferences)


# -- files: "learn, save, load, learn" equals "learn" ------------------------------------------


def _learn_in_phases(agent: RLHF, tmp_path, resume: bool, finish: int, env) -> RLHF:
    """``learn(1)`` (the first fit; online, the first pairs), ``learn(1)`` (one RL iteration),
    then, with ``resume``, save and load, then ``learn(finish)``."""
    agent.learn(1)
    agent.learn(1, reset_num_timesteps=False)
    if resume:
        agent = RLHF.load(agent.save(tmp_path / "rlhf"), env=env)
    return agent.learn(finish, reset_num_timesteps=False)


def _assert_same_run(resumed: RLHF, uninterrupted: RLHF) -> None:
    for (name, p), q in zip(
        resumed.policy.named_parameters(), uninterrupted.policy.parameters(), strict=True
    ):
        assert torch.equal(p, q), name
    for p, q in zip(
        resumed.reward_model.parameters(), uninterrupted.reward_model.parameters(), strict=True
    ):
        assert torch.equal(p, q)
    assert resumed.reward_model.offset == uninterrupted.reward_model.offset
    assert resumed.reward_model.history == uninterrupted.reward_model.history
    assert resumed.budgets() == uninterrupted.budgets()
    for counter in ("num_timesteps", "preference_queries", "collection_tokens"):
        assert getattr(resumed, counter) == getattr(uninterrupted, counter), counter
    assert resumed._iterations_since_refit == uninterrupted._iterations_since_refit
    assert resumed.rl_agent.iteration == uninterrupted.rl_agent.iteration
    assert resumed.rl_agent.num_timesteps == uninterrupted.rl_agent.num_timesteps
    np.testing.assert_array_equal(resumed.preferences.labels, uninterrupted.preferences.labels)


@pytest.mark.parametrize("rl", ["ppo", "ppo++"])
def test_offline_rlhf_resumes_exactly(env, sft, preferences, tmp_path, rl):
    def run(resume: bool) -> RLHF:
        agent = RLHF(env, sft, preferences=preferences, rl=rl, rl_kwargs=SMALL, seed=0, **FAST_RM)
        return _learn_in_phases(agent, tmp_path, resume, 256, env)

    resumed, uninterrupted = run(True), run(False)
    _assert_same_run(resumed, uninterrupted)
    assert uninterrupted.rl_agent.iteration >= 3  # RL went on after the save point
    assert resumed.reward_model.offset != 0.0
    assert torch.equal(_params(resumed.sft), _params(sft))
    assert torch.equal(_params(resumed.rl_agent.reference), _params(sft))
    if rl == "ppo++":  # the guide is the loaded SFT policy
        assert isinstance(resumed.rl_agent, PPOPlusPlus)
        assert resumed.rl_agent.guide is resumed.sft


def test_online_rlhf_resumes_exactly_through_a_refit_after_the_save(env, sft, tmp_path):
    """A teacher with mistakes (its generator decides labels), saved one RL iteration into a
    two-iteration refit period; after loading, two refits spend the rest of its budget."""

    def run(resume: bool) -> RLHF:
        teacher = SimulatedTeacher(mistake_rate=0.3, max_queries=24, seed=0)
        agent = RLHF(
            env,
            sft,
            teacher=teacher,
            initial_pairs=8,
            pairs_per_refit=8,
            refit_every=2,
            rl_kwargs=SMALL,
            seed=0,
            **FAST_RM,
        )
        return _learn_in_phases(agent, tmp_path, resume, 1200, env)

    resumed, uninterrupted = run(True), run(False)
    _assert_same_run(resumed, uninterrupted)
    assert resumed.teacher.state() == uninterrupted.teacher.state()
    assert uninterrupted.teacher.queries_used == 24
    assert uninterrupted.reward_model.epochs_done == 3  # two refits after the save point


def test_an_online_agent_saved_before_learning_resumes_exactly(env, sft, tmp_path):
    """No preferences, centring samples or reward-model optimizer yet: the file holds none."""

    def run(resume: bool) -> RLHF:
        teacher = SimulatedTeacher(mistake_rate=0.3, max_queries=8, seed=0)
        agent = RLHF(env, sft, teacher=teacher, initial_pairs=8, rl_kwargs=SMALL, seed=0, **FAST_RM)
        if resume:
            path = agent.save(tmp_path / "fresh")
            with zipfile.ZipFile(path) as zf:
                assert "preferences.lfip" not in zf.namelist()
            agent = RLHF.load(path, env=env)
            assert agent.preferences is None and agent._sft_samples is None
        return agent.learn(1)

    resumed, uninterrupted = run(True), run(False)
    _assert_same_run(resumed, uninterrupted)


# -- files: bad input at load ------------------------------------------------------------------


@pytest.fixture(scope="module")
def saved_online(env, sft, tmp_path_factory):
    """A file of an online agent after its first fit: every member is there."""
    teacher = SimulatedTeacher(mistake_rate=0.3, max_queries=8, seed=0)
    agent = RLHF(env, sft, teacher=teacher, initial_pairs=8, rl_kwargs=SMALL, seed=0, **FAST_RM)
    return agent.learn(1).save(tmp_path_factory.mktemp("rlhf") / "online")


def _members_of(path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as zf:
        return {name: zf.read(name) for name in zf.namelist()}


def _forged(path, out, replacements=None, drop=()) -> str:
    members = {**_members_of(path), **(replacements or {})}
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            if name not in drop:
                zf.writestr(name, data)
    return out


def test_the_file_holds_every_part(saved_online):
    assert sorted(_members_of(saved_online)) == [
        "agent.json",
        "policy.json",
        "policy.safetensors",
        "preferences.lfip",
        "reward_model.json",
        "reward_model.safetensors",
        "reward_model_trainer.data",
        "rl/optimizer.data",
        "rl/reference.json",
        "rl/reference.safetensors",
        "rl/trainer.data",
        "rlhf.data",
        "sft.json",
        "sft.safetensors",
    ]


class _Payload:
    """Unpickling this creates ``marker``: what a malicious file would run."""

    def __init__(self, marker) -> None:
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (self.marker,))


@pytest.mark.parametrize(
    "member",
    [
        "agent.json",
        "sft.json",
        "sft.safetensors",
        "preferences.lfip",
        "reward_model.json",
        "reward_model.safetensors",
        "reward_model_trainer.data",
        "rlhf.data",
        "rl/optimizer.data",
        "rl/trainer.data",
        "rl/reference.safetensors",
    ],
)
def test_a_pickle_in_any_member_is_refused_and_never_runs(env, saved_online, tmp_path, member):
    marker = tmp_path / "pwned"
    bad = _forged(saved_online, tmp_path / "bad.zip", {member: pickle.dumps(_Payload(marker))})
    with pytest.raises(AgentFileError, match=f"member '{re.escape(member)}'"):
        RLHF.load(bad, env=env)
    assert not marker.exists()


@pytest.mark.parametrize(
    ("forge", "message"),
    [
        ({"drop": ["rl/optimizer.data"]}, "missing member 'rl/optimizer.data'"),
        ({"drop": ["reward_model_trainer.data"]}, "missing member 'reward_model_trainer.data'"),
        ({"drop": ["sft.safetensors"]}, "missing member 'sft.safetensors'"),
        ({"drop": ["rlhf.data"]}, "missing member 'rlhf.data'"),
        ({"drop": ["preferences.lfip"]}, "missing member 'preferences.lfip'"),
        ({"replacements": {"rl/lols.json": b"{}"}}, "unexpected member 'rl/lols.json'"),
    ],
)
def test_a_missing_or_unknown_member_is_refused(env, saved_online, tmp_path, forge, message):
    bad = _forged(saved_online, tmp_path / "bad.zip", **forge)
    with pytest.raises(AgentFileError, match=re.escape(message)):
        RLHF.load(bad, env=env)


def _with_json(path, member: str, edit) -> bytes:
    value = json.loads(_members_of(path)[member])
    edit(value)
    return json.dumps(value).encode()


def _with_state(path, edit) -> bytes:
    from lfi_gym.agents.serialization import data_bytes
    from lfi_gym.envs.codec import tree_from_bytes

    state = tree_from_bytes(_members_of(path)["rlhf.data"])
    edit(state)
    return data_bytes(state)


@pytest.mark.parametrize(
    ("member", "edit", "message"),
    [
        (
            "agent.json",
            lambda meta: meta["hyperparameters"].update(rl="dqn"),
            "member 'agent.json': unknown RL step 'dqn'",
        ),
        (
            "reward_model.json",
            lambda settings: settings.update(offset="a lot"),
            "member 'reward_model.json': malformed .*'offset'",
        ),
        (
            "reward_model.json",
            lambda settings: settings.update(n_models=2, members=["", "member-1"]),
            "member 'reward_model.json': malformed .*2 member",
        ),
        (
            "rlhf.data",
            lambda state: state["teacher"].update(queries_used=9),
            "member 'rlhf.data': malformed .*queries_used 9 exceeds max_queries 8",
        ),
        (
            "rlhf.data",
            lambda state: state.update(iterations_since_refit=-1),
            "member 'rlhf.data': malformed .*expected a count",
        ),
        (
            "rlhf.data",
            lambda state: state.update(sft_completion_ids=state["sft_completion_ids"][:-1]),
            "member 'rlhf.data': malformed .*do not pair up",
        ),
    ],
)
def test_a_forged_value_is_refused(env, saved_online, tmp_path, member, edit, message):
    if member == "rlhf.data":
        data = _with_state(saved_online, edit)
    else:
        data = _with_json(saved_online, member, edit)
    bad = _forged(saved_online, tmp_path / "bad.zip", {member: data})
    with pytest.raises(AgentFileError, match=message):
        RLHF.load(bad, env=env)


def test_an_oversized_member_is_refused_unread(env, saved_online, monkeypatch):
    from lfi_gym.agents import serialization

    monkeypatch.setattr(serialization, "MAX_STATE_BYTES", 100)
    with pytest.raises(
        AgentFileError, match=r"member 'rlhf.data': \d+ bytes exceed the cap of 100"
    ):
        RLHF.load(saved_online, env=env)


def test_reward_model_weights_are_capped_at_its_size(env, saved_online, tmp_path):
    from safetensors.torch import load, save

    tensors = load(_members_of(saved_online)["reward_model.safetensors"])
    padding = {"padding": torch.zeros(1 << 20)}
    bad = _forged(
        saved_online,
        tmp_path / "bad.zip",
        {"reward_model.safetensors": save({**tensors, **padding})},
    )
    with pytest.raises(
        AgentFileError, match=r"member 'reward_model.safetensors': \d+ bytes exceed"
    ):
        RLHF.load(bad, env=env)


def test_loading_needs_the_env_it_was_trained_on(saved_online):
    with pytest.raises(ValueError, match=r"trained on TextGen-TinyReviews-v0.*TinyConcepts"):
        RLHF.load(saved_online, env=gym.make("TextGen-TinyConcepts-v0"))
    with pytest.raises(ValueError, match=r"needs the env it was trained on.*gym.make\("):
        RLHF.load(saved_online)
    with pytest.raises(ValueError, match="restores the saved teacher"):
        RLHF.load(saved_online, env=gym.make(ENV_ID), teacher=SimulatedTeacher())


def test_only_a_simulated_teacher_is_saved(env, sft, tmp_path):
    class Oracle:
        queries_left = None

        def label(self, rewards_a, rewards_b):
            return 1.0

    agent = RLHF(env, sft, teacher=Oracle(), rl_kwargs=SMALL, **FAST_RM)
    with pytest.raises(TypeError, match="must be a SimulatedTeacher; this one is a Oracle"):
        agent.save(tmp_path / "oracle")
    assert not (tmp_path / "oracle.zip").exists()
