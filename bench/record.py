"""What every benchmark leaves behind: bench/results/NAME.json, headed by when and where it
ran, so that numbers from another machine (or kernel, or Python) are never compared with
these unawares.

Imported as `record`: Python puts the script's directory, bench/, first on sys.path when
a benchmark runs as `python bench/bench_X.py`.
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def run_header() -> dict[str, Any]:
    """When (UTC, to the second) and on what: CPU architecture, kernel, Python, CPU count."""
    return {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": platform.machine(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
    }


def write_result(name: str, doc: dict[str, Any]) -> Path:
    """`doc` as bench/results/`name`.json (indented, one trailing newline), said on stdout
    with the run's length when `doc` has `wall_seconds`; its path."""
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"{name}.json"
    out.write_text(json.dumps(doc, indent=2) + "\n")
    took = f" ({doc['wall_seconds']:.0f} s)" if "wall_seconds" in doc else ""
    print(f"\nwritten to {out}{took}")
    return out
