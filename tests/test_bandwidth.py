"""The bandwidth model (fastgan/tools/bandwidth.py): a model for every op of the registry,
bytes that follow from the sizes, predictions labelled as such."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from fastgan.registry import OPS
from fastgan.tools import bandwidth as bw
from fastgan.tools import bench_cases
from fastgan.tools.bench_cases import Case
from fastgan.tools.cases import CASES

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TABLE = os.path.join(ROOT, "benchmarks", "results", "bandwidth-model.md")


@pytest.mark.parametrize("name", sorted(set(OPS) | set(CASES)))
def test_every_op_has_a_model(name):
    """A new op (or a new family) without a byte model fails here."""
    spec = OPS[name]
    assert spec.family in bw.MODELS, f"no bandwidth model for {name} ({spec.family})"
    shapes = [s for op, _, s in bw.bench_cases() if op == name]
    assert shapes, f"{name} has no bench sizes in the model"
    for mode in bw.MODES:
        for dtype in (torch.float32, torch.bfloat16):
            n = bw.shapes_bytes(name, shapes[0], dtype, mode)
            assert isinstance(n, int) and n > 0


def test_pair_loss_bytes():
    n = 2 ** 20
    # forward: read both sides, write the scalar loss
    assert bw.min_bytes("hinge_d_loss", n, n, torch.float32, "fwd") == 2 * n * 4 + 4
    # backward: read both sides and the upstream scalar, write both gradients
    assert bw.min_bytes("hinge_d_loss", n, n, torch.float32, "bwd") == 4 * n * 4 + 4
    assert bw.min_bytes("hinge_d_loss", n, n, "bf16", "fwd+bwd") == (2 * n * 2 + 2) + (4 * n * 2 + 2)
    # a generator loss: one side
    assert bw.min_bytes("hinge_g_loss", n, None, torch.float32, "fwd") == n * 4 + 4
    # sides of different sizes; "none" writes a term per element
    assert bw.min_bytes("bce_d_loss", 100, 900, torch.float32, "fwd", reduction="none") == 1000 * 4 + 1000 * 4


def test_bce_dropin_and_penalty_bytes():
    n = 4096
    # input and target read; only the input gets a gradient
    assert bw.min_bytes("binary_cross_entropy_with_logits", n, n, torch.float32, "bwd") == 2 * n * 4 + n * 4 + 4
    # penalty: B x D gradient, B squared norms in float32 kept for the backward
    B, D = 64, 3 * 64 * 64
    assert bw.min_bytes("grad_norm_penalty", B * D, None, torch.bfloat16, "fwd", batch=B) == B * D * 2 + B * 4 + 2
    assert bw.shapes_bytes("grad_norm_penalty", [(B, 3, 64, 64)], torch.bfloat16, "bwd") == \
        2 * B * D * 2 + B * 4 + 2


def test_bad_arguments():
    with pytest.raises(ValueError):
        bw.min_bytes("hinge_d_loss", 10, None)
    with pytest.raises(ValueError):
        bw.min_bytes("hinge_g_loss", 10, 10)
    with pytest.raises(ValueError):
        bw.min_bytes("hinge_d_loss", 10, 10, mode="both")
    with pytest.raises(ValueError):
        bw.min_bytes("grad_norm_penalty", 10)
    with pytest.raises(KeyError):
        bw.predicted_seconds(10, "Tesla T4")


def test_predicted_seconds():
    assert bw.predicted_seconds(3e12, "NVIDIA H100 80GB HBM3") == pytest.approx(1.0)
    assert bw.predicted_seconds(4e12, "NVIDIA H200") == pytest.approx(1.0)
    assert bw.predicted_seconds(1e9, bandwidth=1e9) == 1.0
    # the figures are labelled assumptions
    assert all("ASSUMPTION" in bw.BANDWIDTH_SOURCE[k] for k in bw.COPY_BANDWIDTH)


def test_differentiable_matches_the_bench():
    for name in CASES:
        case = Case(name, "x", [(4,)] * len(OPS[name].args))
        assert bw.differentiable(name) == tuple(case.differentiable), name


def test_sizes_are_the_bench_sweep():
    """The model's cases are the bench's (one definition, ``bench_cases``), list cases left out."""
    from fastgan.tools.bench_cases import LOSS_SIZES, PENALTY_SHAPES, cases
    assert bw.bench_cases() == [(c.op, c.label, list(c.shapes)) for c in cases() if not c.lists]
    labels = {label for _, label, _ in bw.bench_cases()}
    assert labels == {label for label, _ in LOSS_SIZES} | {"x".join(map(str, s)) for s in PENALTY_SHAPES}
    assert bw.MODES is bench_cases.MODES


def test_markdown_is_labelled_predictions(tmp_path):
    out = tmp_path / "model.md"
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run([sys.executable, "-m", "fastgan.tools.bandwidth", "--markdown", str(out)],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    text = out.read_text(encoding="utf-8")
    assert "PREDICTIONS" in text and "ASSUMPTION" in text
    for name in OPS:
        assert f"| {name} |" in text, name
    # the committed table is the one the command writes
    assert open(TABLE, encoding="utf-8").read() == text, \
        "benchmarks/results/bandwidth-model.md is stale: rerun python -m fastgan.tools.bandwidth --markdown ..."


def test_markdown_to_an_unwritable_path_is_an_argument_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        bw.main(["--markdown", str(tmp_path / "no" / "such" / "folder" / "model.md")])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "argument --markdown" in err and "does not exist" in err


def test_list_cases_are_modelled():
    """The bench's list cases (pair losses over HiFi-GAN's score lists) have rows: the bytes of
    the concatenation, one loss and one upstream gradient per member."""
    from fastgan.tools.bench_cases import cases
    lists = [c for c in cases() if c.lists]
    assert lists and bw.list_cases() == [(c.op, c.label, [int(torch.Size(s).numel()) for s in c.shapes])
                                         for c in lists]
    sizes = [100, 28]
    one = bw.min_bytes("hinge_d_loss", 128, 128, torch.float32, "fwd+bwd")
    assert bw.list_bytes("hinge_d_loss", sizes, torch.float32, "fwd+bwd") == one + 2 * 4
    assert bw.list_bytes("hinge_g_loss", sizes, torch.float32, "fwd") == \
        bw.min_bytes("hinge_g_loss", 128, None, torch.float32, "fwd") + 4
    text = bw.to_markdown()
    assert all(f"| {op} | {label} |" in text for op, label, _ in bw.list_cases())
