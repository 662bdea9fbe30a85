"""The dependency between the two apps runs one way: ``reporting`` builds on ``agents``.

``reporting`` imports agents' models, services and events freely. ``agents`` never imports
``reporting`` when a module is loaded; it reaches reporting only inside the few functions that
need it at call time, listed here (docs/design.md, "Modules and their dependencies"). Read from
the source with ``ast``, so the check holds for every module, whether a test imports it or not.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

AGENTS = Path(__file__).resolve().parents[1]
REPORTING = AGENTS.parent / "reporting"

# (agents module, reporting module it imports at call time): each one is a decision, written
# down in docs/design.md. A new one belongs there first.
CALL_TIME_IMPORTS = {
    ("agents.services", "reporting.rollups"),  # rollup intervals marked dirty with each write
    ("agents.selectors", "reporting.selectors"),  # the wall's open alerts
    ("agents.selectors", "reporting.queries"),  # the wall header's average ACW of today
}


def _modules(package: Path) -> Iterator[tuple[str, ast.Module]]:
    """Every non-test module of a package, parsed, with its dotted name."""
    for path in sorted(package.rglob("*.py")):
        relative = path.relative_to(package.parent)
        if "tests" in relative.parts:
            continue
        name = ".".join(relative.with_suffix("").parts).removesuffix(".__init__")
        yield name, ast.parse(path.read_text(), filename=str(path))


def _imported(node: ast.Import | ast.ImportFrom) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if node.level:  # relative: stays inside its own app
        return []
    module = node.module or ""
    return [f"{module}.{alias.name}" if module == "reporting" else module for alias in node.names]


def _is_type_checking_block(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def _module_level_imports(tree: ast.Module) -> Iterator[str]:
    """Imports that run when the module is loaded (``if TYPE_CHECKING:`` blocks never run)."""
    pending: list[ast.AST] = list(tree.body)
    while pending:
        node = pending.pop()
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield from _imported(node)
        elif isinstance(node, ast.If | ast.Try | ast.With) and not _is_type_checking_block(node):
            pending.extend(ast.iter_child_nodes(node))


def _all_imports(tree: ast.Module) -> Iterator[str]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield from _imported(node)


def _is_reporting(name: str) -> bool:
    return name == "reporting" or name.startswith("reporting.")


def test_agents_never_imports_reporting_when_a_module_loads() -> None:
    found = [
        (module, imported)
        for module, tree in _modules(AGENTS)
        for imported in _module_level_imports(tree)
        if _is_reporting(imported)
    ]
    assert found == [], "agents imports reporting at module level: reporting builds on agents"


def test_agents_reaches_reporting_at_call_time_only_where_documented() -> None:
    found = {
        (module, imported)
        for module, tree in _modules(AGENTS)
        for imported in _all_imports(tree)
        if _is_reporting(imported)
    }
    assert found == CALL_TIME_IMPORTS


def test_reporting_builds_on_agents() -> None:
    """The direction itself: if reporting stopped needing agents, this file would be moot."""
    users = {
        module
        for module, tree in _modules(REPORTING)
        for imported in _module_level_imports(tree)
        if imported == "agents" or imported.startswith("agents.")
    }
    assert {"reporting.models", "reporting.rollups", "reporting.alerts"} <= users
