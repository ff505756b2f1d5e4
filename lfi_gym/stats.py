"""Aggregate scores over a few seeds and many tasks, after Agarwal, Schwarzer, Castro,
Courville and Bellemare (2021), "Deep Reinforcement Learning at the Edge of the Statistical
Precipice", NeurIPS.

With 3 to 10 seeds per task, point estimates mislead. The interquartile mean (IQM) of all
runs ignores the outlying quarter at each end, so it is robust like the median but uses
half the runs, which makes it far less noisy than the median. The stratified bootstrap
resamples runs within each task, so every resample keeps every task, and the confidence
intervals reflect the uncertainty of few runs per task, not a shuffled task mix.

Scores are arrays of shape ``(n_runs, n_tasks)`` (runs = seeds), normalised with
:func:`normalize` so that tasks share one scale.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from lfi_gym.agents.files import atomic_write

__all__ = [
    "aggregate",
    "bootstrap_ci",
    "iqm",
    "normalize",
    "performance_profile",
    "performance_profile_ci",
    "plot_performance_profiles",
    "probability_of_improvement",
    "probability_of_improvement_ci",
    "stratified_bootstrap_ci",
]

# A bootstrap evaluates its resamples in chunks of at most this many array elements, so
# that memory stays bounded whatever the number of resamples, runs, tasks or taus.
_CHUNK_ELEMENTS = 1 << 22


# -- point estimates ----------------------------------------------------------------------


def normalize(scores: Any, low: Any, high: Any) -> np.ndarray:
    """``(scores - low) / (high - low)`` elementwise, with ``low`` and ``high`` scalars or
    arrays broadcastable against ``scores`` (e.g. one random and one expert score per task)."""
    scores = _finite(scores, "scores")
    low = _finite(low, "low")
    high = _finite(high, "high")
    try:
        scores, low, high = np.broadcast_arrays(scores, low, high)
    except ValueError:
        raise ValueError(
            f"normalize: scores of shape {scores.shape}, low of shape {low.shape} and high "
            f"of shape {high.shape} do not broadcast together; give low and high as "
            "scalars or one value per task"
        ) from None
    same = high == low
    if same.any():
        where = tuple(int(i) for i in np.argwhere(same)[0])
        raise ValueError(
            f"normalize: high equals low ({float(low[where])!r}) at {int(same.sum())} "
            f"entries, first at index {where}: the normalised score is undefined there; "
            "declare another normalisation pair"
        )
    return (scores - low) / (high - low)


def iqm(values: Any) -> float:
    """Interquartile mean of all values (flattened): the mean of the middle 50% after
    sorting.

    The convention is that of ``scipy.stats.trim_mean(values, 0.25)`` (which the paper's
    code calls): ``floor(n / 4)`` values are cut from each end and the rest averaged with
    equal weights, with no fractional weights when ``n`` is not divisible by 4 (so fewer
    than 4 values give the plain mean)."""
    values = _finite(values, "values").reshape(-1)
    if values.size == 0:
        raise ValueError("iqm: values is empty; give at least one score")
    return float(_iqm_rows(values[None])[0])


def _iqm_rows(rows: np.ndarray) -> np.ndarray:
    """The IQM of each row of a 2-D array."""
    n = rows.shape[1]
    cut = n // 4
    return np.sort(rows, axis=1)[:, cut : n - cut].mean(axis=1)


def _median_of_task_means(scores: np.ndarray) -> float:
    """The paper's Median: the median over tasks of the mean score over runs."""
    return float(np.median(scores.mean(axis=0)))


def performance_profile(scores: Any, taus: Any) -> np.ndarray:
    """For each tau, the fraction of all runs (all entries of the ``(n_runs, n_tasks)``
    array) with a score strictly greater than tau: the paper's run-score distribution."""
    scores = _scores(scores, "scores")
    taus = _taus(taus)
    return _profile_rows(scores.reshape(1, -1), taus)[0]


def _profile_rows(rows: np.ndarray, taus: np.ndarray) -> np.ndarray:
    """The profile of each row of a 2-D array: shape (n_rows, n_taus)."""
    return (rows[:, :, None] > taus).mean(axis=1)


