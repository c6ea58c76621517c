"""The package's layers, read from the source: no import cycle, no import that points up a layer.

core (pure) <- runtime <- service / integrations / audit <- cli. Every import counts, also one inside a function
(deferred imports still tie modules together: ``runtime <-> client`` and ``cli/check <-> cli/hf`` were cycles made
of one top-level and one deferred import).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "tiergate"

#: Layer of each top-level part of the package; a module may import its own layer (without cycles) or lower ones.
LAYERS = {
    "tiergate.errors": 0,
    "tiergate.core": 1,
    "tiergate.runtime": 2,
    "tiergate.service": 3, "tiergate.integrations": 3, "tiergate.audit": 3,
    "tiergate.cli": 4, "tiergate.__main__": 4,
    "tiergate": 5,  # the package root: the public API, above everything it exports
}
#: Constants every layer may read from the package root (it defines them without importing anything).
ROOT_CONSTANTS = {"__version__", "DISTRIBUTION"}
#: What the pure core must never import: hosts and transports are the adapters' business.
NOT_IN_CORE = ("mlflow", "huggingface_hub", "hf_xet", "requests", "httpx", "flask", "starlette", "fastapi",
               "http", "urllib.request", "socket", "click", "tiergate.runtime", "tiergate.service",
               "tiergate.integrations", "tiergate.cli", "tiergate.audit")


def _modules() -> dict[str, Path]:
    found = {}
    for path in ROOT.rglob("*.py"):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


MODULES = _modules()


def _layer(module: str) -> int:
    best = max((prefix for prefix in LAYERS if module == prefix or module.startswith(prefix + ".")), key=len)
    return LAYERS[best]


def _resolve(module: str, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    package = module.split(".") if MODULES[module].name == "__init__.py" else module.split(".")[:-1]
    base = package[: len(package) - node.level + 1]
    return ".".join(base + ([node.module] if node.module else []))


def _imports(module: str, source: str | None = None) -> list[tuple[str, int, list[str]]]:
    """``(imported module, line, names)`` for every import statement of ``module`` (its file, or ``source``),
    wherever it is: at the top, in a function, under ``if TYPE_CHECKING``."""
    tree = ast.parse(source if source is not None else MODULES[module].read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(module, node)
            names = [alias.name for alias in node.names]
            submodules = [f"{target}.{n}" for n in names if f"{target}.{n}" in MODULES]
            if submodules:  # `from tiergate.core import oms`: the edge is to the module imported
                found += [(s, node.lineno, []) for s in submodules]
                names = [n for n in names if f"{target}.{n}" not in MODULES]
            if names:
                found.append((target, node.lineno, names))
    return found


def _upward(module: str, source: str | None = None) -> list[str]:
    """Imports of ``module`` that point to a higher layer."""
    found = []
    for target, line, names in _imports(module, source):
        if not (target == "tiergate" or target.startswith("tiergate.")):
            continue
        if target == "tiergate" and set(names) <= ROOT_CONSTANTS:
            continue
        if _layer(target) > _layer(module):
            found.append(f"{module}:{line} imports {target}")
    return found


def _edges() -> dict[str, set[str]]:
    """Who imports whom. A module importing its own package is left out: Python has always started the package
    before its modules, and a package that re-exports its modules (``tiergate.core.evidence``) is that shape."""
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    for module in MODULES:
        for target, _, names in _imports(module):
            if target == "tiergate" and set(names) <= ROOT_CONSTANTS:
                continue
            if target in MODULES and target != module and not module.startswith(target + "."):
                graph[module].add(target)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


#: Cycles known when this test was written, each with the way out. Listed so that any other cycle fails; remove an
#: entry when its cycle is gone (the test then insists it stays gone).
KNOWN_CYCLES: set[tuple[str, ...]] = set()  # the bundle parser left oms for tiergate.core.bundle


def test_the_package_has_no_import_cycle() -> None:
    found = {tuple(cycle) for cycle in _cycles(_edges())}
    assert found - KNOWN_CYCLES == set()
    assert KNOWN_CYCLES - found == set(), "a known cycle is gone: remove it from KNOWN_CYCLES"


def test_no_module_imports_a_higher_layer() -> None:
    assert [problem for module in MODULES for problem in _upward(module)] == []


def test_the_core_imports_no_host_transport_or_higher_layer() -> None:
    bad = [f"{MODULES[m].relative_to(ROOT.parent)}:{line} imports {target}"
           for m in MODULES if _layer(m) <= LAYERS["tiergate.core"]
           for target, line, _ in _imports(m)
           if any(target == name or target.startswith(name + ".") for name in NOT_IN_CORE)]
    assert bad == []


@pytest.mark.parametrize(("module", "source"), [
    ("tiergate.runtime.client", "def f():\n    from tiergate.service.targets import tier_for_target\n"),  # the finding
    ("tiergate.integrations.hf.containment", "from tiergate.cli.render import decision_markdown\n"),     # the finding
    ("tiergate.core.trust", "from tiergate.runtime import Gate\n"),
    ("tiergate.core.trust", "from tiergate import check\n"),
])
def test_the_check_sees_an_upward_import(module: str, source: str) -> None:
    assert len(_upward(module, source)) == 1
    assert _upward(module, "from tiergate import __version__\nfrom tiergate.errors import GateError\n") == []


def test_the_check_sees_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []
