"""LabelDrivenAgent, rollout_return and the "write your own agent" example.

The example's MyAgent (SEARN-style one-step deviations scored by expert roll-outs) learns on
CartPole and on a ranking env at small budgets; the base class labels exactly as many states
as ``learn`` asks, restores the env after every label, counts every env step the agent
causes, drives callbacks and resumes from its files exactly.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import KVWriter, Logger

from lfi_gym import envs
from lfi_gym.agents import (
    DAgger,
    LabelDrivenAgent,
    episode_returns,
    evaluate_ranker,
    rollout_return,
)
from lfi_gym.agents.serialization import AgentFileError

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "write_your_own_agent.py"
CARTPOLE, RANKING = "Control-CartPole-v0", "Rank-Synthetic-v0"


def _load_example() -> Any:
    spec = importlib.util.spec_from_file_location("write_your_own_agent", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


example = _load_example()
MyAgent = example.MyAgent


def UniformRandom(env: gym.Env, seed: int = 0) -> envs.RandomPolicy:
    """Uniformly random among the allowed actions (the ranking env's mask, if any)."""
    return envs.RandomPolicy.for_env(env, seed=seed)


class ExpertLabels(LabelDrivenAgent):
    """Labels with the expert's action after taking ``probe_steps`` steps of its own (which
    the agent must count, and undo); ``calls`` counts the labelled states."""

    def __init__(self, env, expert=None, *, probe_steps: int = 0, **kwargs) -> None:
        super().__init__(env, expert, **kwargs)
        self.probe_steps = probe_steps
        self.calls = self.steps_taken = 0

    def label(self, env, observation):
        self.calls += 1
        action = self.expert.predict(observation, deterministic=True)[0]
        for _ in range(self.probe_steps):
            _, _, terminated, truncated, _ = env.step(env.action_space.sample())
            self.steps_taken += 1
            if terminated or truncated:
                break
        return action


def _my_agent(env_id: str, **kwargs) -> LabelDrivenAgent:
    env = gym.make(env_id)
    settings = {"steps_per_round": 30, "n_epochs": 20, "seed": 0, **kwargs}
    return MyAgent(env, expert=envs.make_expert(env), **settings)


def _parameters(agent: LabelDrivenAgent) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in agent.policy.state_dict().items()}


def _assert_same_parameters(a: LabelDrivenAgent, b: LabelDrivenAgent) -> None:
    pa, pb = _parameters(a), _parameters(b)
    assert pa.keys() == pb.keys()
    for key in pa:
        torch.testing.assert_close(pa[key], pb[key], rtol=0, atol=0, msg=key)


# -- the example agent learns ---------------------------------------------------------------


def test_example_agent_beats_random_on_cartpole() -> None:
    agent = _my_agent(CARTPOLE).learn(60)
    mine = episode_returns(agent, gym.make(CARTPOLE), n_episodes=10, seed=100)
    random = episode_returns(UniformRandom(gym.make(CARTPOLE)), gym.make(CARTPOLE), 10, seed=100)
    # Measured: 96.5 vs 22.8 (a uniformly random CartPole policy lasts about 22 steps).
    assert mine.mean() >= 2 * random.mean() + 20, (mine, random)


def test_example_agent_beats_random_on_ranking() -> None:
    agent = _my_agent(RANKING, steps_per_round=25).learn(50)
    queries = range(100)
    mine = evaluate_ranker(agent, gym.make(RANKING), k=10, queries=queries)
    random = evaluate_ranker(UniformRandom(gym.make(RANKING)), gym.make(RANKING), queries=queries)
    # Measured on all 600 queries: NDCG@10 0.77 vs 0.39.
    assert mine >= random + 0.2, (mine, random)


def test_example_labels_the_best_one_step_deviation_on_ranking() -> None:
    """With the ideal-ranking expert finishing the list, the best first pick is a most
    relevant candidate: its label's relevance is the query's highest."""
    env = gym.make(RANKING)
    agent = MyAgent(env, expert=envs.make_expert(env), seed=0)
    obs, _ = env.reset(seed=3)
    label = agent.label(env, obs)
    relevance = env.unwrapped.current_relevance
    assert relevance[label] == relevance.max()


# -- counting --------------------------------------------------------------------------------


def test_learn_labels_exactly_n_states_and_counts_every_env_step() -> None:
    env = gym.make(CARTPOLE)
    agent = ExpertLabels(env, envs.make_expert(env), probe_steps=3, steps_per_round=30, seed=0)
    agent.learn(70)
    # Rounds of 30, 30 and the 10 left.
    assert agent.calls == agent.expert_labels == agent.num_timesteps == 70
    assert agent.round == 3 and len(agent.demonstrations) == 70
    agent.learn(5, reset_num_timesteps=False)
    assert agent.calls == agent.expert_labels == agent.num_timesteps == 75
    assert agent.steps_taken > 0
    assert agent.label_env_steps == agent.steps_taken
    assert agent.budgets() == {
        "expert_labels": 75,
        "env_steps": 75 + agent.steps_taken,  # one roll-in step per label, plus the rule's
        "reward_queries": agent.steps_taken,
    }


