"""fastgan compare: the metrics on known inputs, a quick smoke run, determinism."""
from __future__ import annotations

import json

import pytest
import torch

from fastgan.tools import compare

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


def test_digits_metrics_on_known_inputs():
    pytest.importorskip("sklearn")
    x, y = compare.digits_data()
    assert x.shape == (1797, 1, 8, 8) and x.min() == -1 and x.max() == 1
    c = compare.digit_classifier()
    assert c["accuracy"] > 0.9
    real = compare.digit_metrics(x)
    assert real["modes"] == 10 and real["hq"] > 0.9
    assert real["fd"] == pytest.approx(0.0, abs=1e-4)  # the reference statistics are these images'
    gen = torch.Generator().manual_seed(0)
    sample = compare.digit_metrics(x[torch.randperm(len(x), generator=gen)[:1000]])
    assert sample["modes"] == 10 and 0 < sample["fd"] < 10
    ones = compare.digit_metrics(x[y == 1])
    assert ones["modes"] == 1 and ones["fd"] > 10 * sample["fd"]
    noise = compare.digit_metrics(torch.rand(500, 1, 8, 8, generator=gen) * 2 - 1)
    assert noise["fd"] > 10 * sample["fd"]


def test_frechet_distance():
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(5, 5, dtype=torch.float64, generator=gen)
    cov = a @ a.T + torch.eye(5, dtype=torch.float64)
    mu = torch.zeros(5, dtype=torch.float64)
    assert compare.frechet_distance(mu, cov, mu, cov) == pytest.approx(0.0, abs=1e-9)
    shift = torch.tensor([3.0, 4.0, 0, 0, 0], dtype=torch.float64)
    assert compare.frechet_distance(mu, cov, mu + shift, cov) == pytest.approx(25.0)
    # isotropic: (σ1 − σ2)² per dimension
    i = torch.eye(5, dtype=torch.float64)
    assert compare.frechet_distance(mu, 4 * i, mu, 9 * i) == pytest.approx(5 * (2 - 3) ** 2)


def test_digits_smoke_and_jobs_do_not_change_results():
    pytest.importorskip("sklearn")
    args = (("hinge-sn", "wgan-gp"), ("digits",))
    one = compare.run(*args, seeds=1, steps=3, progress=False, jobs=1)
    two = compare.run(*args, seeds=1, steps=3, progress=False, jobs=2)
    for a, b in zip(one["runs"], two["runs"]):
        assert (a["config"], a["data"]) == (b["config"], b["data"])
        for key in ("w1", "fd", "grad_g", "hq", "modes", "samples"):
            assert a[key] == b[key]
    assert one["reference"]["digits"]["modes"] == 10
    assert "(real data)" in compare.format_table(one) and "FD" in compare.format_table(one)


def test_quick_smoke_every_config(tmp_path):
    pytest.importorskip("matplotlib")
    j, p = tmp_path / "c.json", tmp_path / "c.png"
    res = compare.run(tuple(compare.CONFIGS), ("ring8",), seeds=1, steps=6, progress=False, jobs=1)
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
