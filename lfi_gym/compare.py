"""The experiment runner behind ``lfi-gym compare``: equal expert-label budgets per agent.

For each env, seed and agent, :func:`run_compare` trains the agent up to each curve point
(a number of expert labels), evaluates it there, and records the returns; the env's expert
is evaluated once per env as a reference. Every agent sees exactly the same number of
expert labels at every curve point, so the curves compare what each algorithm does with
its labels, not how many it got.

>>> from lfi_gym.compare import run_compare
>>> from lfi_gym.suites import get_suite
>>> results = run_compare(get_suite("default"), seeds=3)
>>> results.save("results/")   # results.json and learning_curves.png
"""

from __future__ import annotations

import dataclasses
import json
import math
import platform
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from lfi_gym import agents, envs
from lfi_gym.agents.files import atomic_write
from lfi_gym.envs.validation import check_positive_int
from lfi_gym.suites import SuiteEntry

#: Evaluation episode ``i`` of seed ``s`` starts from
#: ``reset(seed=EVAL_SEED_OFFSET + EVAL_SEED_STRIDE * s + i)``: far from the training seeds (no
#: agent is evaluated on its demonstrations' starts), the same starts for every agent of a
#: seed, and different starts across seeds (so their spread is not understated).
EVAL_SEED_OFFSET = 10_000
EVAL_SEED_STRIDE = 1_000

RESULTS_FILE = "results.json"
CURVES_FILE = "learning_curves.png"
RESULTS_FORMAT_VERSION = 1

#: ``progress(description, advance)``: called before (advance=0) and after (advance=1)
#: each unit of work (one evaluation of the expert, one agent at one curve point).
ProgressFn = Callable[[str, int], None]

#: A curve trainer yields ``(expert_labels, policy)`` at each curve point.
Trainer = Callable[[str, int, SuiteEntry, dict[str, Any], str], Iterator[tuple[int, Any]]]


# -- records ------------------------------------------------------------------------------


@dataclasses.dataclass
class CurvePoint:
    """One evaluation of one agent: the labels it had used, and its episode returns."""

    expert_labels: int
    returns: list[float]
    train_time_s: float

    @property
    def return_mean(self) -> float:
        return float(np.mean(self.returns))

    @property
    def return_std(self) -> float:
        return float(np.std(self.returns))

    def to_dict(self) -> dict[str, Any]:
        return {
            "expert_labels": self.expert_labels,
            "return_mean": self.return_mean,
            "return_std": self.return_std,
            "returns": list(self.returns),
            "train_time_s": self.train_time_s,
        }


@dataclasses.dataclass
class RunRecord:
    """One agent on one env with one seed: its learning curve and wall time."""

    env_id: str
    agent: str
    seed: int
    curve: list[CurvePoint]
    wall_time_s: float

    @property
    def final(self) -> CurvePoint:
        return self.curve[-1]

    def to_dict(self) -> dict[str, Any]:
        return {
            "env_id": self.env_id,
            "agent": self.agent,
            "seed": self.seed,
            "expert_labels": self.final.expert_labels,
            "return_mean": self.final.return_mean,
            "return_std": self.final.return_std,
            "wall_time_s": self.wall_time_s,
            "curve": [point.to_dict() for point in self.curve],
        }


@dataclasses.dataclass
class CompareResults:
    """Everything one ``run_compare`` call measured, with its configuration."""

    entries: list[SuiteEntry]
    seeds: list[int]
    expert: dict[str, list[float]]
    runs: list[RunRecord]
    config: dict[str, Any]

    def runs_for(self, env_id: str, agent: str) -> list[RunRecord]:
        return [r for r in self.runs if r.env_id == env_id and r.agent == agent]

    def summary(self) -> dict[str, dict[str, Any]]:
        """Per env: per agent, the final return's mean and std over seeds (each seed's value
        is its mean over evaluation episodes), labels, wall time and the mean curve; and
        the expert's return (mean and std over its evaluation episodes)."""
        out: dict[str, dict[str, Any]] = {}
        for entry in self.entries:
            expert = self.expert[entry.env_id]
            env_summary: dict[str, Any] = {
                "expert": {
                    "return_mean": float(np.mean(expert)),
                    "return_std": float(np.std(expert)),
                },
                "agents": {},
            }
            for agent in entry.agents:
                runs = self.runs_for(entry.env_id, agent)
                if not runs:
                    continue
                # Rows: seeds; columns: curve points (equal across seeds by construction).
                curve = np.array([[p.return_mean for p in r.curve] for r in runs])
                labels = [p.expert_labels for p in runs[0].curve]
                env_summary["agents"][agent] = {
                    "return_mean": float(curve[:, -1].mean()),
                    "return_std": float(curve[:, -1].std()),
                    "expert_labels": labels[-1],
                    "wall_time_s": float(np.mean([r.wall_time_s for r in runs])),
                    "n_seeds": len(runs),
                    "curve": {
                        "expert_labels": labels,
                        "return_mean": curve.mean(axis=0).tolist(),
                        "return_std": curve.std(axis=0).tolist(),
                    },
                }
            out[entry.env_id] = env_summary
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": "lfi-gym.compare",
            "format_version": RESULTS_FORMAT_VERSION,
            "config": self.config,
            "expert": {
                env_id: {
                    "return_mean": float(np.mean(r)),
                    "return_std": float(np.std(r)),
                    "returns": list(r),
                }
                for env_id, r in self.expert.items()
            },
            "runs": [run.to_dict() for run in self.runs],
            "summary": self.summary(),
        }

    def save(self, out_dir: str | Path) -> tuple[Path, Path]:
        """Write ``results.json`` and ``learning_curves.png`` into ``out_dir`` (created if
        missing); returns their paths."""
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        json_path = out_dir / RESULTS_FILE
        # allow_nan=False: a NaN would make the file unreadable by strict JSON parsers.
        text = json.dumps(self.to_dict(), indent=2, allow_nan=False) + "\n"
        with atomic_write(json_path) as f:
            f.write(text.encode())
        png_path = plot_learning_curves(self, out_dir / CURVES_FILE)
        return json_path, png_path


