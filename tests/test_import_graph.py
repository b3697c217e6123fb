"""The import graph of our modules, read with `ast` (nothing is imported):

- no cycle among module-level imports, anywhere;
- every import, at module level or inside a function, follows the layers of
  docs/architecture.md: an app imports only apps of lower layers (and itself);
- in every app, an import inside a function has a comment saying why (the import loops were
  cut; what is left is on purpose).
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _modules() -> dict[str, Path]:
    """Dotted name -> file, for the apps' own code (not tests, migrations or benchmarks)."""
    out = {}
    for package in sorted(p.parent for p in ROOT.glob("*/__init__.py")):
        if package.name in ("tests", "bench") or package.name.startswith("."):
            continue
        for path in package.rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            if "tests" in parts or "migrations" in parts:
                continue
            name = ".".join(parts)
            out[name.removesuffix(".__init__")] = path
    return out


MODULES = _modules()


def _targets(module: str, node: ast.Import | ast.ImportFrom) -> list[str]:
    """Our modules that `node` (in `module`) imports: the deepest module each name resolves to."""
    is_package = MODULES[module].name == "__init__.py"
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        base = node.module or ""
        if node.level:
            package = module.split(".") if is_package else module.split(".")[:-1]
            package = package[:len(package) - (node.level - 1)]
            base = ".".join(package + ([base] if base else []))
        names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base for alias in node.names]
    out = []
    for name in names:
        while name and name not in MODULES:
            name = name.rpartition(".")[0]
        if name and name != module:
            out.append(name)
    return out


def _imports():
    """(module, line, target, inside a function) for every import of one of our modules."""
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text(), str(path))
        nested = {id(n) for f in ast.walk(tree) if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
                  for n in ast.walk(f) if isinstance(n, (ast.Import, ast.ImportFrom))}
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for target in _targets(module, node):
                    yield module, node.lineno, target, id(node) in nested


def _layers() -> dict[str, int]:
    """Unit (an app, or a module named on its own) -> layer, from the table in the docs."""
    text = (ROOT / "docs" / "architecture.md").read_text()
    section = text.split("### Layers", 1)[1].split("\n#", 1)[0]
    out = {}
    for row in re.finditer(r"^\| *(\d+)[^|]*\|([^|]*)\|", section, re.M):
        for unit in re.findall(r"`([\w.]+)`", row.group(2)):
            out[unit] = int(row.group(1))
    assert out, "docs/architecture.md has no layer table under '### Layers'"
    return out


LAYERS = _layers()


def _unit(module: str) -> str:
    candidates = [u for u in LAYERS if module == u or module.startswith(u + ".")]
    assert candidates, f"{module} is in no layer of docs/architecture.md (### Layers): add its app"
    return max(candidates, key=len)


def test_no_cycle_among_module_level_imports():
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    for module, _line, target, nested in _imports():
        if not nested:
            graph[module].add(target)
    # Tarjan's strongly connected components, iteratively.
    index, low, stack, on_stack, cycles, counter = {}, {}, [], set(), [], [0]
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter[0]
        counter[0] += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter[0]
                    counter[0] += 1
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
                    cycles.append(sorted(component))
    assert cycles == [], f"import cycles among module-level imports: {cycles}"


def test_every_import_follows_the_layers_of_the_architecture_page():
    wrong = []
    for module, line, target, _nested in _imports():
        source, dest = _unit(module), _unit(target)
        if source == dest:
            continue
        same_app = module.split(".")[0] == target.split(".")[0]
        if LAYERS[dest] > LAYERS[source] or (same_app and LAYERS[dest] == LAYERS[source]):
            continue
        wrong.append(f"{MODULES[module].relative_to(ROOT)}:{line}: {module} (layer {LAYERS[source]}) imports "
                     f"{target} (layer {LAYERS[dest]})")
    assert wrong == [], "imports against the layers of docs/architecture.md:\n" + "\n".join(wrong)


def _commented(lines: list[str], lineno: int) -> bool:
    """The import at `lineno` (1-based) has a comment on its line, or above its group of imports
    (blank lines, other imports and a `try:` may come between)."""
    if "#" in lines[lineno - 1]:
        return True
    i = lineno - 2
    while i >= 0 and (not lines[i].strip() or re.match(r"\s*(from \S+ import |import |\)|\w+,|try:)", lines[i])):
        i -= 1
    return i >= 0 and lines[i].strip().startswith("#")


def test_imports_inside_functions_say_why():
    missing = []
    for module, path in MODULES.items():
        source = path.read_text()
        lines = source.splitlines()
        for func in ast.walk(ast.parse(source)):
            if isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for node in ast.walk(func):
                    if isinstance(node, (ast.Import, ast.ImportFrom)) and not _commented(lines, node.lineno):
                        missing.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert missing == [], "imports inside a function without a comment saying why: " + ", ".join(sorted(set(missing)))


def test_the_checks_see_a_cycle_and_a_layer_breach():
    """The helpers above read what they should: accounts.models -> accounts.authz is an import
    inside a function (a loop cut on purpose), and jmapapi sits above accounts."""
    found = {(m, t, nested) for m, _line, t, nested in _imports()}
    assert ("accounts.models", "accounts.authz", True) in found
    assert ("accounts.authz", "accounts.models", False) in found
    assert LAYERS[_unit("jmapapi.engine")] < LAYERS[_unit("accounts.models")]
    assert _unit("telemetry.metrics") == "telemetry.metrics" and _unit("telemetry.views") == "telemetry"
