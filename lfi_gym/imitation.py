"""The Atari imitation benchmark: score against the number of expert demonstrations.

The DRIL paper's figure: for each game, BC, DAgger and DRIL trained from 1, 3, 5, 10 or 20
expert episodes, several seeds, scored raw and expert-normalised,
``(score - random) / (oracle - random)``, with bootstrap confidence intervals over seeds.

- BC: ``lfi_gym.agents.BC`` on the demonstrations, ``bc_epochs`` passes, the network
  ``policy="auto"`` picks (:func:`lfi_gym.agents.learners.auto_policy`; DRIL's learner too).
- DAgger: ``lfi_gym.agents.DAgger`` with the env's oracle, the same number of expert labels as
  the demonstrations hold (an equal-label comparison), in 10 rounds.
- DRIL: ``lfi_gym.agents.DRIL`` on the demonstrations with ``dril_timesteps`` RL steps.

Every run is one JSON file under ``out/runs/``: a sweep that is stopped resumes where it
stopped, and several processes may share one folder (each skips finished runs).

>>> from lfi_gym.imitation import run_sweep, summarize
>>> run_sweep(["MinAtarImitation-Breakout-v0"], demos=[1, 3], seeds=3, out="results/")
>>> rows = summarize("results/")
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from tqdm.auto import tqdm

from lfi_gym.agents.files import atomic_write

DEMO_COUNTS = (1, 3, 5, 10, 20)
SWEEP_AGENTS = ("bc", "dagger", "dril")
#: Evaluation episode i of seed s starts from reset(seed=EVAL_SEED + 1000 * s + i), as in
#: ``lfi-gym compare``: never a demonstration's start.
EVAL_SEED = 10_000
#: Random and oracle scores are measured on these many episodes (seeds EVAL_SEED + i).
REFERENCE_EPISODES = 20


@dataclasses.dataclass(frozen=True)
class ImitationGame:
    """One game of the benchmark and the budgets its agents get."""

    env_id: str
    env_kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)
    eval_episodes: int = 10
    bc_epochs: int = 50
    dagger_rounds: int = 10
    dril_timesteps: int = 200_000
    dril_kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)
    #: Also score DRIL every this many RL steps (its learning curve in the run's file).
    dril_eval_every: int | None = None

    def __post_init__(self) -> None:
        every = self.dril_eval_every
        if every is not None and (
            isinstance(every, bool) or not isinstance(every, int) or every <= 0
        ):
            raise ValueError(
                f"dril_eval_every must be a positive number of RL steps or None (no curve), "
                f"got {every!r}"
            )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


#: The DRIL paper's Atari training envs (Brantley et al. 2020): episodic life, fire reset, clip
#: rewards (unused: DRIL replaces them); evaluation keeps the raw game score.
ATARI_TRAINING = {"episodic_life": True, "fire_reset": True, "clip_rewards": True}

#: CPU-scale defaults: MinAtar with a 500-step horizon and 1M DRIL steps (5% of the paper's
#: 20M; on SpaceInvaders DRIL separates from BC between 400k and 1M steps, see
#: benchmarks/RESULTS.md), scored every 200k; ALE at the DRIL setting.
GAMES: dict[str, ImitationGame] = {
    **{
        f"MinAtarImitation-{game}-v0": ImitationGame(
            f"MinAtarImitation-{game}-v0",
            {"horizon": 500},
            dril_timesteps=1_000_000,
            dril_eval_every=200_000,
        )
        for game in ("Breakout", "Asterix", "SpaceInvaders", "Freeway")
    },
    **{
        f"AtariImitation-{game}-v0": ImitationGame(
            f"AtariImitation-{game}-v0",
            {},
            eval_episodes=10,
            bc_epochs=20,
            dril_timesteps=20_000_000,
            dril_kwargs={"train_env_kwargs": ATARI_TRAINING},
        )
        for game in ("Pong", "Breakout", "SpaceInvaders", "BeamRider", "Qbert", "MsPacman")
    },
}

DEFAULT_GAMES = ("MinAtarImitation-SpaceInvaders-v0", "MinAtarImitation-Freeway-v0")


def game_config(env_id: str, **overrides: Any) -> ImitationGame:
    """The benchmark's settings for ``env_id`` (generic ones for an unlisted id)."""
    from lfi_gym import envs

    envs.check_env_id(env_id)
    base = GAMES.get(env_id, ImitationGame(env_id))
    overrides = {k: v for k, v in overrides.items() if v is not None}
    return dataclasses.replace(base, **overrides)


