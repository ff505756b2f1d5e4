"""``lfi-gym``: the command line.

    lfi-gym compare --out results/              # the default suite, 3 seeds
    lfi-gym compare --env Control-CartPole-v0 --agents bc,dagger --seeds 5 --out results/
    lfi-gym compare --agents my_agents:MyAgent,bc --agent-kwargs 'bc={"batch_size": 64}' ...
    lfi-gym compare --suite-file suite.toml --jobs 4 --out results/
    lfi-gym compare --executor ray --address auto --out results/
    lfi-gym report results/                     # tables and figures from saved results
    lfi-gym envs                                # registered env ids and their spaces
    lfi-gym demos --env MinAtarImitation-Breakout-v0 --episodes 5 --out demos.lfid

Bad input (unknown env id or agent, a non-positive count) is reported argparse-style on
stderr with exit status 2 and the list of valid choices; no traceback. ``--out`` is checked
before any work (its folder must exist or be creatable, and be writable), and any OSError
(a full disk, a file that cannot be read) is one line on stderr with exit status 2. Should
``compare`` fail to write its results at the end all the same, it writes them to a new
temporary folder and names it, so that the run is not lost.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from lfi_gym import __version__
from lfi_gym.suites import SUITES, SuiteEntry, entry_for, get_suite

EXIT_USAGE = 2


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default: ``sys.argv[1:]``); returns the exit
    status instead of exiting, so that tests and scripts can call it."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command == "compare":
            entries, args.seeds = _compare_entries(args.subparser, args)
        if args.command == "demos":
            _check_demos_args(args.subparser, args)
    except SystemExit as exc:  # argparse exits on --help and on usage errors
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    try:
        if args.command == "compare":
            from lfi_gym.compare import CURVES_FILE, JOBS_DIR, PROFILES_FILE, RESULTS_FILE

            # Before any training: a bad --out found after hours of it would lose the run.
            files = (RESULTS_FILE, CURVES_FILE, PROFILES_FILE)
            problem = _output_folder_problem(args.out, files)
            if problem is None and (Path(args.out) / JOBS_DIR).is_file():
                problem = f"holds a file {JOBS_DIR}, where the job records go"
            if problem:
                hint = "give a writable folder (created if missing)"
                return _error(args.subparser, f"--out {args.out!r} {problem}; {hint}")
            return _compare(args, entries)
        if args.command == "report":
            return _report(args)
        if args.command == "envs":
            return _envs()
        if args.command == "demos":
            if os.path.isdir(args.out):
                return _error(
                    args.subparser,
                    f"--out {args.out!r} is a folder; give a file such as demos.lfid",
                )
            folder = os.path.dirname(os.path.abspath(args.out))
            problem = _output_folder_problem(folder)
            if problem:
                message = f"--out {args.out!r}: its folder {folder!r} {problem}"
                return _error(args.subparser, f"{message}; give a file in a writable folder")
            return _demos(args)
    except SystemExit as exc:  # a usage error found while running (atari-imitation)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except OSError as exc:
        return _error(getattr(args, "subparser", parser), _describe_os_error(exc))
    parser.print_help(sys.stderr)
    return EXIT_USAGE


def _error(parser: argparse.ArgumentParser, message: str) -> int:
    """argparse's ``prog: error: message`` as one line on stderr (no usage: the arguments
    were well formed); returns the exit status."""
    print(f"{parser.prog}: error: {' '.join(message.split())}", file=sys.stderr)
    return EXIT_USAGE


def _describe_os_error(exc: OSError) -> str:
    # "[Errno 13] Permission denied: 'x'" -> "x: Permission denied"; others keep their text.
    if exc.strerror and exc.filename is not None:
        names = [os.fsdecode(exc.filename)]
        if exc.filename2 is not None:
            names.append(os.fsdecode(exc.filename2))
        return f"{' -> '.join(names)}: {exc.strerror}"
    return str(exc) or type(exc).__name__


def _output_folder_problem(folder: str, file_names: Sequence[str] = ()) -> str | None:
    """What keeps the command from writing into ``folder`` (created if missing, as the
    command would), or None. Probes by creating and removing a file there, which also
    catches read-only file systems and ACLs that permission bits do not show."""
    path = Path(folder)
    if path.exists() and not path.is_dir():
        return "is a file"
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return f"cannot be created ({exc.strerror or exc})"
    try:
        fd, probe = tempfile.mkstemp(dir=path, prefix=".lfi-gym-write-check-")
    except OSError as exc:
        return f"is not writable ({exc.strerror or exc})"
    os.close(fd)
    os.unlink(probe)
    for name in file_names:
        if (path / name).is_dir():
            return f"holds a folder {name}, where a file of that name goes"
    return None


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (subcommands ``compare``, ``report``, ``envs`` and ``demos``)."""
    parser = argparse.ArgumentParser(
        prog="lfi-gym",
        description="Restartable Gymnasium envs and imitation agents: run and compare agents.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    compare = commands.add_parser(
        "compare",
        help="train agents with equal budgets and compare their scores",
        description=(
            "For each env, seed and agent: train with the same expert-label budget, evaluate "
            "on the same episodes as the reference policies, and write DIR/results.json, "
            "DIR/learning_curves.png and DIR/performance_profiles.png. Each run's record goes "
            "to DIR/jobs/ as it finishes: the same command run again skips finished runs. "
            "Without --env, runs the suite's envs."
        ),
    )
    compare.add_argument(
        "--env",
        action="append",
        metavar="ID",
        dest="env_ids",
        help="env id (repeatable; default: every env of the suite)",
    )
    compare.add_argument(
        "--suite",
        default="default",
        choices=sorted(SUITES),
        help="suite giving the envs and their budgets (default: %(default)s)",
    )
    compare.add_argument(
        "--suite-file",
        metavar="FILE",
        help="a suite of your own (.toml or .json: envs, agents, settings, budgets, seeds)",
    )
    compare.add_argument(
        "--agents",
        type=_name_list,
        metavar="LIST",
        help="comma-separated agents: names (bc,dagger,...), registered or installed ones, or "
        "module:Class from the current directory (default: the suite entry's)",
    )
    compare.add_argument(
        "--agent-kwargs",
        action="append",
        default=[],
        metavar="NAME=JSON",
        help="settings of one agent, e.g. 'dagger={\"steps_per_round\": 100}' (repeatable; "
        "merged over the suite's)",
    )
    compare.add_argument(
        "--seeds",
        type=_positive_int,
        metavar="N",
        help="number of seeds, 0..N-1 (default: the suite file's, else 3)",
    )
    compare.add_argument(
        "--out", required=True, metavar="DIR", help="output folder (created if missing)"
    )
    compare.add_argument(
        "--eval-episodes",
        type=_positive_int,
        metavar="K",
        help="evaluation episodes per point (default: the suite entry's)",
    )
    compare.add_argument(
        "--label-budget",
        type=_positive_int,
        metavar="B",
        help="expert labels per agent (default: the suite entry's)",
    )
    compare.add_argument(
        "--curve-points",
        type=_int_list,
        metavar="LIST",
        help="comma-separated label counts to evaluate at, ending at the "
        "budget (default: the suite entry's)",
    )
    compare.add_argument(
        "--jobs",
        type=_positive_int,
        metavar="N",
        help="runs at once in local processes (default: the CPUs this process may use)",
    )
    compare.add_argument(
        "--executor",
        choices=("local", "ray"),
        default="local",
        help="where runs execute: local processes or Ray tasks (default: %(default)s)",
    )
    compare.add_argument(
        "--address", metavar="ADDR", help="--executor ray: the cluster (default: a local Ray)"
    )
    compare.add_argument(
        "--device", default="cpu", help="torch device for the learners (default: %(default)s)"
    )
    compare.add_argument(
        "--threads",
        type=_positive_int,
        default=1,
        metavar="N",
        help="torch CPU threads per run; small models train fastest with 1 (default: %(default)s)",
    )
    compare.add_argument("--no-progress", action="store_true", help="hide the progress display")
    # Usage errors found after parsing are reported with this subcommand's usage line.
    compare.set_defaults(subparser=compare)

    report = commands.add_parser(
        "report",
        help="rebuild the tables and figures of a comparison from its saved results",
        description="Print DIR/results.json's tables and rewrite its figures; trains nothing.",
    )
    report.add_argument("dir", metavar="DIR", help="a folder written by lfi-gym compare")
    report.set_defaults(subparser=report)

    commands.add_parser(
        "envs",
        help="list the registered env ids and their spaces",
        description="List the env ids lfi-gym registers, with their spaces.",
    )

    demos = commands.add_parser(
        "demos",
        help="record the env's oracle playing N episodes into a demonstrations file",
        description=(
            "Roll out lfi_gym.envs.make_expert(env) for N episodes and stream the transitions into "
            "a .lfid file (observations go to disk as they come; the file appears when done)."
        ),
    )
    demos.add_argument("--env", required=True, metavar="ID", dest="env_id", help="env id")
    demos.add_argument(
        "--episodes", type=_positive_int, required=True, metavar="N", help="episodes to record"
    )
    demos.add_argument("--out", required=True, metavar="FILE", help="output .lfid file")
    demos.add_argument("--seed", type=int, default=0, help="first reset's seed (default: 0)")
    demos.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    demos.set_defaults(subparser=demos)
    return parser


