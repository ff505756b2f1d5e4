"""The experiment runner behind ``lfi-gym compare``: agents on envs, equal budgets, sound
statistics.

A comparison is a set of independent jobs: each agent on each env with each seed (one job
per curve point for agents trained afresh at each point, BC and DRIL; one per curve for
those trained incrementally, DAgger; one per run for RL), plus the reference policies
(random, expert, zero-shot) on each env with each seed. Any agent runs through its
declared budget unit (:attr:`lfi_gym.agents.BaseAgent.BUDGET_UNIT`); nothing per agent is
written here. Agents that learn from preferences (RLHF, DPO) get the BC model of the label
budget (the SFT step) and ``preference_queries`` pairs of its completions labelled by a
perfect simulated teacher (the env's own reward): the same pairs for every such agent of a
seed. Jobs run in this process, a local process pool or on Ray
(:mod:`lfi_gym.executors`); each job's record is written to ``DIR/jobs/<key>.json`` as it
finishes, keyed by a hash of its full configuration and the lfi-gym version, so the same
command run again skips finished jobs (a killed sweep resumes) and a changed setting
never reuses a stale run. Results do not depend on the executor or the number of jobs:
every job seeds everything itself and runs with the same torch thread count.

Scores: per env and seed, each run's mean over its evaluation episodes (the same episodes
for every agent and reference of that seed), normalised by the env's declared pair
(:attr:`lfi_gym.suites.SuiteEntry.normalization`); per env and agent, the mean over seeds
with a 95% bootstrap CI; across the suite, the IQM of all runs' normalised scores with a
stratified bootstrap CI, performance profiles and the probability of improvement
(Agarwal et al. 2021, :mod:`lfi_gym.stats`).

>>> from lfi_gym.compare import run_compare
>>> from lfi_gym.suites import get_suite
>>> results = run_compare(get_suite("default"), seeds=3, out="results/", n_jobs=2)
>>> results.save("results/")   # results.json, learning_curves.png, performance_profiles.png
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import inspect
import json
import math
import platform
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from lfi_gym.agents.files import atomic_write
from lfi_gym.envs.validation import check_positive_int
from lfi_gym.suites import REFERENCE_POLICIES, SuiteEntry, agent_key

#: Evaluation episode ``i`` of seed ``s`` starts from
#: ``reset(seed=EVAL_SEED_OFFSET + EVAL_SEED_STRIDE * s + i)``: far from the training seeds (no
#: agent is evaluated on its demonstrations' starts), the same starts for every agent and
#: reference of a seed, and different starts across seeds (so their spread is not understated).
EVAL_SEED_OFFSET = 10_000
EVAL_SEED_STRIDE = 1_000

RESULTS_FILE = "results.json"
CURVES_FILE = "learning_curves.png"
PROFILES_FILE = "performance_profiles.png"
JOBS_DIR = "jobs"
RESULTS_FORMAT_VERSION = 2
#: Job records larger than this are refused on reading (they hold a few hundred numbers).
MAX_JOB_FILE_BYTES = 16 * 2**20

#: RL env steps (tokens on text envs) when an agent's settings give no ``total_timesteps``.
DEFAULT_RL_TIMESTEPS = 10_000
#: Settings the harness reads itself; every other setting goes to the agent's constructor.
HARNESS_SETTINGS = ("total_timesteps", "env_kwargs", "preference_queries")
#: Labelled pairs a preference agent gets when its settings give no ``preference_queries``.
DEFAULT_PREFERENCE_QUERIES = 1000
#: Budgets every record carries (tokens: env steps on text envs, else 0).
BUDGET_KEYS = ("expert_labels", "env_steps", "tokens", "reward_queries", "preference_queries")

#: ``on_job(description, finished, seconds)``: progress of the sweep, called when a job
#: starts (finished=False) and ends (finished=True), and for skipped jobs (seconds=None).
ProgressFn = Callable[[str, bool, float | None], None]


# -- jobs ---------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Job:
    """One independent unit of a comparison: a reference policy or an agent on one env
    with one seed, at some curve points. ``source`` is how to import the agent (a name or
    ``module:Class``); it is not part of the saved record (results name agents by name)."""

    kind: str  # "agent" or "reference"
    entry: SuiteEntry
    name: str
    seed: int
    points: tuple[int, ...]
    settings: Mapping[str, Any]
    guide_settings: Mapping[str, Any] | None
    device: str
    source: str = ""

    def config(self) -> dict[str, Any]:
        """Everything that decides the job's result (its key hashes this)."""
        env = self.entry.to_dict()
        for key in ("agents", "agent_kwargs", "normalization", "normalization_source"):
            env.pop(key)
        return {
            "kind": self.kind,
            "env": env,
            "name": self.name,
            "seed": self.seed,
            "points": list(self.points),
            "settings": dict(self.settings),
            "guide_settings": None if self.guide_settings is None else dict(self.guide_settings),
            "device": self.device,
        }

    def key(self) -> str:
        from lfi_gym import __version__

        text = json.dumps(
            {"config": self.config(), "lfi-gym": __version__, "source": self.source},
            sort_keys=True,
            default=str,
        )
        return hashlib.sha256(text.encode()).hexdigest()[:24]

    def payload(self) -> dict[str, Any]:
        """What a worker needs: the config plus the agent's import source."""
        return {**self.config(), "entry": self.entry.to_dict(), "source": self.source}

    def describe(self) -> str:
        points = f" ({self.points[-1]} {_unit_label(self.entry)})" if self.points else ""
        return f"{self.entry.env_id} {self.name} seed {self.seed}{points}"


