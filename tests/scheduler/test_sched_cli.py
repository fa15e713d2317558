"""The command line: exit codes, messages and files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from scheduler.__main__ import main
from scheduler.check import violations
from scheduler.problem import allocation_from_json, load_problem


@pytest.fixture
def instance(build: Any, tmp_path: Path) -> Path:
    data = build.instance(
        {"mca": 1.0, "care": 0.5},
        [
            build.session("mca-1", "mca", capacity=1),
            build.session("care-1", "care", day="2027-02-02"),
        ],
        [
            build.learner("n1", ["mca", "care"], preferences={"mca": ["mca-1"]}),
            build.learner("n2", ["mca"]),
        ],
    )
    path = tmp_path / "instance.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


@pytest.mark.parametrize("command", ["solve", "greedy"])
def test_writes_result(
    instance: Path, tmp_path: Path, command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "result.json"
    args = [command, str(instance), "--out", str(out), "-q"]
    if command == "solve":
        args += ["--time-limit", "5"]
    assert main(args) == 0
    data = json.loads(out.read_text(encoding="utf-8"))
    assert data["format"] == "asye-allocation-result/1"
    assert set(data) >= {
        "status",
        "placed",
        "unplaced",
        "preference_cost",
        "bound",
        "seconds",
        "assignments",
        "unplaced_requests",
    }
    assert (data["placed"], data["unplaced"]) == (2, 1)
    assert data["unplaced_requests"] == [
        {"learner": "n2", "course": "mca", "reason": "capacity: every eligible date is full"}
    ]
    result = allocation_from_json(data)
    problem = load_problem(json.loads(instance.read_text(encoding="utf-8")))
    assert violations(problem, result.assignments) == []
    assert capsys.readouterr().out == ""


def test_stdout_when_no_out(instance: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["greedy", str(instance), "-q"]) == 0
    assert json.loads(capsys.readouterr().out)["status"] == "optimal"


def test_bad_input_exits_2_and_writes_nothing(
    build: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = build.instance(
        {"mca": 1.0}, [build.session("s", "mca")], [build.learner("n", ["mca", "mcaa"])]
    )
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    out = tmp_path / "result.json"
    assert main(["solve", str(path), "--out", str(out)]) == 2
    assert capsys.readouterr().err.strip() == 'learners[0].needs[1]: unknown course "mcaa"'
    assert not out.exists()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "invalid JSON at line 1"),
        ('{"format": NaN}', "NaN is not allowed"),
    ],
)
def test_unreadable_json_exits_2(
    tmp_path: Path, text: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.json"
    path.write_text(text, encoding="utf-8")
    assert main(["greedy", str(path)]) == 2
    assert message in capsys.readouterr().err


def test_missing_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["solve", str(tmp_path / "nope.json")]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_python_dash_m(instance: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "scheduler",
            "solve",
            str(instance),
            "--time-limit",
            "5",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "placements" in done.stderr  # progress goes to stderr
    assert "n1" not in done.stderr  # and names no one
    assert json.loads(out.read_text(encoding="utf-8"))["status"] == "optimal"
