"""Compare the greedy baseline with the solver on generated instances.

Usage: ``python benchmarks/allocation.py [host national stress] [--time-limit S] [--seed N]``

Prints a Markdown table: placements and preference cost of greedy and of the solver,
the proved bound, ratios, status and wall time, and checks both answers with
``scheduler.check.violations``.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.generate import KINDS
from scheduler.baseline import greedy
from scheduler.check import violations
from scheduler.problem import load_problem
from scheduler.solver import solve

# Targets from the brief: host proved optimal in 5 s, national in 60 s, stress within
# 1% of the bound in 120 s.
LIMITS = {"host": 5.0, "national": 60.0, "stress": 120.0}

HEADER = (
    "| instance | learners | requests | greedy placed | greedy cost | solver placed"
    " | solver cost | bound placed | bound cost | solver/greedy | solver/bound | status"
    " | greedy s | solver s | limit s | rule breaks |"
)


def run(kind: str, limit: float, seed: int | None = None) -> str:
    """Return one table row for instance ``kind`` solved within ``limit`` seconds."""
    problem = load_problem(KINDS[kind]() if seed is None else KINDS[kind](seed=seed))
    began = time.perf_counter()
    base = greedy(problem)
    greedy_s = time.perf_counter() - began
    began = time.perf_counter()
    best = solve(problem, time_limit=limit)
    solver_s = time.perf_counter() - began
    breaks = len(violations(problem, base.assignments)) + len(violations(problem, best.assignments))
    name = kind if seed is None else f"{kind} (seed {seed})"
    return (
        f"| {name} | {len(problem.learners)} | {len(problem.requests)} | {base.placed}"
        f" | {base.preference_cost} | {best.placed} | {best.preference_cost}"
        f" | {best.bound_placed} | {best.bound_preference_cost}"
        f" | {best.placed / max(1, base.placed):.4f}"
        f" | {best.placed / max(1, best.bound_placed):.4f}"
        f" | {best.status} | {greedy_s:.1f} | {solver_s:.1f} | {limit:g} | {breaks} |"
    )


def main(argv: list[str] | None = None) -> int:
    """Run the comparison and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kinds", nargs="*", choices=[*LIMITS, []], help="default: all")
    parser.add_argument("--time-limit", type=float, help="override every instance's limit")
    parser.add_argument("--seed", type=int, help="generate with this seed (default: per kind)")
    parser.add_argument("-v", "--verbose", action="store_true", help="solver progress")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING)
    logging.getLogger("scheduler").setLevel(logging.INFO if args.verbose else logging.ERROR)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.machine()}, {os.cpu_count()} cores,"
        f" load average {load:.1f} at start"
    )
    print()
    print(HEADER)
    print("|" + "---|" * HEADER.count(" | ") + "---|")
    for kind in args.kinds or list(LIMITS):
        print(run(kind, args.time_limit or LIMITS[kind], args.seed), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