def _unit_label(entry: SuiteEntry) -> str:
    return "episodes" if entry.curve_unit == "expert_episodes" else "labels"


def plan_jobs(
    entries: Sequence[SuiteEntry], seeds: Sequence[int], device: str = "cpu"
) -> list[Job]:
    """Every job of a comparison, references first; refuses unknown agents and agents
    that do not run on an env's family before any work."""
    from lfi_gym.registry import resolve_agent

    jobs: list[Job] = []
    for entry in entries:
        references = _references_needed(entry)
        for seed in seeds:
            for ref in references:
                settings = entry.agent_kwargs.get(ref, {}) if ref == "zero-shot" else {}
                jobs.append(Job("reference", entry, ref, seed, (), settings, None, device, ref))
        for spec in entry.agents:
            if spec in REFERENCE_POLICIES:
                continue
            name, cls = resolve_agent(spec)
            check_family(name, cls, entry.env_id)
            settings = dict(entry.agent_kwargs.get(spec, entry.agent_kwargs.get(name, {})))
            if "preference_queries" in settings and cls.BUDGET_UNIT != "preference_queries":
                raise ValueError(
                    f"{name}: preference_queries is a setting of agents that learn from "
                    f"preferences (BUDGET_UNIT 'preference_queries': rlhf, dpo); {name} is "
                    f"budgeted in {cls.BUDGET_UNIT}. Remove it from {name}'s settings"
                )
            # The BC model of the label budget: a guided agent's guide, a preference agent's SFT.
            needs_bc = _takes(cls, "guide") or cls.BUDGET_UNIT == "preference_queries"
            guide = dict(entry.agent_kwargs.get("bc", {})) if needs_bc else None
            for seed in seeds:
                if cls.BUDGET_UNIT == "demonstrations":
                    for point in entry.curve_points:
                        jobs.append(
                            Job("agent", entry, name, seed, (point,), settings, guide, device, spec)
                        )
                elif cls.BUDGET_UNIT == "expert_labels":
                    jobs.append(
                        Job(
                            "agent",
                            entry,
                            name,
                            seed,
                            entry.curve_points,
                            settings,
                            guide,
                            device,
                            spec,
                        )
                    )
                else:
                    points = (entry.label_budget,) if guide is not None else ()
                    jobs.append(
                        Job("agent", entry, name, seed, points, settings, guide, device, spec)
                    )
    return jobs


def _references_needed(entry: SuiteEntry) -> list[str]:
    needed = [end for end in entry.normalization if isinstance(end, str)]
    needed += [a for a in entry.agents if a in REFERENCE_POLICIES]
    return list(dict.fromkeys(["random", "expert", *needed]))


def _takes(cls: type, parameter: str) -> bool:
    """Whether ``cls(...)`` accepts ``parameter``: its ``__init__`` or, through
    ``**kwargs``, a parent's (PPO++ hands ``guide=`` to its base)."""
    for klass in cls.__mro__:
        if "__init__" not in vars(klass):
            continue
        parameters = inspect.signature(klass.__init__).parameters
        if parameter in parameters:
            return True
        if not any(p.kind is p.VAR_KEYWORD for p in parameters.values()):
            return False
    return False


def family_matrix() -> dict[str, list[str]]:
    """For each env family, the built-in and registered agents that run on it."""
    from lfi_gym.envs import FAMILIES
    from lfi_gym.registry import agent_names, resolve_agent

    families = list(dict.fromkeys(FAMILIES.values()))
    matrix: dict[str, list[str]] = {family: [] for family in families}
    for name in agent_names():
        cls = resolve_agent(name)[1]
        for family in families:
            if cls.FAMILIES is None or family in cls.FAMILIES:
                matrix[family].append(name)
    return matrix