# -- trainers -----------------------------------------------------------------------------


def _bc_curve(
    env_id: str, seed: int, entry: SuiteEntry, kwargs: dict[str, Any], device: str
) -> Iterator[tuple[int, Any]]:
    """A fresh BC per curve point: budget b -> b expert labels of demonstrations (the
    first b steps the expert takes from ``reset(seed=seed)``), ``n_epochs`` passes."""
    for budget in entry.curve_points:
        bc = _train_bc(env_id, seed, entry, budget, kwargs, device)
        yield bc.expert_labels, bc


#: BC models of the running comparison by (entry, seed, budget, kwargs, device): the BC
#: curve's last model is the guided agents' guide, trained once. Cleared by run_compare.
_BC_MODELS: dict[str, agents.BC] = {}


def _train_bc(
    env_id: str, seed: int, entry: SuiteEntry, budget: int, kwargs: dict[str, Any], device: str
) -> agents.BC:
    key = json.dumps([entry.to_dict(), seed, budget, kwargs, device], sort_keys=True, default=str)
    if key not in _BC_MODELS:
        _BC_MODELS[key] = _fit_bc(env_id, seed, entry, budget, kwargs, device)
    return _BC_MODELS[key]


def _fit_bc(
    env_id: str, seed: int, entry: SuiteEntry, budget: int, kwargs: dict[str, Any], device: str
) -> agents.BC:
    env = gym.make(env_id, **entry.env_kwargs)
    demo_env = gym.make(env_id, **{**entry.env_kwargs, **entry.demo_env_kwargs})
    demos = agents.Demonstrations.collect(
        demo_env, envs.make_expert(demo_env), n_steps=budget, seed=seed
    )
    bc = agents.BC(env, demos, seed=seed, device=device, **kwargs)
    return bc.learn(entry.n_epochs * len(demos))


def _dagger_curve(
    env_id: str, seed: int, entry: SuiteEntry, kwargs: dict[str, Any], device: str
) -> Iterator[tuple[int, Any]]:
    """One DAgger trained incrementally: at each curve point it has labelled exactly that
    many states."""
    env = gym.make(env_id, **entry.env_kwargs)
    kwargs = {"n_epochs": entry.n_epochs, **kwargs}
    dagger = agents.DAgger(env, envs.make_expert(env), seed=seed, device=device, **kwargs)
    for budget in entry.curve_points:
        dagger.learn(budget - dagger.expert_labels, reset_num_timesteps=False)
        yield dagger.expert_labels, dagger


def _zero_shot(
    env_id: str, seed: int, entry: SuiteEntry, kwargs: dict[str, Any], device: str
) -> Iterator[tuple[int, Any]]:
    """The learner as it starts (e.g. a pretrained LM), with no expert label: evaluated
    once, as the baseline the label-using agents should beat."""
    from stable_baselines3.common.utils import get_device

    from lfi_gym.agents.learners import make_learner

    env = gym.make(env_id, **entry.env_kwargs)
    policy = make_learner(
        kwargs.get("policy", "auto"),
        env.observation_space,
        env.action_space,
        kwargs.get("policy_kwargs"),
        get_device(device),
        env=env,
    )
    yield 0, policy


#: RL env steps per agent when a suite entry gives no ``total_timesteps``.
DEFAULT_RL_TIMESTEPS = 10_000


