"""The import graph of the package: no cycles, no importlib indirection for our own code,
and the tools never imported by the runtime."""
from __future__ import annotations

import ast
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOURCES = {"fastgan": os.path.join(ROOT, "fastgan"), "fastgan.kernels": os.path.join(ROOT, "kernels")}


def _modules():
    """Module name -> path, for fastgan/ (without its links) and kernels/."""
    out = {}
    for pkg, folder in SOURCES.items():
        for dirpath, dirnames, filenames in os.walk(folder):
            dirnames[:] = [d for d in dirnames if not os.path.islink(os.path.join(dirpath, d)) and d != "__pycache__"]
            rel = os.path.relpath(dirpath, folder)
            parts = [pkg] + ([] if rel == "." else rel.split(os.sep))
            for f in filenames:
                if f.endswith(".py"):
                    name = ".".join(parts if f == "__init__.py" else parts + [f[:-3]])
                    out[name] = os.path.join(dirpath, f)
    return out


def _imports(name: str, path: str, modules) -> set:
    """Every fastgan module ``name`` imports, at any depth of the file (lazy imports too)."""
    package = name if path.endswith("__init__.py") else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(open(path).read())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")
            base = base[:len(base) - node.level + 1] if node.level else []
            mod = ".".join(base + ([node.module] if node.module else []))
            found.add(mod)
            found.update(f"{mod}.{a.name}" for a in node.names)  # `from pkg import module`
    return {m for m in found if m in modules and m != name}


def _graph():
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def _edges_without_package_inits(graph):
    # a package's __init__ importing its own submodules is not a cycle with them
    return {a: {b for b in bs if not a.startswith(b + ".")} for a, bs in graph.items()}


def test_no_import_cycles():
    graph = _edges_without_package_inits(_graph())
    state, path = {}, []

    def visit(n):
        state[n] = 1
        path.append(n)
        for m in sorted(graph[n]):
            if state.get(m) == 1:
                raise AssertionError("import cycle: " + " -> ".join(path[path.index(m):] + [m]))
            if m not in state:
                visit(m)
        path.pop()
        state[n] = 2

    for n in sorted(graph):
        if n not in state:
            visit(n)


def test_runtime_never_imports_the_tools():
    graph = _graph()
    runtime = [n for n in graph if not n.startswith("fastgan.tools") and n != "fastgan.cli"]
    bad = {n: sorted(m for m in graph[n] if m.startswith("fastgan.tools")) for n in runtime}
    assert not {n: v for n, v in bad.items() if v}, bad


def test_no_importlib_for_our_own_code():
    """Our modules import each other by name.  importlib is used only to load the built
    extension (native_loader) and to probe optional third-party packages by a literal name."""
    for name, path in _modules().items():
        if name == "fastgan.backends.native_loader":
            continue  # loads the built extension (a .so in the cache), not our Python modules
        for node in ast.walk(ast.parse(open(path).read())):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) in (
                    "import_module", "spec_from_file_location", "module_from_spec", "__import__"):
                arg = node.args[0] if node.args else None
                literal = isinstance(arg, ast.Constant) and isinstance(arg.value, str)
                assert literal and not arg.value.startswith(("fastgan", ".")), (name, ast.dump(node)[:200])
