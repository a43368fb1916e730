"""fastgan compare: the metrics on known inputs, a quick smoke run, determinism."""
from __future__ import annotations

import json

import pytest
import torch

from fastgan import compare

pytest.importorskip("scipy")


def test_exact_real_samples_cover_every_mode_with_zero_w1():
    gen = torch.Generator().manual_seed(0)
    for make in (compare.ring, compare.grid):
        data = make()
        real = data.sample(2000, gen)
        m = compare.mode_metrics(real, data)
        assert m["modes"] == len(data.centers)
        assert m["hq"] > 0.98  # a 2-d Gaussian has 1 − exp(−9/2) = 98.9 % of its mass within 3σ
        assert compare.wasserstein1(real[:300], real[:300]) == 0.0


def test_single_mode_generator_covers_one():
    data = compare.ring()
    gen = torch.Generator().manual_seed(1)
    one = data.centers[3] + data.std * torch.randn(1000, 2, generator=gen)
    m = compare.mode_metrics(one, data)
    assert m["modes"] == 1
    far = torch.full((1000, 2), 10.0)
    assert compare.mode_metrics(far, data) == {"modes": 0, "hq": 0.0}


def test_w1_of_a_shift_is_the_shift():
    gen = torch.Generator().manual_seed(2)
    a = torch.randn(200, 2, generator=gen)
    b = a + torch.tensor([0.3, 0.4])
    assert compare.wasserstein1(a, b) == pytest.approx(0.5, rel=1e-6)  # the shift is rounded to float32
    with pytest.raises(ValueError, match="equal-size"):
        compare.wasserstein1(a, b[:10])


def test_pearson():
    assert compare.pearson([1, 2, 3, 4], [2, 4, 6, 8]) == pytest.approx(1.0)
    assert compare.pearson([1, 2, 3, 4], [8, 6, 4, 2]) == pytest.approx(-1.0)
    assert compare.pearson([1, 2], [1, 2]) != compare.pearson([1, 2], [1, 2])  # nan: too few points


def test_quick_smoke_every_config(tmp_path):
    pytest.importorskip("matplotlib")
    j, p = tmp_path / "c.json", tmp_path / "c.png"
    res = compare.run(tuple(compare.CONFIGS), ("ring8",), seeds=1, steps=6, progress=False)
    assert {s["config"] for s in res["summary"]} == set(compare.CONFIGS)
    for s in res["summary"]:
        assert 0 <= s["modes"]["mean"] <= 8 and 0 <= s["hq"]["mean"] <= 1 and s["w1"]["mean"] >= 0
        assert s["grad_g"]["mean"] >= 0
    compare.plot(res, str(p))
    assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    json.dump(res, open(j, "w"))
    assert "wgan-gp" in compare.format_table(res)


def test_cli_quick_flags(tmp_path, capsys):
    from fastgan import cli
    j = tmp_path / "c.json"
    assert cli.main(["compare", "--config", "hinge", "--data", "grid25", "--steps", "4", "--seeds", "1",
                     "--no-progress", "--json", str(j)]) == 0
    out = capsys.readouterr().out
    assert "hinge" in out and "grid25" in out
    assert json.loads(j.read_text())["meta"]["steps"] == 4


def test_deterministic_with_a_fixed_seed():
    cfg = compare.CONFIGS["wgan-gp"]
    a = compare.train_one(cfg, compare.ring(), seed=3, steps=5)
    b = compare.train_one(cfg, compare.ring(), seed=3, steps=5)
    for key in ("w1", "grad_g", "hq", "modes"):
        assert a[key] == b[key]
    assert a["samples"] == b["samples"]
