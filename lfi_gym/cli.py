"""``lfi-gym``: the command line.

    lfi-gym compare --out results/              # the default suite, 3 seeds
    lfi-gym compare --env Control-CartPole-v0 --agents bc,dagger --seeds 5 --out results/
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
        if args.command == "compare" and args.suite != "atari-imitation":
            entries = _compare_entries(args.subparser, args)
        if args.command == "demos":
            _check_demos_args(args.subparser, args)
    except SystemExit as exc:  # argparse exits on --help and on usage errors
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    try:
        if args.command == "compare":
            from lfi_gym.compare import CURVES_FILE, RESULTS_FILE

            # Before any training: a bad --out found after hours of it would lose the run.
            problem = _output_folder_problem(args.out, (RESULTS_FILE, CURVES_FILE))
            if problem:
                hint = "give a writable folder (created if missing)"
                return _error(args.subparser, f"--out {args.out!r} {problem}; {hint}")
            if args.suite == "atari-imitation":
                return _atari_imitation(args)
            return _compare(args, entries)
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
    """The argument parser (subcommands ``compare``, ``envs`` and ``demos``)."""
    parser = argparse.ArgumentParser(
        prog="lfi-gym",
        description="Restartable Gymnasium envs and imitation agents: run and compare agents.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    compare = commands.add_parser(
        "compare",
        help="train agents with equal expert-label budgets and compare their returns",
        description=(
            "For each env, seed and agent: train with the same number of expert labels, "
            "evaluate along the way, and write DIR/results.json and "
            "DIR/learning_curves.png. Without --env, runs the suite's envs."
        ),
    )
    compare.add_argument(
        "--env",
        action="append",
        metavar="ID",
        dest="env_ids",
        help="env id (repeatable; default: every env of --suite)",
    )
    compare.add_argument(
        "--suite",
        default="default",
        choices=sorted(SUITES),
        help="suite giving the envs and their budgets (default: %(default)s)",
    )
    compare.add_argument(
        "--agents",
        type=_name_list,
        metavar="LIST",
        help="comma-separated agents, e.g. bc,dagger (default: the suite entry's)",
    )
    compare.add_argument(
        "--seeds",
        type=_positive_int,
        default=3,
        metavar="N",
        help="number of seeds, 0..N-1 (default: %(default)s)",
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
        "--device", default="cpu", help="torch device for the learners (default: %(default)s)"
    )
    compare.add_argument(
        "--threads",
        type=_positive_int,
        default=1,
        metavar="N",
        help="torch CPU threads; small MLPs train fastest with 1 (default: %(default)s)",
    )
    compare.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    compare.add_argument(
        "--demos",
        type=_int_list,
        metavar="LIST",
        help="--suite atari-imitation only: demonstration counts (default: 1,3,5,10,20)",
    )
    # Usage errors found after parsing are reported with this subcommand's usage line.
    compare.set_defaults(subparser=compare)

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


def _compare_entries(parser: argparse.ArgumentParser, args: argparse.Namespace) -> list[SuiteEntry]:
    """The suite entries to run, with the command line's overrides; usage errors exit 2."""
    from lfi_gym import envs
    from lfi_gym.compare import check_agent

    if args.env_ids:
        env_ids = list(dict.fromkeys(args.env_ids))  # drop repeats, keep order
        for env_id in env_ids:
            try:
                envs.check_env_id(env_id)
            except ValueError as exc:
                parser.error(str(exc))
        entries = [entry_for(env_id, args.suite) for env_id in env_ids]
    else:
        entries = list(get_suite(args.suite))
    agent_names = None
    if args.agents is not None:
        try:
            agent_names = tuple(dict.fromkeys(check_agent(a) for a in args.agents))
        except ValueError as exc:
            parser.error(str(exc))
    out = []
    for entry in entries:
        try:
            entry = entry.with_budget(args.label_budget, args.curve_points)
            if agent_names is not None:
                entry = dataclasses.replace(entry, agents=agent_names)
            if args.eval_episodes is not None:
                entry = dataclasses.replace(entry, eval_episodes=args.eval_episodes)
            for name in entry.agents:
                check_agent(name)
        except ValueError as exc:
            parser.error(f"{entry.env_id}: {exc}")
        out.append(entry)
    return out