# -- one run --------------------------------------------------------------------------


def collect_demonstrations(game: ImitationGame, n_demos: int, seed: int):
    """``n_demos`` oracle episodes, the first from ``reset(seed=seed)``."""
    from lfi_gym import agents, envs

    env = gym.make(game.env_id, **game.env_kwargs)
    return agents.Demonstrations.collect(env, envs.make_expert(env), n_episodes=n_demos, seed=seed)


def train_agent(
    game: ImitationGame,
    agent: str,
    n_demos: int,
    seed: int,
    *,
    device: str = "cpu",
    tensorboard_log: str | None = None,
    progress_bar: bool = False,
    curve: list[tuple[int, list[float]]] | None = None,
) -> tuple[Any, int]:
    """Train one agent; returns (policy, expert labels used). With
    ``game.dril_eval_every``, DRIL's (RL steps, evaluation scores) are appended to
    ``curve`` every that many steps."""
    from lfi_gym import agents, envs

    demos = collect_demonstrations(game, n_demos, seed)
    env = gym.make(game.env_id, **game.env_kwargs)
    if agent == "bc":
        bc = agents.BC(env, demos, policy="auto", seed=seed, device=device)
        bc.learn(game.bc_epochs * len(demos), progress_bar=progress_bar)
        return bc, len(demos)
    if agent == "dagger":
        budget = len(demos)
        per_round = max(1, budget // game.dagger_rounds)
        dagger = agents.DAgger(
            env,
            envs.make_expert(env),
            policy="auto",
            steps_per_round=per_round,
            beta_rounds=max(1, game.dagger_rounds // 2),
            n_epochs=max(1, game.bc_epochs // 5),
            seed=seed,
            device=device,
        )
        dagger.learn(budget, progress_bar=progress_bar)
        return dagger, dagger.expert_labels
    if agent == "dril":
        from lfi_gym.agents.dril import DRIL

        dril = DRIL(
            env,
            demos,
            bc_epochs=game.bc_epochs,
            ensemble_epochs=game.bc_epochs,
            seed=seed,
            device=device,
            tensorboard_log=tensorboard_log,
            **game.dril_kwargs,
        )
        for point in learn_scored(dril, game, seed, progress_bar=progress_bar):
            if curve is not None:
                curve.append(point)
        return dril, len(demos)
    raise ValueError(f"unknown agent {agent!r}; the sweep runs {', '.join(SWEEP_AGENTS)}")


def learn_scored(
    dril: Any, game: ImitationGame, seed: int, progress_bar: bool = False
) -> Iterator[tuple[int, list[float]]]:
    """Train ``dril`` up to ``game.dril_timesteps`` RL steps; with ``game.dril_eval_every``,
    yield (steps so far, evaluation scores) after every that many steps."""
    chunk = game.dril_eval_every or game.dril_timesteps
    while dril.num_timesteps < game.dril_timesteps:
        steps = min(chunk, game.dril_timesteps - dril.num_timesteps)
        dril.learn(steps, progress_bar=progress_bar, reset_num_timesteps=False)
        if game.dril_eval_every:
            yield dril.num_timesteps, evaluate(dril, game, seed)


def evaluate(policy: Any, game: ImitationGame, seed: int) -> list[float]:
    """Deterministic returns of ``game.eval_episodes`` episodes (raw game score)."""
    from lfi_gym import agents

    env = gym.make(game.env_id, **game.env_kwargs)
    return agents.episode_returns(
        policy, env, game.eval_episodes, seed=EVAL_SEED + 1000 * seed
    ).tolist()


class _RandomPolicy:
    def __init__(self, env: gym.Env, seed: int) -> None:
        self.observation_space, self.action_space = env.observation_space, env.action_space
        self._rng = np.random.default_rng(seed)

    def predict(self, observation, state=None, episode_start=None, deterministic=False):
        return np.int64(self._rng.integers(self.action_space.n)), state


def reference_scores(game: ImitationGame, out: str | Path | None = None) -> dict[str, float]:
    """Mean score of a uniformly random policy and of the oracle (cached in ``out``)."""
    from lfi_gym import agents, envs

    path = None if out is None else Path(out) / "reference" / f"{game.env_id}.json"
    if path is not None and path.exists():
        return json.loads(path.read_text())
    env = gym.make(game.env_id, **game.env_kwargs)
    random_scores = agents.episode_returns(
        _RandomPolicy(env, 0), env, REFERENCE_EPISODES, seed=EVAL_SEED
    )
    oracle_scores = agents.episode_returns(
        envs.make_expert(env), env, REFERENCE_EPISODES, seed=EVAL_SEED
    )
    scores = {"random": float(random_scores.mean()), "oracle": float(oracle_scores.mean())}
    if path is not None:
        _write_json(path, scores)
    return scores


def run_path(out: str | Path, env_id: str, agent: str, n_demos: int, seed: int) -> Path:
    return Path(out) / "runs" / f"{env_id}__{agent}__{n_demos}__{seed}.json"


def run_sweep(
    games: Iterable[str | ImitationGame] = DEFAULT_GAMES,
    *,
    agents_: Sequence[str] = SWEEP_AGENTS,
    demos: Sequence[int] = DEMO_COUNTS,
    seeds: int | Sequence[int] = 3,
    out: str | Path = "imitation-results",
    device: str = "cpu",
    tensorboard_log: str | None = None,
    progress_bar: bool = True,
) -> Path:
    """Run every (game, agent, demonstrations, seed) not already in ``out``; returns ``out``."""
    configs = [g if isinstance(g, ImitationGame) else game_config(g) for g in games]
    for name in agents_:
        if name not in SWEEP_AGENTS:
            raise ValueError(f"unknown agent {name!r}; the sweep runs {', '.join(SWEEP_AGENTS)}")
    for n in demos:
        if isinstance(n, bool) or not isinstance(n, int) or n <= 0:
            raise ValueError(f"demonstration counts must be positive ints, got {n!r}")
    seed_list = list(range(seeds)) if isinstance(seeds, int) else [int(s) for s in seeds]
    # Fewest demonstrations first: a sweep cut short still has the low-data end.
    jobs = [
        (game, agent, n, seed)
        for n in demos
        for game in configs
        for seed in seed_list
        for agent in agents_
    ]
    bar = tqdm(total=len(jobs), desc="imitation sweep", disable=not progress_bar)
    for game in configs:
        reference_scores(game, out)
    for game, agent, n, seed in jobs:
        path = run_path(out, game.env_id, agent, n, seed)
        bar.set_postfix_str(f"{game.env_id.split('-')[1]} {agent} {n} demos seed {seed}")
        if not path.exists():
            started = time.perf_counter()
            curve: list[tuple[int, list[float]]] = []
            policy, labels = train_agent(
                game,
                agent,
                n,
                seed,
                device=device,
                tensorboard_log=tensorboard_log,
                curve=curve,
            )
            train_time = time.perf_counter() - started
            scores = evaluate(policy, game, seed)
            record = {
                "env_id": game.env_id,
                "agent": agent,
                "n_demos": n,
                "seed": seed,
                "expert_labels": labels,
                "scores": scores,
                "score_mean": float(np.mean(scores)),
                "train_time_s": train_time,
                "config": game.to_dict(),
            }
            if curve:
                record["curve"] = [
                    {"steps": steps, "score_mean": float(np.mean(scores))}
                    for steps, scores in curve
                ]
            _write_json(path, record)
        bar.update(1)
    bar.close()
    return Path(out)


def _write_json(path: Path, data: Any) -> None:
    with atomic_write(path) as f:
        f.write((json.dumps(data, indent=2, allow_nan=False) + "\n").encode())


# -- analysis -------------------------------------------------------------------------


def bootstrap_ci(
    values: Sequence[float], confidence: float = 0.95, n_resamples: int = 10_000, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean (scipy.stats.bootstrap); a single value or
    identical values give a zero-width interval."""
    values = np.asarray(values, dtype=np.float64)
    if len(values) < 2 or np.all(values == values[0]):
        return float(values.mean()), float(values.mean())
    from scipy.stats import bootstrap

    result = bootstrap(
        (values,),
        np.mean,
        confidence_level=confidence,
        n_resamples=n_resamples,
        method="percentile",
        random_state=np.random.default_rng(seed),
    )
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def load_runs(out: str | Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted((Path(out) / "runs").glob("*.json"))]


def _reference(out: str | Path, env_id: str) -> dict[str, float]:
    return json.loads((Path(out) / "reference" / f"{env_id}.json").read_text())


def _normalize(scores: Any, reference: dict[str, float]) -> np.ndarray:
    """(score - random) / (oracle - random); a zero range leaves scores shifted only."""
    scale = (reference["oracle"] - reference["random"]) or 1.0
    return (np.asarray(scores, dtype=np.float64) - reference["random"]) / scale


def _runs_at(out: str | Path, dril_steps: int | None) -> list[dict[str, Any]]:
    """The runs in ``out``, DRIL's as scored at ``dril_steps`` (its end when None)."""
    runs = load_runs(out)
    if dril_steps is None:
        return runs
    return [_at_steps(r, dril_steps) if r["agent"] == "dril" else r for r in runs]


def _at_steps(run: dict[str, Any], steps: int) -> dict[str, Any]:
    """A DRIL run as scored at its first curve point at or past ``steps`` RL steps (SB3
    counts steps in whole rollouts, so a point lands a little past a round number)."""
    points = [p for p in run.get("curve", ()) if p["steps"] >= steps]
    if not points:
        marks = [p["steps"] for p in run.get("curve", ())]
        raise ValueError(
            f"run {run['env_id']} dril {run['n_demos']} demos seed {run['seed']} has no score "
            f"at or past {steps} RL steps (its curve has {marks or 'no points'}); run the "
            f"sweep with dril_eval_every and enough dril_timesteps"
        )
    return {**run, "score_mean": min(points, key=lambda p: p["steps"])["score_mean"]}


def summarize(out: str | Path, dril_steps: int | None = None) -> list[dict[str, Any]]:
    """One row per (game, agent, demonstrations): raw and normalised mean over seeds (each
    seed's score is its mean over evaluation episodes) with 95% bootstrap CIs.
    ``dril_steps`` takes DRIL's scores at that point of its curve (the first point at or
    past it) instead of its end."""
    runs = _runs_at(out, dril_steps)
    groups: dict[tuple[str, str, int], list[dict[str, Any]]] = {}
    for run in runs:
        groups.setdefault((run["env_id"], run["agent"], run["n_demos"]), []).append(run)
    rows = []
    order = {name: i for i, name in enumerate(SWEEP_AGENTS)}
    for (env_id, agent, n), group in sorted(
        groups.items(), key=lambda kv: (kv[0][0], kv[0][2], order.get(kv[0][1], 99))
    ):
        ref = _reference(out, env_id)
        raw = np.array([r["score_mean"] for r in group])
        norm = _normalize(raw, ref)
        rows.append(
            {
                "env_id": env_id,
                "agent": agent,
                "n_demos": n,
                "n_seeds": len(group),
                "seeds": sorted(r["seed"] for r in group),
                "raw_mean": float(raw.mean()),
                "raw_ci": bootstrap_ci(raw),
                "normalized_mean": float(norm.mean()),
                "normalized_ci": bootstrap_ci(norm),
                "random": ref["random"],
                "oracle": ref["oracle"],
                "train_time_s": float(np.mean([r["train_time_s"] for r in group])),
            }
        )
    return rows


def paired_differences(
    out: str | Path, agent: str = "dril", baseline: str = "bc", dril_steps: int | None = None
) -> list[dict[str, Any]]:
    """``agent`` minus ``baseline``, normalised, paired by seed (both trained on that seed's
    demonstrations): one row per (game, demonstrations) with the mean difference, its 95%
    bootstrap CI and the per-seed (agent, baseline) raw scores."""
    runs = _runs_at(out, dril_steps)
    scores: dict[tuple[str, int, str], dict[int, float]] = {}
    for run in runs:
        key = (run["env_id"], run["n_demos"], run["agent"])
        scores.setdefault(key, {})[run["seed"]] = run["score_mean"]
    rows = []
    for env_id, n in sorted({(e, n) for e, n, a in scores if a == agent}):
        ours, theirs = scores[(env_id, n, agent)], scores.get((env_id, n, baseline), {})
        seeds = sorted(set(ours) & set(theirs))
        if not seeds:
            continue
        ref = _reference(out, env_id)
        diffs = _normalize([ours[s] for s in seeds], ref) - _normalize(
            [theirs[s] for s in seeds], ref
        )
        rows.append(
            {
                "env_id": env_id,
                "n_demos": n,
                "seeds": seeds,
                "pairs": [(ours[s], theirs[s]) for s in seeds],
                "difference_mean": float(diffs.mean()),
                "difference_ci": bootstrap_ci(diffs),
            }
        )
    return rows


def paired_table(rows: Sequence[dict[str, Any]], agent: str = "dril", baseline: str = "bc") -> str:
    """:func:`paired_differences` as a markdown table."""
    lines = [
        f"| game | demos | seeds | {agent} / {baseline} per seed "
        "| normalised difference (95% CI) |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        pairs = ", ".join(f"{a:g} / {b:g}" for a, b in r["pairs"])
        low, high = r["difference_ci"]
        lines.append(
            f"| {r['env_id'].split('-')[1]} | {r['n_demos']} | {len(r['seeds'])} | {pairs} | "
            f"{r['difference_mean']:+.2f} [{low:+.2f}, {high:+.2f}] |"
        )
    return "\n".join(lines)


def markdown_table(rows: Sequence[dict[str, Any]]) -> str:
    """The summary as a markdown table."""
    lines = [
        "| game | agent | demos | seeds | score (95% CI) | normalised (95% CI) | random | oracle |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        game = r["env_id"].split("-")[1]
        lines.append(
            f"| {game} | {r['agent']} | {r['n_demos']} | {r['n_seeds']} | "
            f"{r['raw_mean']:.2f} [{r['raw_ci'][0]:.2f}, {r['raw_ci'][1]:.2f}] | "
            f"{r['normalized_mean']:.2f} [{r['normalized_ci'][0]:.2f}, "
            f"{r['normalized_ci'][1]:.2f}] | {r['random']:.2f} | {r['oracle']:.2f} |"
        )
    return "\n".join(lines)


_LABELS = {"bc": "BC", "dagger": "DAgger (oracle)", "dril": "DRIL"}


def plot(rows: Sequence[dict[str, Any]], path: str | Path, normalized: bool = True) -> Path:
    """Score against demonstrations, one panel per game, BC / DAgger / DRIL with 95% CIs."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import NullFormatter

    games = list(dict.fromkeys(r["env_id"] for r in rows))
    fig = Figure(figsize=(5.2 * max(len(games), 1), 4.2), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, max(len(games), 1), squeeze=False).ravel()
    key = "normalized" if normalized else "raw"
    for ax, env_id in zip(axes, games, strict=False):
        game_rows = [r for r in rows if r["env_id"] == env_id]
        for i, agent in enumerate(SWEEP_AGENTS):
            points = sorted(
                (r for r in game_rows if r["agent"] == agent), key=lambda r: r["n_demos"]
            )
            if not points:
                continue
            x = np.array([r["n_demos"] for r in points])
            mean = np.array([r[f"{key}_mean"] for r in points])
            low = np.array([r[f"{key}_ci"][0] for r in points])
            high = np.array([r[f"{key}_ci"][1] for r in points])
            ax.plot(x, mean, marker="o", color=f"C{i}", linewidth=2, label=_LABELS[agent])
            ax.fill_between(x, low, high, color=f"C{i}", alpha=0.2, linewidth=0)
        if normalized:
            ax.axhline(1.0, color="0.3", linestyle="--", linewidth=1.2, label="oracle")
            ax.axhline(0.0, color="0.6", linestyle=":", linewidth=1.2, label="random")
        else:
            ax.axhline(game_rows[0]["oracle"], color="0.3", linestyle="--", label="oracle")
            ax.axhline(game_rows[0]["random"], color="0.6", linestyle=":", label="random")
        ax.set_xscale("log")
        ticks = sorted({r["n_demos"] for r in game_rows})
        ax.set_xticks(ticks, [str(t) for t in ticks])
        ax.xaxis.set_minor_formatter(NullFormatter())  # no "2x10^0" between 1 and 3
        ax.set_title(env_id)
        ax.set_xlabel("expert demonstrations (episodes)")
        ax.set_ylabel("expert-normalised score" if normalized else "score")
        ax.grid(True, alpha=0.3)
        ax.legend(loc="lower right", fontsize=8)
    counts = sorted({r["n_seeds"] for r in rows}) or [0]
    seeds = str(counts[0]) if len(counts) == 1 else f"{counts[0]}-{counts[-1]}"
    fig.suptitle(f"BC vs DAgger vs DRIL, mean and 95% bootstrap CI over {seeds} seeds")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    return path


def curve_rows(out: str | Path) -> list[dict[str, Any]]:
    """DRIL's learning curves: one row per (game, demonstrations, RL steps) that every seed
    of the group reached, normalised mean over seeds with a 95% bootstrap CI, and the
    normalised BC mean of the same seeds (``bc_mean``, None without BC runs)."""
    runs = load_runs(out)
    bc = {
        (r["env_id"], r["n_demos"], r["seed"]): r["score_mean"] for r in runs if r["agent"] == "bc"
    }
    groups: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for run in runs:
        if run["agent"] == "dril" and run.get("curve"):
            groups.setdefault((run["env_id"], run["n_demos"]), []).append(run)
    rows = []
    for (env_id, n), group in sorted(groups.items()):
        ref = _reference(out, env_id)
        per_seed = [{p["steps"]: p["score_mean"] for p in run["curve"]} for run in group]
        common = sorted(set.intersection(*(set(points) for points in per_seed)))
        bc_scores = [bc.get((env_id, n, run["seed"])) for run in group]
        bc_mean = (
            None
            if any(v is None for v in bc_scores)
            else float(_normalize(np.mean(bc_scores), ref))
        )
        for steps in common:
            norm = _normalize([points[steps] for points in per_seed], ref)
            rows.append(
                {
                    "env_id": env_id,
                    "n_demos": n,
                    "steps": steps,
                    "n_seeds": len(group),
                    "normalized_mean": float(norm.mean()),
                    "normalized_ci": bootstrap_ci(norm),
                    "bc_mean": bc_mean,
                }
            )
    return rows


def plot_curves(rows: Sequence[dict[str, Any]], path: str | Path) -> Path:
    """DRIL's normalised score against RL steps, one panel per game and one line per number
    of demonstrations, with BC's score on the same seeds as a dashed line."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    games = list(dict.fromkeys(r["env_id"] for r in rows))
    fig = Figure(figsize=(4.6 * max(len(games), 1), 3.8), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, max(len(games), 1), squeeze=False).ravel()
    for ax, env_id in zip(axes, games, strict=False):
        game_rows = [r for r in rows if r["env_id"] == env_id]
        for i, n in enumerate(sorted({r["n_demos"] for r in game_rows})):
            points = [r for r in game_rows if r["n_demos"] == n]
            x = np.array([r["steps"] for r in points])
            ax.plot(
                x,
                [r["normalized_mean"] for r in points],
                marker="o",
                color=f"C{i}",
                label=f"DRIL, {n} demo{'s' if n > 1 else ''} ({points[0]['n_seeds']} seeds)",
            )
            ax.fill_between(
                x,
                [r["normalized_ci"][0] for r in points],
                [r["normalized_ci"][1] for r in points],
                color=f"C{i}",
                alpha=0.2,
                linewidth=0,
            )
            if points[0]["bc_mean"] is not None:
                ax.axhline(points[0]["bc_mean"], color=f"C{i}", linestyle="--", linewidth=1.2)
        ax.axhline(1.0, color="0.3", linestyle=":", linewidth=1.0)
        ax.set_title(env_id)
        ax.set_xlabel("DRIL RL steps")
        ax.set_ylabel("expert-normalised score")
        ax.grid(True, alpha=0.3)
        ax.legend(loc="best", fontsize=7)
    fig.suptitle("DRIL against RL steps (dashed: BC on the same seeds; dotted: oracle)")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    return path


def report(out: str | Path, figure: str | Path | None = None, dril_steps: int | None = None) -> str:
    """Write ``summary.json``, ``summary.md`` and the figure into ``out``; return the table,
    followed by DRIL minus BC paired by seed where both ran. ``dril_steps``: DRIL as scored
    at that many RL steps (see :func:`summarize`). Where DRIL runs have learning curves,
    their figure goes beside the first (``*_curves.png``)."""
    rows = summarize(out, dril_steps)
    table = markdown_table(rows)
    paired = paired_differences(out, dril_steps=dril_steps)
    if paired:
        table += "\n\nDRIL minus BC, paired by seed:\n\n" + paired_table(paired)
    _write_json(Path(out) / "summary.json", rows)
    (Path(out) / "summary.md").write_text(table + "\n")
    figure = Path(figure or Path(out) / "score_vs_demos.png")
    plot(rows, figure)
    curves = curve_rows(out)
    if curves:
        plot_curves(curves, figure.with_name(f"{figure.stem}_curves.png"))
    return table