# -- compare ------------------------------------------------------------------------------


def _compare_entries(
    parser: argparse.ArgumentParser, args: argparse.Namespace
) -> tuple[list[SuiteEntry], int]:
    """The suite entries to run and the seed count, with the command line's overrides;
    usage errors (unknown ids or agents, agents that do not run on an env) exit 2."""
    from lfi_gym import envs
    from lfi_gym.compare import check_agent, plan_jobs
    from lfi_gym.suites import load_suite_file

    seeds = args.seeds
    if args.suite_file is not None:
        try:
            suite = load_suite_file(args.suite_file)
        except (OSError, ValueError) as exc:
            parser.error(f"--suite-file: {exc}")
        suite_entries = list(suite.entries)
        seeds = seeds or suite.seeds
    else:
        suite_entries = list(get_suite(args.suite))
    if args.env_ids:
        env_ids = list(dict.fromkeys(args.env_ids))  # drop repeats, keep order
        for env_id in env_ids:
            try:
                envs.check_env_id(env_id)
            except ValueError as exc:
                parser.error(str(exc))
        by_id = {entry.env_id: entry for entry in suite_entries}
        entries = [by_id.get(env_id) or entry_for(env_id, args.suite) for env_id in env_ids]
    else:
        entries = suite_entries
    agent_names = None
    try:
        if args.agents is not None:
            agent_names = tuple(dict.fromkeys(check_agent(a) for a in args.agents))
        overrides = _agent_kwargs(args.agent_kwargs)
    except (ValueError, TypeError, ImportError) as exc:
        parser.error(str(exc))
    out = []
    for entry in entries:
        try:
            entry = entry.with_budget(args.label_budget, args.curve_points)
            if agent_names is not None:
                entry = dataclasses.replace(entry, agents=agent_names)
            if args.eval_episodes is not None:
                entry = dataclasses.replace(entry, eval_episodes=args.eval_episodes)
            if overrides:
                merged = {k: dict(v) for k, v in entry.agent_kwargs.items()}
                for name, settings in overrides.items():
                    merged[name] = {**merged.get(name, {}), **settings}
                entry = dataclasses.replace(entry, agent_kwargs=merged)
            plan_jobs([entry], [0])  # every agent known and able to run on this env
        except (ValueError, TypeError, ImportError) as exc:
            parser.error(f"{entry.env_id}: {exc}")
        out.append(entry)
    return out, seeds or 3


