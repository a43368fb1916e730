"""The installed package (a plain, non-editable ``pip install .``) works from another directory,
with the kernels shipped inside it as ``fastgan.kernels``."""
from __future__ import annotations

import importlib.metadata
import json
import os
import re
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



def _pyproject() -> dict:
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        return tomllib.load(f)


def test_package_metadata():
    project = _pyproject()["project"]
    assert project["license"] == "MIT" and project["license-files"] == ["LICENSE"]
    with open(os.path.join(ROOT, "LICENSE")) as f:
        text = f.read()
    assert text.startswith("MIT License") and "fastgan contributors" in text
    assert project["authors"] and all("name" in a for a in project["authors"])
    assert any(c.startswith("Topic :: ") for c in project["classifiers"])
    assert any(c.startswith("Operating System :: ") for c in project["classifiers"])
    # setuptools >= 77 refuses a license classifier beside an SPDX license expression
    assert not any(c.startswith("License :: ") for c in project["classifiers"])
    assert any(r.startswith("numpy") for r in project["optional-dependencies"]["triton"])


def _sdist_names(tmp_path) -> list:
    """The file names in the sdist built from a copy of the checkout's files (tracked and
    untracked, not ignored) by the setuptools in this environment, without isolation."""
    import tarfile
    setuptools = pytest.importorskip("setuptools")
    if int(setuptools.__version__.split(".")[0]) < 77:
        pytest.skip(f"setuptools {setuptools.__version__} < 77 (build-system.requires)")
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True,
                           text=True)
    if files.returncode != 0:
        pytest.skip("not a git checkout")
    src = tmp_path / "src"
    for name in files.stdout.splitlines():
        source = os.path.join(ROOT, name)
        if not os.path.lexists(source):  # deleted, not yet committed
            continue
        target = src / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if os.path.islink(source):
            os.symlink(os.readlink(source), target)
        else:
            target.write_bytes(open(source, "rb").read())
    code = ("import sys, setuptools.build_meta as b; print('SDIST', b.build_sdist(sys.argv[1]))")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "dist")], cwd=src, capture_output=True,
                         text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "warning" not in (out.stdout + out.stderr).lower().replace("byte-compiling is disabled", ""), out.stderr
    (line,) = [ln for ln in out.stdout.splitlines() if ln.startswith("SDIST ")]
    with tarfile.open(tmp_path / "dist" / line.split(" ", 1)[1]) as tar:
        return [n.split("/", 1)[1] for n in tar.getnames() if "/" in n]


def test_sdist_has_the_sources_and_no_partial_test_suite(tmp_path):
    names = _sdist_names(tmp_path)
    for need in ("LICENSE", "README.md", "pyproject.toml", "csrc/ops.cpp", "csrc/fastgan.h",
                 "csrc/compile_check/c10/cuda/impl/cuda_cmake_macros.h", "kernels/losses.py", "fastgan/cli.py"):
        assert need in names, need
    # either a runnable suite (conftest, helpers, ...) or none: fastgan ships none
    assert not [n for n in names if n.startswith(("tests/", "benchmarks/"))]


def _version(text: str) -> tuple:
    parts = [int(p) for p in text.split("+")[0].split(".")]
    return tuple(parts + [0] * (3 - len(parts)))


def _lower_bound(requirements, name: str) -> tuple:
    (req,) = [r for r in requirements if r.split(">=")[0].strip() == name]
    return _version(req.split(">=")[1].split(",")[0].strip())


def test_declared_bounds_are_the_oldest_pair_that_passed():
    """pyproject's torch and triton lower bounds are the oldest row marked ``pass`` in the
    newest compat-matrix results (benchmarks/compat_matrix.sh)."""
    import glob
    project = _pyproject()["project"]
    files = sorted(glob.glob(os.path.join(ROOT, "benchmarks", "results", "compat-matrix-*.md")))
    assert files, "no benchmarks/results/compat-matrix-*.md"
    passed = []
    with open(files[-1]) as f:
        for line in f:
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if line.startswith("|") and len(cells) > 3 and cells[-1] == "pass":
                passed.append((_version(cells[0]), _version(cells[1])))
    assert passed, f"no passing row in {files[-1]}"
    torch_v, triton_v = min(passed)
    assert _lower_bound(project["dependencies"], "torch") == torch_v
    assert _lower_bound(project["optional-dependencies"]["triton"], "triton") == triton_v


def test_kernels_keep_plain_annotations():
    """Triton <= 3.1's interpreter finds a kernel's constexpr parameters by their annotation
    object: under ``from __future__ import annotations`` (strings) it takes them for plain
    arguments and fails ("Shape element 0 must have type `constexpr`")."""
    import glob
    for path in glob.glob(os.path.join(ROOT, "kernels", "*.py")):
        with open(path) as f:
            assert not re.search(r"^from __future__ import annotations", f.read(), re.M), path
