"""Guided RL on the offline text envs: BC, PPO, PPO++, AggreVaTeD, LOLS, D2LOLS.

Per seed: BC fine-tunes the env's shipped LM on the demonstrations ``lfi-gym compare``
takes for that env (the guide), then every RL algorithm starts from the env's shipped LM
with that guide and the same token budget. Each agent is evaluated every ``--eval-every``
tokens (reward-vs-tokens curve) and at the end on validation prompts: the env's reward
(sampled, top-k 50), fluency perplexity of the policy on validation references, distinct-2
of its continuations, and wall time.

* ``TextGen-TinyReviews-v0`` (default): BC on positive train reviews; perplexity on the
  first 200 validation reviews.
* ``TextGen-TinyConcepts-v0``: BC on the reference oracle's completions of train prompts;
  perplexity on the first reference of every validation concept set, scored as the
  continuation of its prompt (the env's layout); also concept coverage, the rate of
  completions that use every concept, and CIDEr-D against each set's references (document
  frequencies from the validation split's reference sets).

``--guide`` picks the guided agents' guide: ``bc`` (BC on ``--bc-labels`` labels),
``bc-weak`` (BC on a tenth of them) or ``oracle`` (the env's reference oracle).

    python benchmarks/tinyreviews_rl.py --seeds 0 1 2 --tokens 30000 --out runs/tinyreviews_rl
    python benchmarks/tinyreviews_rl.py --env TextGen-TinyConcepts-v0 --seeds 0 1 2 3 4

Prints a markdown table (per-seed means with a 95% bootstrap CI over seeds) and writes
results.json (every per-seed value) and reward_vs_tokens.png under --out.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from lfi_gym import agents, envs, stats
from lfi_gym.agents.guided import D2LOLS, LOLS, AggreVaTeD, PPOPlusPlus
from lfi_gym.agents.ppo import PPO, TINYREVIEWS
from lfi_gym.agents.rollouts import LEARNER, EpisodePlan, run_wave
from lfi_gym.envs.text.concepts import concept_coverage
from lfi_gym.envs.text.metrics import distinct_n, perplexity
from lfi_gym.envs.text.rewards import CIDErDReward
from lfi_gym.suites import entry_for

TINYREVIEWS_ID = "TextGen-TinyReviews-v0"
TINYCONCEPTS_ID = "TextGen-TinyConcepts-v0"
RL_AGENTS = {
    "PPO": PPO,
    "PPO++": PPOPlusPlus,
    "AggreVaTeD": AggreVaTeD,
    "LOLS": LOLS,
    "D2LOLS": D2LOLS,
}
GUIDES = ("bc", "bc-weak", "oracle")
#: Printed columns: results.json key -> header. Concept columns only where rows have them.
COLUMNS = {
    "reward": "reward",
    "coverage": "coverage",
    "full_coverage": "full coverage",
    "cider_d": "CIDEr-D",
    "perplexity": "perplexity",
    "distinct_2": "distinct-2",
    "wall_s": "wall time (s)",
}


@dataclasses.dataclass(frozen=True)
class ConceptSets:
    """A concept split's rows by prompt text (the decoded prompt names its row), and the
    CIDEr-D scorer whose document frequencies come from all of the split's reference sets."""

    by_prompt: dict[str, tuple[tuple[str, ...], tuple[str, ...]]]  # concepts, references
    cider: CIDErDReward

    @classmethod
    def of(cls, task: Any) -> ConceptSets:
        by_prompt = {}
        for index, sample in enumerate(task.samples):
            by_prompt[task.decode_prompt(task.prompt_ids(index))] = (
                tuple(sample.concepts),
                tuple(sample.references),
            )
        return cls(by_prompt, CIDErDReward([s.references for s in task.samples]))

    def metrics(self, prompts: Sequence[str], completions: Sequence[str]) -> dict[str, float]:
        missing = [p for p in prompts if p not in self.by_prompt]
        if missing:
            raise ValueError(f"prompt {missing[0]!r} is not one of the split's concept prompts")
        rows = [self.by_prompt[p] for p in prompts]
        metrics = concept_metrics(completions, [concepts for concepts, _ in rows])
        cider = self.cider(list(prompts), list(completions), [list(refs) for _, refs in rows])
        return {**metrics, "cider_d": float(np.mean(cider))}