def check_family(name: str, cls: type, env_id: str) -> None:
    """Refuse, naming which agents run where, an agent that does not run on env_id's family."""
    from lfi_gym.envs import env_family

    family = env_family(env_id)
    if cls.FAMILIES is not None and family not in cls.FAMILIES:
        table = "; ".join(f"{fam}: {', '.join(names)}" for fam, names in family_matrix().items())
        raise ValueError(
            f"agent {name!r} does not run on {env_id} ({family} family; it runs on "
            f"{', '.join(sorted(cls.FAMILIES))}). Agents by family: {table}"
        )


# -- one job (runs in a worker) -----------------------------------------------------------


def run_job(payload: Mapping[str, Any]) -> dict[str, Any]:
    """Run one job from its payload (:meth:`Job.payload`); returns its JSON-ready result.

    The entry point of every executor: it seeds everything from the job alone, so the
    result is the same whichever process runs it and whatever ran there before.
    """
    from lfi_gym.output import quiet_third_party

    # Quiet for the job only: run in the caller's process (one job at a time), the
    # caller's own settings come back afterwards.
    with quiet_third_party():
        return _run_job(payload)


def _run_job(payload: Mapping[str, Any]) -> dict[str, Any]:
    from stable_baselines3.common.utils import set_random_seed

    entry = SuiteEntry.from_dict(payload["entry"])
    seed = int(payload["seed"])
    set_random_seed(seed)
    started = time.perf_counter()
    if payload["kind"] == "reference":
        env = gym.make(entry.env_id, **entry.env_kwargs)
        policy = _reference_policy(
            payload["name"], env, payload["settings"], seed, payload["device"]
        )
        scores = evaluate(policy, entry, seed, env=env)
        return {"scores": scores, "wall_time_s": time.perf_counter() - started}
    from lfi_gym.registry import resolve_agent

    _, cls = resolve_agent(payload["source"])
    curve = []
    for point, agent, budgets, train_time in _train(cls, entry, payload, seed):
        curve.append(
            {
                "point": point,
                "budgets": budgets,
                "scores": evaluate(agent, entry, seed),
                "train_time_s": train_time,
            }
        )
    return {"curve": curve, "wall_time_s": time.perf_counter() - started}


def evaluate(policy: Any, entry: SuiteEntry, seed: int, env: gym.Env | None = None) -> list[float]:
    """Scores of ``entry.eval_episodes`` episodes of ``policy``: seed ``seed``'s evaluation
    episodes, with the same torch draws for every policy (sampled evaluation). ``env``: the
    env an oracle policy is bound to (default: a fresh one)."""
    import torch

    from lfi_gym.agents import episode_returns

    env = env or gym.make(entry.env_id, **entry.env_kwargs)
    eval_seed = EVAL_SEED_OFFSET + EVAL_SEED_STRIDE * seed
    torch.manual_seed(eval_seed)
    scores = episode_returns(
        policy,
        env,
        entry.eval_episodes,
        seed=eval_seed,
        deterministic=entry.deterministic_eval,
        info_key=None if entry.metric == "return" else entry.metric,
    )
    return [float(s) for s in scores]


def _reference_policy(
    name: str, env: gym.Env, settings: Mapping[str, Any], seed: int, device: str
) -> Any:
    from lfi_gym import envs

    if name == "random":
        return envs.RandomPolicy.for_env(env, seed=EVAL_SEED_OFFSET + EVAL_SEED_STRIDE * seed)
    if name == "expert":
        return envs.make_expert(env)
    # zero-shot: the learner as it starts (e.g. the pretrained LM), with no label.
    from stable_baselines3.common.utils import get_device

    from lfi_gym.agents.learners import make_learner

    return make_learner(
        settings.get("policy", "auto"),
        env.observation_space,
        env.action_space,
        settings.get("policy_kwargs"),
        get_device(device),
        env=env,
    )


