"""The DRIL benchmark's analysis: score against the number of expert demonstrations.

The DRIL paper's figure (Brantley, Sun and Henaff 2020, Figure 3a): for each game, BC, DAgger
and DRIL trained from 1, 3, 5, 10 or 20 expert episodes, several seeds, scored raw and
expert-normalised, ``(score - random) / (expert - random)``, with 95% bootstrap confidence
intervals over seeds, and DRIL minus BC paired by seed.

The runs are those of ``lfi-gym compare`` (:mod:`lfi_gym.compare`) on suite entries whose
curve is counted in expert episodes (``curve_unit="expert_episodes"``: the
``atari-imitation`` suite on MinAtar, ``atari-imitation-ale`` on the ALE). This module only
reads their results; the random and expert scores that normalise a seed's runs are the
runner's reference runs on that seed's own evaluation episodes.

    lfi-gym compare --suite atari-imitation --seeds 3 --out results/

>>> from lfi_gym.compare import CompareResults
>>> from lfi_gym import imitation
>>> print(imitation.report(CompareResults.load("results/"), figure="score_vs_demos.png"))

Each DRIL run is scored once, at the end of its RL steps: the runner has no within-run
learning curve, so DRIL's score against RL steps (the old sweep's ``dril_eval_every``) is
no longer measured; a shorter run is another comparison with a smaller ``total_timesteps``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lfi_gym import stats
from lfi_gym.agents.files import atomic_write
from lfi_gym.compare import CompareResults
from lfi_gym.suites import REFERENCE_POLICIES, SuiteEntry

#: The figure's file name when :func:`report` writes it beside a results folder.
FIGURE_FILE = "score_vs_demos.png"

_LABELS = {"bc": "BC", "dagger": "DAgger (expert)", "dril": "DRIL"}


def _as_results(results: CompareResults | str | Path) -> CompareResults:
    return results if isinstance(results, CompareResults) else CompareResults.load(results)


def imitation_entries(results: CompareResults) -> list[SuiteEntry]:
    """The entries of ``results`` whose curves are counted in expert episodes."""
    return [e for e in results.entries if e.curve_unit == "expert_episodes"]


def _references(results: CompareResults, env_id: str) -> dict[int, tuple[float, float]]:
    """Per seed: the (random, expert) mean scores on that seed's evaluation episodes."""
    random = results.reference_scores(env_id, "random")
    expert = results.reference_scores(env_id, "expert")
    out = {}
    for seed in sorted(set(random) & set(expert)):
        low, high = float(np.mean(random[seed])), float(np.mean(expert[seed]))
        if low == high:
            raise ValueError(
                f"{env_id} seed {seed}: the random policy and the expert both score {low:g} "
                "on the evaluation episodes, so the expert-normalised score is undefined; "
                "rerun with more evaluation episodes or longer episodes"
            )
        out[seed] = (low, high)
    return out


def _per_seed(
    results: CompareResults, entry: SuiteEntry, agent: str
) -> dict[int, dict[int, dict[str, Any]]]:
    """An agent's scores: {demonstrations: {seed: curve point}}, seeds with references."""
    references = _references(results, entry.env_id)
    out: dict[int, dict[int, dict[str, Any]]] = {}
    for seed, points in results.curve(entry.env_id, agent).items():
        if seed not in references:
            raise ValueError(
                f"{entry.env_id}: {agent} ran with seed {seed} but the random or expert "
                "reference did not; rerun the comparison"
            )
        for point in points:
            out.setdefault(point["point"], {})[seed] = point
    return out


def summarize(results: CompareResults | str | Path) -> list[dict[str, Any]]:
    """One row per (game, agent, demonstrations): each seed's score (the mean over its
    evaluation episodes) raw and expert-normalised by that seed's random and expert
    scores, their means over seeds with 95% bootstrap CIs, and the mean references,
    expert labels and training time. ``results``: a :class:`CompareResults` or a folder
    ``lfi-gym compare`` wrote."""
    results = _as_results(results)
    rows = []
    for entry in imitation_entries(results):
        references = _references(results, entry.env_id)
        agents = [a for a in results.agent_names(entry) if a not in REFERENCE_POLICIES]
        per_agent = {agent: _per_seed(results, entry, agent) for agent in agents}
        for n_demos in entry.curve_points:
            for agent in agents:
                by_seed = per_agent[agent].get(n_demos)
                if not by_seed:
                    continue
                seeds = sorted(by_seed)
                raw = np.array([np.mean(by_seed[s]["scores"]) for s in seeds])
                low = np.array([references[s][0] for s in seeds])
                high = np.array([references[s][1] for s in seeds])
                normalized = stats.normalize(raw, low, high)
                rows.append(
                    {
                        "env_id": entry.env_id,
                        "agent": agent,
                        "n_demos": n_demos,
                        "n_seeds": len(seeds),
                        "seeds": seeds,
                        "raw_mean": float(raw.mean()),
                        "raw_ci": stats.bootstrap_ci(raw),
                        "normalized_mean": float(normalized.mean()),
                        "normalized_ci": stats.bootstrap_ci(normalized),
                        "random": float(low.mean()),
                        "expert": float(high.mean()),
                        "expert_labels": float(
                            np.mean([by_seed[s]["budgets"]["expert_labels"] for s in seeds])
                        ),
                        "train_time_s": float(np.mean([by_seed[s]["train_time_s"] for s in seeds])),
                    }
                )
    return rows


