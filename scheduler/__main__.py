"""Command line: ``python -m scheduler solve|greedy INSTANCE.json [--time-limit S] [--out F]``.

Exit codes: 0 done, 2 bad input (``path: message`` on stderr, nothing written).
Progress goes to stderr through logging and names no one: figures only.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

from scheduler.baseline import greedy
from scheduler.problem import ProblemError, allocation_to_json, load_problem
from scheduler.solver import Progress, solve

log = logging.getLogger("scheduler")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed in JSON")


def read_instance(path: Path) -> Any:
    """Return the parsed JSON in ``path``, or raise ProblemError saying why it is unusable."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ProblemError(str(path), f"cannot read: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise ProblemError(str(path), "not UTF-8 text") from exc
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise ProblemError(
            str(path), f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from exc
    except ValueError as exc:
        raise ProblemError(str(path), str(exc)) from exc


def _log_progress(progress: Progress) -> None:
    log.info(
        "%s: objective %g, bound %g, %.1f s",
        progress.phase,
        progress.objective,
        progress.bound,
        progress.seconds,
    )


def main(argv: list[str] | None = None) -> int:
    """Run the command line and return the exit code."""
    parser = argparse.ArgumentParser(
        prog="python -m scheduler",
        description="Allocate NQSWs to training sessions (formats: scheduler/FORMAT.md).",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name, text in (
        ("solve", "optimise (SCIP MIP by default) and prove a bound"),
        ("greedy", "first come, first served baseline"),
    ):
        cmd = sub.add_parser(name, help=text, description=text)
        cmd.add_argument("instance", type=Path, help="asye-allocation/1 JSON file")
        cmd.add_argument("--out", type=Path, help="write the result here instead of stdout")
        if name == "solve":
            cmd.add_argument("--time-limit", type=float, default=60.0, help="seconds (default 60)")
            cmd.add_argument(
                "--engine",
                choices=["mip", "cp-sat"],
                default="mip",
                help="mip (default; measured best) or cp-sat (for comparison)",
            )
            cmd.add_argument("--workers", type=int, default=2, help="CP-SAT workers (default 2)")
        cmd.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        format="%(name)s: %(message)s",
        stream=sys.stderr,
    )
    if args.command == "solve" and not args.time_limit > 0:
        parser.error("--time-limit must be more than 0")

    # The time limit covers reading the file too.
    began = time.perf_counter()
    try:
        problem = load_problem(read_instance(args.instance))
    except ProblemError as exc:
        print(f"{exc.path}: {exc.message}", file=sys.stderr)
        return 2
    log.info(
        "%d learners, %d sessions, %d requests",
        len(problem.learners),
        len(problem.sessions),
        len(problem.requests),
    )
    for warning in problem.fixed_warnings:
        log.warning("%s", warning)

    if args.command == "solve":
        result = solve(
            problem,
            time_limit=args.time_limit,
            workers=args.workers,
            on_progress=_log_progress,
            engine=args.engine,
            began=began,
        )
    else:
        result = greedy(problem)
    log.info(
        "%s: placed %d of %d (bound %d), preference cost %d (bound %d), %.2f s",
        result.status,
        result.placed,
        result.placed + result.unplaced,
        result.bound_placed,
        result.preference_cost,
        result.bound_preference_cost,
        result.seconds,
    )
    text = json.dumps(allocation_to_json(result), indent=2) + "\n"
    if args.out is None:
        sys.stdout.write(text)
    else:
        args.out.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
