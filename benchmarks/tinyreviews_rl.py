"""Guided RL on TextGen-TinyReviews-v0: BC, PPO, PPO++, AggreVaTeD, LOLS, D2LOLS.

Per seed: BC fine-tunes the shipped LM on positive train reviews (the guide), then every RL
algorithm starts from the shipped LM with that guide and the same token budget. Each
agent is evaluated every ``--eval-every`` tokens (reward-vs-tokens curve) and at the end
on validation prompts: sentiment reward (sampled, top-k 50), fluency perplexity of the
policy on validation reviews, distinct-2 of its continuations, and wall time.

    python benchmarks/tinyreviews_rl.py --seeds 0 1 2 --tokens 30000 --out runs/tinyreviews_rl

Prints a markdown table and writes results.json and reward_vs_tokens.png under --out.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

from lfi_gym import agents, envs
from lfi_gym.agents.guided import D2LOLS, LOLS, AggreVaTeD, PPOPlusPlus
from lfi_gym.agents.ppo import PPO, TINYREVIEWS
from lfi_gym.agents.rollouts import LEARNER, EpisodePlan, run_wave
from lfi_gym.envs.text.metrics import distinct_n, perplexity
from lfi_gym.envs.text.tinyreviews import load_split

ENV_ID = "TextGen-TinyReviews-v0"
RL_AGENTS = {
    "PPO": PPO,
    "PPO++": PPOPlusPlus,
    "AggreVaTeD": AggreVaTeD,
    "LOLS": LOLS,
    "D2LOLS": D2LOLS,
}


def evaluate(policy, episodes: int, seed: int, rows: int = 32) -> dict[str, float]:
    """Sampled continuations of validation prompts: mean reward and distinct-2."""
    vec = gym.make_vec(ENV_ID, num_envs=rows, split="validation")
    tokenizer = vec.tokenizer
    rewards, texts = [], []
    for wave in range(max(1, episodes // rows)):
        seeds = [seed * 100_000 + wave * rows + r for r in range(rows)]
        result = run_wave(vec, {LEARNER: policy}, [EpisodePlan(LEARNER, LEARNER, 0)] * rows, seeds)
        rewards += result.episode_returns
        for segment in result.segments:
            ids = segment.next_observation["input_ids"][vec.prompt_length :]
            mask = segment.next_observation["attention_mask"][vec.prompt_length :]
            texts.append(tokenizer.decode(ids[mask == 1], skip_special_tokens=True))
    vec.close()
    return {"reward": float(np.mean(rewards)), "distinct_2": distinct_n(texts, 2)}


def fluency_perplexity(policy, n_reviews: int = 200) -> float:
    reviews = [r.text for r in load_split("validation")[:n_reviews]]
    tokenizer = gym.make(ENV_ID).unwrapped.task.tokenizer
    return perplexity(policy.model, tokenizer, reviews, device=policy.device)


def train_guide(seed: int, labels: int, epochs: int) -> agents.BC:
    """BC on positive train reviews: the guide of every RL agent (and the BC row)."""
    demo_env = gym.make(ENV_ID, split="train", labels=[1])
    demos = agents.Demonstrations.collect(
        demo_env, envs.make_expert(demo_env), n_steps=labels, seed=seed
    )
    bc = agents.BC(gym.make(ENV_ID), demos, policy="LMPolicy", batch_size=32, seed=seed)
    return bc.learn(epochs * len(demos))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--tokens", type=int, default=30_000, help="token budget per RL agent")
    parser.add_argument("--eval-every", type=int, default=6_000)
    parser.add_argument("--eval-episodes", type=int, default=128)
    parser.add_argument("--bc-labels", type=int, default=960)
    parser.add_argument("--bc-epochs", type=int, default=3)
    parser.add_argument("--agents", nargs="+", default=list(RL_AGENTS))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default="runs/tinyreviews_rl")
    parser.add_argument("--replot", help="only redraw the table and plot from a results.json")
    args = parser.parse_args()
    if args.replot:
        results = json.loads(Path(args.replot).read_text())
        print_table(results)
        plot(results, Path(args.out) / "reward_vs_tokens.png")
        return
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results: dict[str, list[dict]] = {}

    def record(name: str, seed: int, policy, seconds: float, curve: list) -> None:
        torch.manual_seed(10_000 + seed)
        row = evaluate(policy, args.eval_episodes, seed=10 + seed)
        row.update(perplexity=fluency_perplexity(policy), wall_s=seconds, seed=seed, curve=curve)
        results.setdefault(name, []).append(row)
        print(f"{name} seed {seed}: " + json.dumps({k: v for k, v in row.items() if k != "curve"}))
        (out / "results.json").write_text(json.dumps(results, indent=1))

    for seed in args.seeds:
        base = agents.LMPolicy.from_pretrained("lfi-gym/tinyreviews-lm", env=gym.make(ENV_ID))
        record("zero-shot", seed, base, 0.0, [])
        started = time.perf_counter()
        guide = train_guide(seed, args.bc_labels, args.bc_epochs).policy
        record("BC", seed, guide, time.perf_counter() - started, [])
        for name in args.agents:
            env = gym.make(ENV_ID)
            kwargs = {} if RL_AGENTS[name] is PPO else {"guide": guide}
            agent = RL_AGENTS[name](env, "LMPolicy", seed=seed, **TINYREVIEWS, **kwargs)
            curve, elapsed = [], 0.0
            while agent.num_timesteps < args.tokens:
                torch.manual_seed(20_000 + seed)
                curve.append((agent.num_timesteps, evaluate(agent.policy, 64, seed=20 + seed)))
                started = time.perf_counter()
                agent.learn(args.eval_every, reset_num_timesteps=False)
                elapsed += time.perf_counter() - started
            curve.append((agent.num_timesteps, evaluate(agent.policy, 64, seed=20 + seed)))
            curve = [(t, m["reward"]) for t, m in curve]
            record(name, seed, agent.policy, elapsed, curve)

    print_table(results)
    plot(results, out / "reward_vs_tokens.png")


def print_table(results: dict[str, list[dict]]) -> None:
    print("\n| agent | reward | perplexity | distinct-2 | wall time (s) |")
    print("|---|---|---|---|---|")
    for name, rows in results.items():
        cells = []
        for key in ("reward", "perplexity", "distinct_2", "wall_s"):
            values = np.array([r[key] for r in rows])
            cells.append(f"{values.mean():.3f} ± {values.std():.3f}")
        print(f"| {name} | " + " | ".join(cells) + " |")


def plot(results: dict[str, list[dict]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    levels = iter(("gray", "black"))
    for name, rows in results.items():
        curves = [r["curve"] for r in rows if r["curve"]]
        if not curves:  # zero-shot and BC: levels
            value = np.mean([r["reward"] for r in rows])
            color = next(levels, "gray")
            ax.axhline(
                value, color=color, linestyle="--", linewidth=1, label=f"{name} ({value:.2f})"
            )
            continue
        length = min(len(c) for c in curves)
        tokens = np.mean([[t for t, _ in c[:length]] for c in curves], axis=0)
        rewards = np.array([[v for _, v in c[:length]] for c in curves])
        mean, std = rewards.mean(0), rewards.std(0)
        ax.plot(tokens, mean, marker="o", label=name)
        ax.fill_between(tokens, mean - std, mean + std, alpha=0.2)
    ax.set_xlabel("tokens (all policies, roll-ins included)")
    ax.set_ylabel("sentiment reward (validation)")
    ax.set_title(f"{ENV_ID}: guided RL ({len(next(iter(results.values())))} seeds)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