def probability_of_improvement(x: Any, y: Any) -> float:
    """P(X > Y): the probability that a run of agent ``x`` scores above a run of agent ``y``
    on the same task, averaged over tasks.

    Per task it is the Mann-Whitney U statistic over ``n * m`` (ties count 1/2), for ``x`` of
    shape ``(n, n_tasks)`` and ``y`` of shape ``(m, n_tasks)``; the run counts may differ,
    the tasks must be the same ones in the same column order."""
    x, y = _pair(x, y)
    return float(_improvement_rows(x[None], y[None])[0])


def _improvement_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """P(X > Y) for each pair of a stack: x (k, n, n_tasks), y (k, m, n_tasks) -> (k,)."""
    xs = x[:, :, None, :]
    ys = y[:, None, :, :]
    wins = (xs > ys).mean(axis=(1, 2)) + 0.5 * (xs == ys).mean(axis=(1, 2))
    return wins.mean(axis=1)


# -- bootstrap ----------------------------------------------------------------------------


def bootstrap_ci(
    values: Any,
    *,
    confidence: float = 0.95,
    n_resamples: int = 10_000,
    seed: int = 0,
    statistic: Callable[[np.ndarray], float] = np.mean,
) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of ``statistic`` over 1-D ``values`` (one
    score per seed). One value, or identical values, give a zero-width interval."""
    values = _finite(values, "values")
    if values.ndim != 1:
        raise ValueError(
            f"bootstrap_ci: values must be 1-D (one score per seed), got shape "
            f"{values.shape}; for runs x tasks use stratified_bootstrap_ci"
        )
    if values.size == 0:
        raise ValueError("bootstrap_ci: values is empty; give at least one score")
    _check_bootstrap_args(confidence, n_resamples)
    # A stratified bootstrap over a single task is the ordinary bootstrap.
    batched = _batched(statistic)
    distribution = _bootstrap(
        (values[:, None],),
        lambda stack: batched(stack[:, :, 0]),
        n_resamples=n_resamples,
        seed=seed,
        elements_per_resample=values.size,
    )
    low, high = _percentile_interval(distribution, confidence)
    return float(low), float(high)


def stratified_bootstrap_ci(
    scores: Any,
    statistic: Callable[[np.ndarray], float] = iqm,
    *,
    confidence: float = 0.95,
    n_resamples: int = 2_000,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile confidence interval of ``statistic`` by the stratified bootstrap: each
    resample draws ``n_runs`` runs with replacement independently within each task (column)
    of ``scores`` ``(n_runs, n_tasks)``, then applies ``statistic`` to the resampled
    ``(n_runs, n_tasks)`` array.

    ``statistic`` maps one such array to a number; :func:`iqm`, ``np.mean`` and
    ``np.median`` (over all entries) run vectorised over the resamples, any other function
    once per resample."""
    scores = _scores(scores, "scores")
    _check_bootstrap_args(confidence, n_resamples)
    distribution = _bootstrap(
        (scores,),
        _batched(statistic),
        n_resamples=n_resamples,
        seed=seed,
        elements_per_resample=scores.size,
    )
    low, high = _percentile_interval(distribution, confidence)
    return float(low), float(high)


def aggregate(
    scores: Any, *, confidence: float = 0.95, n_resamples: int = 2_000, seed: int = 0
) -> dict[str, Any]:
    """The paper's aggregate metrics of one agent's normalised ``(n_runs, n_tasks)``
    scores, each with its stratified bootstrap interval:

    - ``iqm``: interquartile mean of all runs (:func:`iqm`);
    - ``mean``: mean of all runs;
    - ``median``: median over tasks of the per-task mean score.

    The three intervals come from the same resamples, which are those of
    :func:`stratified_bootstrap_ci` with the same ``seed`` and ``n_resamples``."""
    scores = _scores(scores, "scores")
    _check_bootstrap_args(confidence, n_resamples)
    names = ("iqm", "mean", "median")
    statistics = (iqm, np.mean, _median_of_task_means)
    batched = [_batched(s) for s in statistics]
    distribution = _bootstrap(
        (scores,),
        lambda stack: np.stack([b(stack) for b in batched], axis=1),
        n_resamples=n_resamples,
        seed=seed,
        elements_per_resample=scores.size,
    )
    lows, highs = _percentile_interval(distribution, confidence)
    result: dict[str, Any] = {}
    for i, (name, statistic) in enumerate(zip(names, statistics, strict=True)):
        result[name] = float(statistic(scores))
        result[f"{name}_ci"] = (float(lows[i]), float(highs[i]))
    return result


