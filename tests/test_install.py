"""The installed package (a plain, non-editable ``pip install .``) works from another directory,
with the kernels shipped inside it as ``fastgan.kernels``."""
from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _installed_copy():
    """The non-editable installed distribution, if any: not the metadata of an editable
    install, nor a ``fastgan.egg-info`` in the source tree (found when it is on sys.path)."""
    for dist in importlib.metadata.distributions(name="fastgan"):
        where = os.path.abspath(str(dist.locate_file("")))
        if os.path.commonpath([where, ROOT]) == ROOT:
            continue
        direct = dist.read_text("direct_url.json")
        if direct and json.loads(direct).get("dir_info", {}).get("editable"):
            continue
        return dist
    return None


def test_installed_package_imports_from_elsewhere(tmp_path):
    if _installed_copy() is None:
        pytest.skip("fastgan is not installed non-editably (the CI script installs it so)")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "TRITON_INTERPRET")}
    code = ("import fastgan, fastgan.kernels.losses as k, torch, os\n"
            "from fastgan.backends import native_loader as nb\n"
            "import fastgan.tools.cases, fastgan.tools.checking  # the tools ship too\n"
            "assert os.path.exists(os.path.join(nb.source_dir(), 'ops.cpp')), nb.source_dir()\n"
            "assert str(nb.source_dir()).startswith(os.path.dirname(fastgan.__file__)), nb.source_dir()\n"
            "print(fastgan.__file__)\nprint(k.__file__)\n"
            "print(float(fastgan.F.hinge_d_loss(torch.zeros(4), torch.zeros(4))))\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    pkg, kern, value = out.stdout.split()
    assert not pkg.startswith(ROOT) and not kern.startswith(ROOT), (pkg, kern)
    assert kern.endswith(os.path.join("fastgan", "kernels", "losses.py"))
    assert float(value) == 2.0
    cli = subprocess.run([sys.executable, "-m", "fastgan", "info"], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=300)
    assert cli.returncode == 0 and "triton" in cli.stdout, cli.stderr

