"""The package's layers import only downward (docs/ARCHITECTURE.md): walked with ``ast`` over
every module's imports, top-level and deferred alike, so a lazy upward import fails too."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "vsrt_cli"

# Each layer and the layers it may import (besides itself). "base" is the package root's
# own modules: the version (vsrt_cli/__init__.py) and the one error family (errors.py).
ALLOWED: dict[str, set[str]] = {
    "base": set(),
    "io": {"base"},
    "model": {"base"},
    "zoo": {"base", "model"},
    "engine": {"base", "io", "model"},
    "jobs": {"base", "io", "model", "zoo", "engine"},
    "inspect": {"base", "io", "model", "zoo", "engine"},
    "cli": {"base", "io", "model", "zoo", "engine", "jobs", "inspect"},
    "train": {"base", "io", "model", "zoo", "engine", "inspect"},
}
# Third-party modules a layer must never import, at any depth of its own code.
FORBIDDEN = {"io": {"torch"}, "model": {"av", "typer", "rich"}, "engine": {"typer", "rich"},
             "jobs": {"typer", "rich"}, "inspect": {"typer", "rich"}, "zoo": {"typer", "rich", "av"}}
ENTRY = {"__main__"}  # python -m vsrt_cli: the CLI's entry, above every layer
# The one import that may point up: the root's PEP 562 ``__getattr__`` hands out the Python API
# (``from vsrt_cli import upscale``) on first use. It runs no import when the package loads, so
# it makes neither a layer violation nor a circle.
REEXPORTS = {("vsrt_cli.__init__", "vsrt_cli.jobs.api")}


def layer_of(module: str) -> str:
    """``vsrt_cli.engine.tiles`` -> ``engine``; the root's own modules are ``base``."""
    parts = module.split(".")
    if parts[0] != "vsrt_cli":
        raise ValueError(module)
    if len(parts) == 1 or parts[1] in ("errors", "__init__"):
        return "base"
    return parts[1]


def imports_of(path: Path, package: Path = PACKAGE) -> list[tuple[int, str]]:
    """``(line, module)`` of every import in the file, relative ones resolved."""
    rel = path.relative_to(package.parent).with_suffix("")
    here = list(rel.parts[:-1]) if rel.name != "__init__" else list(rel.parts[:-1])
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[: len(here) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            if module == "vsrt_cli":  # from vsrt_cli import errors / __version__
                found += [(node.lineno, f"vsrt_cli.{a.name}" if a.name == "errors" else "vsrt_cli") for a in node.names]
            else:
                found.append((node.lineno, module))
    return found


def violations(package: Path = PACKAGE) -> list[str]:
    bad = []
    for path in sorted(package.rglob("*.py")):
        rel = path.relative_to(package.parent).with_suffix("")
        own = layer_of(".".join(rel.parts)) if rel.name not in ENTRY else None
        if own is None:
            continue
        if own not in ALLOWED:
            bad.append(f"{rel}: in no layer (add its package to ALLOWED and docs/ARCHITECTURE.md)")
            continue
        for line, module in imports_of(path, package):
            if (".".join(rel.parts), module) in REEXPORTS:
                continue
            top = module.split(".")[0]
            if top == "vsrt_cli":
                target = layer_of(module)
                if target != own and target not in ALLOWED[own]:
                    bad.append(f"{rel}.py:{line}: {own} imports {module} ({target})")
            elif top in FORBIDDEN.get(own, ()):
                bad.append(f"{rel}.py:{line}: {own} imports {top}")
    return bad


def test_every_layer_imports_only_the_layers_below_it():
    assert violations() == []


def test_every_package_is_a_layer():
    packages = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}
    assert packages <= set(ALLOWED)
    loose = {p.stem for p in PACKAGE.glob("*.py")} - {"__init__", "__main__", "errors"}
    assert loose == set(), f"modules at the package root, in no layer: {sorted(loose)}"


def _plant(tmp_path: Path, layer: str, source: str) -> Path:
    """A copy of the package with one module added to ``layer``."""
    import shutil

    copy = tmp_path / "vsrt_cli"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    (copy / layer / "planted.py").write_text(source)
    return copy


@pytest.mark.parametrize(("layer", "source", "says"), [
    ("io", "from vsrt_cli.engine.runtime import resolve_device\n", "io imports vsrt_cli.engine.runtime (engine)"),
    ("model", "def f():\n    from vsrt_cli.cli import app\n", "model imports vsrt_cli.cli (cli)"),
    ("engine", "from ..jobs import batch\n", "engine imports vsrt_cli.jobs (jobs)"),
    ("io", "import torch\n", "io imports torch"),
    ("jobs", "from vsrt_cli.cli.progress import render\n", "jobs imports vsrt_cli.cli.progress (cli)"),
])
def test_a_planted_upward_import_is_caught(tmp_path, layer, source, says):
    found = violations(_plant(tmp_path, layer, source))
    assert [v for v in found if "planted" in v] == [f"vsrt_cli/{layer}/planted.py:{source.count(chr(10)) if 'def' in source else 1}: {says}"]


def circles(package: Path = PACKAGE) -> None:
    """Raises AssertionError naming the first module that reaches itself through its imports."""
    graph: dict[str, set[str]] = {}
    for path in package.rglob("*.py"):
        parts = path.relative_to(package.parent).with_suffix("").parts
        graph[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = {
            m for _, m in imports_of(path, package) if (".".join(parts), m) not in REEXPORTS}
    for name in graph:
        graph[name] = {m for m in graph[name] if m in graph and m != name}
    done: set[str] = set()

    def visit(name: str, path: list[str]) -> None:
        assert name not in path, "import circle: " + " -> ".join(path[path.index(name):] + [name])
        if name in done:
            return
        for dep in sorted(graph[name]):
            visit(dep, path + [name])
        done.add(name)

    for name in sorted(graph):
        visit(name, [])


def test_no_import_circle_between_modules():
    """Within a layer too (the old cli <-> tools_cli and model/query <-> model/vsrt circles)."""
    circles()


def test_a_planted_circle_is_caught(tmp_path):
    copy = _plant(tmp_path, "model", "from typing import TYPE_CHECKING\nif TYPE_CHECKING:  # type-only counts too\n"
                  "    from vsrt_cli.model.vsrt import VSRT\n")
    (copy / "model" / "blocks.py").write_text((copy / "model" / "blocks.py").read_text() + "from vsrt_cli.model import planted\n")
    with pytest.raises(AssertionError, match=r"import circle: .*vsrt_cli\.model\.blocks -> vsrt_cli\.model"):
        circles(copy)