def _agent_kwargs(items: Sequence[str]) -> dict[str, dict[str, Any]]:
    """``NAME=JSON`` items -> {agent key: settings}."""
    import json

    from lfi_gym.compare import check_agent

    out: dict[str, dict[str, Any]] = {}
    for item in items:
        name, sep, text = item.partition("=")
        if not sep or not name.strip():
            raise ValueError(
                f"--agent-kwargs {item!r}: write NAME='{{json}}', e.g. bc='{{\"batch_size\": 64}}'"
            )
        try:
            settings = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"--agent-kwargs {item!r}: not JSON ({exc})") from None
        if not isinstance(settings, dict):
            raise ValueError(f"--agent-kwargs {item!r}: the settings are a JSON object {{...}}")
        key = check_agent(name.strip())
        out[key] = {**out.get(key, {}), **settings}
    return out


def default_jobs() -> int:
    """The CPUs this process may use (its affinity where the OS tells it)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return max(1, os.cpu_count() or 1)


def _compare(args: argparse.Namespace, entries: list[SuiteEntry]) -> int:
    from lfi_gym.output import quiet_third_party

    # Quiet while the command runs; main() called from a script gives the settings back.
    with quiet_third_party():
        return _run_compare_command(args, entries)


def _run_compare_command(args: argparse.Namespace, entries: list[SuiteEntry]) -> int:
    from lfi_gym.compare import plan_jobs, run_compare
    from lfi_gym.output import ProgressReporter

    console = _console()
    n_jobs = args.jobs or default_jobs()
    total = len(plan_jobs(entries, list(range(args.seeds))))
    with ProgressReporter(total, enabled=not args.no_progress) as reporter:

        def report(description: str, finished: bool, seconds: float | None) -> None:
            if not finished:
                reporter.started(description)
            else:
                reporter.finished(description, seconds)

        try:
            results = run_compare(
                entries,
                args.seeds,
                device=args.device,
                out=args.out,
                executor=args.executor,
                n_jobs=n_jobs,
                address=args.address,
                threads_per_job=args.threads,
                progress=report,
            )
        except ImportError as exc:  # Ray missing
            return _error(args.subparser, str(exc))
    _print_tables(console, results)
    _print_imitation_report(console, results, args.out)
    try:
        json_path, curves, profiles = results.save(args.out)
    except OSError as exc:  # --out was writable at the start; a full disk, say
        return _error(args.subparser, _save_elsewhere(results, args.out, exc))
    wall = results.config["total_wall_time_s"]
    console.print(
        f"{results.config['jobs_run']} runs in {wall:.0f} s ({n_jobs} at once), "
        f"{results.config['jobs_reused']} reused; wrote {json_path}, {curves} and {profiles}"
    )
    return 0


def _report(args: argparse.Namespace) -> int:
    from lfi_gym.compare import RESULTS_FILE, CompareResults

    path = Path(args.dir) / RESULTS_FILE
    if not path.is_file():
        return _error(
            args.subparser, f"{path} does not exist; give a folder written by lfi-gym compare"
        )
    try:
        results = CompareResults.load(args.dir)
    except ValueError as exc:
        return _error(args.subparser, str(exc))
    console = _console()
    _print_tables(console, results)
    _print_imitation_report(console, results, args.dir)
    curves, profiles = results.save_figures(args.dir)
    console.print(f"wrote {curves} and {profiles}")
    return 0


def _save_elsewhere(results: Any, out: str, exc: OSError) -> str:
    """Save ``results`` to a new temporary folder after saving to ``out`` failed; returns
    the error message, naming that folder."""
    problem = f"could not write the results to --out {out!r} ({_describe_os_error(exc)})"
    try:
        folder = tempfile.mkdtemp(prefix="lfi-gym-compare-")
        results.save(folder)
    except OSError as second:
        return (
            f"{problem}, nor to a temporary folder ({_describe_os_error(second)}); "
            "the tables above are all that is left of the run"
        )
    return f"{problem}; wrote them to {folder} instead"


def _print_imitation_report(console: Console, results: Any, out: str) -> None:
    """The DRIL benchmark's analysis, for entries counted in expert episodes."""
    from lfi_gym import imitation

    if any(entry.curve_unit == "expert_episodes" for entry in results.entries):
        Path(out).mkdir(parents=True, exist_ok=True)
        console.print(imitation.report(results, figure=Path(out) / imitation.FIGURE_FILE))