def _train(cls: type, entry: SuiteEntry, payload: Mapping[str, Any], seed: int):
    """Train the agent through its budget unit; yields ``(point, agent, budgets, train
    time)`` at each curve point. Expert labels are spent on the label env (``env_kwargs``
    plus ``demo_env_kwargs``) for every agent that uses them, guides included."""
    from lfi_gym import envs

    settings = dict(payload["settings"])
    total = settings.pop("total_timesteps", None)
    rl_env_kwargs = settings.pop("env_kwargs", None)
    device = payload["device"]
    label_kwargs = {**entry.env_kwargs, **entry.demo_env_kwargs}
    common = {"seed": seed, "device": device}
    unit = cls.BUDGET_UNIT
    if unit == "demonstrations":
        (point,) = payload["points"]
        start = time.perf_counter()
        agent = _fit_on_demonstrations(cls, entry, point, payload["settings"], seed, device)
        yield point, agent, _budgets(agent, entry), time.perf_counter() - start
    elif unit == "expert_labels":
        env = gym.make(entry.env_id, **label_kwargs)
        if _takes(cls, "n_epochs"):
            settings = {"n_epochs": entry.n_epochs, **settings}
        agent = cls(env, expert=envs.make_expert(env), **common, **settings)
        for point in payload["points"]:
            start = time.perf_counter()
            labels = _labels_at(entry, point, seed)
            agent.learn(labels - agent.budgets()["expert_labels"], reset_num_timesteps=False)
            if agent.budgets()["expert_labels"] != labels:
                # The comparison rests on equal budgets: never record an unequal one.
                raise RuntimeError(
                    f"{cls.__name__} used {agent.budgets()['expert_labels']} expert labels at "
                    f"curve point {point} ({labels} labels) on {entry.env_id}"
                )
            yield point, agent, _budgets(agent, entry), time.perf_counter() - start
    elif unit == "preference_queries":
        env = gym.make(entry.env_id, **{**entry.env_kwargs, **(rl_env_kwargs or {})})
        start = time.perf_counter()
        sft = _fit_guide(entry, payload["guide_settings"], seed, device)
        n_pairs = settings.pop("preference_queries", DEFAULT_PREFERENCE_QUERIES)
        preferences = _preferences(env, sft.policy, n_pairs, seed)
        policy = copy.deepcopy(sft.policy)  # DPO trains the policy it is given
        agent = cls(env, policy, preferences=preferences, **common, **settings)
        agent.learn(total or DEFAULT_RL_TIMESTEPS)
        used = [_budgets(agent, entry), _budgets(sft, entry), _collection_budgets(preferences)]
        budgets = {k: sum(b[k] for b in used) for k in BUDGET_KEYS}
        yield payload["points"][0], agent, budgets, time.perf_counter() - start
    else:
        env = gym.make(entry.env_id, **{**entry.env_kwargs, **(rl_env_kwargs or {})})
        start = time.perf_counter()
        extra: dict[str, Any] = {}
        guide_budgets = dict.fromkeys(BUDGET_KEYS, 0)
        if payload["guide_settings"] is not None:
            guide = _fit_guide(entry, payload["guide_settings"], seed, device)
            extra["guide"] = guide.policy
            guide_budgets = _budgets(guide, entry)
        if _takes(cls, "expert"):
            extra["expert"] = envs.make_expert(env)
        agent = cls(env, **extra, **common, **settings)
        agent.learn(total or DEFAULT_RL_TIMESTEPS)
        budgets = {k: v + guide_budgets[k] for k, v in _budgets(agent, entry).items()}
        point = payload["points"][0] if payload["points"] else 0
        yield point, agent, budgets, time.perf_counter() - start


def _preferences(env: gym.Env, policy: Any, n_pairs: Any, seed: int) -> Any:
    """``n_pairs`` pairs of ``policy``'s completions on ``env``'s prompts, labelled by a
    perfect simulated teacher (the env's reward): the same pairs for every preference agent
    of a seed."""
    import torch

    from lfi_gym.agents import Preferences, SimulatedTeacher

    n_pairs = check_positive_int(n_pairs, "preference_queries")
    torch.manual_seed(seed)  # the policy samples with torch's global generator
    return Preferences.collect(env, policy, n_pairs, SimulatedTeacher(seed=seed), seed=seed)


def _collection_budgets(preferences: Any) -> dict[str, int]:
    """The tokens sampled to collect ``preferences`` (every sampled pair's; the pairs
    themselves are the agent's own ``preference_queries``)."""
    tokens = int(preferences.teacher["tokens"])
    return dict.fromkeys(BUDGET_KEYS, 0) | {"env_steps": tokens, "tokens": tokens}


def _demonstrations(entry: SuiteEntry, point: int, seed: int) -> Any:
    """The expert's first ``point`` labels (or episodes) from ``reset(seed=seed)`` on the
    label env: the same data for every agent that learns from demonstrations."""
    from lfi_gym import agents, envs

    env = gym.make(entry.env_id, **{**entry.env_kwargs, **entry.demo_env_kwargs})
    if entry.curve_unit == "expert_episodes":
        return agents.Demonstrations.collect(
            env, envs.make_expert(env), n_episodes=point, seed=seed
        )
    return agents.Demonstrations.collect(env, envs.make_expert(env), n_steps=point, seed=seed)


def _labels_at(entry: SuiteEntry, point: int, seed: int) -> int:
    """Expert labels at a curve point: the point itself, or as many as that seed's
    ``point`` demonstration episodes hold (equal labels with the demonstration agents)."""
    if entry.curve_unit == "expert_labels":
        return point
    return len(_demonstrations(entry, point, seed))


def _fit_guide(entry: SuiteEntry, settings: Mapping[str, Any], seed: int, device: str) -> Any:
    """BC on the whole label budget: a guided agent's guide (as in RLGF, where the guide is
    the supervised model); the same model as BC's last curve point."""
    from lfi_gym.agents import BC

    return _fit_on_demonstrations(BC, entry, entry.label_budget, settings, seed, device)