def test_the_env_is_restored_after_every_label() -> None:
    """A rule that walks the env off before answering changes nothing: the roll-in visits
    the states it would have visited, so the aggregate and the learner are identical."""
    runs = []
    for probe_steps in (0, 4):
        env = gym.make(CARTPOLE)
        env.action_space.seed(0)
        agent = ExpertLabels(
            env, envs.make_expert(env), probe_steps=probe_steps, steps_per_round=40, seed=1
        )
        runs.append(agent.learn(120))
    quiet, walker = runs
    assert walker.label_env_steps > 0 and quiet.label_env_steps == 0
    np.testing.assert_array_equal(
        quiet.demonstrations.observations, walker.demonstrations.observations
    )
    np.testing.assert_array_equal(quiet.demonstrations.actions, walker.demonstrations.actions)
    _assert_same_parameters(quiet, walker)


def test_first_round_schedule_rolls_in_with_the_expert_then_the_learner() -> None:
    env = gym.make(CARTPOLE)
    agent = ExpertLabels(env, envs.make_expert(env), steps_per_round=100, n_epochs=1, seed=0)
    assert [agent.beta(i) for i in (0, 1, 5)] == [1.0, 0.0, 0.0]
    agent.learn(200)
    # Round 0: the expert balances the whole round; round 1: the barely trained learner
    # rolls in and its episodes end (DAgger's linear schedule would still mix in the expert).
    assert not agent.demonstrations.terminated[:100].any()
    assert agent.demonstrations.terminated[100:].any()


# -- rollout_return ------------------------------------------------------------------------


def test_rollout_return_equals_the_env_stepped_by_hand() -> None:
    env = gym.make(CARTPOLE)
    expert = envs.make_expert(env)
    env.reset(seed=5)
    for step in range(7):
        env.step(step % 2)  # alternating pushes: still balanced
    state = env.get_state()
    for first_action in (0, 1):
        by_hand = gym.make(CARTPOLE)
        hand_expert = envs.make_expert(by_hand)
        obs, _ = by_hand.reset_to(state)
        obs, total, terminated, truncated, _ = by_hand.step(first_action)
        while not (terminated or truncated):
            obs, reward, terminated, truncated, _ = by_hand.step(hand_expert.predict(obs)[0])
            total += reward
        got = rollout_return(env, expert, state, first_action=first_action)
        assert got == total
        # The env is left where the roll-out ended, like the one stepped by hand.
        assert env.get_state() == by_hand.get_state()
    # The expert balances to the horizon (500 steps from reset, 7 taken): +1 per step.
    assert rollout_return(env, expert, state) == 500 - 7


def test_rollout_return_counts_the_first_action_and_max_steps() -> None:
    env = gym.make(CARTPOLE)
    expert = envs.make_expert(env)
    env.reset(seed=0)
    state = env.get_state()
    # CartPole pays +1 per step: max_steps steps in all, the first action among them.
    assert rollout_return(env, expert, state, first_action=1, max_steps=1) == 1.0
    assert rollout_return(env, expert, state, first_action=1, max_steps=5) == 5.0
    assert rollout_return(env, expert, state, max_steps=5) == 5.0
    assert env.get_state().step == 5
    with pytest.raises(ValueError, match="max_steps must be a positive int"):
        rollout_return(env, expert, state, max_steps=0)


def test_rollout_return_on_ranking_is_the_dcg_of_the_list() -> None:
    """Position k pays (2**rel - 1) / log2(k + 1): the first pick alone pays 2**rel - 1."""
    env = gym.make(RANKING)
    expert = envs.make_expert(env)
    env.reset(seed=2)
    state = env.get_state()
    relevance = env.unwrapped.current_relevance.astype(float)
    worst = int(np.argmin(relevance))
    assert rollout_return(env, expert, state, first_action=worst, max_steps=1) == pytest.approx(
        2 ** relevance[worst] - 1
    )
    # The expert lists the rest by relevance, best first, after the forced first pick.
    rest = np.sort(np.delete(relevance, worst))[::-1][: env.unwrapped.list_length - 1]
    dcg = (
        2 ** relevance[worst]
        - 1
        + sum((2**rel - 1) / np.log2(position + 2) for position, rel in enumerate(rest, start=1))
    )
    assert rollout_return(env, expert, state, first_action=worst) == pytest.approx(dcg)
    assert not env.unwrapped.action_masks().any()  # left at the end of the episode


