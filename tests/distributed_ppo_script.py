"""One process of the 2-process PPO++ run that tests/test_distributed.py launches.

Run by ``torchrun --nproc_per_node 2 tests/distributed_ppo_script.py OUT``: each process
trains PPO++ on TextGen-TinyReviews-v0 for two iterations (EOS allowed, so its episodes
end at different lengths from the other's), saves a checkpoint, and writes what it saw
to ``OUT/process_<rank>.json``: the tokens and prompts of its rollouts, its optimizer
steps, its minibatches per epoch (its own and after padding), a hash of its parameters and
what it resumed from the main process's checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import gymnasium as gym
import torch

from lfi_gym.agents import LMPolicy, ppo
from lfi_gym.agents.guided import PPOPlusPlus

TEXT = "TextGen-TinyReviews-v0"
#: Two rows per wave and 96 tokens per update over both processes: about one wave per
#: process per iteration; minibatches of 24 tokens split each process's tokens into a
#: number of minibatches that depends on its episode lengths.
SETTINGS = {"n_envs": 2, "n_steps": 96, "batch_size": 24, "n_epochs": 2, "learning_rate": 1e-3}


def main(out: Path) -> None:
    torch.set_num_threads(1)
    env = gym.make(TEXT)
    guide = LMPolicy.from_pretrained("lfi-gym/tinyreviews-lm", env=env)
    agent = PPOPlusPlus(
        env, guide=guide, beta=0.5, seed=0, tensorboard_log=str(out / "tb"), **SETTINGS
    )
    rank = agent.accelerator.process_index
    segments: list = []
    update = agent._update

    def record(waves):
        segments.extend(s for w in waves for s in w.segments)
        collected.append(sum(w.steps for w in waves))
        return update(waves)

    collected: list[int] = []
    agent._update = record
    minibatches: list[dict[str, list[int]]] = []
    pad = ppo.padded_plan

    def record_plan(plan, lengths):
        padded = pad(plan, lengths)
        own, run = [len(e) for e in plan], [len(e) for e in padded]
        minibatches.append({"own": own, "run": run})
        return padded

    ppo.padded_plan = record_plan
    agent.learn(1)  # one iteration each: learn stops once the budget is reached
    agent.learn(1, reset_num_timesteps=False)
    checkpoint = agent.save(out / f"checkpoint_saved_by_process_{rank}")
    # Every process resumes from the main process's checkpoint.
    agent.accelerator.wait_for_everyone()
    resumed = PPOPlusPlus.load(checkpoint.with_name("checkpoint_saved_by_process_0.zip"), env=env)
    digest = hashlib.sha256()
    for parameter in agent.policy.parameters():
        digest.update(parameter.detach().cpu().numpy().tobytes())
    prompt_length = agent.policy.prompt_length
    report = {
        "num_processes": agent.accelerator.num_processes,
        "iterations": agent.iteration,
        "optimizer_steps": agent._n_updates,
        "num_timesteps": agent.num_timesteps,
        "tokens_collected": collected,
        "learner_tokens": sum(len(s) for s in segments),
        "minibatches_per_epoch": minibatches,
        "segment_lengths": [len(s) for s in segments],
        "prompts": [s.next_observation["input_ids"][:prompt_length].tolist() for s in segments],
        "parameters_sha256": digest.hexdigest(),
        "resumed_parameters_equal": all(
            torch.equal(a, b)
            for a, b in zip(agent.policy.parameters(), resumed.policy.parameters(), strict=True)
        ),
        "resumed_episode_seeds": resumed._rng.integers(2**31 - 1, size=4).tolist(),
    }
    (out / f"process_{rank}.json").write_text(json.dumps(report))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
