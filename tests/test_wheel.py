"""The installed product is the daemon and the console, not their test doubles.

Builds the wheel the way a packager would (`pip wheel .`, here without build isolation so
no package index is needed) from a copy of the tree, and reads its file list.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel_files(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for package in ("overlay_core", "console"):
        shutil.copytree(REPO / package, src / package, ignore=ignore)
    out = tmp_path_factory.mktemp("wheel")
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation"]
    done = subprocess.run(
        [*cmd, "-q", "-w", str(out), str(src)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    (wheel,) = out.glob("ztui-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        return zf.namelist()


def test_wheel_holds_the_product(wheel_files: list[str]) -> None:
    """The daemon, the console, the demo and its rigs, and the stylesheets are in."""
    for path in (
        "overlay_core/io/daemon.py",
        "overlay_core/proto/node.py",
        "overlay_core/demo/world_loopback.py",
        "overlay_core/lab/netns.py",
        "console/app.py",
        "console/ztui.tcss",
    ):
        assert path in wheel_files, path


def test_wheel_holds_no_test_doubles(wheel_files: list[str]) -> None:
    """No `fake*` module and no `testing` package reach the wheel."""
    modules = [f for f in wheel_files if f.endswith(".py")]
    fakes = [f for f in modules if Path(f).name.startswith("fake") or "/fake" in f]
    testing = [f for f in modules if "/testing/" in f]
    assert fakes == []
    assert testing == []