def performance_profile_ci(
    scores: Any,
    taus: Any,
    *,
    confidence: float = 0.95,
    n_resamples: int = 2_000,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Stratified bootstrap band of :func:`performance_profile`: the lower and upper
    percentile bounds, one per tau."""
    scores = _scores(scores, "scores")
    taus = _taus(taus)
    _check_bootstrap_args(confidence, n_resamples)
    distribution = _bootstrap(
        (scores,),
        lambda stack: _profile_rows(stack.reshape(len(stack), -1), taus),
        n_resamples=n_resamples,
        seed=seed,
        elements_per_resample=scores.size * taus.size,
    )
    return _percentile_interval(distribution, confidence)


def probability_of_improvement_ci(
    x: Any,
    y: Any,
    *,
    confidence: float = 0.95,
    n_resamples: int = 2_000,
    seed: int = 0,
) -> tuple[float, float]:
    """Stratified bootstrap interval of :func:`probability_of_improvement`: each resample
    draws the runs of ``x`` and those of ``y`` with replacement, independently within each
    task."""
    x, y = _pair(x, y)
    _check_bootstrap_args(confidence, n_resamples)
    distribution = _bootstrap(
        (x, y),
        _improvement_rows,
        n_resamples=n_resamples,
        seed=seed,
        elements_per_resample=x.shape[0] * y.shape[0] * x.shape[1],
    )
    low, high = _percentile_interval(distribution, confidence)
    return float(low), float(high)


def _bootstrap(
    arrays: tuple[np.ndarray, ...],
    batched: Callable[..., np.ndarray],
    *,
    n_resamples: int,
    seed: int,
    elements_per_resample: int,
) -> np.ndarray:
    """The bootstrap distribution of ``batched``: it gets one stratified resample stack
    ``(k, n_runs, n_tasks)`` per array and returns ``k`` results; returned stacked over all
    ``n_resamples`` resamples. The draws depend only on the seed and the shapes."""
    rng = np.random.default_rng(seed)
    per_chunk = max(1, _CHUNK_ELEMENTS // max(1, elements_per_resample))
    chunks = []
    for start in range(0, n_resamples, per_chunk):
        k = min(per_chunk, n_resamples - start)
        chunks.append(np.asarray(batched(*(_stratified_resample(a, k, rng) for a in arrays))))
    return np.concatenate(chunks)


def _stratified_resample(scores: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """``k`` resamples of ``scores`` ``(n_runs, n_tasks)``: in each, every task's column is
    ``n_runs`` draws with replacement from that task's runs, independently per task."""
    n_runs, n_tasks = scores.shape
    runs = rng.integers(0, n_runs, size=(k, n_runs, n_tasks))
    return scores[runs, np.arange(n_tasks)]


def _batched(statistic: Callable[[np.ndarray], float]) -> Callable[[np.ndarray], np.ndarray]:
    """``statistic`` applied to each sample of a stack ``(k, ...)``, returning ``(k,)``."""
    if statistic is iqm:
        return lambda stack: _iqm_rows(stack.reshape(len(stack), -1))
    if statistic is np.mean:
        return lambda stack: stack.reshape(len(stack), -1).mean(axis=1)
    if statistic is np.median:
        return lambda stack: np.median(stack.reshape(len(stack), -1), axis=1)
    if statistic is _median_of_task_means:
        return lambda stack: np.median(stack.mean(axis=1), axis=1)
    return lambda stack: np.array([float(statistic(sample)) for sample in stack])


def _percentile_interval(distribution: np.ndarray, confidence: float) -> tuple[Any, Any]:
    """The percentile interval: the (1 - confidence) / 2 and (1 + confidence) / 2 quantiles
    of the bootstrap distribution, over its first axis."""
    if not np.isfinite(distribution).all():
        raise ValueError(
            "the statistic gave a non-finite value on some bootstrap resample; use a "
            "statistic defined for every resample of the scores"
        )
    low, high = np.quantile(distribution, [(1 - confidence) / 2, (1 + confidence) / 2], axis=0)
    return low, high


# -- plot ---------------------------------------------------------------------------------


def plot_performance_profiles(
    profiles: Mapping[str, Any],
    path: str | Path,
    *,
    taus: Any = None,
    title: str | None = None,
) -> Path:
    """One line per agent: the fraction of its runs scoring above each normalised score
    tau, with its 95% stratified bootstrap band; written as a PNG to ``path``.

    ``profiles`` maps an agent's name to its normalised ``(n_runs, n_tasks)`` scores.
    Default ``taus``: 101 points from ``min(0, lowest score)`` to ``max(1, highest)``."""
    # The object-oriented API with an Agg canvas: no pyplot, so no global backend switch
    # in the caller's process (notebooks keep theirs).
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if not profiles:
        raise ValueError("plot_performance_profiles: profiles is empty; give one agent or more")
    all_scores = {name: _scores(s, f"profiles[{name!r}]") for name, s in profiles.items()}
    if taus is None:
        lowest = min(float(s.min()) for s in all_scores.values())
        highest = max(float(s.max()) for s in all_scores.values())
        taus = np.linspace(min(0.0, lowest), max(1.0, highest), 101)
    taus = _taus(taus)

    fig = Figure(figsize=(6.4, 4.6), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    for i, (name, scores) in enumerate(all_scores.items()):
        color = f"C{i}"
        n_runs, n_tasks = scores.shape
        ax.plot(
            taus,
            performance_profile(scores, taus),
            color=color,
            linewidth=2,
            label=f"{name} ({n_runs} runs x {n_tasks} task{'s' if n_tasks != 1 else ''})",
        )
        low, high = performance_profile_ci(scores, taus)
        ax.fill_between(taus, low, high, color=color, alpha=0.2, linewidth=0)
    ax.set_xlabel("normalised score τ")
    ax.set_ylabel("fraction of runs with score > τ")
    ax.set_xlim(taus[0], taus[-1])
    ax.set_ylim(0.0, 1.02)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper right")
    ax.set_title(title or "Performance profiles (95% stratified bootstrap CIs)")
    path = Path(path)
    with atomic_write(path) as f:
        fig.savefig(f, format="png", dpi=120)
    return path


# -- input checks -------------------------------------------------------------------------


def _finite(values: Any, name: str) -> np.ndarray:
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(
            f"{name} must be numbers (an array of scores), got {type(values).__name__}"
        ) from None
    bad = ~np.isfinite(array)
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0]) if array.ndim else ()
        raise ValueError(
            f"{name} has {int(bad.sum())} non-finite values (NaN or inf), first at index "
            f"{where}: drop or fix those runs before computing statistics"
        )
    return array