def _fit_on_demonstrations(
    cls: type, entry: SuiteEntry, point: int, settings: Mapping[str, Any], seed: int, device: str
) -> Any:
    """A fresh agent trained on the expert's demonstrations of one curve point, on the
    label env: ``total_timesteps`` from its settings, else ``n_epochs`` passes."""
    settings = dict(settings)
    total = settings.pop("total_timesteps", None)
    settings.pop("env_kwargs", None)  # RL's training env: not for demonstrations
    env = gym.make(entry.env_id, **{**entry.env_kwargs, **entry.demo_env_kwargs})
    demos = _demonstrations(entry, point, seed)
    agent = cls(env, demonstrations=demos, seed=seed, device=device, **settings)
    return agent.learn(total or entry.n_epochs * len(demos))


def _budgets(agent: Any, entry: SuiteEntry) -> dict[str, int]:
    from lfi_gym.envs import env_family

    used = agent.budgets()
    steps = int(used.get("env_steps", 0))
    return {
        "expert_labels": int(used.get("expert_labels", 0)),
        "env_steps": steps,
        "tokens": steps if env_family(entry.env_id) == "text" else 0,
        "reward_queries": int(used.get("reward_queries", 0)),
        "preference_queries": int(used.get("preference_queries", 0)),
    }


# -- running a comparison -----------------------------------------------------------------


def run_compare(
    entries: Sequence[SuiteEntry],
    seeds: int | Sequence[int] = 3,
    *,
    device: str = "cpu",
    out: str | Path | None = None,
    executor: str = "local",
    n_jobs: int = 1,
    address: str | None = None,
    threads_per_job: int = 1,
    progress: ProgressFn | None = None,
) -> CompareResults:
    """Train and evaluate every entry's agents with every seed.

    ``seeds`` is a count (seeds ``0 .. n-1``) or explicit seeds. With ``out``, each job's
    record goes to ``out/jobs/`` when it finishes and finished jobs found there are reused
    (``CompareResults.save(out)`` writes the tables and figures). ``executor`` is
    ``"local"`` (``n_jobs`` processes; 1 runs in this process) or ``"ray"``
    (``address``: a cluster; None starts a local Ray). Raises ValueError for unknown env
    ids, agents, or agents that do not run on an env's family, before any training.
    """
    from lfi_gym import envs
    from lfi_gym.executors import run_jobs
    from lfi_gym.registry import is_import_path

    entries = list(entries)
    if not entries:
        raise ValueError("run_compare needs at least one suite entry")
    seed_list = _seed_list(seeds)
    for entry in entries:
        envs.check_env_id(entry.env_id)
        if entry.eval_episodes > EVAL_SEED_STRIDE:
            raise ValueError(
                f"{entry.env_id}: at most {EVAL_SEED_STRIDE} evaluation episodes per point"
            )
    jobs = plan_jobs(entries, seed_list, device)
    report = progress or (lambda description, finished, seconds: None)
    started = time.time()
    store = None if out is None else Path(out) / JOBS_DIR
    records: dict[str, dict[str, Any]] = {}
    pending: list[Job] = []
    for job in jobs:
        found = None if store is None else _read_job(store, job)
        if found is None:
            pending.append(job)
        else:
            records[job.key()] = found
            report(job.describe(), True, None)

    def on_start(i: int) -> None:
        report(pending[i].describe(), False, None)

    def on_result(i: int, result: dict[str, Any]) -> None:
        job = pending[i]
        record = {"key": job.key(), "config": job.config(), "result": result}
        if store is not None:
            _write_json(store / f"{job.key()}.json", record)
        records[job.key()] = record
        report(job.describe(), True, result["wall_time_s"])

    modules = sorted({j.source.split(":")[0] for j in pending if is_import_path(j.source)})
    run_jobs(
        "lfi_gym.compare:run_job",
        [job.payload() for job in pending],
        executor=executor,
        n_jobs=n_jobs,
        address=address,
        threads_per_job=threads_per_job,
        modules=modules,
        on_start=on_start,
        on_result=on_result,
    )
    config = {
        "entries": [entry.to_dict() for entry in entries],
        "seeds": seed_list,
        "device": device,
        "eval_seed_offset": EVAL_SEED_OFFSET,
        "eval_seed_stride": EVAL_SEED_STRIDE,
        "executor": executor,
        "n_jobs": n_jobs,
        "threads_per_job": threads_per_job,
        "jobs_run": len(pending),
        "jobs_reused": len(jobs) - len(pending),
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "total_wall_time_s": time.time() - started,
        "versions": _versions(),
    }
    return CompareResults(entries, seed_list, [records[job.key()] for job in jobs], config)