def _atari_imitation(args: argparse.Namespace) -> int:
    """``--suite atari-imitation``: the demonstrations sweep of lfi_gym.imitation (score
    against 1..20 expert episodes for BC, DAgger and DRIL) instead of label curves."""
    import torch

    from lfi_gym import imitation

    torch.set_num_threads(args.threads)
    suite = {entry.env_id: entry for entry in get_suite("atari-imitation")}
    names = args.agents or imitation.SWEEP_AGENTS
    try:
        games = []
        for env_id in args.env_ids or list(suite):
            entry = suite.get(env_id)
            games.append(
                imitation.game_config(
                    env_id,
                    env_kwargs=dict(entry.env_kwargs) if entry else None,
                    eval_episodes=args.eval_episodes or (entry.eval_episodes if entry else None),
                )
            )
        imitation.run_sweep(
            games,
            agents_=names,
            demos=args.demos or imitation.DEMO_COUNTS,
            seeds=args.seeds,
            out=args.out,
            device=args.device,
            progress_bar=not args.no_progress,
        )
    except ValueError as exc:
        args.subparser.error(str(exc))
    print(imitation.report(args.out))
    return 0


def _compare(args: argparse.Namespace, entries: list[SuiteEntry]) -> int:
    import torch

    from lfi_gym.compare import run_compare

    torch.set_num_threads(args.threads)
    console = Console()
    total = sum(1 + args.seeds * len(e.agents) * len(e.curve_points) for e in entries)
    if args.no_progress:
        results = run_compare(entries, args.seeds, device=args.device)
    else:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        # Progress on stderr: stdout keeps only the tables and where the files went.
        with Progress(
            TextColumn("{task.description:<48}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            transient=True,
        ) as bar:
            task = bar.add_task("compare", total=total)

            def report(description: str, advance: int) -> None:
                bar.update(task, description=description, advance=advance)

            results = run_compare(entries, args.seeds, device=args.device, progress=report)
    for table in _tables(results):
        console.print(table)
    try:
        json_path, png_path = results.save(args.out)
    except OSError as exc:  # --out was writable at the start; a full disk, say
        return _error(args.subparser, _save_elsewhere(results, args.out, exc))
    console.print(f"wrote {json_path} and {png_path}")
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


def _tables(results: Any) -> list[Table]:
    summary = results.summary()
    n_seeds = len(results.seeds)
    tables = []
    for entry in results.entries:
        env_summary = summary[entry.env_id]
        table = Table(
            title=entry.env_id,
            caption=(
                f"return at {entry.label_budget} labels: mean ± std over {n_seeds} "
                f"seed{'s' if n_seeds != 1 else ''}\nof {entry.eval_episodes}-episode means; "
                f"wall time per seed, all {len(entry.curve_points)} curve points"
            ),
        )
        table.add_column("agent")
        table.add_column("return", justify="right")
        table.add_column("expert labels", justify="right")
        table.add_column("wall time (s)", justify="right")
        expert = env_summary["expert"]
        # Returns in [0, 1] (text rewards) need more digits than CartPole's hundreds.
        digits = 3 if abs(expert["return_mean"]) < 10 else 1
        for agent, stats in env_summary["agents"].items():
            table.add_row(
                agent,
                f"{stats['return_mean']:.{digits}f} ± {stats['return_std']:.{digits}f}",
                str(stats["expert_labels"]),
                f"{stats['wall_time_s']:.1f}",
            )
        # The expert's ± is over its evaluation episodes (it is evaluated once per env).
        table.add_row(
            "expert (reference)",
            f"{expert['return_mean']:.{digits}f} ± {expert['return_std']:.{digits}f}",
            "-",
            "-",
            style="dim",
        )
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