def _console() -> Console:
    """Rich's console; 120 columns when not a terminal (rich would take 80, too few for
    the tables), so that logs read like the terminal."""
    console = Console()
    return console if console.is_terminal else Console(width=120)


def _print_tables(console: Console, results: Any) -> None:
    for table in _tables(results):
        console.print(table)


def _ci(mean: float, ci: Sequence[float], digits: int) -> str:
    return f"{mean:.{digits}f} [{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]"


def _tables(results: Any) -> list[Table]:
    """Per env: each agent's score and normalised score (mean over seeds [95% bootstrap
    CI]) with its budgets; then the suite's IQM per agent and the probability of
    improvement."""
    summary = results.summary()
    n_seeds = len(results.seeds)
    tables = []
    for entry in results.entries:
        env_summary = summary["envs"][entry.env_id]
        rows = env_summary["agents"]
        low, high = (
            f"a score of {end:g}" if isinstance(end, (int, float)) else end
            for end in entry.normalization
        )
        text = entry.env_id.startswith("TextGen-")
        unit = "episodes" if entry.curve_unit == "expert_episodes" else "labels"
        table = Table(
            title=entry.env_id,
            caption=(
                f"{entry.metric} at {entry.label_budget} {unit}: mean [95% bootstrap CI] over "
                f"{n_seeds} seed{'s' if n_seeds != 1 else ''} of {entry.eval_episodes}-episode "
                f"means; normalised: 0 = {low}, 1 = {high}. Budgets per run; wall time per "
                "seed, all curve points"
            ),
        )
        table.add_column("agent", no_wrap=True)
        table.add_column(entry.metric, justify="right", no_wrap=True)
        table.add_column("normalised", justify="right", no_wrap=True)
        table.add_column("expert labels", justify="right")
        table.add_column("env steps", justify="right")
        if text:
            table.add_column("tokens", justify="right")
        table.add_column("reward queries", justify="right")
        preferences = any(r["budgets"].get("preference_queries", 0) for r in rows.values())
        if preferences:
            table.add_column("preference queries", justify="right")
        table.add_column("wall time (s)", justify="right")
        scale = max((abs(r["score_mean"]) for r in rows.values()), default=0.0)
        digits = 3 if scale < 10 else 1
        for name, row in rows.items():
            budgets = row["budgets"]
            cells = [
                name + (" (ref.)" if row["reference"] and name not in entry.agents else ""),
                _ci(row["score_mean"], row["score_ci"], digits),
                _ci(row["normalized_mean"], row["normalized_ci"], 2),
                f"{budgets['expert_labels']:.0f}",
                f"{budgets['env_steps']:.0f}",
                *([f"{budgets['tokens']:.0f}"] if text else []),
                f"{budgets['reward_queries']:.0f}",
                *([f"{budgets['preference_queries']:.0f}"] if preferences else []),
                f"{row['wall_time_s']:.1f}",
            ]
            dim = row["reference"] and name not in entry.agents
            table.add_row(*cells, style="dim" if dim else None)
        tables.append(table)
    suite = summary["suite"]
    if suite["aggregate"]:
        table = Table(
            title="suite: normalised scores of all runs",
            caption=(
                "IQM and mean over every (env, seed) run of the agent on the envs it ran, "
                "with stratified bootstrap 95% CIs (Agarwal et al. 2021)"
            ),
        )
        table.add_column("agent")
        table.add_column("IQM", justify="right")
        table.add_column("mean", justify="right")
        table.add_column("envs", justify="right")
        for name, agg in suite["aggregate"].items():
            table.add_row(
                name,
                _ci(agg["iqm"], agg["iqm_ci"], 2),
                _ci(agg["mean"], agg["mean_ci"], 2),
                str(len(agg["envs"])),
            )
        tables.append(table)
    if suite["probability_of_improvement"]:
        table = Table(
            title="probability of improvement P(X > Y)",
            caption="on the envs both ran, with stratified bootstrap 95% CIs",
        )
        table.add_column("X > Y")
        table.add_column("P", justify="right")
        table.add_column("envs", justify="right")
        shown: set[frozenset[str]] = set()
        for pair, value in suite["probability_of_improvement"].items():
            agents = frozenset(pair.split(" > "))
            if agents in shown:  # P(Y > X) is 1 - P(X > Y)
                continue
            shown.add(agents)
            table.add_row(pair, _ci(value["probability"], value["ci"], 2), str(len(value["envs"])))
        tables.append(table)
    return tables


