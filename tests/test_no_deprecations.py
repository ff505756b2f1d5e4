"""Our calls into transformers, torch, Gymnasium, SB3 and LightGBM raise no deprecation.

A deprecation warning today is a break at the library's next release (transformers'
``past_key_values`` goes in 5.40, for one). Each test runs a short piece of one family
(every env id, LMPolicy, BC, DAgger, PPO++, the LightGBM baseline) with every warning
recorded (``simplefilter("always")``, so neither pytest's filters nor a warning shown
earlier in the session hides one) and fails on any DeprecationWarning,
PendingDeprecationWarning or FutureWarning, naming its message and where it was raised.
Warnings that transformers sends through its logger (``logger.warning_once``) are not
Python warnings; the ones that say "deprecated" are recorded too.
"""

from __future__ import annotations

import importlib.util
import logging
import subprocess
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

from lfi_gym import envs
from lfi_gym.agents import BC, DAgger, LMPolicy
from lfi_gym.agents.data import Demonstrations
from lfi_gym.agents.evaluation import episode_returns
from lfi_gym.agents.guided import PPOPlusPlus
from lfi_gym.envs import make_expert

DEPRECATIONS = (DeprecationWarning, PendingDeprecationWarning, FutureWarning)
TEXT = "TextGen-TinyReviews-v0"
REPO = Path(__file__).resolve().parents[1]


