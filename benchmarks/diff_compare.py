"""Compare two ``lfi-gym compare`` results files figure by figure, ignoring wall times.

    python benchmarks/diff_compare.py BEFORE/results.json AFTER/results.json

Prints each (env, agent) row's return at every curve point where the two files differ, and
the count of rows that are bit-for-bit equal. Exit status 0 whatever it finds: it reports.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

#: Keys that measure time, not results.
TIMING_KEYS = {"train_time_s", "wall_time_s", "total_wall_time_s", "started_at"}


def _strip_timing(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_timing(v) for k, v in value.items() if k not in TIMING_KEYS}
    if isinstance(value, list):
        return [_strip_timing(v) for v in value]
    return value


def _rows(results: dict[str, Any]) -> dict[tuple[str, str, int], Any]:
    return {
        (run["env_id"], run["agent"], run["seed"]): _strip_timing(run) for run in results["runs"]
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    args = parser.parse_args()
    before, after = (json.loads(p.read_text()) for p in (args.before, args.after))
    old, new = _rows(before), _rows(after)
    same = [key for key in old if key in new and old[key] == new[key]]
    print(f"{len(same)} of {len(old)} runs equal bit for bit (env, agent, seed)")
    for key in sorted(set(old) | set(new)):
        if key in same:
            continue
        if key not in old or key not in new:
            print(f"{key}: only in {'after' if key in new else 'before'}")
            continue
        points = zip(old[key].get("curve", []), new[key].get("curve", []), strict=False)
        pairs = ", ".join(
            f"{a['expert_labels']} labels: {a['return_mean']:.4g} -> {b['return_mean']:.4g}"
            for a, b in points
        )
        print(f"{key}: {pairs}")
    summary_old, summary_new = (_strip_timing(r["summary"]) for r in (before, after))
    for env_id, entry in summary_new.items():
        for agent, row in entry["agents"].items():
            was = summary_old.get(env_id, {}).get("agents", {}).get(agent)
            if was != row:
                old_text = (
                    "-" if was is None else f"{was['return_mean']:.4g} ± {was['return_std']:.3g}"
                )
                print(
                    f"summary {env_id} / {agent}: {old_text} -> "
                    f"{row['return_mean']:.4g} ± {row['return_std']:.3g}"
                )


if __name__ == "__main__":
    main()