# -- demos --------------------------------------------------------------------------------


def _check_demos_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Usage errors of ``demos`` (an unknown id) exit 2; main checks --out."""
    from lfi_gym import envs

    try:
        envs.check_env_id(args.env_id)
    except ValueError as exc:
        parser.error(str(exc))


def _demos(args: argparse.Namespace) -> int:
    import gymnasium as gym

    from lfi_gym import envs
    from lfi_gym.agents.data import record

    env = gym.make(args.env_id)
    try:
        expert = envs.make_expert(env)
    except NotImplementedError:
        print(
            f"lfi-gym demos: error: {args.env_id} has no computational oracle; pick an id "
            "with one (see `lfi-gym envs`)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    path = record(
        env, expert, args.episodes, args.out, seed=args.seed, progress_bar=not args.no_progress
    )
    from lfi_gym.agents.data import Demonstrations

    demos = Demonstrations.load(path)
    returns = demos.episode_returns()
    print(
        f"wrote {path}: {demos.n_episodes} episodes, {len(demos)} transitions, "
        f"return {returns.mean():.1f} ± {returns.std():.1f}"
    )
    return 0


# -- envs ---------------------------------------------------------------------------------


def _envs() -> int:
    import gymnasium as gym

    from lfi_gym import envs

    table = Table(title="lfi-gym envs")
    table.add_column("env id", no_wrap=True, min_width=max(map(len, envs.registered_ids())))
    table.add_column("observation space")
    table.add_column("action space")
    table.add_column("reward threshold", justify="right")
    for env_id in envs.registered_ids():
        try:
            env = gym.make(env_id)
        except FileNotFoundError:  # a hub asset that is neither local nor reachable
            table.add_row(env_id, "needs hub assets: pass local copies (README)", "-", "-")
            continue
        try:
            threshold = gym.spec(env_id).reward_threshold
            table.add_row(
                env_id,
                _describe_space(env.observation_space),
                _describe_space(env.action_space),
                "-" if threshold is None else f"{threshold:g}",
            )
        finally:
            env.close()
    Console().print(table)
    return 0


def _describe_space(space: Any) -> str:
    from gymnasium import spaces

    # A Box's repr lists every bound; its shape and dtype are what a user needs here.
    if isinstance(space, spaces.Box):
        return f"Box{space.shape} {space.dtype}"
    if isinstance(space, spaces.Dict):
        return "Dict(" + ", ".join(f"{k}: {_describe_space(v)}" for k, v in space.items()) + ")"
    return str(space)


# -- argument types -----------------------------------------------------------------------


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def _int_list(text: str) -> list[int]:
    values = [_positive_int(part.strip()) for part in text.split(",") if part.strip()]
    if not values:
        raise argparse.ArgumentTypeError("must be a comma-separated list of positive integers")
    if any(b <= a for a, b in itertools.pairwise(values)):
        raise argparse.ArgumentTypeError(f"must be strictly increasing, got {text!r}")
    return values


def _name_list(text: str) -> list[str]:
    names = [part.strip() for part in text.split(",") if part.strip()]
    if not names:
        raise argparse.ArgumentTypeError("must be a comma-separated list of agent names")
    return names


if __name__ == "__main__":
    sys.exit(main())
