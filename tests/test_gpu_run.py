"""benchmarks/gpu_run.sh, the first GPU run in one command, in its dry mode (no GPU):
every step's command printed, the GPU steps skipped with the reason, every python
entry point started with --help."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "benchmarks", "gpu_run.sh")
GPU_STEPS = {
    "pytest-cuda": "-m pytest -q tests -k cuda",
    "verify-triton": "-m fastgan verify --device cuda --backend triton",
    "verify-native": "-m fastgan verify --device cuda --backend native",
    "bench": "-m fastgan bench --device cuda",
    "penalty-step": "benchmarks/penalty_step.py --device cuda",
    "multi-disc": "benchmarks/multi_disc.py --device cuda",
    "cuda-graph": "benchmarks/cuda_graph_step.py",
}

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")


def _dry(out, **env_extra):
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env.update({"DRY_RUN": "1", "PYTHON": sys.executable, **env_extra})
    return subprocess.run(["bash", SCRIPT, str(out)], env=env, capture_output=True, text=True, timeout=900)


def test_dry_run_prints_every_step_and_checks_entry_points(tmp_path):
    proc = _dry(tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    commands = (tmp_path / "commands.txt").read_text()
    for name, cmd in GPU_STEPS.items():
        assert f"[{name}]" in commands and cmd in commands, name
        assert f"[{name}] skipped (dry run, needs a CUDA GPU)" in proc.stdout, name
        assert (tmp_path / f"{name}.help.txt").exists(), name  # its entry point was started
    # the bench's output goes under OUT; the steps that need no GPU ran
    assert f"--json {tmp_path}/bench.json" in commands
    assert "PREDICTIONS" in (tmp_path / "bandwidth-model.md").read_text()
    assert "usage" in (tmp_path / "cuda-graph.help.txt").read_text()
    assert (tmp_path / "device.txt").read_text().strip() == "(dry run: no GPU)"
    assert "exit status 0" in (tmp_path / "status.txt").read_text()


def test_dry_run_fails_on_a_broken_entry_point(tmp_path):
    """A python entry point that does not start fails the dry run (a stand-in python
    that fails for cuda_graph_step.py and succeeds, doing nothing, for the rest)."""
    fake = tmp_path / "python"
    fake.write_text('#!/usr/bin/env bash\ncase "$*" in *cuda_graph_step.py*--help*) '
                    'echo "ImportError: broken" >&2; exit 3;; *) exit 0;; esac\n')
    fake.chmod(0o755)
    out = tmp_path / "out"
    proc = _dry(out, PYTHON=str(fake))
    assert proc.returncode == 1, proc.stdout
    assert "[cuda-graph] ENTRY POINT BROKEN" in proc.stdout
    assert "exit status 1" in (out / "status.txt").read_text()


def test_real_run_refuses_without_a_gpu(tmp_path):
    try:
        import torch
        if torch.cuda.is_available():
            pytest.skip("a GPU is here: the real run would run")
    except ImportError:
        pass
    env = {k: v for k, v in os.environ.items() if k not in ("TRITON_INTERPRET", "DRY_RUN")}
    env["PYTHON"] = sys.executable
    proc = subprocess.run(["bash", SCRIPT, str(tmp_path)], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1
    assert "no CUDA device" in proc.stdout


def test_cuda_graph_script_needs_cuda():
    try:
        import torch
        if torch.cuda.is_available():
            pytest.skip("a GPU is here")
    except ImportError:
        pytest.skip("no torch")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "cuda_graph_step.py")], env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1 and "needs a CUDA device" in proc.stdout