def paired_differences(
    results: CompareResults | str | Path, agent: str = "dril", baseline: str = "bc"
) -> list[dict[str, Any]]:
    """``agent`` minus ``baseline``, expert-normalised, paired by seed (both trained on that
    seed's demonstrations and evaluated on its episodes): one row per (game,
    demonstrations) with the mean difference, its 95% bootstrap CI over seeds and the
    per-seed (agent, baseline) raw scores."""
    results = _as_results(results)
    rows = []
    for entry in imitation_entries(results):
        names = results.agent_names(entry)
        if agent not in names or baseline not in names:
            continue
        references = _references(results, entry.env_id)
        ours, theirs = (_per_seed(results, entry, name) for name in (agent, baseline))
        for n_demos in entry.curve_points:
            a, b = ours.get(n_demos, {}), theirs.get(n_demos, {})
            seeds = sorted(set(a) & set(b))
            if not seeds:
                continue
            pairs = [
                (float(np.mean(a[s]["scores"])), float(np.mean(b[s]["scores"]))) for s in seeds
            ]
            low = np.array([references[s][0] for s in seeds])
            high = np.array([references[s][1] for s in seeds])
            diffs = stats.normalize([p[0] for p in pairs], low, high) - stats.normalize(
                [p[1] for p in pairs], low, high
            )
            rows.append(
                {
                    "env_id": entry.env_id,
                    "n_demos": n_demos,
                    "seeds": seeds,
                    "pairs": pairs,
                    "difference_mean": float(diffs.mean()),
                    "difference_ci": stats.bootstrap_ci(diffs),
                }
            )
    return rows


def _game(env_id: str) -> str:
    parts = env_id.split("-")
    return parts[1] if len(parts) > 2 else env_id


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
            f"| {_game(r['env_id'])} | {r['n_demos']} | {len(r['seeds'])} | {pairs} | "
            f"{r['difference_mean']:+.2f} [{low:+.2f}, {high:+.2f}] |"
        )
    return "\n".join(lines)


def markdown_table(rows: Sequence[dict[str, Any]]) -> str:
    """:func:`summarize` as a markdown table."""
    lines = [
        "| game | agent | demos | expert labels | seeds | score (95% CI) "
        "| normalised (95% CI) | random | expert |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {_game(r['env_id'])} | {r['agent']} | {r['n_demos']} | "
            f"{r['expert_labels']:.0f} | {r['n_seeds']} | "
            f"{r['raw_mean']:.2f} [{r['raw_ci'][0]:.2f}, {r['raw_ci'][1]:.2f}] | "
            f"{r['normalized_mean']:.2f} [{r['normalized_ci'][0]:.2f}, "
            f"{r['normalized_ci'][1]:.2f}] | {r['random']:.2f} | {r['expert']:.2f} |"
        )
    return "\n".join(lines)


def plot(rows: Sequence[dict[str, Any]], path: str | Path, normalized: bool = True) -> Path:
    """Score against demonstrations, one panel per game, one line per agent with its 95%
    bootstrap CI over seeds."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import NullFormatter

    games = list(dict.fromkeys(r["env_id"] for r in rows))
    agents = list(dict.fromkeys(r["agent"] for r in rows))
    fig = Figure(figsize=(5.2 * max(len(games), 1), 4.2), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, max(len(games), 1), squeeze=False).ravel()
    key = "normalized" if normalized else "raw"
    for ax, env_id in zip(axes, games, strict=False):
        game_rows = [r for r in rows if r["env_id"] == env_id]
        for i, agent in enumerate(agents):
            points = sorted(
                (r for r in game_rows if r["agent"] == agent), key=lambda r: r["n_demos"]
            )
            if not points:
                continue
            x = np.array([r["n_demos"] for r in points])
            mean = np.array([r[f"{key}_mean"] for r in points])
            low = np.array([r[f"{key}_ci"][0] for r in points])
            high = np.array([r[f"{key}_ci"][1] for r in points])
            label = _LABELS.get(agent, agent)
            ax.plot(x, mean, marker="o", color=f"C{i}", linewidth=2, label=label)
            ax.fill_between(x, low, high, color=f"C{i}", alpha=0.2, linewidth=0)
        if normalized:
            ax.axhline(1.0, color="0.3", linestyle="--", linewidth=1.2, label="expert")
            ax.axhline(0.0, color="0.6", linestyle=":", linewidth=1.2, label="random")
        else:
            ax.axhline(game_rows[0]["expert"], color="0.3", linestyle="--", label="expert")
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
    names = " vs ".join(_LABELS.get(a, a).split(" (")[0] for a in agents)
    fig.suptitle(f"{names}, mean and 95% bootstrap CI over {seeds} seeds", fontsize="medium")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as f:
        fig.savefig(f, format="png", dpi=120)
    return path


def report(results: CompareResults | str | Path, figure: str | Path | None = None) -> str:
    """The benchmark's markdown: the summary table, then DRIL minus BC paired by seed where
    both ran; with ``figure``, also writes the normalised score against demonstrations
    there. "" when ``results`` has no entry counted in expert episodes."""
    results = _as_results(results)
    rows = summarize(results)
    if not rows:
        return ""
    text = (
        "Score against expert demonstrations: mean [95% bootstrap CI] over seeds of each "
        "seed's mean evaluation score; normalised = (score - random) / (expert - random), "
        "random and expert measured on the same seed's evaluation episodes.\n\n"
        + markdown_table(rows)
    )
    paired = paired_differences(results)
    if paired:
        text += "\n\nDRIL minus BC, paired by seed:\n\n" + paired_table(paired)
    if figure is not None:
        plot(rows, figure)
    return text