def _seed_list(seeds: int | Sequence[int]) -> list[int]:
    if isinstance(seeds, (int, np.integer)):
        return list(range(check_positive_int(seeds, "seeds")))
    seed_list = [int(s) for s in seeds]
    if not seed_list:
        raise ValueError("seeds must not be empty")
    if len(set(seed_list)) != len(seed_list):
        raise ValueError(f"seeds must differ, got {seed_list}")
    return seed_list


def _read_job(store: Path, job: Job) -> dict[str, Any] | None:
    """A finished job's record, or None when there is none (or it is not this job's)."""
    from lfi_gym.envs.codec import parse_json

    path = store / f"{job.key()}.json"
    if not path.is_file() or path.stat().st_size > MAX_JOB_FILE_BYTES:
        return None
    try:
        record = parse_json(path.read_bytes())
    except (OSError, ValueError):
        return None  # a damaged record: run the job again
    if not isinstance(record, dict) or record.get("key") != job.key():
        return None
    if record.get("config") != json.loads(json.dumps(job.config(), default=str)):
        return None
    return record


def _write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # allow_nan=False: a NaN would make the file unreadable by strict JSON parsers.
    text = json.dumps(data, indent=2, allow_nan=False) + "\n"
    with atomic_write(path) as f:
        f.write(text.encode())


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


# -- results ------------------------------------------------------------------------------


