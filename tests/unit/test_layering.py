"""The shape of the code, read from its imports (ast only, nothing is imported).

- physio_ray is the library: it never imports the leaves (jobs/, serve_apps/) and never prints;
- no import circle inside physio_ray, counting imports at module level and inside functions alike
  (``from physio_ray.x import y`` where ``y`` is a module is an import of that module);
- no import from a lower layer to a higher one, with the order stated once in
  :data:`physio_ray.layers.LAYERS`;
- no ``ray._private`` / ``ray.serve._private`` import outside the one documented adapter module.

Import strings resolved at run time (``physio_ray.registry``, the stage table) are not imports here.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

from physio_ray.layers import LAYERS, layer_of

REPO = Path(__file__).resolve().parents[2]
PKG = REPO / "physio_ray"
RAY_PRIVATE = ("ray._private", "ray.serve._private")
RAY_PRIVATE_ADAPTER = REPO / "serve_apps" / "ray_private_adapter.py"
"""The single module allowed to import Ray internals; its docstring says why and for which Ray."""
RAY_PRIVATE_SCOPE = ("physio_ray", "jobs", "serve_apps", "benchmarks")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_names(tree: ast.AST, module: str, is_package: bool) -> Iterator[tuple[int, str, list[str]]]:
    """Every import in ``tree`` as (line, imported module, names taken from it), relative ones resolved."""
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name, []
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            yield node.lineno, target, [a.name for a in node.names]


def library_modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PKG.rglob("*.py"))}


def import_graph() -> dict[str, dict[str, int]]:
    """physio_ray module -> {physio_ray module it imports: first line of that import}."""
    modules = library_modules()
    graph: dict[str, dict[str, int]] = {m: {} for m in modules}
    for module, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for line, target, names in imported_names(tree, module, path.name == "__init__.py"):
            # the most specific module named: a submodule taken by `from pkg import sub`, else the target
            hits = [f"{target}.{n}" for n in names if f"{target}.{n}" in modules] or [target]
            for hit in hits:
                if hit in modules and hit != module:
                    graph[module].setdefault(hit, line)
    return graph


def strongly_connected(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """The import circles: components of more than one module (Tarjan, iterative), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
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
                    circles.append(sorted(component))
    return sorted(circles)


def describe_circle(component: list[str], graph: dict[str, dict[str, int]]) -> str:
    """One circle as its modules and every arrow between them, with the file and line of each import."""
    modules = library_modules()
    arrows = [
        f"    {a} -> {b}  ({modules[a].relative_to(REPO)}:{line})"
        for a in component
        for b, line in sorted(graph[a].items())
        if b in component
    ]
    return f"circle of {len(component)} modules: {', '.join(component)}\n" + "\n".join(arrows)


def test_library_never_imports_jobs_or_serve_apps() -> None:
    offenders = []
    for path in PKG.rglob("*.py"):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path}: {n}" for n in names if n.split(".")[0] in {"jobs", "serve_apps"}]
    assert offenders == []


def test_library_does_not_print() -> None:
    offenders = []
    for path in PKG.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print":
                offenders.append(f"{path}:{node.lineno}")
    assert offenders == []


def test_every_subpackage_has_a_layer() -> None:
    listed = set().union(*LAYERS)
    subpackages = {p.parent.name for p in PKG.glob("*/__init__.py")}
    assert subpackages - listed == set(), "add these subpackages to physio_ray.layers.LAYERS"
    assert listed - subpackages == set(), "LAYERS lists subpackages that do not exist"


def test_no_import_points_up_a_layer() -> None:
    modules = library_modules()
    arrows = [
        f"{a} (layer {layer_of(a)}) -> {b} (layer {layer_of(b)})  ({modules[a].relative_to(REPO)}:{line})"
        for a, targets in sorted(import_graph().items())
        for b, line in sorted(targets.items())
        if layer_of(b) > layer_of(a)
    ]
    assert not arrows, (
        "imports from a lower layer to a higher one (order in physio_ray/layers.py; move the shared piece "
        "down to the lower layer instead):\n" + "\n".join(arrows)
    )


def test_no_import_circles() -> None:
    graph = import_graph()
    circles = strongly_connected(graph)
    assert not circles, (
        f"{len(circles)} import circle(s) inside physio_ray (function-level imports count too; break each by "
        "giving the shared piece its own module):\n" + "\n\n".join(describe_circle(c, graph) for c in circles)
    )


def test_circle_finder_finds_a_known_circle() -> None:
    graph = {"a": {"b": 1}, "b": {"c": 2}, "c": {"a": 3, "d": 4}, "d": {}, "e": {"e": 5}}
    assert strongly_connected(graph) == [["a", "b", "c"]]


def test_ray_private_only_in_the_adapter() -> None:
    offenders = []
    for top in RAY_PRIVATE_SCOPE:
        for path in sorted((REPO / top).rglob("*.py")):
            if path == RAY_PRIVATE_ADAPTER:
                continue
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            for line, target, names in imported_names(tree, module_name(path), path.name == "__init__.py"):
                full = [target] + [f"{target}.{n}" for n in names]
                if any(f == p or f.startswith(p + ".") for f in full for p in RAY_PRIVATE):
                    offenders.append(f"{path}:{line}: {target}")
    assert not offenders, (
        f"Ray internals imported outside {RAY_PRIVATE_ADAPTER.relative_to(REPO)} (use Ray's public API, or put "
        "the one internal read there, documented):\n" + "\n".join(offenders)
    )


def test_imports_are_read_with_relative_and_lazy_ones_resolved() -> None:
    source = "from . import a\nfrom ..b import c\ndef f():\n    import ray._private.worker\n    from ray.serve import _private\n"
    found = [(t, n) for _, t, n in imported_names(ast.parse(source), "physio_ray.x.y", is_package=False)]
    assert found == [
        ("physio_ray.x", ["a"]),
        ("physio_ray.b", ["c"]),
        ("ray._private.worker", []),
        ("ray.serve", ["_private"]),
    ]