# -- files -----------------------------------------------------------------------------------


def test_save_load_predicts_the_same_and_resumes_exactly(tmp_path) -> None:
    straight = _my_agent(CARTPOLE).learn(100)
    first = _my_agent(CARTPOLE).learn(60)
    first.save(tmp_path / "my_agent.zip")
    with zipfile.ZipFile(tmp_path / "my_agent.zip") as zf:
        assert {"agent.json", "policy.json", "policy.safetensors", "aggregate.lfid"} <= set(
            zf.namelist()
        )
        assert not any(name.endswith((".pkl", ".pt")) for name in zf.namelist())
    env = gym.make(CARTPOLE)
    resumed = MyAgent.load(tmp_path / "my_agent.zip", env=env, expert=envs.make_expert(env))
    observations = first.demonstrations.observations
    np.testing.assert_array_equal(
        resumed.predict(observations, deterministic=True)[0],
        first.predict(observations, deterministic=True)[0],
    )
    assert resumed.budgets() == first.budgets() and resumed.round == first.round == 2
    resumed.learn(40, reset_num_timesteps=False)
    # 60 + 40 labels in rounds of 30 are the rounds of 100 straight through.
    _assert_same_parameters(resumed, straight)
    np.testing.assert_array_equal(resumed.demonstrations.actions, straight.demonstrations.actions)
    assert resumed.budgets() == straight.budgets()


def test_a_subclass_keeps_its_own_hyperparameters_and_is_loaded_by_its_class(tmp_path) -> None:
    env = gym.make(CARTPOLE)
    agent = ExpertLabels(env, envs.make_expert(env), probe_steps=2, steps_per_round=20, seed=0)
    path = agent.learn(20).save(tmp_path / "probe")
    loaded = ExpertLabels.load(path, env=gym.make(CARTPOLE))
    assert loaded.probe_steps == 2 and loaded.steps_per_round == 20
    assert loaded.label_env_steps == agent.label_env_steps > 0
    with pytest.raises(AgentFileError, match="holds a ExpertLabels agent"):
        MyAgent.load(path)
    with pytest.raises(AgentFileError, match="holds a ExpertLabels agent"):
        DAgger.load(path)


# -- callbacks and logging -----------------------------------------------------------------


class Counting(BaseCallback):
    def __init__(self, stop_at: int | None = None) -> None:
        super().__init__()
        self.stop_at = stop_at
        self.counts = {"step": 0, "rollout_start": 0, "rollout_end": 0, "start": 0, "end": 0}

    def _on_training_start(self) -> None:
        self.counts["start"] += 1

    def _on_rollout_start(self) -> None:
        self.counts["rollout_start"] += 1

    def _on_step(self) -> bool:
        self.counts["step"] += 1
        return self.stop_at is None or self.num_timesteps < self.stop_at

    def _on_rollout_end(self) -> None:
        self.counts["rollout_end"] += 1

    def _on_training_end(self) -> None:
        self.counts["end"] += 1


class Records(KVWriter):
    def __init__(self) -> None:
        self.keys: set[str] = set()

    def write(self, key_values, key_excluded, step=0) -> None:
        self.keys |= set(key_values)

    def close(self) -> None:
        pass


def test_callbacks_run_per_label_and_per_round_and_can_stop() -> None:
    env = gym.make(CARTPOLE)
    agent = ExpertLabels(env, envs.make_expert(env), steps_per_round=30, n_epochs=1, seed=0)
    records = Records()
    agent.set_logger(Logger(folder=None, output_formats=[records]))
    agent.trainer.log_every_updates = 1  # (every 100 updates by default, as DAgger)
    callback = Counting()
    agent.learn(70, callback=callback)
    assert callback.counts == {
        "step": 70,
        "rollout_start": 3,
        "rollout_end": 3,
        "start": 1,
        "end": 1,
    }
    prefix = LabelDrivenAgent.LOG_PREFIX
    assert {
        f"{prefix}/{k}" for k in ("round", "beta", "expert_labels", "env_steps")
    } <= records.keys
    assert "train/loss" in records.keys
    stopping = Counting(stop_at=45)
    agent.learn(1000, callback=stopping)  # counts restart at 0: stops at the 45th label
    assert stopping.counts["step"] == 45 and stopping.counts["rollout_start"] == 2
    assert agent.expert_labels == 70 + 45  # the stopped round's labels are kept and trained on


# -- bad input -------------------------------------------------------------------------------


