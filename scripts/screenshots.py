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
                subprocess.run(
                    [png, "--zoom", "1.0", "-o", str(OUT / f"{name}.png"), str(OUT / f"{name}.svg")],
                    check=True,
                )
            written += 1
            break
    note = "" if png else " (no rsvg-convert: SVG only; apt-get install librsvg2-bin for PNG)"
    print(f"screenshots: {written} written to {OUT}{note}")
    return 0 if written else 1


if __name__ == "__main__":
    sys.exit(main())
