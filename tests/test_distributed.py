"""Multi-process training of the PPO family (agents/distributed.py).

One test launches two CPU processes (torchrun, gloo) training PPO++ on TinyReviews and
checks what DDP needs and what the user sees: equal optimizer steps and parameters,
different rollouts, token counts summed over processes, one TensorBoard run and one
checkpoint. The others check the pure logic against hand-computed values.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

from lfi_gym.agents import distributed
from lfi_gym.agents.distributed import Processes, merge_stats, padded_plan, process_seed
from lfi_gym.agents.ppo import PPO

SCRIPT = Path(__file__).with_name("distributed_ppo_script.py")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_two_processes_train_ppo_plus_plus_in_step(tmp_path):
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nnodes",
        "1",
        "--nproc_per_node",
        "2",
        "--master_addr",
        "127.0.0.1",
        "--master_port",
        str(_free_port()),
        str(SCRIPT),
        str(tmp_path),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, timeout=240, env=env)
    print(f"2-process run: {time.perf_counter() - started:.1f} s")
    assert done.returncode == 0, done.stderr[-6000:]
    first, second = (json.loads((tmp_path / f"process_{r}.json").read_text()) for r in (0, 1))

    assert first["num_processes"] == second["num_processes"] == 2
    # EOS ends episodes early: the processes collected and trained different token counts,
    # so their own minibatch counts differ, yet they ran the same passes.
    assert first["tokens_collected"] != second["tokens_collected"]
    assert first["learner_tokens"] != second["learner_tokens"]
    first_plans, second_plans = first["minibatches_per_epoch"], second["minibatches_per_epoch"]
    assert len(first_plans) == len(second_plans) == 2  # one plan per update
    assert any(a["own"] != b["own"] for a, b in zip(first_plans, second_plans, strict=True))
    for a, b in zip(first_plans, second_plans, strict=True):
        most = [max(x, y) for x, y in zip(a["own"], b["own"], strict=True)]
        assert a["run"] == b["run"] == most
    assert first["iterations"] == second["iterations"] == 2
    assert first["optimizer_steps"] == second["optimizer_steps"]
    assert first["optimizer_steps"] == sum(sum(m["run"]) for m in first["minibatches_per_epoch"])
    assert first["parameters_sha256"] == second["parameters_sha256"]
    # Sharded rollouts: each process its own prompts.
    assert first["prompts"] != second["prompts"]
    assert not set(map(tuple, first["prompts"])) & set(map(tuple, second["prompts"]))

    # Tokens count over both processes, in the agent and in the log.
    total = sum(first["tokens_collected"]) + sum(second["tokens_collected"])
    assert first["num_timesteps"] == second["num_timesteps"] == total
    (run,) = list((tmp_path / "tb").iterdir())
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    scalars = EventAccumulator(str(run)).Reload()
    logged = [e.value for e in scalars.Scalars("time/total_timesteps")]
    assert logged == [first["tokens_collected"][0] + second["tokens_collected"][0], total]
    trained = sum(e.value for e in scalars.Scalars("train/tokens_trained"))
    assert trained == first["learner_tokens"] + second["learner_tokens"]
    # Only the main process wrote its checkpoint; resumed from it, the processes have its
    # weights and again draw different episodes.
    assert sorted(p.name for p in tmp_path.glob("*.zip")) == ["checkpoint_saved_by_process_0.zip"]
    assert first["resumed_parameters_equal"] and second["resumed_parameters_equal"]
    assert first["resumed_episode_seeds"] != second["resumed_episode_seeds"]


# -- the pure logic ---------------------------------------------------------------------


def test_merge_stats_sums_token_counts_and_weights_means_by_their_counts():
    merged = merge_stats(
        [
            {"tokens_trained": (30.0, 1), "policy_loss": (0.5, 3), "kl": (0.2, 30)},
            {"tokens_trained": (10.0, 1), "policy_loss": (-0.1, 1), "kl": (0.6, 10)},
        ]
    )
    assert merged["tokens_trained"] == 40.0
    assert merged["policy_loss"] == pytest.approx((3 * 0.5 - 0.1) / 4)  # 0.35
    assert merged["kl"] == pytest.approx((30 * 0.2 + 10 * 0.6) / 40)  # 0.3


def test_merge_stats_leaves_out_nan_and_zero_weight_values():
    merged = merge_stats(
        [
            {"explained_variance": (float("nan"), 8), "reward": (1.0, 0)},
            {"explained_variance": (0.25, 4), "reward": (3.0, 2)},
        ]
    )
    assert merged == {"explained_variance": 0.25, "reward": 3.0}
    assert np.isnan(merge_stats([{"reward": (float("nan"), 2)}])["reward"])


def test_padded_plan_repeats_an_epochs_first_minibatch_with_weight_zero():
    a, b, c = np.array([0, 1]), np.array([2]), np.array([3, 4])
    padded = padded_plan([[a, b], [c]], [3, 1])
    assert [[(i.tolist(), w) for i, w in epoch] for epoch in padded] == [
        [([0, 1], 1.0), ([2], 1.0), ([0, 1], 0.0)],
        [([3, 4], 1.0)],
    ]


def test_padded_plan_refuses_to_shorten_an_epoch():
    with pytest.raises(ValueError, match="cannot be padded"):
        padded_plan([[np.array([0]), np.array([1])]], [1])


def test_process_zero_keeps_the_seed_and_the_others_get_distinct_ones():
    assert process_seed(7, 0) == 7
    assert process_seed(None, 0) is None
    others = {process_seed(7, r) for r in (1, 2, 3)}
    assert len(others) == 3 and 7 not in others
    assert process_seed(7, 1) == process_seed(7, 1)  # deterministic
    assert all(0 <= s < 2**63 for s in others)


def test_one_process_communicates_nothing_and_returns_its_values():
    class OneProcess:
        num_processes, process_index, is_main_process, device = 1, 0, True, "cpu"

        def gather(self, tensor):
            raise AssertionError("a single process must not communicate")

    processes = Processes(OneProcess())
    assert processes.gather([1.5, 2.0]).tolist() == [[1.5, 2.0]]
    assert processes.max([3, 1]) == [3, 1]
    assert processes.any(False) is False and processes.any(True) is True
    assert processes.main_value(0.25) == 0.25


def test_several_processes_refuse_a_learner_scored_step_by_step(monkeypatch):
    monkeypatch.setattr(distributed.Processes, "count", property(lambda self: 2))
    with pytest.raises(ValueError, match="only with a language-model learner"):
        PPO(gym.make("Control-CartPole-v0"), "MlpPolicy", n_steps=64, batch_size=32)