def concept_metrics(
    completions: Sequence[str], concepts: Sequence[Sequence[str]]
) -> dict[str, float]:
    """Mean concept coverage of the completions, and the fraction that use every concept."""
    if len(completions) != len(concepts) or not completions:
        raise ValueError(
            f"need one concept list per completion, got {len(concepts)} lists for "
            f"{len(completions)} completions"
        )
    coverage = np.array(
        [concept_coverage(t, c) for t, c in zip(completions, concepts, strict=True)]
    )
    return {"coverage": float(coverage.mean()), "full_coverage": float(np.mean(coverage == 1.0))}


def mean_and_ci(values: Sequence[float]) -> tuple[float, float, float]:
    """The mean over seeds and its 95% percentile-bootstrap interval."""
    low, high = stats.bootstrap_ci(values, confidence=0.95)
    return float(np.mean(values)), low, high


def evaluate(
    env_id: str,
    policy: Any,
    episodes: int,
    seed: int,
    rows: int = 32,
    concept_sets: ConceptSets | None = None,
) -> dict[str, float]:
    """Sampled continuations of validation prompts: mean reward and distinct-2 (and, given
    ``concept_sets``, the concept metrics of :meth:`ConceptSets.metrics`)."""
    vec = gym.make_vec(env_id, num_envs=rows, split="validation")
    tokenizer = vec.tokenizer
    rewards, texts, prompts = [], [], []
    for wave in range(max(1, episodes // rows)):
        seeds = [seed * 100_000 + wave * rows + r for r in range(rows)]
        result = run_wave(vec, {LEARNER: policy}, [EpisodePlan(LEARNER, LEARNER, 0)] * rows, seeds)
        rewards += result.episode_returns
        for segment in result.segments:
            ids = segment.next_observation["input_ids"]
            mask = segment.next_observation["attention_mask"]
            prompt, completion = slice(None, vec.prompt_length), slice(vec.prompt_length, None)
            texts.append(
                tokenizer.decode(ids[completion][mask[completion] == 1], skip_special_tokens=True)
            )
            prompts.append(
                tokenizer.decode(ids[prompt][mask[prompt] == 1], skip_special_tokens=True)
            )
    vec.close()
    row = {"reward": float(np.mean(rewards)), "distinct_2": distinct_n(texts, 2)}
    if concept_sets is not None:
        row.update(concept_sets.metrics(prompts, texts))
    return row


def fluency_texts(env_id: str) -> tuple[list[str], list[str] | None]:
    """Validation references the policy's fluency perplexity is measured on, and on
    TinyConcepts their prompts (each reference is scored as its prompt's continuation)."""
    if env_id == TINYREVIEWS_ID:
        from lfi_gym.envs.text.tinyreviews import load_split

        return [r.text for r in load_split("validation")[:200]], None
    samples = gym.make(env_id, split="validation").unwrapped.task.samples
    # As the env writes it: a causal LM's continuation starts with a space.
    return [" " + s.references[0] for s in samples], [s.prompt for s in samples]


def fluency_perplexity(
    env_id: str, policy: Any, texts: tuple[list[str], list[str] | None]
) -> float:
    tokenizer = gym.make(env_id).unwrapped.task.tokenizer
    references, prompts = texts
    return perplexity(policy.model, tokenizer, references, prompts=prompts, device=policy.device)


def train_guide(env_id: str, seed: int, labels: int, epochs: int) -> agents.BC:
    """BC on the demonstrations ``lfi-gym compare`` takes for the env (the suite entry's
    ``demo_env_kwargs``): the guide of every RL agent (and the BC row)."""
    demo_env = gym.make(env_id, **entry_for(env_id).demo_env_kwargs)
    demos = agents.Demonstrations.collect(
        demo_env, envs.make_expert(demo_env), n_steps=labels, seed=seed
    )
    bc = agents.BC(gym.make(env_id), demos, policy="LMPolicy", batch_size=32, seed=seed)
    return bc.learn(epochs * len(demos))


def guide_of(name: str, env_id: str, bc_guide: Any, weak_guide: Any) -> Any:
    """The guided agents' guide: the BC policy, the weak BC policy, or the env's reference
    oracle (a guided agent gives each row of its vector env an oracle of its own)."""
    if name == "oracle":
        return envs.make_expert(gym.make(env_id))
    return weak_guide if name == "bc-weak" else bc_guide


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default=TINYREVIEWS_ID, choices=(TINYREVIEWS_ID, TINYCONCEPTS_ID))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--tokens", type=int, default=30_000, help="token budget per RL agent")
    parser.add_argument("--eval-every", type=int, default=6_000)
    parser.add_argument("--eval-episodes", type=int, default=128)
    parser.add_argument("--bc-labels", type=int, default=960)
    parser.add_argument("--bc-epochs", type=int, default=3)
    parser.add_argument(
        "--guide",
        default="bc",
        choices=GUIDES,
        help="guide of the guided agents: BC on --bc-labels labels, BC on a tenth of them, "
        "or the env's reference oracle",
    )
    parser.add_argument("--agents", nargs="+", default=list(RL_AGENTS), choices=list(RL_AGENTS))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", help="default: runs/tinyreviews_rl or runs/tinyconcepts_rl")
    parser.add_argument(
        "--replot",
        nargs="+",
        help="only redraw the table and plot from results.json files (runs of other seeds "
        "merged: each agent's rows in seed order)",
    )
    args = parser.parse_args()
    env_id = args.env
    if args.out is None:
        args.out = "runs/" + env_id.split("-")[1].lower() + "_rl"
    if args.replot:
        results = merge_results([json.loads(Path(path).read_text()) for path in args.replot])
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "results.json").write_text(json.dumps(results, indent=1))
        print_table(results)
        plot(results, out / "reward_vs_tokens.png")
        return
    if args.guide == "bc-weak" and args.bc_labels // 10 < 1:
        parser.error("--guide bc-weak trains on --bc-labels // 10 labels: give --bc-labels >= 10")
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results: dict[str, list[dict]] = {}
    texts = fluency_texts(env_id)
    concept_sets = None
    if env_id == TINYCONCEPTS_ID:
        concept_sets = ConceptSets.of(gym.make(env_id, split="validation").unwrapped.task)
    print(f"{env_id}, guide of the guided agents: {args.guide}")

    def record(name: str, seed: int, policy, seconds: float, curve: list, **extra) -> None:
        torch.manual_seed(10_000 + seed)
        row = evaluate(env_id, policy, args.eval_episodes, 10 + seed, concept_sets=concept_sets)
        row.update(
            perplexity=fluency_perplexity(env_id, policy, texts),
            wall_s=seconds,
            seed=seed,
            curve=curve,
            env=env_id,
            **extra,
        )
        results.setdefault(name, []).append(row)
        print(f"{name} seed {seed}: " + json.dumps({k: v for k, v in row.items() if k != "curve"}))
        (out / "results.json").write_text(json.dumps(results, indent=1))

    for seed in args.seeds:
        model_env = gym.make(env_id)  # every RL agent starts from the env's own LM
        base = agents.LMPolicy.from_pretrained(model_env.unwrapped.task.policy_model, env=model_env)
        record("zero-shot", seed, base, 0.0, [])
        # The BC row is the guided agents' guide: trained only for the guide in use
        # (``--guide bc-weak`` and ``oracle`` runs compare against a ``--guide bc`` run).
        guide = weak_guide = None
        if args.guide in ("bc", "bc-weak"):
            weak = args.guide == "bc-weak"
            labels = args.bc_labels // 10 if weak else args.bc_labels
            started = time.perf_counter()
            policy = train_guide(env_id, seed, labels, args.bc_epochs).policy
            seconds = time.perf_counter() - started
            record("BC-weak" if weak else "BC", seed, policy, seconds, [], labels=labels)
            guide, weak_guide = (None, policy) if weak else (policy, None)
        for name in args.agents:
            guided = RL_AGENTS[name] is not PPO
            kwargs = {"guide": guide_of(args.guide, env_id, guide, weak_guide)} if guided else {}
            agent = RL_AGENTS[name](
                gym.make(env_id), "LMPolicy", seed=seed, **TINYREVIEWS, **kwargs
            )
            curve, elapsed = [], 0.0
            while agent.num_timesteps < args.tokens:
                torch.manual_seed(20_000 + seed)
                curve.append((agent.num_timesteps, evaluate(env_id, agent.policy, 64, 20 + seed)))
                started = time.perf_counter()
                agent.learn(args.eval_every, reset_num_timesteps=False)
                elapsed += time.perf_counter() - started
            curve.append((agent.num_timesteps, evaluate(env_id, agent.policy, 64, 20 + seed)))
            curve = [(t, m["reward"]) for t, m in curve]
            extra = {"guide": args.guide} if guided else {}
            record(name, seed, agent.policy, elapsed, curve, **extra)

    print_table(results)
    plot(results, out / "reward_vs_tokens.png")


