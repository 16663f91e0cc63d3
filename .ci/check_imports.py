#!/usr/bin/env python3
"""The house rules of the code, checked statically (CI runs this before the tests).

- Arrows one way: intune -> remediation -> recommendations -> portal. A module of an app may
  import its own app and the apps below it, never one above (not even inside a function).
- No import circle between modules (within an app or across apps).
- No module longer than MAX_LINES lines.

Every `import` statement counts, wherever it stands (module level, function, TYPE_CHECKING).
Migrations are history and are not checked. Prints one line per problem; exits 1 if any.

usage: python .ci/check_imports.py [PROJECT_DIR]
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

APPS = ["portal", "recommendations", "remediation", "intune"]  # each may import only those before it
MAX_LINES = 600
SKIPPED_DIRS = {"migrations", "templates", "static", "locale", "__pycache__"}


def modules_of(root: Path) -> dict[str, Path]:
    found = {}
    for app in APPS:
        for path in sorted((root / app).rglob("*.py")):
            if SKIPPED_DIRS.intersection(path.relative_to(root).parts):
                continue
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def imported_names(module: str, path: Path, tree: ast.AST) -> list[str]:
    """Dotted names this module imports (relative imports resolved): `from pkg import name` is
    `pkg.name`, which owning_module maps to the submodule `pkg.name` or else to `pkg`."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(base_parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            names.extend(f"{base}.{alias.name}" for alias in node.names)
    return names


def owning_module(name: str, modules: dict[str, Path]) -> str | None:
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (iterative Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    cycles = []
    counter = 0
    for start in graph:
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
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    cycles.append(sorted(component))
    return cycles


def main(root: Path) -> int:
    modules = modules_of(root)
    graph: dict[str, set[str]] = {name: set() for name in modules}
    problems = []
    for module, path in modules.items():
        source = path.read_text(encoding="utf-8")
        lines = source.count("\n") + 1
        if lines > MAX_LINES:
            problems.append(f"{path.relative_to(root)}: {lines} lines (more than {MAX_LINES}); split it by sub-domain")
        for name in imported_names(module, path, ast.parse(source, filename=str(path))):
            target = owning_module(name, modules)
            if target is None or target == module:
                continue
            graph[module].add(target)
            source_app, target_app = module.split(".")[0], target.split(".")[0]
            if APPS.index(target_app) > APPS.index(source_app):
                problems.append(f"{path.relative_to(root)}: {module} imports {target}, an app above it")
    for cycle in find_cycles(graph):
        problems.append("import circle: " + " <-> ".join(cycle))
    for problem in sorted(set(problems)):
        print(problem)
    print(f"{len(modules)} modules checked: {len(set(problems))} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent)))
