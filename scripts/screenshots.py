"""Regenerate screenshots/ from the console's snapshot tests.

    python scripts/screenshots.py

The snapshot tests (tests/console/test_snapshots.py) drive the real app against the fake
node's scripted NAS story: peers, the relayed phone's detail and reason, networks with the
MTU/MSS calculator, members with a pending join, traffic, events, help, at 80x24 and
120x40, plus the 16-colour theme. `make test` fails when a render no longer matches, so
the SVGs they keep are always what the console draws today; this copies them under plain
names and, where `rsvg-convert` (Debian's librsvg2-bin) exists, renders PNGs too.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SNAPSHOTS = ROOT / "tests" / "console" / "__snapshots__" / "test_snapshots"
OUT = ROOT / "screenshots"
NAMES = [
    (re.compile(r"test_screen\[(?P<screen>\w+)-(?P<size>\d+x\d+)\]\.svg"), "{screen}-{size}"),
    (re.compile(r"test_sixteen_colours\[(?P<screen>\w+)\]\.svg"), "{screen}-16colours-80x24"),
    (re.compile(r"test_too_small\.svg"), "too-small-79x23"),
]


def to_png(tool: str, svg: Path, png: Path) -> None:
    """rsvg-convert drops the leading spaces of each text run in Rich's SVG (it reads them
    as collapsible), so columns drift together ("ONLINE0.1.0"); keep them."""
    text = svg.read_text(encoding="utf-8")
    text = text.replace("<svg ", '<svg xml:space="preserve" ', 1)
    subprocess.run(
        [tool, "--zoom", "1.0", "--format", "png", "-o", str(png)], input=text.encode(), check=True
    )


def main() -> int:
    if not SNAPSHOTS.is_dir():
        print(f"screenshots: no snapshots at {SNAPSHOTS}; run make test first", file=sys.stderr)
        return 1
    OUT.mkdir(exist_ok=True)
    png = shutil.which("rsvg-convert")
    written = 0
    for svg in sorted(SNAPSHOTS.glob("*.svg")):
        for pattern, template in NAMES:
            match = pattern.fullmatch(svg.name)
            if match is None:
                continue
            name = template.format(**match.groupdict()).replace("_", "-")
            shutil.copyfile(svg, OUT / f"{name}.svg")
            if png is not None:
                to_png(png, OUT / f"{name}.svg", OUT / f"{name}.png")
            written += 1
            break
    note = "" if png else " (no rsvg-convert: SVG only; apt-get install librsvg2-bin for PNG)"
    print(f"screenshots: {written} written to {OUT}{note}")
    return 0 if written else 1


if __name__ == "__main__":
    sys.exit(main())
