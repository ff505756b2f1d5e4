"""Compare two ``lfi-gym compare`` results files run by run, ignoring wall times.

    python benchmarks/diff_compare.py BEFORE/results.json AFTER/results.json

A run is one job record (env, agent or reference, seed, curve points); two runs are equal
when every episode score and every budget is equal bit for bit. Prints the count of equal
runs and, for the others, the mean score at each curve point before and after. Exit status
0 whatever it finds: it reports (format 2 files: lfi-gym compare since the one runner).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def _runs(results: dict[str, Any]) -> dict[tuple, list[tuple]]:
    """(env, name, seed, points) -> [(point, budgets, scores)] without timings."""
    if results.get("format_version") != 2:
        raise SystemExit("diff_compare reads results format 2 (lfi-gym compare's one runner)")
    out = {}
    for job in results["jobs"]:
        config, result = job["config"], job["result"]
        key = (config["env"]["env_id"], config["name"], config["seed"], tuple(config["points"]))
        if "curve" in result:
            out[key] = [(p["point"], p["budgets"], p["scores"]) for p in result["curve"]]
        else:
            out[key] = [(0, None, result["scores"])]
    return out


def _mean(scores: list[float]) -> float:
    return sum(scores) / len(scores)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    args = parser.parse_args()
    old, new = (_runs(json.loads(p.read_text())) for p in (args.before, args.after))
    same = [key for key in old if new.get(key) == old[key]]
    print(f"{len(same)} of {len(old)} runs equal bit for bit (env, agent, seed, curve points)")
    for key in sorted(set(old) | set(new), key=str):
        if key in same:
            continue
        if key not in old or key not in new:
            print(f"{key}: only in {'after' if key in new else 'before'}")
            continue
        pairs = ", ".join(
            f"{a[0]}: {_mean(a[2]):.4g} -> {_mean(b[2]):.4g}"
            for a, b in zip(old[key], new[key], strict=False)
        )
        print(f"{key}: {pairs}")


if __name__ == "__main__":
    main()