@dataclasses.dataclass
class CompareResults:
    """Every job record of a comparison, with its configuration; summaries and figures are
    derived from the records alone (``lfi-gym report DIR`` rebuilds them)."""

    entries: list[SuiteEntry]
    seeds: list[int]
    records: list[dict[str, Any]]
    config: dict[str, Any]

    # -- lookups ----------------------------------------------------------------------

    def _records(self, env_id: str, kind: str, name: str) -> dict[int, dict[str, Any]]:
        return {
            r["config"]["seed"]: r
            for r in self.records
            if r["config"]["env"]["env_id"] == env_id
            and r["config"]["kind"] == kind
            and r["config"]["name"] == name
        }

    def reference_scores(self, env_id: str, name: str) -> dict[int, list[float]]:
        """A reference policy's episode scores per seed."""
        return {
            s: r["result"]["scores"] for s, r in self._records(env_id, "reference", name).items()
        }

    def agent_names(self, entry: SuiteEntry) -> list[str]:
        names = []
        for spec in entry.agents:
            if spec in REFERENCE_POLICIES:
                names.append(spec)
                continue
            found = {r["config"]["name"] for r in self.records if r["config"]["kind"] == "agent"}
            name = spec.split(":")[-1].lower() if ":" in spec else spec
            if name in found:
                names.append(name)
        return names

    def curve(self, env_id: str, name: str) -> dict[int, list[dict[str, Any]]]:
        """An agent's curve points per seed (point, budgets, scores, train time), in order;
        a reference is one point at 0."""
        if name in REFERENCE_POLICIES:
            return {
                seed: [{"point": 0, "budgets": dict.fromkeys(BUDGET_KEYS, 0), "scores": scores}]
                for seed, scores in self.reference_scores(env_id, name).items()
            }
        out: dict[int, list[dict[str, Any]]] = {}
        for r in self.records:
            c = r["config"]
            if c["env"]["env_id"] == env_id and c["kind"] == "agent" and c["name"] == name:
                out.setdefault(c["seed"], []).extend(r["result"]["curve"])
        return {
            seed: sorted(points, key=lambda p: p["point"]) for seed, points in sorted(out.items())
        }

    def wall_time(self, env_id: str, name: str) -> float:
        """Mean over seeds of the agent's total wall time (all its jobs of that seed)."""
        per_seed: dict[int, float] = {}
        for r in self.records:
            c = r["config"]
            if c["env"]["env_id"] == env_id and c["name"] == name:
                per_seed[c["seed"]] = per_seed.get(c["seed"], 0.0) + r["result"]["wall_time_s"]
        return float(np.mean(list(per_seed.values()))) if per_seed else 0.0

    # -- statistics -------------------------------------------------------------------

    def normalized(self, entry: SuiteEntry, name: str) -> dict[int, float]:
        """Per seed: the agent's final score (mean over episodes), normalised by the
        entry's pair measured on the same seed's episodes."""
        from lfi_gym.stats import normalize

        finals = {
            seed: float(np.mean(points[-1]["scores"]))
            for seed, points in self.curve(entry.env_id, name).items()
        }
        out = {}
        for seed, value in finals.items():
            low, high = (self._end(entry, end, seed) for end in entry.normalization)
            out[seed] = float(normalize(value, low, high))
        return out

    def _end(self, entry: SuiteEntry, end: str | float, seed: int) -> float:
        if isinstance(end, str):
            return float(np.mean(self.reference_scores(entry.env_id, end)[seed]))
        return float(end)

    def summary(self) -> dict[str, Any]:
        """Per env: per agent (and reference), the final score's mean over seeds with a 95%
        bootstrap CI, its normalised score (same), budgets, wall time and the mean curve.
        Across the suite: per agent, the IQM of all its runs' normalised scores with a
        stratified bootstrap 95% CI, and the probability of improvement between agents."""
        from lfi_gym import stats

        envs_out: dict[str, Any] = {}
        for entry in self.entries:
            rows: dict[str, Any] = {}
            for name in [*self._shown_references(entry), *self.agent_names(entry)]:
                curve = self.curve(entry.env_id, name)
                if not curve:
                    continue
                finals = [float(np.mean(points[-1]["scores"])) for points in curve.values()]
                normalized = list(self.normalized(entry, name).values())
                first = next(iter(curve.values()))
                # .get: records written before a budget existed did not spend it
                budgets = {
                    k: float(np.mean([p[-1]["budgets"].get(k, 0) for p in curve.values()]))
                    for k in BUDGET_KEYS
                }
                matrix = np.array(
                    [[np.mean(p["scores"]) for p in points] for points in curve.values()]
                )
                rows[name] = {
                    "reference": name in REFERENCE_POLICIES,
                    "score_mean": float(np.mean(finals)),
                    "score_ci": list(stats.bootstrap_ci(finals)),
                    "normalized_mean": float(np.mean(normalized)),
                    "normalized_ci": list(stats.bootstrap_ci(normalized)),
                    "budgets": budgets,
                    "wall_time_s": self.wall_time(entry.env_id, name),
                    "n_seeds": len(finals),
                    "curve": {
                        "points": [p["point"] for p in first],
                        "score_mean": matrix.mean(axis=0).tolist(),
                        "score_std": matrix.std(axis=0).tolist(),
                    },
                }
            envs_out[entry.env_id] = {
                "metric": entry.metric,
                "normalization": list(entry.normalization),
                "normalization_source": entry.normalization_source,
                "agents": rows,
            }
        return {"envs": envs_out, "suite": self.suite_statistics()}

    def _shown_references(self, entry: SuiteEntry) -> list[str]:
        return [r for r in REFERENCE_POLICIES if self.reference_scores(entry.env_id, r)]

    def score_matrices(self) -> dict[str, tuple[list[str], np.ndarray]]:
        """Per agent: the envs it ran on and its normalised scores, ``(n_seeds, n_envs)``."""
        out: dict[str, tuple[list[str], np.ndarray]] = {}
        names = list(dict.fromkeys(n for e in self.entries for n in self.agent_names(e)))
        for name in names:
            env_ids, columns = [], []
            for entry in self.entries:
                if name not in self.agent_names(entry):
                    continue
                per_seed = self.normalized(entry, name)
                if len(per_seed) != len(self.seeds):
                    continue
                env_ids.append(entry.env_id)
                columns.append([per_seed[s] for s in self.seeds])
            if columns:
                out[name] = (env_ids, np.array(columns).T)
        return out

    def suite_statistics(self) -> dict[str, Any]:
        from lfi_gym import stats

        matrices = self.score_matrices()
        aggregate = {}
        for name, (env_ids, scores) in matrices.items():
            agg = stats.aggregate(scores)
            aggregate[name] = {
                "envs": env_ids,
                "iqm": float(agg["iqm"]),
                "iqm_ci": [float(x) for x in agg["iqm_ci"]],
                "mean": float(agg["mean"]),
                "mean_ci": [float(x) for x in agg["mean_ci"]],
            }
        improvement = {}
        names = [n for n in matrices if n not in REFERENCE_POLICIES]
        for a in names:
            for b in names:
                shared = [e for e in matrices[a][0] if e in matrices[b][0]]
                if a == b or not shared:
                    continue  # compared on the envs both ran
                x = matrices[a][1][:, [matrices[a][0].index(e) for e in shared]]
                y = matrices[b][1][:, [matrices[b][0].index(e) for e in shared]]
                improvement[f"{a} > {b}"] = {
                    "envs": shared,
                    "probability": float(stats.probability_of_improvement(x, y)),
                    "ci": [float(v) for v in stats.probability_of_improvement_ci(x, y)],
                }
        return {"aggregate": aggregate, "probability_of_improvement": improvement}

    # -- files ------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": "lfi-gym.compare",
            "format_version": RESULTS_FORMAT_VERSION,
            "config": self.config,
            "jobs": self.records,
            "summary": self.summary(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "results") -> CompareResults:
        if not isinstance(data, Mapping) or data.get("format") != "lfi-gym.compare":
            raise ValueError(f"{source}: not an lfi-gym compare results file")
        if data.get("format_version") != RESULTS_FORMAT_VERSION:
            raise ValueError(
                f"{source}: results format {data.get('format_version')!r}; this lfi-gym reads "
                f"format {RESULTS_FORMAT_VERSION} (rerun the comparison with it)"
            )
        config = data["config"]
        entries = [SuiteEntry.from_dict(e) for e in config["entries"]]
        return cls(entries, list(config["seeds"]), list(data["jobs"]), dict(config))

    @classmethod
    def load(cls, out_dir: str | Path) -> CompareResults:
        """The results ``save`` wrote into ``out_dir`` (no code runs: JSON only)."""
        from lfi_gym.envs.codec import parse_json

        path = Path(out_dir) / RESULTS_FILE
        if path.stat().st_size > MAX_JOB_FILE_BYTES * 16:
            raise ValueError(f"{path} is larger than any results file lfi-gym writes")
        try:
            data = parse_json(path.read_bytes())
        except ValueError as exc:  # CodecError
            raise ValueError(f"{path}: {exc}") from None
        return cls.from_dict(data, str(path))

    def save(self, out_dir: str | Path) -> tuple[Path, Path, Path]:
        """Write ``results.json``, ``learning_curves.png`` and ``performance_profiles.png``
        into ``out_dir`` (created if missing); returns their paths."""
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        json_path = out_dir / RESULTS_FILE
        _write_json(json_path, self.to_dict())
        return json_path, *self.save_figures(out_dir)

    def save_figures(self, out_dir: str | Path) -> tuple[Path, Path]:
        from lfi_gym.stats import plot_performance_profiles

        out_dir = Path(out_dir)
        curves = plot_learning_curves(self, out_dir / CURVES_FILE)
        profiles = plot_performance_profiles(
            {name: scores for name, (_, scores) in self.score_matrices().items()},
            out_dir / PROFILES_FILE,
            title=f"lfi-gym compare: normalised scores of all runs ({len(self.seeds)} seeds)",
        )
        return curves, profiles


