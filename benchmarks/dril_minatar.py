"""BC vs DAgger vs DRIL against the number of expert demonstrations (the DRIL paper's figure).

    python benchmarks/dril_minatar.py --games Freeway,SpaceInvaders --demos 1,3 --n-seeds 3 \\
        --out /tmp/dril_runs/sweep --figure benchmarks/figures/dril_minatar.png

Runs are cached one JSON file each under ``--out/runs`` (a stopped sweep resumes; two
processes may share the folder). ``--report-only`` prints the table from what is there.
Games are MinAtar names (``Breakout``) or full env ids (``AtariImitation-Pong-v0``).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

import torch


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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--games", default="SpaceInvaders,Freeway", help="comma-separated games")
    parser.add_argument("--agents", default="bc,dagger,dril", help="comma-separated agents")
    parser.add_argument("--demos", type=_ints, default=[1, 3, 5, 10, 20], help="e.g. 1,3")
    parser.add_argument("--seeds", type=_seeds, default=None, help="seeds, e.g. 0,1,2")
    parser.add_argument("--n-seeds", type=int, default=3, help="seeds 0..N-1 (default 3)")
    parser.add_argument("--out", required=True, help="results folder")
    parser.add_argument("--figure", default=None, help="figure path (default OUT/...png)")
    parser.add_argument("--timesteps", type=int, default=None, help="DRIL RL steps per run")
    parser.add_argument(
        "--eval-every", type=int, default=None, help="also score DRIL every N RL steps"
    )
    parser.add_argument(
        "--report-steps", type=int, default=None, help="report DRIL at this point of its curve"
    )
    parser.add_argument("--eval-episodes", type=int, default=None)
    parser.add_argument("--bc-epochs", type=int, default=None, help="BC / ensemble passes")
    parser.add_argument("--env-kwargs", type=json.loads, default=None, help="JSON for gym.make")
    parser.add_argument("--dril-kwargs", type=json.loads, default=None, help="JSON for DRIL")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--tensorboard-log", default=None, help="DRIL's TensorBoard folder")
    parser.add_argument("--report-only", action="store_true", help="only summarise OUT")
    parser.add_argument("--no-progress", action="store_true")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from lfi_gym.imitation import game_config, report, run_sweep

    args = build_parser().parse_args(argv)
    torch.set_num_threads(args.threads)
    if not args.report_only:
        games = [
            game_config(
                _env_id(g.strip()),
                dril_timesteps=args.timesteps,
                eval_episodes=args.eval_episodes,
                bc_epochs=args.bc_epochs,
                env_kwargs=args.env_kwargs,
                dril_kwargs=args.dril_kwargs,
                dril_eval_every=args.eval_every,
            )
            for g in args.games.split(",")
            if g.strip()
        ]
        run_sweep(
            games,
            agents_=[a.strip() for a in args.agents.split(",") if a.strip()],
            demos=args.demos,
            seeds=args.seeds if args.seeds is not None else args.n_seeds,
            out=args.out,
            device=args.device,
            tensorboard_log=args.tensorboard_log,
            progress_bar=not args.no_progress,
        )
    print(report(args.out, args.figure, args.report_steps))
    return 0


if __name__ == "__main__":
    sys.exit(main())