def merge_results(runs: Sequence[dict[str, list[dict]]]) -> dict[str, list[dict]]:
    """Runs on other seeds or with other guides as one results dict: agents in first-seen
    order, each agent's rows by seed. A guided agent's rows with a guide other than BC
    become their own agent, ``"PPO++ (oracle guide)"``; a row given twice with the same
    values (the zero-shot row every run records) is kept once; the same agent and seed
    with other values is an error."""
    merged: dict[str, dict[int, dict]] = {}
    for run in runs:
        for name, rows in run.items():
            for row in rows:
                guide = row.get("guide", "bc")
                label = name if guide == "bc" else f"{name} ({guide} guide)"
                seen = merged.setdefault(label, {})
                if row["seed"] in seen and seen[row["seed"]] != row:
                    raise ValueError(
                        f"{label}: seed {row['seed']} is in more than one results file "
                        "with other values"
                    )
                seen[row["seed"]] = row
    return {label: [rows[s] for s in sorted(rows)] for label, rows in merged.items()}


def print_table(results: dict[str, list[dict]]) -> None:
    """Per agent: the mean over seeds of each column [95% bootstrap CI over seeds]."""
    first = next(iter(results.values()))[0]
    guides = sorted({r["guide"] for rows in results.values() for r in rows if "guide" in r})
    if guides:
        print(
            f"\n{first.get('env', TINYREVIEWS_ID)}; guide of the guided agents: {', '.join(guides)}"
        )
    keys = [k for k in COLUMNS if k in first]
    print("\n| agent | " + " | ".join(COLUMNS[k] for k in keys) + " |")
    print("|---|" + "---|" * len(keys))
    for name, rows in results.items():
        cells = []
        for key in keys:
            mean, low, high = mean_and_ci([r[key] for r in rows])
            cells.append(f"{mean:.3f} [{low:.3f}, {high:.3f}]")
        print(f"| {name} | " + " | ".join(cells) + " |")
    n_seeds = max(len(rows) for rows in results.values())
    print(f"(mean over {n_seeds} seed(s) [95% percentile-bootstrap CI over seeds])")


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
    ax.set_ylabel("reward (validation)")
    first = next(iter(results.values()))
    ax.set_title(f"{first[0].get('env', TINYREVIEWS_ID)}: guided RL ({len(first)} seeds)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