def _rl_trainer(name: str) -> Trainer:
    """PPO and the guided agents: ``total_timesteps`` env steps of RL from the entry's
    learner. A guided agent's guide is BC trained on the entry's whole label budget (as in
    RLGF, where the guide is the supervised model), so its one curve point sits there; PPO
    uses no label. ``env_kwargs`` in the agent's kwargs override the entry's for training
    (e.g. train-split prompts while evaluation uses validation)."""

    def train(
        env_id: str, seed: int, entry: SuiteEntry, kwargs: dict[str, Any], device: str
    ) -> Iterator[tuple[int, Any]]:
        kwargs = dict(kwargs)
        total = kwargs.pop("total_timesteps", DEFAULT_RL_TIMESTEPS)
        env = gym.make(env_id, **{**entry.env_kwargs, **kwargs.pop("env_kwargs", {})})
        labels = 0
        if name in GUIDED:
            bc_kwargs = dict(entry.agent_kwargs.get("bc", {}))
            guide = _train_bc(env_id, seed, entry, entry.label_budget, bc_kwargs, device)
            kwargs["guide"], labels = guide.policy, guide.expert_labels
        agent = agents.agent_class(name)(env, seed=seed, device=device, **kwargs)
        yield labels, agent.learn(total)

    return train


#: How ``compare`` trains each agent (keyed by the short names of ``lfi_gym.agents.AGENTS``, plus
#: "zero-shot": the untrained learner).
TRAINERS: dict[str, Trainer] = {
    "bc": _bc_curve,
    "dagger": _dagger_curve,
    "zero-shot": _zero_shot,
    **{name: _rl_trainer(name) for name in ("ppo", "ppo++", "aggrevated", "lols", "d2lols")},
}
#: Agents that use no expert label: one curve point, at 0 labels.
LABEL_FREE = frozenset({"zero-shot", "ppo"})
#: Agents whose labels are their guide's: one curve point, at the label budget.
GUIDED = frozenset({"ppo++", "aggrevated", "lols", "d2lols"})


def check_agent(name: str) -> str:
    """The canonical short name, or a ValueError listing the agents ``compare`` can run."""
    name = name.lower()
    if name in LABEL_FREE:
        return name
    agents.agent_class(name)  # unknown agents: its message lists every agent
    if name not in TRAINERS:
        raise ValueError(
            f"agent {name!r} is not supported by compare yet; supported: {', '.join(TRAINERS)}"
        )
    return name


# -- runner -------------------------------------------------------------------------------


def run_compare(
    entries: Sequence[SuiteEntry],
    seeds: int | Sequence[int] = 3,
    *,
    device: str = "cpu",
    progress: ProgressFn | None = None,
) -> CompareResults:
    """Train and evaluate every entry's agents with every seed.

    ``seeds`` is a count (seeds ``0 .. n-1``) or explicit seeds. ``device`` is where the
    learners train; the control suite's small MLPs are fastest on the CPU.
    Raises ValueError for unknown env ids or agents before any training starts.
    """
    entries = list(entries)
    if not entries:
        raise ValueError("run_compare needs at least one suite entry")
    if isinstance(seeds, (int, np.integer)):
        seed_list = list(range(check_positive_int(seeds, "seeds")))
    else:
        seed_list = [int(s) for s in seeds]
        if not seed_list:
            raise ValueError("seeds must not be empty")
    for entry in entries:
        envs.check_env_id(entry.env_id)
        if entry.eval_episodes > EVAL_SEED_STRIDE:
            raise ValueError(
                f"{entry.env_id}: at most {EVAL_SEED_STRIDE} evaluation episodes per point"
            )
        for name in entry.agents:
            check_agent(name)

    report = progress or (lambda description, advance: None)
    started = time.time()
    expert_returns: dict[str, list[float]] = {}
    runs: list[RunRecord] = []
    _BC_MODELS.clear()
    for entry in entries:
        report(f"{entry.env_id}: expert", 0)
        env = gym.make(entry.env_id, **entry.env_kwargs)
        expert_returns[entry.env_id] = agents.episode_returns(
            envs.make_expert(env), env, entry.eval_episodes, seed=EVAL_SEED_OFFSET
        ).tolist()
        report(f"{entry.env_id}: expert", 1)
        for seed in seed_list:
            for name in entry.agents:
                runs.append(_run_one(entry, name, seed, device, report))
            _BC_MODELS.clear()  # a seed's guides are not needed by the next seed
    config = {
        "entries": [entry.to_dict() for entry in entries],
        "seeds": seed_list,
        "device": device,
        "eval_seed_offset": EVAL_SEED_OFFSET,
        "eval_seed_stride": EVAL_SEED_STRIDE,
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "total_wall_time_s": time.time() - started,
        "versions": _versions(),
    }
    return CompareResults(entries, seed_list, expert_returns, runs, config)


