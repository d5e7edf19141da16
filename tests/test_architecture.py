"""Import boundaries from DESIGN.md, checked on the source's AST (nothing is imported).

* overlay_core/proto is sans-IO: no sockets, event loops, clocks, randomness, processes or
  threads. Time and randomness come in as arguments or injected sources.
* console/ reaches the node only through the HTTP API, so the only things it may import
  from overlay_core are the shared JSON schema, overlay_core.api.schema, and the pure view
  builders over that JSON (overlay_core.api.pathview), which its fake node serves so the
  fake cannot drift from the daemon. Those builders import nothing of overlay_core but the
  schema, so this lets no protocol code into the console.

* No product module imports a `testing` package (overlay_core.testing, console.testing:
  test doubles, left out of the wheel), and overlay_core never imports console.

Each rule is also run against a small synthetic tree in tmp_path, so a checker that
silently stopped finding violations would fail here too.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

PROTO_FORBIDDEN = frozenset(
    {
        "asyncio",
        "socket",
        "selectors",
        "pyroute2",
        "aiohttp",
        "httpx",
        "time",
        "random",
        "subprocess",
        "threading",
    }
)
# The I/O layers above proto; proto must not reach up into them either.
PROTO_FORBIDDEN_INTERNAL = ("overlay_core.io", "overlay_core.api", "console")
CONSOLE_ALLOWED_CORE = ("overlay_core.api.schema", "overlay_core.api.pathview")
SHARED_VIEWS = ("overlay_core/api/pathview.py",)  # may import only the schema


def _module_name(root: Path, path: Path) -> tuple[str, bool]:
    """Dotted module name of a file under root, and whether it is a package __init__."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    is_pkg = parts[-1] == "__init__"
    if is_pkg:
        parts.pop()
    return ".".join(parts), is_pkg


def iter_imports(root: Path, package: str) -> Iterator[tuple[str, int, str]]:
    """Yield (file, line, imported module) for every import in root/package/**.py.

    `from a.b import c` yields `a.b.c` (c may be a submodule or a name in a.b); relative
    imports are resolved against the file's package; `importlib.import_module("x")` and
    `__import__("x")` with a literal argument count as imports of x.
    """
    for path in sorted((root / package).rglob("*.py")):
        module, is_pkg = _module_name(root, path)
        pkg_parts = module.split(".") if is_pkg else module.split(".")[:-1]
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        where = str(path.relative_to(root))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    yield where, node.lineno, alias.name
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base_parts = pkg_parts[: len(pkg_parts) - node.level + 1]
                    base = ".".join(base_parts + ([node.module] if node.module else []))
                else:
                    base = node.module or ""
                for alias in node.names:
                    yield where, node.lineno, f"{base}.{alias.name}" if base else alias.name
            elif (
                isinstance(node, ast.Call)
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str)
                and (
                    (isinstance(node.func, ast.Name) and node.func.id == "__import__")
                    or (isinstance(node.func, ast.Attribute) and node.func.attr == "import_module")
                )
            ):
                yield where, node.lineno, node.args[0].value


def _is_within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def proto_violations(root: Path) -> list[str]:
    """Imports in overlay_core/proto of I/O, clock or randomness modules, or of the layers
    built on top of proto."""
    bad = []
    for where, line, module in iter_imports(root, "overlay_core/proto"):
        if module.split(".")[0] in PROTO_FORBIDDEN or any(
            _is_within(module, pkg) for pkg in PROTO_FORBIDDEN_INTERNAL
        ):
            bad.append(f"{where}:{line}: imports {module}")
    return sorted(set(bad))


def console_violations(root: Path) -> list[str]:
    """Imports in console/ of anything from overlay_core other than the API schema."""
    bad = []
    for where, line, module in iter_imports(root, "console"):
        if not _is_within(module, "overlay_core"):
            continue
        if not any(_is_within(module, allowed) for allowed in CONSOLE_ALLOWED_CORE):
            bad.append(f"{where}:{line}: imports {module}")
    return sorted(set(bad))


def shared_view_violations(root: Path) -> list[str]:
    """Imports of overlay_core in the shared view builders other than the schema."""
    bad = []
    for where, line, module in iter_imports(root, "overlay_core"):
        if where in SHARED_VIEWS and _is_within(module, "overlay_core"):
            if not _is_within(module, "overlay_core.api.schema"):
                bad.append(f"{where}:{line}: imports {module}")
    return sorted(set(bad))


TESTING_PACKAGES = ("overlay_core.testing", "console.testing")


def double_import_violations(root: Path) -> list[str]:
    """Imports of a testing package from outside the testing packages, and imports of
    console from anywhere in overlay_core."""
    bad = []
    for package in ("overlay_core", "console"):
        for where, line, module in iter_imports(root, package):
            inside = where.replace("/", ".").removesuffix(".py")
            in_double = any(_is_within(inside, t) for t in TESTING_PACKAGES)
            imports_double = any(_is_within(module, t) for t in TESTING_PACKAGES)
            core_to_console = package == "overlay_core" and _is_within(module, "console")
            if core_to_console or (imports_double and not in_double):
                bad.append(f"{where}:{line}: imports {module}")
    return sorted(set(bad))


# --------------------------------------------------------------------------------------
# The rules, on the real tree