class _DeprecationLog(logging.Handler):
    """Records transformers' logged deprecation notices."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if "deprecat" in message.lower():
            self.messages.append(f"logged by {record.name}: {message}")


@contextmanager
def no_deprecations() -> Iterator[None]:
    """Fail if the block raises a deprecation warning (or transformers logs one)."""
    log = _DeprecationLog()
    logger = logging.getLogger("transformers")
    logger.addHandler(log)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield
    finally:
        logger.removeHandler(log)
    found = [
        f"{w.category.__name__}: {w.message} ({w.filename}:{w.lineno})"
        for w in caught
        if issubclass(w.category, DEPRECATIONS)
    ]
    found += log.messages
    assert not found, "deprecations raised:\n" + "\n".join(dict.fromkeys(found))


# -- envs -----------------------------------------------------------------------------------


@pytest.mark.parametrize("env_id", envs.registered_ids())
def test_a_short_run_of_every_env(env_id: str, text_assets) -> None:
    """Make, reset, a few expert steps, a restart from a state, and a vector env's reset
    and step: the hub text ids run on local stand-ins of their assets."""
    kwargs = text_assets.env_kwargs(env_id)
    with no_deprecations():
        env = gym.make(env_id, **kwargs)
        expert = make_expert(env)
        obs, _ = env.reset(seed=0)
        for _ in range(4):
            action, _ = expert.predict(obs, deterministic=True)
            obs, _, terminated, truncated, _ = env.step(action)
            if terminated or truncated:
                break
        state = env.get_state()
        env.reset(seed=1)
        env.reset_to(state)
        env.close()
        vec = gym.make_vec(env_id, num_envs=2, **kwargs)
        vec.reset(seed=0)
        vec.step(np.zeros(2, dtype=np.int64))  # a valid first action in every family
        vec.close()


# -- agents ---------------------------------------------------------------------------------


@pytest.mark.parametrize("env_id", [TEXT, "TextGen-CommonGen-v0"])
def test_lm_policy_acting_scoring_and_saving(env_id: str, text_assets, tmp_path) -> None:
    """Causal (TinyReviews' GPT-2) and seq2seq (a T5): prefill, cached decode steps, a
    frozen row, scoring, an evaluation episode, and a save / load round trip."""
    kwargs = text_assets.env_kwargs(env_id)
    model = "lfi-gym/tinyreviews-lm" if env_id == TEXT else text_assets.t5
    with no_deprecations():
        vec = gym.make_vec(env_id, num_envs=2, **kwargs)
        policy = LMPolicy.from_pretrained(model, env=vec, value_head=True, device="cpu")
        obs, _ = vec.reset(seed=0)
        actions, state = policy.predict(obs)  # prefill
        for _ in range(3):  # decode steps
            obs, *_ = vec.step(actions)
            actions, state = policy.predict(obs, state)
        policy.predict(obs, state)  # unchanged observations: frozen rows
        batch = {k: torch.as_tensor(v) for k, v in obs.items()}
        policy.evaluate_actions(batch, torch.as_tensor(actions))
        policy.evaluate_generated(batch)
        policy.predict_values(batch)
        env = gym.make(env_id, **kwargs)
        episode_returns(policy, env, n_episodes=1)
        policy.save_pretrained(tmp_path / "policy")
        LMPolicy.from_pretrained(tmp_path / "policy", device="cpu")


def test_bc_learns_a_few_steps() -> None:
    with no_deprecations():
        env = gym.make("Control-CartPole-v0")
        demos = Demonstrations.collect(env, make_expert(env), n_steps=64, seed=0)
        BC(env, demos, batch_size=32, seed=0, device="cpu").learn(64)
        text = gym.make(TEXT)
        demos = Demonstrations.collect(text, make_expert(text), n_steps=16, seed=0)
        BC(text, demos, policy="LMPolicy", batch_size=8, seed=0, device="cpu").learn(16)


def test_dagger_learns_a_short_run() -> None:
    with no_deprecations():
        for env_id in ("Control-CartPole-v0", "Rank-Synthetic-v0"):
            env = gym.make(env_id)
            agent = DAgger(env, make_expert(env), steps_per_round=32, batch_size=16, seed=0)
            agent.learn(64)


def test_ppo_plus_plus_one_tiny_iteration() -> None:
    with no_deprecations():
        env = gym.make(TEXT)
        guide = LMPolicy.from_pretrained("lfi-gym/tinyreviews-lm", env=env, device="cpu")
        agent = PPOPlusPlus(
            env,
            guide=guide,
            beta=0.5,
            n_envs=2,
            n_steps=32,
            batch_size=16,
            n_epochs=1,
            seed=0,
            device="cpu",
        )
        agent.learn(32)
        assert agent.iteration == 1


def test_the_ranking_benchmarks_lightgbm_baseline() -> None:
    pytest.importorskip("lightgbm")
    from lfi_gym.envs.ranking.data import synthetic_splits

    path = REPO / "benchmarks" / "ranking.py"
    spec = importlib.util.spec_from_file_location("ranking_benchmark", path)
    benchmark = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(benchmark)
    splits = synthetic_splits(n_queries=(40, 10, 10), n_features=4)
    with no_deprecations():
        ndcg = benchmark.lambdamart_ndcg(splits, seed=0)
    assert 0.0 <= ndcg <= 1.0


# -- imports, and the check itself ----------------------------------------------------------


def test_importing_lfi_gym_raises_no_deprecation() -> None:
    """Import-time warnings (seen once per process, before any test runs) in a fresh
    interpreter: every subpackage, with every warning shown."""
    code = (
        "import lfi_gym, lfi_gym.cli, lfi_gym.envs, lfi_gym.agents, lfi_gym.wrappers\n"
        "import lfi_gym.agents.lm_policy, lfi_gym.agents.guided, lfi_gym.envs.text.hub\n"
    )
    result = subprocess.run(
        [sys.executable, "-W", "always", "-c", code],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    lines = [
        line for line in result.stderr.splitlines() if any(c.__name__ in line for c in DEPRECATIONS)
    ]
    assert not lines, "\n".join(lines)


def test_the_check_names_the_warning_and_where_it_came_from() -> None:
    with pytest.raises(AssertionError, match=r"FutureWarning: old name \(.*test_no_dep"):
        with no_deprecations():
            warnings.warn("old name", FutureWarning, stacklevel=1)
    with no_deprecations():
        warnings.warn("not a deprecation", UserWarning, stacklevel=1)
