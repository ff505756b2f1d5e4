"""Compare two ``lfi-gym compare`` results files run by run, ignoring wall times.

    python benchmarks/diff_compare.py BEFORE/results.json AFTER/results.json

A run is one (env, agent or reference, seed, curve point); two runs are equal when every
episode score and every budget is equal bit for bit. Prints the count of equal runs and,
for the others, the mean score before and after. Reads results format 2 (the one runner)
and format 1 (the runner before it: agents' curves only, no budgets per point); when the
formats differ, budgets are left out of the comparison. Exit status 0 whatever it finds:
it reports.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

Run = tuple[str, str, int, int]  # env, agent or reference, seed, curve point (0: none)


def _runs(results: dict[str, Any]) -> dict[Run, tuple[Any, list[float]]]:
    """(env, name, seed, point) -> (budgets or None, episode scores), without timings."""
    version = results.get("format_version")
    out: dict[Run, tuple[Any, list[float]]] = {}
    if version == 1:
        for run in results["runs"]:
            for point in run["curve"]:
                key = (run["env_id"], run["agent"], run["seed"], point["expert_labels"])
                out[key] = (None, point["returns"])
        return out
    if version != 2:
        raise SystemExit(f"diff_compare reads results formats 1 and 2, not {version!r}")
    for job in results["jobs"]:
        config, result = job["config"], job["result"]
        name, seed = config["name"], config["seed"]
        env_id = config["env"]["env_id"]
        for point in result.get("curve", []):
            out[(env_id, name, seed, point["point"])] = (point["budgets"], point["scores"])
        if "curve" not in result:
            out[(env_id, name, seed, 0)] = (None, result["scores"])
    return out


def _mean(scores: list[float]) -> float:
    return sum(scores) / len(scores)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    args = parser.parse_args()
    files = [json.loads(p.read_text()) for p in (args.before, args.after)]
    old, new = (_runs(results) for results in files)
    if files[0].get("format_version") != files[1].get("format_version"):
        old, new = ({k: (None, v[1]) for k, v in runs.items()} for runs in (old, new))
    shared = [key for key in old if key in new]
    same = [key for key in shared if new[key] == old[key]]
    print(
        f"{len(same)} of {len(shared)} runs in both files equal bit for bit (env, agent, seed, "
        f"curve point); {len(old) - len(shared)} only before, {len(new) - len(shared)} only after"
    )
    for key in sorted(set(shared) - set(same), key=str):
        print(f"{key}: {_mean(old[key][1]):.4g} -> {_mean(new[key][1]):.4g}")


if __name__ == "__main__":
    main()
