"""Compare training runs that part from one state, at equal steps or equal compute.

    python benchmarks/curves.py LABEL=weights/training/video5f/log.csv LABEL=runs/x/log.csv \
        [--by step|compute] [--since STEP] [--metric val_psnr_y] [--every 5]

Each run's validation rows after ``--since`` (the step they part at; default: the last step the
runs share) are read from its ``log.csv`` and interpolated linearly at common points of the
axis (``--by step``: the bf16-against-fp32 parity check; ``--by compute``: which run grows its
validation fastest per compute-minute, the growth probe), every ``--every`` units from the start
(compute in minutes). Prints one row per point and, per run, the samples per compute-second
over the stretch.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np


def read_rows(path: Path) -> list[dict[str, float]]:
    with open(path, newline="") as f:
        rows = []
        for row in csv.DictReader(f):
            try:
                rows.append({k: float(v) for k, v in row.items() if v not in ("", None)})
            except ValueError:
                continue
    return rows


def parting_step(runs: dict[str, list[dict[str, float]]]) -> float:
    """The last validated step every run's log has with the same value (where they part)."""
    shared = None
    for rows in runs.values():
        steps = {(r["step"], r.get("val_psnr_y")) for r in rows}
        shared = steps if shared is None else shared & steps
    return max((s for s, _ in shared or ()), default=0.0)


def table(runs: dict[str, list[dict[str, float]]], *, by: str, since: float, metric: str, every: float) -> list[list[str]]:
    axis = "step" if by == "step" else "compute_s"
    scale = 1.0 if by == "step" else 60.0
    start_rows = {name: [r for r in rows if r["step"] == since] for name, rows in runs.items()}
    lines = [["", *runs]]
    curves = {}
    for name, rows in runs.items():
        start = start_rows[name][0] if start_rows[name] else None
        after = [r for r in rows if r["step"] > since and metric in r]
        if start is None or not after:
            raise SystemExit(f"{name}: no validation at step {since:g} and after it; give --since")
        x = np.array([start[axis]] + [r[axis] for r in after]) / scale
        y = np.array([start[metric]] + [r[metric] for r in after])
        curves[name] = (x - x[0], y)
    reach = min(c[0][-1] for c in curves.values())
    for point in np.arange(0.0, reach + 1e-9, every):
        lines.append([f"+{point:g}", *(f"{np.interp(point, *curves[n]):.4f}" for n in runs)])
    lines.append(["last", *(f"{curves[n][1][-1]:.4f} @ +{curves[n][0][-1]:.1f}" for n in runs)])
    return lines


def throughput(rows: list[dict[str, float]], since: float) -> float:
    """Samples per compute-second between the run's first row after the parting step (the
    shared stretch before it may have run at another rate) and its last row."""
    after = [r for r in rows if r["step"] > since]
    start, end = after[0], after[-1]
    return (end["samples"] - start["samples"]) / max(end["compute_s"] - start["compute_s"], 1e-9)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+", help="LABEL=PATH/log.csv")
    p.add_argument("--by", choices=("step", "compute"), default="step")
    p.add_argument("--since", type=float, help="the step the runs part at (default: the last they share)")
    p.add_argument("--metric", default="val_psnr_y")
    p.add_argument("--every", type=float, default=500.0, help="steps, or compute minutes with --by compute")
    args = p.parse_args(argv)
    runs = {}
    for spec in args.runs:
        label, _, path = spec.partition("=")
        runs[label] = read_rows(Path(path))
    since = args.since if args.since is not None else parting_step(runs)
    lines = table(runs, by=args.by, since=since, metric=args.metric, every=args.every)
    print(f"{args.metric} by {args.by} from step {since:g}")
    for line in lines:
        print(" | ".join(f"{cell:>20}" for cell in line))
    for name, rows in runs.items():
        if sum(r["step"] > since for r in rows) > 1:
            print(f"{name}: {throughput(rows, since):.2f} samples per compute-second after step {since:g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
