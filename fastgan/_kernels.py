"""Import ``fastgan.kernels`` both when installed and from a source checkout.

Installed, ``kernels/`` is the subpackage ``fastgan.kernels`` (setuptools'
package-dir).  Run from a checkout with ``PYTHONPATH`` (as on a GPU machine
without network), the same folder is loaded from beside ``fastgan/``.
"""
from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path


def import_kernels(module: str):
    name = f"fastgan.kernels.{module}"
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name != "fastgan.kernels":
            raise
    src = Path(__file__).resolve().parent.parent / "kernels"
    init = src / "__init__.py"
    if not init.exists():
        raise ModuleNotFoundError(f"fastgan.kernels is missing (looked in {src})", name="fastgan.kernels")
    spec = importlib.util.spec_from_file_location("fastgan.kernels", init, submodule_search_locations=[str(src)])
    pkg = importlib.util.module_from_spec(spec)
    sys.modules["fastgan.kernels"] = pkg
    spec.loader.exec_module(pkg)
    return importlib.import_module(name)
