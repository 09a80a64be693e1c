"""The import direction, read from the source: arrows point down the layers and nothing imports in a circle.

Layers, lowest first (docs/ARCHITECTURE.md explains them). A module may import its own package and any
package of a lower layer; packages that share a layer stay independent of each other. Every import
counts, including ones inside functions and under `TYPE_CHECKING`: a deferred import is still a
dependency, and hiding a cycle behind one is what this test exists to catch.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

LAYERS: list[list[str]] = [
    ["storage"],
    ["accounts", "gaming", "ml", "notifications"],
    ["ml.pipelines", "photos"],
    ["photoduel"],  # settings and wiring
    ["api"],
    ["photoduel.cli", "photoduel.commands"],  # entry points: run the API, the worker and maintenance
]
PACKAGES = sorted({name.split(".")[0] for layer in LAYERS for name in layer})


def unit_of(module: str) -> str:
    """The most specific layer entry that a module belongs to."""
    best = ""
    for layer in LAYERS:
        for name in layer:
            if (module == name or module.startswith(name + ".")) and len(name) > len(best):
                best = name
    assert best, f"{module} belongs to no layer"
    return best


def layer_of(module: str) -> int:
    unit = unit_of(module)
    return next(i for i, layer in enumerate(LAYERS) if unit in layer)


def allowed(module: str, target: str) -> bool:
    """Down the layers, or within one package of the same layer."""
    if layer_of(target) != layer_of(module):
        return layer_of(target) < layer_of(module)
    return unit_of(module).split(".")[0] == unit_of(target).split(".")[0]


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Our modules that a file imports, resolved to the deepest existing module."""
    found: set[str] = set()
    package = module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            # a relative import names a module of ours too: resolved against the file's package
            base = ".".join(package[:len(package) - node.level + 1] if node.level else [])
            module = ".".join(part for part in (base, node.module or "") if part)
            names = [f"{module}.{alias.name}" for alias in node.names] + [module]
        else:
            continue
        for name in names:
            if name.split(".")[0] in PACKAGES:
                found.add(name)
    return found


def our_modules() -> dict[str, Path]:
    modules = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            modules[module_name(path)] = path
    return modules


def import_graph() -> dict[str, set[str]]:
    modules = our_modules()
    graph: dict[str, set[str]] = defaultdict(set)
    for module, path in modules.items():
        for name in imports_of(path):
            while name not in modules and "." in name:  # `from pkg.mod import Class` → pkg.mod
                name = name.rsplit(".", 1)[0]
            if name in modules and name != module:
                graph[module].add(name)
    return graph


def test_every_module_has_a_layer() -> None:
    for module in our_modules():
        layer_of(module)


def test_imports_point_down_the_layers() -> None:
    upward = [f"{module} -> {target}" for module, targets in import_graph().items()
              for target in targets if not allowed(module, target)]
    assert not upward, "imports against the layers:\n" + "\n".join(sorted(upward))


def test_no_import_cycles() -> None:
    graph = import_graph()
    cycles: list[list[str]] = []
    state: dict[str, int] = {}  # 1 on the stack, 2 done

    def visit(module: str, stack: list[str]) -> None:
        state[module] = 1
        stack.append(module)
        for target in sorted(graph.get(module, ())):
            if state.get(target) == 1:
                cycles.append([*stack[stack.index(target):], target])
            elif target not in state:
                visit(target, stack)
        stack.pop()
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [])
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


# The pure parts of the domain: math and models, no I/O. They may import their own pure modules only (the
# I/O that feeds them lives in the subpackage named here), and no database or network client.
PURE = {"gaming": "gaming.duels", "ml": "ml.pipelines"}
IO_CLIENTS = {"pymongo", "bson", "gridfs", "pymilvus", "httpx", "firebase_admin", "grpc", "aiohttp", "requests"}


def pure_part(module: str) -> str | None:
    """The package whose pure part `module` belongs to, if any."""
    package = module.split(".")[0]
    impure = PURE.get(package)
    if impure is None or module == impure or module.startswith(impure + "."):
        return None
    return package


def test_the_pure_packages_import_no_io() -> None:
    """`gaming` outside `gaming/duels` and `ml` outside `ml/pipelines` are pure (DESIGN.md): what reads a
    store belongs in the subpackage that does the I/O, which the layer rule alone would not catch."""
    graph = import_graph()
    found: list[str] = []
    for module, path in our_modules().items():
        package = pure_part(module)
        if package is None:
            continue
        found += [f"{module} -> {target}" for target in graph.get(module, ()) if pure_part(target) != package]
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module] if isinstance(node, ast.ImportFrom) and node.module and node.level == 0
                     else [])
            found += [f"{module} -> {name}" for name in names if name.split(".")[0] in IO_CLIENTS]
    assert not found, "I/O in a pure package:\n" + "\n".join(sorted(found))


@pytest.mark.parametrize(("module", "target", "expected"), [
    ("gaming.duels.service", "storage.votes", True),
    ("storage.photos", "gaming.ratings", False),
    ("photoduel.services", "api.app", False),
    ("api.app", "photoduel.services", True),
    ("gaming.duels.service", "notifications.outbox", False),
])
def test_the_rule_itself(module: str, target: str, expected: bool) -> None:
    """The checker is only worth something if it refuses what it should."""
    assert allowed(module, target) is expected


def test_the_image_and_the_package_hold_every_package() -> None:
    """A package missing from the Dockerfile or from the wheel fails only at import, in production."""
    import tomllib

    include = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]["include"]
    copied = {line.split()[1] for line in (ROOT / "Dockerfile").read_text().splitlines() if line.startswith("COPY ")}
    for package in PACKAGES:
        assert f"{package}*" in include, f"{package} is not in the wheel"
        assert package in copied, f"{package} is not copied into the image"


def test_the_package_data_holds_every_file_the_service_reads() -> None:
    """Data files (the ML vocabularies, the web client at /app) are left out of the wheel unless a
    package-data pattern names them; a missing one fails only when a user opens the page."""
    import tomllib
    from fnmatch import fnmatch

    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    for package, folder in (("ml", "data"), ("api", "web")):
        files = [p.relative_to(ROOT / package).as_posix() for p in (ROOT / package / folder).rglob("*") if p.is_file()]
        assert files, f"{package}/{folder} is empty"
        for name in files:
            # setuptools globs do not cross "/" with "*": compare part by part
            assert any(len(g.split("/")) == len(name.split("/")) and all(
                fnmatch(n, g_) for n, g_ in zip(name.split("/"), g.split("/"), strict=True))
                for g in patterns.get(package, [])), f"{package}/{name} is not in the wheel's package data"
