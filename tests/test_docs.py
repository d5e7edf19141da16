"""The README and docs/ must stand on their own in a clone: every relative link points at a
file inside the repository (a link to ../shared/DESIGN.md worked only on the machine it was
written on), and every `ztui`/`overlayd` command line in a code block parses.

The link checker also runs on a small synthetic page, so a regex that silently stopped
finding links would fail here too.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]

# [text](target) and ![alt](target); the target ends at whitespace or ")".
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)")


def relative_links(text: str) -> list[str]:
    """Link targets that name a file (not a URL, not an in-page anchor)."""
    targets = []
    for target in LINK.findall(text):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
            continue
        targets.append(target.split("#", 1)[0])
    return targets


def broken_links(page: Path) -> list[str]:
    """Targets of `page` that are missing or resolve outside the repository."""
    bad = []
    for target in relative_links(page.read_text(encoding="utf-8")):
        resolved = (page.parent / target).resolve()
        if not resolved.is_relative_to(REPO) or not resolved.exists():
            bad.append(target)
    return bad


def test_the_checker_finds_links_outside_and_missing(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(f"{__name__}.REPO", tmp_path)
    (tmp_path / "there.md").write_text("x")
    page = tmp_path / "page.md"
    page.write_text(
        "[ok](there.md) [out](../shared/DESIGN.md) ![img](missing.png) "
        "[web](https://example.com/) [anchor](#top) [ok too](there.md#part)"
    )
    assert broken_links(page) == ["../shared/DESIGN.md", "missing.png"]


@pytest.mark.parametrize("page", DOCS, ids=lambda p: p.name)
def test_relative_links_stay_inside_the_repository(page: Path) -> None:
    assert broken_links(page) == []


def command_lines(text: str, program: str) -> list[str]:
    """`program ...` lines inside ``` blocks, without comments, `sudo` or a trailing `&`."""
    lines = []
    for block in re.findall(r"```[a-z]*\n(.*?)```", text, flags=re.DOTALL):
        for raw in block.splitlines():
            line = raw.split(" #", 1)[0].strip().removeprefix("sudo ").rstrip("&").strip()
            line = re.split(r" [|>] ", line, maxsplit=1)[0]  # the shell's, not ours
            if line.startswith(program + " "):
                lines.append(line)
    return lines


def test_command_lines_are_found() -> None:
    page = (
        "```sh\nsudo ztui info --json   # a comment\nmake demo\nztui peers > out.txt &\n```\n"
        "`ztui not-in-a-block`\n"
    )
    assert command_lines(page, "ztui") == ["ztui info --json", "ztui peers"]


@pytest.mark.parametrize("page", DOCS, ids=lambda p: p.name)
def test_documented_commands_parse(page: Path) -> None:
    """A README command the CLI no longer takes (a renamed option, a dropped subcommand) is
    a usage error for whoever pastes it; argparse says so with SystemExit(2)."""
    import shlex

    from console.cli import build_parser as ztui_parser
    from overlay_core.io.cli import build_parser as overlayd_parser

    text = page.read_text(encoding="utf-8")
    parsers = {"ztui": ztui_parser()[0], "overlayd": overlayd_parser()}
    failures = []
    for program, parser in parsers.items():
        for line in command_lines(text, program):
            try:
                parser.parse_args(shlex.split(line)[1:])
            except SystemExit as exc:
                failures.append(f"{line!r}: exit {exc.code}")
    assert failures == []


def test_the_systemd_unit_starts_on_a_fresh_install() -> None:
    """The unit's ExecStart parses, and the home it names is one systemd creates: a
    ReadWritePaths= entry that does not exist yet stops the unit with 226/NAMESPACE, and
    no README step creates /var/lib/ztui."""
    import shlex

    from overlay_core.io.cli import build_parser as overlayd_parser

    unit = (REPO / "contrib" / "overlayd.service").read_text(encoding="utf-8")
    settings = dict(
        line.split("=", 1) for line in unit.splitlines() if "=" in line and line[:1].isalpha()
    )
    argv = shlex.split(settings["ExecStart"])
    args = overlayd_parser().parse_args(argv[1:])
    assert str(args.home) == "/var/lib/" + settings["StateDirectory"]
    assert settings["StateDirectoryMode"] == "0750"  # what --api-group expects of the home
    for path in settings.get("ReadWritePaths", "").split():
        assert path.startswith("-"), f"ReadWritePaths={path} must exist before the unit starts"