def _scores(scores: Any, name: str) -> np.ndarray:
    array = _finite(scores, name)
    if array.ndim != 2:
        raise ValueError(
            f"{name} must be a 2-D array (n_runs, n_tasks), got shape {array.shape}; "
            "for a single task pass scores[:, None]"
        )
    if array.size == 0:
        raise ValueError(f"{name} is empty (shape {array.shape}); give one run and task or more")
    return array


def _pair(x: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
    x = _scores(x, "x")
    y = _scores(y, "y")
    if x.shape[1] != y.shape[1]:
        raise ValueError(
            f"x has {x.shape[1]} tasks and y has {y.shape[1]} (shapes {x.shape} and "
            f"{y.shape}): compare two agents on the same tasks, one column per task"
        )
    return x, y


def _taus(taus: Any) -> np.ndarray:
    array = _finite(taus, "taus")
    if array.ndim != 1 or array.size == 0:
        raise ValueError(
            f"taus must be a non-empty 1-D array of thresholds, got shape {array.shape}"
        )
    return array


def _check_bootstrap_args(confidence: float, n_resamples: int) -> None:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be between 0 and 1 (exclusive), got {confidence!r}")
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, (int, np.integer)):
        raise ValueError(f"n_resamples must be an integer, got {n_resamples!r}")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be 1 or more, got {n_resamples}")
