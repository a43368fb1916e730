"""The fastgan command: info, verify (and that it fails loudly on a broken kernel), bench."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from fastgan import cli
from fastgan.backends import triton_backend
from fastgan.registry import OPS

from .conftest import runnable

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRITON_HERE = triton_backend.status()[0] and runnable("triton", "cpu")


def test_info(capsys):
    assert cli.main(["info"]) == 0
    out = capsys.readouterr().out
    for word in ("torch", "triton", "native", "devices", "usable"):
        assert word in out


def test_python_dash_m_entry_point():
    env = dict(os.environ, PYTHONPATH=ROOT)
    out = subprocess.run([sys.executable, "-m", "fastgan", "info"], env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    assert "backend" in out.stdout


def test_verify_passes_on_the_reference(capsys):
    assert cli.main(["verify", "--backend", "torch", "--quick"]) == 0
    out = capsys.readouterr().out
    assert "0 failed" in out
    for name in OPS:
        assert name in out


@pytest.mark.skipif(not TRITON_HERE, reason="triton backend not usable on CPU here")
def test_verify_triton_kernels(capsys):
    code = cli.main(["verify", "--backend", "triton", "--op", "hinge_d_loss", "--op", "grad_norm_penalty"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "gradgradcheck" in out and "bfloat16" in out


@pytest.mark.skipif(not TRITON_HERE, reason="triton backend not usable on CPU here")
@pytest.mark.parametrize("target", ["pair_forward", "pair_backward", "penalty_forward", "penalty_backward"])
def test_verify_fails_loudly_on_a_broken_kernel(monkeypatch, capsys, target):
    """Inject a wrong kernel result: verify must report FAIL and exit non-zero."""
    real = getattr(triton_backend, target)

    def broken(*args, **kwargs):
        out = real(*args, **kwargs)
        if isinstance(out, list):
            return [out[0] * 1.001 + 1e-3, *out[1:]]
        return out * 1.001 + 1e-3

    monkeypatch.setattr(triton_backend, target, broken)
    op = "grad_norm_penalty" if "penalty" in target else "hinge_d_loss"
    code = cli.main(["verify", "--backend", "triton", "--op", op, "--quick"])
    out = capsys.readouterr().out
    assert code == 1
    assert "FAIL" in out and "0 failed" not in out


def test_verify_crash_is_a_failure(monkeypatch, capsys):
    from fastgan.backends import torch_backend

    def crash(*a, **k):
        raise RuntimeError("kernel exploded")

    monkeypatch.setattr(torch_backend, "run", crash)
    assert cli.main(["verify", "--backend", "torch", "--op", "hinge_g_loss", "--quick"]) == 1
    assert "kernel exploded" in capsys.readouterr().out


def test_bench_quick_json_csv_plot(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    j, c, p = tmp_path / "b.json", tmp_path / "b.csv", tmp_path / "b.png"
    code = cli.main(["bench", "--quick", "--min-run-time", "0.005", "--no-progress", "--json", str(j),
                     "--csv", str(c), "--plot", str(p)])
    assert code == 0
    res = json.loads(j.read_text())
    rows = res["rows"]
    assert {r["op"] for r in rows} == set(OPS)
    providers = {r["provider"] for r in rows}
    assert {"eager", "compile", "fastgan-torch"} <= providers
    for key in ("device_name", "torch", "timestamp", "git_commit", "copy_gb_per_s"):
        assert key in res["meta"]
    assert all(r["median_us"] > 0 for r in rows)
    assert {r["mode"] for r in rows} == {"fwd", "bwd", "fwd+bwd"}
    assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert c.read_text().count("\n") == len(rows) + 1
    assert "vs eager" in capsys.readouterr().out


def test_bench_bandwidth_columns_for_large_sizes():
    from fastgan import bench
    case = next(c for c in bench.cases() if c.op == "bce_d_loss" and c.label == "2^20")
    assert bench.min_bytes(case, "fwd") == 2 * 2 ** 20 * 4
    assert bench.min_bytes(case, "fwd+bwd") == 3 * 2 * 2 ** 20 * 4
    pen = next(c for c in bench.cases() if c.op == "grad_norm_penalty" and c.label == "256x3x128x128")
    assert bench.min_bytes(pen, "bwd") == 2 * 256 * 3 * 128 * 128 * 4
    drop = next(c for c in bench.cases() if c.op == "binary_cross_entropy_with_logits" and c.label == "2^20")
    assert bench.min_bytes(drop, "bwd") == 3 * 2 ** 20 * 4  # input + target read, input grad written


def test_bench_refuses_cuda_without_gpu(capsys):
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    assert cli.main(["bench", "--device", "cuda"]) == 2
