"""Effects are dispatched by one exhaustive `match`, so a forgotten effect is a type error.

The node returns effects (proto/effects.py) and three dispatchers execute them: the daemon
(io/daemon.py), its TAP side (io/networks.py, the `PortEffect` subset) and the in-memory
internet of the tests (testing/fakenet.py). Each matches on the union and ends in
`case _: assert_never(effect)`. These tests pin down that this really catches a missing
case: mypy is run on modules that match the union with one member left out (one module
per member, so an effect added later is covered too) and must reject each of them, while a
module that lists them all, and the three real dispatchers, must pass.
"""

from __future__ import annotations

import ast
import re
import sys
import typing
from pathlib import Path

import pytest
from mypy import api as mypy_api

from overlay_core.proto import effects

REPO = Path(__file__).resolve().parents[1]
UNIONS = {"Effect": effects.Effect, "PortEffect": effects.PortEffect}
# (file, function) of each dispatcher and the union its subject is typed with
DISPATCHERS = [
    ("overlay_core/io/daemon.py", "_execute", "Effect"),
    ("overlay_core/io/networks.py", "handle", "PortEffect"),
    ("overlay_core/testing/fakenet.py", "_apply", "Effect"),
]


def _members(union: str) -> list[str]:
    return [member.__name__ for member in typing.get_args(UNIONS[union])]


def _matcher(union: str, cases: list[str]) -> str:
    """A module that matches an `effect: <union>` with one case per name in `cases`."""
    body = "".join(f"        case {name}():\n            pass\n" for name in cases)
    return (
        "from typing import assert_never\n"
        f"from overlay_core.proto.effects import {union}, {', '.join(cases)}\n\n\n"
        f"def dispatch(effect: {union}) -> None:\n"
        "    match effect:\n"
        f"{body}"
        "        case _:\n"
        "            assert_never(effect)\n"
    )


def test_the_unions_list_every_effect_once() -> None:
    """Every class under effects.py's `effects` heading is in `Effect`, and `PortEffect` is a
    part of it: an effect left out of the union would escape the exhaustiveness check."""
    assert sorted(_members("Effect")) == sorted(_classes_under("effects"))
    assert set(_members("PortEffect")) < set(_members("Effect"))


def _classes_under(heading: str) -> list[str]:
    """The classes effects.py defines below its `# ---- <heading>` comment line (up to the
    next such line)."""
    section, names = "", []
    for line in Path(effects.__file__).read_text().splitlines():
        if found := re.match(r"# -+ (\w+)", line):
            section = found.group(1)
        elif section == heading and (defined := re.match(r"class (\w+)", line)):
            names.append(defined.group(1))
    return names


def test_mypy_rejects_a_match_that_forgets_an_effect(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One mypy run over: for each union, a complete match (must pass) and one match per
    member with that member left out (each must fail at its assert_never); and the three
    real dispatchers (must pass)."""
    expected_errors: set[str] = set()
    files: list[str] = []
    for union in UNIONS:
        members = _members(union)
        complete = tmp_path / f"complete_{union.lower()}.py"
        complete.write_text(_matcher(union, members))
        files.append(str(complete))
        for left_out in members:
            path = tmp_path / f"without_{union.lower()}_{left_out.lower()}.py"
            path.write_text(_matcher(union, [m for m in members if m != left_out]))
            files.append(str(path))
            expected_errors.add(path.name)
    files += [str(REPO / path) for path, _, _ in DISPATCHERS]

    monkeypatch.chdir(REPO)  # so mypy finds overlay_core, and reads the project's settings
    # mypy raises the interpreter's recursion limit for itself and leaves it raised; the
    # tests that run after this one in the same process (deeply nested JSON bodies must
    # hit the default limit) need it back.
    limit = sys.getrecursionlimit()
    try:
        stdout, stderr, _ = _run_mypy(files, tmp_path)
    finally:
        sys.setrecursionlimit(limit)

    errors = [line for line in stdout.splitlines() if ": error:" in line]
    assert not stderr, stderr
    failed = {Path(line.split(":", 1)[0]).name for line in errors}
    assert failed == expected_errors, stdout
    assert all('"assert_never"' in line for line in errors), stdout


@pytest.mark.parametrize(("path", "function", "union"), DISPATCHERS)
def test_each_dispatcher_is_one_exhaustive_match(path: str, function: str, union: str) -> None:
    """The dispatcher's parameter is typed with the union, its loop body is one `match` on
    it whose last case is `case _: assert_never(...)`, and it tells effects apart with no
    isinstance(): an isinstance chain has no last case to catch what it forgets."""
    tree = ast.parse((REPO / path).read_text())
    [func] = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef) and node.name == function
    ]
    annotations = {ast.unparse(arg.annotation) for arg in func.args.args if arg.annotation}
    assert annotations & {union, f"list[{union}]"}, f"{function} takes no {union}"
    matches = [node for node in ast.walk(func) if isinstance(node, ast.Match)]
    assert len(matches) == 1, f"{path}:{function} should have one match statement"
    last = matches[0].cases[-1]
    assert isinstance(last.pattern, ast.MatchAs) and last.pattern.pattern is None
    assert ast.unparse(last.body[0]).startswith("assert_never("), ast.unparse(last.body[0])
    calls = [
        node.func.id
        for node in ast.walk(func)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
    ]
    assert "isinstance" not in calls, f"{path}:{function} still uses isinstance"


def _run_mypy(files: list[str], tmp_path: Path) -> tuple[str, str, int]:
    return mypy_api.run(
        [*files, "--config-file", str(REPO / "pyproject.toml"),
         "--cache-dir", str(tmp_path / "cache"), "--no-error-summary"]
    )  # fmt: skip
