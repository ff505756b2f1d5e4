"""BC vs DAgger vs DRIL against the number of expert demonstrations (the DRIL paper's figure).

    python benchmarks/dril_minatar.py --games Freeway,SpaceInvaders --demos 1,3 --n-seeds 3 \\
        --out /tmp/dril_runs/compare --figure benchmarks/figures/dril_minatar.png

The runs are ``lfi-gym compare``'s (:func:`lfi_gym.compare.run_compare`) on the
``atari-imitation`` suite's settings (``atari-imitation-ale`` for ``AtariImitation-*`` ids),
with this script's overrides: for the suite's own games and settings,
``lfi-gym compare --suite atari-imitation --seeds 3 --out DIR`` runs the same jobs. Each job's
record goes to ``--out/jobs`` (a stopped sweep resumes); the table and the figure come from
:mod:`lfi_gym.imitation`. ``--report-only`` prints them from what ``--out`` holds. Games are
MinAtar names (``Breakout``) or full env ids (``AtariImitation-Pong-v0``).

Each DRIL run is scored once, at the end of its RL steps; DRIL's score against RL steps on
one run is ``benchmarks/dril_probe.py --eval-every N``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Sequence

from lfi_gym import imitation
from lfi_gym.compare import CompareResults, run_compare
from lfi_gym.suites import SuiteEntry, get_suite


def _ints(text: str, minimum: int = 1) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated ints, got {text!r}") from None
    if not values or any(v < minimum for v in values):
        raise argparse.ArgumentTypeError(f"expected ints >= {minimum}, got {text!r}")
    return values


def _seeds(text: str) -> list[int]:
    return _ints(text, minimum=0)


def _env_id(name: str) -> str:
    return name if "-" in name else f"MinAtarImitation-{name}-v0"


def base_entry(env_id: str) -> SuiteEntry:
    """The suite's entry for ``env_id``, or its first entry's settings on that env."""
    suite = get_suite(
        "atari-imitation-ale" if env_id.startswith("AtariImitation-") else "atari-imitation"
    )
    for entry in suite:
        if entry.env_id == env_id:
            return entry
    return dataclasses.replace(suite[0], env_id=env_id)


def build_entry(env_id: str, args: argparse.Namespace) -> SuiteEntry:
    """``env_id``'s benchmark entry with the command line's overrides."""
    entry = base_entry(env_id)
    if args.demos is not None:
        entry = entry.with_budget(curve_points=args.demos)
    dril = dict(entry.agent_kwargs.get("dril", {}))
    changes: dict = {}
    if args.agents is not None:
        changes["agents"] = tuple(a.strip() for a in args.agents.split(",") if a.strip())
    if args.eval_episodes is not None:
        changes["eval_episodes"] = args.eval_episodes
    if args.env_kwargs is not None:
        changes["env_kwargs"] = args.env_kwargs
    if args.bc_epochs is not None:
        changes["n_epochs"] = args.bc_epochs  # BC's passes
        dril.update(bc_epochs=args.bc_epochs, ensemble_epochs=args.bc_epochs)
    if args.timesteps is not None:
        dril["total_timesteps"] = args.timesteps
    dril.update(args.dril_kwargs or {})
    changes["agent_kwargs"] = {**entry.agent_kwargs, "dril": dril}
    return dataclasses.replace(entry, **changes)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--games", default="SpaceInvaders,Freeway", help="comma-separated games")
    parser.add_argument("--agents", default=None, help="comma-separated (default bc,dagger,dril)")
    parser.add_argument("--demos", type=_ints, default=None, help="e.g. 1,3 (default 1,3,5,10,20)")
    parser.add_argument("--seeds", type=_seeds, default=None, help="seeds, e.g. 0,1,2")
    parser.add_argument("--n-seeds", type=int, default=3, help="seeds 0..N-1 (default 3)")
    parser.add_argument("--out", required=True, help="results folder")
    parser.add_argument("--figure", default=None, help="figure path (default OUT/...png)")
    parser.add_argument("--timesteps", type=int, default=None, help="DRIL RL steps per run")
    parser.add_argument("--eval-episodes", type=int, default=None)
    parser.add_argument("--bc-epochs", type=int, default=None, help="BC / DRIL's BC passes")
    parser.add_argument("--env-kwargs", type=json.loads, default=None, help="JSON for gym.make")
    parser.add_argument("--dril-kwargs", type=json.loads, default=None, help="JSON for DRIL")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--jobs", type=int, default=1, help="runs at once (processes)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run")
    parser.add_argument("--report-only", action="store_true", help="only summarise OUT")
    parser.add_argument("--no-progress", action="store_true")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.report_only:
        results = CompareResults.load(args.out)
    else:
        entries = [
            build_entry(_env_id(g.strip()), args) for g in args.games.split(",") if g.strip()
        ]

        def progress(description: str, finished: bool, seconds: float | None) -> None:
            if finished and not args.no_progress:
                took = "reused" if seconds is None else f"{seconds:.0f} s"
                print(f"{description}: {took}", file=sys.stderr, flush=True)

        results = run_compare(
            entries,
            args.seeds if args.seeds is not None else args.n_seeds,
            device=args.device,
            out=args.out,
            n_jobs=args.jobs,
            threads_per_job=args.threads,
            progress=progress,
        )
        results.save(args.out)
    figure = args.figure or f"{args.out}/{imitation.FIGURE_FILE}"
    print(imitation.report(results, figure))
    return 0


if __name__ == "__main__":
    sys.exit(main())
