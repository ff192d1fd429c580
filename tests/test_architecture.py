"""The package's shape, read from its own source: imports point down the layers and never form a cycle.

The layers are docs/architecture.md's: utils and choices at the bottom, the
contract on them; face, data and model as siblings; prep and inference above
them; engine above those; doctor on top (cli and benchmarks sit above the package).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "facekit"

# subpackage (or top-level module) -> its layer; siblings share a layer and never import each other
LAYERS = {
    "__init__": 0, "choices": 0, "utils": 0,
    "contract": 1,
    "face": 2, "data": 2, "model": 2,
    "prep": 3, "inference": 3,
    "engine": 4, "serve": 4,
    "doctor": 5,
}
LONG_MODULE = 420  # lines ("about 400"); a longer module's docstring must say why it is one module


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def group(module: str) -> str:
    """``facekit.engine.train`` -> ``engine``; ``facekit`` -> ``__init__``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def imports(path: Path) -> list[tuple[int, str]]:
    """Every facekit module this file imports, at any depth (imports inside functions count too)."""
    found = []
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "facekit"]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative import
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            if base.split(".")[0] != "facekit":
                continue
            for a in node.names:  # `from facekit.contract import probe` imports a module, not a name
                sub = f"{base}.{a.name}"
                found.append((node.lineno, sub if _is_module(sub) else base))
    return found


def _is_module(name: str) -> bool:
    rel = Path(*name.split("."))
    return (PACKAGE.parent / rel).with_suffix(".py").is_file() or (PACKAGE.parent / rel / "__init__.py").is_file()


def graph() -> dict[str, list[tuple[int, str]]]:
    return {module_name(p): imports(p) for p in sorted(PACKAGE.rglob("*.py"))}


def test_every_group_has_a_layer():
    groups = {group(m) for m in graph()}
    assert groups <= set(LAYERS), f"place {sorted(groups - set(LAYERS))} in LAYERS and docs/architecture.md"


def test_imports_point_down_the_layers():
    bad = []
    for mod, deps in graph().items():
        here = group(mod)
        for line, dep in deps:
            there = group(dep)
            if dep.split(".")[0] != "facekit" or there == here or dep == "facekit":
                continue
            if LAYERS[there] > LAYERS[here]:
                bad.append(f"{mod}:{line} imports {dep} (layer {LAYERS[there]} above {LAYERS[here]})")
            elif LAYERS[there] == LAYERS[here]:
                bad.append(f"{mod}:{line} imports its sibling {dep}")
    assert not bad, "\n".join(bad)


def test_the_package_never_imports_the_cli_or_benchmarks():
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            assert not [n for n in names if n.split(".")[0] in ("facekit_cli", "cli", "benchmarks")], path


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_import_cycle():
    edges = {m: {d for _, d in deps if d != m and not m.startswith(d + ".") and d != "facekit"}
             for m, deps in graph().items()}
    cycle = find_cycle(edges)
    assert cycle is None, " -> ".join(cycle or [])


def test_the_cycle_finder_finds_cycles():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_long_modules_say_why(path: Path):
    lines = len(path.read_text().splitlines())
    if lines <= LONG_MODULE:
        return
    doc = ast.get_docstring(ast.parse(path.read_text())) or ""
    assert "one module" in doc, f"{path.name} has {lines} lines: split it, or say in its docstring why it is one module"


def test_every_package_folder_is_installed():
    """A non-editable install (CI's, a user's) ships only the packages pyproject.toml lists."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    root = PACKAGE.parent
    listed = set(tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    on_disk = {".".join(p.parent.relative_to(root).parts) for p in PACKAGE.rglob("__init__.py")}
    on_disk |= {"facekit_cli." + ".".join(p.parent.relative_to(root / "cli").parts) if p.parent != root / "cli"
                else "facekit_cli" for p in (root / "cli").rglob("__init__.py")}
    assert on_disk <= listed, f"add to [tool.setuptools] packages: {sorted(on_disk - listed)}"


def test_test_folders_mirror_the_package():
    """tests/<subpackage>/ holds the tests of facekit/<subpackage>/ (and tests/cli/ the commands'): a folder that
    names nothing would leave its tests where no one looks for them."""
    tests = Path(__file__).resolve().parent
    folders = {p.name for p in tests.iterdir() if p.is_dir() and not p.name.startswith((".", "__"))}
    subpackages = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}
    assert folders - subpackages - {"cli"} == set()
    for folder in folders:  # a package, so two folders may hold test files of one name
        assert (tests / folder / "__init__.py").is_file(), folder