def _run_one(entry: SuiteEntry, name: str, seed: int, device: str, report: ProgressFn) -> RunRecord:
    import torch

    kwargs = dict(entry.agent_kwargs.get(name, {}))
    eval_env = gym.make(entry.env_id, **entry.env_kwargs)
    curve: list[CurvePoint] = []
    start = time.perf_counter()
    trainer = TRAINERS[name](entry.env_id, seed, entry, kwargs, device)
    budgets = entry.curve_points
    if name in LABEL_FREE:
        budgets = (0,)
    elif name in GUIDED:
        budgets = (entry.label_budget,)
    for budget in budgets:
        description = f"{entry.env_id}: {name} seed {seed}, {budget} labels"
        report(description, 0)
        train_start = time.perf_counter()
        labels, policy = next(trainer)  # trains up to this curve point
        train_time = time.perf_counter() - train_start
        if labels != budget:
            # The whole comparison rests on equal budgets: never record an unequal one.
            raise RuntimeError(
                f"{name} used {labels} expert labels at curve point {budget} on {entry.env_id}"
            )
        eval_seed = EVAL_SEED_OFFSET + EVAL_SEED_STRIDE * seed
        torch.manual_seed(eval_seed)  # sampled evaluation: the same draws for every agent
        returns = agents.episode_returns(
            policy,
            eval_env,
            entry.eval_episodes,
            seed=eval_seed,
            deterministic=entry.deterministic_eval,
        )
        curve.append(CurvePoint(labels, returns.tolist(), train_time))
        report(description, 1)
    return RunRecord(entry.env_id, name, seed, curve, time.perf_counter() - start)


def _versions() -> dict[str, str]:
    import matplotlib
    import torch

    import lfi_gym

    return {
        "lfi-gym": lfi_gym.__version__,
        "python": platform.python_version(),
        "gymnasium": gym.__version__,
        "numpy": np.__version__,
        "torch": torch.__version__,
        "matplotlib": matplotlib.__version__,
    }


# -- plot ---------------------------------------------------------------------------------


def plot_learning_curves(results: CompareResults, path: str | Path) -> Path:
    """One subplot per env: return against expert labels, mean and ±std over seeds per
    agent, the expert as a dashed line."""
    # The object-oriented API with an Agg canvas: no pyplot, so no global backend switch
    # in the caller's process (notebooks keep theirs).
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    summary = results.summary()
    n = len(results.entries)
    ncols = min(n, 3)
    nrows = math.ceil(n / ncols)
    fig = Figure(figsize=(6.4 * ncols, 4.6 * nrows), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax, entry in zip(axes, results.entries, strict=False):
        env_summary = summary[entry.env_id]
        for i, (agent, stats) in enumerate(env_summary["agents"].items()):
            x = np.array(stats["curve"]["expert_labels"])
            mean = np.array(stats["curve"]["return_mean"])
            std = np.array(stats["curve"]["return_std"])
            color = f"C{i}"
            label = _AGENT_LABELS.get(agent, agent)
            if agent in LABEL_FREE:  # no labels used: a level, not a curve
                ax.axhline(
                    mean[0],
                    color=color,
                    linestyle=":",
                    linewidth=2,
                    label=f"{label} ({mean[0]:.3g})",
                )
                continue
            ax.plot(x, mean, marker="o", color=color, linewidth=2, label=label)
            ax.fill_between(x, mean - std, mean + std, color=color, alpha=0.2, linewidth=0)
        expert = env_summary["expert"]["return_mean"]
        ax.axhline(
            expert, color="0.3", linestyle="--", linewidth=1.5, label=f"expert ({expert:.3g})"
        )
        ax.set_title(entry.env_id)
        ax.set_xlabel("expert labels")
        ax.set_ylabel(f"return (mean of {entry.eval_episodes} episodes)")
        ax.set_xlim(0, entry.label_budget * 1.03)
        low, high = ax.get_ylim()
        # Returns at or above 0 get a 0 baseline; negative returns (Atari, costs) stay visible.
        ax.set_ylim(bottom=low if low < 0 else 0.0, top=max(high, expert * 1.08))
        ax.grid(True, alpha=0.3)
        ax.legend(loc="lower right")
    for ax in axes[n:]:
        ax.set_visible(False)
    n_seeds = len(results.seeds)
    fig.suptitle(
        f"lfi-gym compare: learning curves, mean ± std over {n_seeds} "
        f"seed{'s' if n_seeds != 1 else ''}"
    )
    path = Path(path)
    with atomic_write(path) as f:
        fig.savefig(f, format="png", dpi=120)
    return path


_AGENT_LABELS: Mapping[str, str] = {"bc": "BC", "dagger": "DAgger", "zero-shot": "zero-shot"}