# -- plot ---------------------------------------------------------------------------------


def plot_learning_curves(results: CompareResults, path: str | Path) -> Path:
    """One subplot per env: score against expert labels, mean and ±std over seeds per
    agent; agents without a curve (references, RL) as levels."""
    # The object-oriented API with an Agg canvas: no pyplot, so no global backend switch
    # in the caller's process (notebooks keep theirs).
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    summary = results.summary()["envs"]
    n = len(results.entries)
    ncols = min(n, 3)
    nrows = math.ceil(n / ncols)
    fig = Figure(figsize=(6.4 * ncols, 4.6 * nrows), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax, entry in zip(axes, results.entries, strict=False):
        rows = summary[entry.env_id]["agents"]
        for i, (agent, row) in enumerate(rows.items()):
            x = np.array(row["curve"]["points"])
            mean = np.array(row["curve"]["score_mean"])
            std = np.array(row["curve"]["score_std"])
            color = "0.3" if agent == "expert" else f"C{i}"
            label = _AGENT_LABELS.get(agent, agent)
            if len(x) == 1:  # one point: a level, not a curve
                style = "--" if agent == "expert" else ":"
                at = f" at {x[0]}" if x[0] else ""
                ax.axhline(
                    mean[0],
                    color=color,
                    linestyle=style,
                    linewidth=2,
                    label=f"{label}{at} ({mean[0]:.3g})",
                )
                continue
            ax.plot(x, mean, marker="o", color=color, linewidth=2, label=label)
            ax.fill_between(x, mean - std, mean + std, color=color, alpha=0.2, linewidth=0)
        ax.set_title(entry.env_id)
        ax.set_xlabel(
            "expert episodes" if entry.curve_unit == "expert_episodes" else "expert labels"
        )
        ax.set_ylabel(f"{entry.metric} (mean of {entry.eval_episodes} episodes)")
        ax.set_xlim(0, entry.label_budget * 1.03)
        ax.grid(True, alpha=0.3)
        ax.legend(loc="lower right", fontsize="small")
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


_AGENT_LABELS: Mapping[str, str] = {
    "bc": "BC",
    "dagger": "DAgger",
    "dril": "DRIL",
    "ppo": "PPO",
    "ppo++": "PPO++",
    "aggrevated": "AggreVaTeD",
    "lols": "LOLS",
    "d2lols": "D2LOLS",
    "pgrank": "PG-Rank",
}


def check_agent(spec: str) -> str:
    """The canonical key of an agent spec, or a ValueError listing the known agents."""
    from lfi_gym.registry import resolve_agent

    key = agent_key(spec)
    if key not in REFERENCE_POLICIES:
        resolve_agent(key)
    return key