def test_proto_is_sans_io() -> None:
    """overlay_core/proto imports no asyncio, socket, selectors, pyroute2, aiohttp, httpx,
    time, random, subprocess or threading, and nothing from io/, api/ or console/."""
    assert (REPO / "overlay_core" / "proto").is_dir()
    assert proto_violations(REPO) == []


def test_console_only_imports_api_schema_from_core() -> None:
    """console/ imports nothing from overlay_core except overlay_core.api.schema and the
    pure view builders: the console talks to the node over HTTP, never in-process."""
    assert (REPO / "console").is_dir()
    assert console_violations(REPO) == []


def test_shared_view_builders_import_only_the_schema() -> None:
    """pathview.py, which the console may import, brings in nothing of the node's."""
    assert all((REPO / p).is_file() for p in SHARED_VIEWS)
    assert shared_view_violations(REPO) == []


def test_product_never_imports_test_doubles() -> None:
    """No module outside overlay_core/testing and console/testing imports them, and
    overlay_core imports nothing of the console."""
    assert all((REPO / p.replace(".", "/")).is_dir() for p in TESTING_PACKAGES)
    assert double_import_violations(REPO) == []


def test_the_testing_checker_finds_product_imports_of_doubles(tmp_path: Path) -> None:
    """Absolute and relative imports of a testing package from product code are caught;
    the doubles may import each other and the product."""
    root = _tree(
        tmp_path,
        {
            "overlay_core/__init__.py": "",
            "overlay_core/io/__init__.py": "",
            "overlay_core/io/daemon.py": "from ..proto import node\n",
            "overlay_core/testing/__init__.py": "",
            "overlay_core/testing/fakenet.py": "from ..io import daemon\nfrom . import fakenat\n",
            "console/__init__.py": "",
            "console/testing/__init__.py": "",
            "console/testing/fake.py": "from ..api import AsyncApiClient\n",
        },
    )
    assert double_import_violations(root) == []
    cases = {
        "overlay_core/io/bad.py": (
            "from ..testing.fakenet import FakeNet\n",
            "overlay_core.testing.fakenet.FakeNet",
        ),
        "overlay_core/demo.py": ("import overlay_core.testing.fakenat\n", "overlay_core.testing"),
        "console/app.py": ("from .testing import fake\n", "console.testing.fake"),
        "overlay_core/api/__init__.py": ("from console import fmt\n", "console.fmt"),
        "overlay_core/testing/bad.py": ("import console.app\n", "console.app"),
    }
    for rel, (source, module) in cases.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source)
        found = double_import_violations(root)
        assert any(f"imports {module}" in v for v in found), (rel, found)
        path.write_text("")


def test_the_shared_view_checker_finds_a_protocol_import(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            "overlay_core/__init__.py": "",
            "overlay_core/api/__init__.py": "",
            "overlay_core/api/pathview.py": (
                "from .schema import PathsJson\nfrom overlay_core.proto import report\n"
            ),
        },
    )
    assert shared_view_violations(root) == [
        "overlay_core/api/pathview.py:2: imports overlay_core.proto.report"
    ]


# --------------------------------------------------------------------------------------
# The checkers themselves, on synthetic trees


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path


def test_proto_checker_catches_io_imports(tmp_path: Path) -> None:
    """Direct, dotted, from-, relative and dynamic imports of I/O modules are all caught;
    clean proto code, including a module whose name merely starts like one (`timing`),
    passes."""
    root = _tree(
        tmp_path,
        {
            "overlay_core/proto/__init__.py": "from . import codec\n",
            "overlay_core/proto/codec.py": "import struct\nfrom .timing import x\n",
            "overlay_core/proto/timing.py": "x = 1\n",
        },
    )
    assert proto_violations(root) == []
    cases = {
        "import asyncio\n": "asyncio",
        "import time as t\n": "time",
        "from socket import socket\n": "socket",
        "from random import randrange\n": "random",
        "import pyroute2.netlink\n": "pyroute2.netlink",
        "from time import monotonic\n": "time.monotonic",
        "from ..io import udp\n": "overlay_core.io",
        "from overlay_core.api import schema\n": "overlay_core.api.schema",
        "import importlib\nimportlib.import_module('subprocess')\n": "subprocess",
        "__import__('threading')\n": "threading",
    }
    for source, module in cases.items():
        (root / "overlay_core/proto/bad.py").write_text(source)
        found = proto_violations(root)
        assert any(f"imports {module}" in v for v in found), (source, found)


def test_console_checker_allows_only_schema(tmp_path: Path) -> None:
    """The schema may be imported in any spelling; any other overlay_core import fails."""
    root = _tree(
        tmp_path,
        {
            "console/__init__.py": "",
            "console/app.py": (
                "import httpx\n"
                "import overlay_core.api.schema\n"
                "from overlay_core.api.schema import PeerInfo\n"
                "from overlay_core.api import schema\n"
            ),
        },
    )
    assert console_violations(root) == []
    for source in (
        "import overlay_core\n",
        "from overlay_core import api\n",
        "from overlay_core import proto\n",
        "from overlay_core.api import handlers\n",
        "from overlay_core.proto.node import Node\n",
        "import overlay_core.io.daemon\n",
    ):
        (root / "console/bad.py").write_text(source)
        assert console_violations(root), source
