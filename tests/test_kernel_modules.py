"""The shape of ``kernels/``: shared helpers are public names of ``kernels/common.py``,
no kernel module imports another's private names, and no helper is written twice
(read from the source, no triton needed)."""
from __future__ import annotations

import ast
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KERNELS = os.path.join(ROOT, "kernels")


def _modules():
    for name in sorted(os.listdir(KERNELS)):
        if name.endswith(".py"):
            path = os.path.join(KERNELS, name)
            with open(path, encoding="utf-8") as f:
                yield name, ast.parse(f.read(), path)


def test_no_private_names_imported_across_kernel_modules():
    bad = []
    for name, tree in _modules():
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level >= 1:
                bad += [f"{name}: from {'.' * node.level}{node.module or ''} import {a.name}"
                        for a in node.names if a.name.startswith("_")]
    assert not bad, bad


def test_common_helpers_are_public():
    tree = dict(_modules())["common.py"]
    defs = [n.name for n in tree.body if isinstance(n, ast.FunctionDef)]
    assert defs and not [d for d in defs if d.startswith("_")], defs


def test_each_function_written_once():
    """No function name defined in two kernel modules, and no two functions with the same
    body under different names (a copied helper)."""
    names, bodies = {}, {}
    dup = []
    for mod, tree in _modules():
        for node in tree.body:
            if not isinstance(node, ast.FunctionDef) or node.name == "specializations":
                continue
            if node.name in names:
                dup.append(f"{node.name}: {names[node.name]} and {mod}")
            names[node.name] = mod
            body = node.body[1:] if (node.body and isinstance(node.body[0], ast.Expr)
                                     and isinstance(getattr(node.body[0], "value", None), ast.Constant)) else node.body
            key = ast.dump(ast.Module(body=body, type_ignores=[]), annotate_fields=False)
            if key in bodies:
                dup.append(f"{mod}.{node.name} has the body of {bodies[key]}")
            bodies[key] = f"{mod}.{node.name}"
    assert not dup, dup