def test_bad_envs_experts_and_labels_are_refused_with_the_fix() -> None:
    with pytest.raises(TypeError, match="restart contract"):
        MyAgent(gym.make("CartPole-v1"))
    vec = gym.make_vec(CARTPOLE, num_envs=2, vectorization_mode="sync")
    with pytest.raises(TypeError, match=r"single env.*restarting its one env"):
        MyAgent(vec)
    with pytest.raises(ValueError, match="beta_schedule='never'"):
        MyAgent(gym.make(CARTPOLE)).learn(5)

    class AlwaysOne(LabelDrivenAgent):
        def label(self, env, observation):
            return 1

    env = gym.make(CARTPOLE)
    agent = AlwaysOne(env, beta_schedule="never", steps_per_round=10, seed=0).learn(10)
    assert agent.expert_labels == 10 and (agent.demonstrations.actions == 1).all()

    class OutOfSpace(LabelDrivenAgent):
        def label(self, env, observation):
            return 7

    with pytest.raises(ValueError, match=r"OutOfSpace.label returned 7.*Discrete\(2\)"):
        OutOfSpace(gym.make(CARTPOLE), beta_schedule="never").learn(3)

    class PlacedAgain(LabelDrivenAgent):
        def label(self, env, observation):
            placed = env.unwrapped.placed
            return placed[0] if placed else int(np.flatnonzero(observation["mask"])[0])

    ranking = gym.make(RANKING)
    with pytest.raises(ValueError, match="does not allow in this state"):
        PlacedAgain(ranking, envs.make_expert(ranking)).learn(3)
    with pytest.raises(TypeError, match="abstract"):
        LabelDrivenAgent(gym.make(CARTPOLE))


# -- the example file ------------------------------------------------------------------------


def test_example_is_short_and_runs_as_a_script() -> None:
    assert len(EXAMPLE.read_text().splitlines()) <= 60
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    environment["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(REPO), os.environ.get("PYTHONPATH")])
    )
    done = subprocess.run(
        [sys.executable, str(EXAMPLE), "30"],
        capture_output=True,
        text=True,
        timeout=120,
        env=environment,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr
    assert "MyAgent" in done.stdout and "random" in done.stdout
    assert "'expert_labels': 30" in done.stdout


# -- the guide (docs/writing-agents.md) ------------------------------------------------------

GUIDE = REPO / "docs" / "writing-agents.md"


def _guide_block(marker: str) -> str:
    blocks = re.findall(r"^```python\n(.*?)^```$", GUIDE.read_text(), flags=re.S | re.M)
    (block,) = [b for b in blocks if marker in b]
    return block


def test_the_guides_label_driven_agent_is_the_examples() -> None:
    block = _guide_block("class MyAgent(LabelDrivenAgent)")
    body = block[block.index("class MyAgent") :].strip().splitlines()
    assert "\n".join(body) in EXAMPLE.read_text()


def test_the_guides_base_agent_learns_counts_and_round_trips(tmp_path) -> None:
    scope: dict = {"__name__": "guide"}
    exec(compile(_guide_block("class Reinforce(BaseAgent)"), str(GUIDE), "exec"), scope)
    reinforce = scope["Reinforce"]
    assert reinforce.hyperparameter_names == ("learning_rate", "gamma")
    with pytest.raises(ValueError, match="gamma"):
        reinforce(gym.make(CARTPOLE), gamma=1.5)
    agent = reinforce(gym.make(CARTPOLE), learning_rate=3e-3, seed=0)
    callback = Counting()
    agent.learn(3000, callback=callback)
    assert callback.counts["step"] == 3000 and callback.counts["rollout_start"] == agent.episodes
    assert agent.budgets() == {"expert_labels": 0, "env_steps": 3000, "reward_queries": 3000}
    mine = episode_returns(agent, gym.make(CARTPOLE), 10, seed=100, deterministic=False)
    random = episode_returns(UniformRandom(gym.make(CARTPOLE)), gym.make(CARTPOLE), 10, seed=100)
    assert mine.mean() >= 2 * random.mean(), (mine, random)  # measured: 67.3 vs 22.8

    path = agent.save(tmp_path / "reinforce")
    loaded = reinforce.load(path, env=gym.make(CARTPOLE))
    assert (loaded.learning_rate, loaded.gamma, loaded.episodes) == (3e-3, 0.99, agent.episodes)
    observations = np.stack([gym.make(CARTPOLE).reset(seed=s)[0] for s in range(20)])
    np.testing.assert_array_equal(
        loaded.predict(observations, deterministic=True)[0],
        agent.predict(observations, deterministic=True)[0],
    )
    saved_moments = agent.optimizer.state_dict()["state"]
    for key, moments in loaded.optimizer.state_dict()["state"].items():
        torch.testing.assert_close(moments["exp_avg"], saved_moments[key]["exp_avg"])
    with zipfile.ZipFile(path, "a") as zf:
        zf.writestr("extra.pkl", b"not allowed")
    with pytest.raises(AgentFileError, match=r"extra\.pkl"):
        reinforce.load(path)
