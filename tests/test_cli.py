"""The fastgan command: info, verify (and that it fails loudly on a broken kernel), bench, demo;
the tools of ``fastgan.tools`` behind it."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
import torch

from fastgan import cli
from fastgan.backends import triton as triton_backend
from fastgan.backends.triton import pair as triton_pair, penalty as triton_penalty
from fastgan.tools import args as tool_args
from fastgan.tools.cases import CASES

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
    for name in CASES:
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
    module = triton_penalty if "penalty" in target else triton_pair
    real = getattr(module, target)

    def broken(*args, **kwargs):
        out = real(*args, **kwargs)
        if isinstance(out, list):
            return [out[0] * 1.001 + 1e-3, *out[1:]]
        return out * 1.001 + 1e-3

    monkeypatch.setattr(module, target, broken)
    op = "grad_norm_penalty" if "penalty" in target else "hinge_d_loss"
    code = cli.main(["verify", "--backend", "triton", "--op", op, "--quick"])
    out = capsys.readouterr().out
    assert code == 1
    assert "FAIL" in out and "0 failed" not in out


def test_verify_crash_is_a_failure(monkeypatch, capsys):
    from fastgan import backends

    def crash(*a, **k):
        raise RuntimeError("kernel exploded")

    monkeypatch.setattr(backends, "run", crash)  # every op call of fastgan.F goes through it
    assert cli.main(["verify", "--backend", "torch", "--op", "hinge_g_loss", "--quick"]) == 1
    assert "kernel exploded" in capsys.readouterr().out


def test_bench_quick_json_csv_plot(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    j, c, p = tmp_path / "b.json", tmp_path / "b.csv", tmp_path / "b.png"
    code = cli.main(["bench", "--quick", "--min-run-time", "0.005", "--rounds", "3", "--no-progress", "--json", str(j),
                     "--csv", str(c), "--plot", str(p)])
    assert code == 0
    res = json.loads(j.read_text())
    rows = res["rows"]
    assert {r["op"] for r in rows} == set(CASES)
    providers = {r["provider"] for r in rows}
    assert {"eager", "compile", "fastgan-torch"} <= providers
    for key in ("device_name", "torch", "timestamp", "git_commit", "copy_gb_per_s", "rounds", "noisy_threshold",
                "threads"):
        assert key in res["meta"]
    assert all(r["median_us"] > 0 for r in rows)
    # the method's record: warm-up length, rounds, spread, the noise flag, ratios with their spread
    for r in rows:
        assert r["warmup_calls"] >= 1 and r["warmup_s"] > 0 and isinstance(r["noisy"], bool)
        assert r["rounds"] in (3, 6) and len(r["round_us"]) == r["rounds"]
        assert r["lo_us"] <= r["median_us"] <= r["hi_us"]
        if r["provider"] != "eager":
            assert r["speedup_vs_eager_lo"] <= r["speedup_vs_eager"] <= r["speedup_vs_eager_hi"]
    assert {r["mode"] for r in rows} == {"fwd", "bwd", "fwd+bwd"}
    assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert c.read_text().count("\n") == len(rows) + 1
    out = capsys.readouterr().out
    assert "vs eager" in out and f"{len(rows)} rows, " in out and " noisy (" in out
    assert "noisy" in c.read_text().splitlines()[0].split(",")
    # the reference fallback is timed as a provider of its own and says it is the fallback
    assert "fastgan-torch (fallback)" in out and "reference fallback" in out


def test_bench_bandwidth_columns_for_large_sizes():
    from fastgan.tools import bench
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


# --------------------------------------------------------------------------- bad arguments fail fast

def _bad_paths(tmp_path):
    a_file = tmp_path / "a_file"
    a_file.write_text("")
    return {"missing-folder": str(tmp_path / "no" / "such" / "dir" / "x.out"),
            "parent-is-a-file": str(a_file / "x.out"), "a-folder": str(tmp_path)}


def _no_work(monkeypatch, module):
    def run(*a, **k):
        raise AssertionError("the work started before the output paths were checked")
    monkeypatch.setattr(module, "run", run)


@pytest.mark.parametrize("kind", ["missing-folder", "parent-is-a-file", "a-folder"])
@pytest.mark.parametrize("cmd,option", [("bench", "--json"), ("bench", "--csv"), ("bench", "--plot"),
                                        ("compare", "--json"), ("compare", "--plot")])
def test_unwritable_output_path_fails_before_any_work(tmp_path, monkeypatch, capsys, cmd, option, kind):
    import importlib
    _no_work(monkeypatch, importlib.import_module(f"fastgan.tools.{cmd}"))
    bad = _bad_paths(tmp_path)[kind]
    good = str(tmp_path / "ok.out")
    others = [o for o in ("--json", "--csv", "--plot") if o != option and (cmd == "bench" or o != "--csv")]
    t0 = time.perf_counter()
    with pytest.raises(SystemExit) as exc:
        cli.main([cmd, "--quick", "--no-progress", *others[:1], good, option, bad])
    assert time.perf_counter() - t0 < 5
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {option}" in err and bad in err


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root can write anywhere")
def test_read_only_folder_is_refused(tmp_path, monkeypatch, capsys):
    from fastgan.tools import bench
    _no_work(monkeypatch, bench)
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        with pytest.raises(SystemExit) as exc:
            cli.main(["bench", "--csv", str(ro / "b.csv")])
    finally:
        ro.chmod(0o700)
    assert exc.value.code == 2
    assert "not writable" in capsys.readouterr().err


def test_bench_bad_json_path_exits_fast_in_a_subprocess():
    env = dict(os.environ, PYTHONPATH=ROOT)
    bad = os.path.join(os.sep, "nonexistent", "dir", "x.json")
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "fastgan", "bench", "--quick", "--no-progress", "--json", bad],
                         env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2, out.stderr
    assert "--json" in out.stderr and "Traceback" not in out.stderr
    assert time.perf_counter() - t0 < 60  # the import alone; no timing ran


@pytest.mark.parametrize("cmd", ["bench", "compare"])
def test_output_path_in_the_current_folder_passes_the_check(tmp_path, monkeypatch, cmd):
    import importlib
    _no_work(monkeypatch, importlib.import_module(f"fastgan.tools.{cmd}"))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(AssertionError, match="the work started"):
        cli.main([cmd, "--quick", "--no-progress", "--json", "x.json"])


def test_plot_without_matplotlib_fails_before_any_work(tmp_path, monkeypatch, capsys):
    from fastgan.tools import bench
    _no_work(monkeypatch, bench)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib raises ImportError
    with pytest.raises(SystemExit) as exc:
        cli.main(["bench", "--quick", "--plot", str(tmp_path / "b.png")])
    assert exc.value.code == 2
    assert "matplotlib" in capsys.readouterr().err


@pytest.mark.parametrize("steps", ["-5", "0", "1.5", "many"])
def test_demo_steps_must_be_a_positive_integer(capsys, steps):
    with pytest.raises(SystemExit) as exc:
        cli.main(["demo", "--steps", steps])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "--steps" in err and "positive integer" in err


def test_demo_one_step(capsys):
    assert cli.main(["demo", "--steps", "1"]) == 0
    assert "after 1 steps" in capsys.readouterr().out
    from fastgan.tools.demo import train
    with pytest.raises(ValueError, match="steps"):
        train(steps=0, out=lambda s: None)


def test_demo_runs():
    from fastgan.tools.demo import train
    lines = []
    res = train(loss="hinge", steps=20, log_every=10, out=lines.append)
    assert res["steps"] == 20 and len(lines) == 3
    assert 0 <= res["modes_covered"] <= 8


def test_tools_do_not_import_the_cli():
    """The tools sit below the command: importing any of them leaves fastgan.cli unimported."""
    env = dict(os.environ, PYTHONPATH=ROOT)
    code = ("import sys\n"
            "import fastgan.tools.bench, fastgan.tools.verify, fastgan.tools.compare, fastgan.tools.demo\n"
            "import fastgan.tools.aot, fastgan.tools.checking\n"
            "assert 'fastgan.cli' not in sys.modules, 'a tool imported fastgan.cli'\n")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr


def test_unknown_option_is_reported_as_unrecognized(capsys):
    for argv in (["--bogus"], ["--bogus", "info"]):
        with pytest.raises(SystemExit) as exc:
            cli.main(argv)
        assert exc.value.code == 2
        err = capsys.readouterr().err
        assert "unrecognized arguments: --bogus" in err and "required" not in err


def test_no_command_prints_usage(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main([])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: fastgan") and "required" in err


def test_info_reports_a_bad_fastgan_backend():
    """info is the diagnostic: a bad FASTGAN_BACKEND is reported, everything else still printed."""
    env = dict(os.environ, PYTHONPATH=ROOT, FASTGAN_BACKEND="bogus")
    out = subprocess.run([sys.executable, "-m", "fastgan", "info"], env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 1, out.stderr
    assert "Traceback" not in out.stderr
    line = next(ln for ln in out.stdout.splitlines() if "FASTGAN_BACKEND" in ln)
    assert "invalid" in line and "'bogus'" in line
    for name in ("auto", "torch", "triton", "native"):
        assert name in line
    for word in ("torch", "triton", "devices", "usable"):
        assert word in out.stdout


# --------------------------------------------------------------------------- every option of every command
#
# The options are enumerated from the argparse parsers themselves (the subcommands of fastgan's
# parser; a command that forwards to a tool: the tool's parser, caught as it parses), so a new
# option or a new command is covered without touching these tests.

class _Caught(Exception):
    def __init__(self, parser):
        self.parser = parser


def _parsers():
    """{command: its argparse parser} for every fastgan subcommand."""
    import argparse
    top = cli.build_parser()
    sub = next(a for a in top._actions if isinstance(a, argparse._SubParsersAction))
    out = {}
    for name, parser in sub.choices.items():
        if parser.get_default("fn") is not None:
            out[name] = parser
            continue

        def catch(self, args=None, namespace=None):
            raise _Caught(self)
        real = argparse.ArgumentParser.parse_args
        argparse.ArgumentParser.parse_args = catch
        try:
            cli.main([name])
        except _Caught as caught:
            out[name] = caught.parser
        finally:
            argparse.ArgumentParser.parse_args = real
        assert name in out, f"fastgan {name}: no parser caught"
    return out


PARSERS = _parsers()


def _options(kind):
    """(command, option string, action) of every option of every command for which ``kind(action)``."""
    return [pytest.param(cmd, a.option_strings[-1], a, id=f"{cmd} {a.option_strings[-1]}")
            for cmd, p in PARSERS.items() for a in p._actions if a.option_strings and a.nargs != 0 and kind(a)]


def _names(params):
    return {tuple(p.values[:2]) for p in params}


def _numeric(action) -> bool:
    if action.type is None:
        return False
    try:
        value = action.type("1")
    except Exception:  # noqa: BLE001  (a file type, a choice of names, ...)
        return False
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _of_type(cls):
    return lambda action: isinstance(action.type, cls)


NUMERIC = _options(_numeric)
INPUTS = _options(_of_type(tool_args.InputJson))
OUTPUTS = _options(_of_type(tool_args.OutputFile))


def _bench_run_json(path, **meta):
    """A valid bench result with one op and the tiniest settings (as a re-run with --compare uses)."""
    m = {"device": "cpu", "device_name": "test cpu", "copy_gb_per_s": 10.0, "torch": torch.__version__,
         "triton": None, "timer": "test", "timestamp": "2026-12-01T00:00:00+00:00", "git_commit": None,
         "quick": True, "min_run_time_s": 0.01, "rounds": 1, "noisy_threshold": 0.15, "threads": 1,
         "modes": ["fwd"], "ops": ["hinge_g_loss"], "providers": ["eager"]}
    m.update(meta)
    row = {"op": "hinge_g_loss", "size": "4096", "numel": 4096, "mode": "fwd", "provider": "eager",
           "median_us": 10.0, "lo_us": 9.0, "hi_us": 11.0, "min_us": 9.0, "max_us": 11.0, "spread": 0.2,
           "rounds": 1, "round_us": [10.0], "noisy": False, "speedup_vs_eager": 1.0}
    path.write_text(json.dumps({"meta": m, "rows": [row], "skipped": {}}))
    return str(path)


TINY_BENCH = ["--quick", "--op", "hinge_g_loss", "--mode", "fwd", "--provider", "eager", "--rounds", "1",
              "--min-run-time", "0.01", "--threads", "1", "--no-progress"]


def _contexts(cmd, tmp_path):
    """Each way ``cmd`` runs, made as cheap as it gets: {name: arguments}."""
    if cmd == "bench":
        old, new = _bench_run_json(tmp_path / "old.json"), _bench_run_json(tmp_path / "new.json")
        return {"run": TINY_BENCH, "compare-two": ["--compare", old, new],
                "compare-one": ["--compare", old, "--no-progress", "--threads", "1"]}
    if cmd == "compare":
        return {"run": ["--config", "hinge", "--data", "ring8", "--steps", "1", "--seeds", "1", "--jobs", "1",
                        "--no-progress"]}
    if cmd == "demo":
        return {"run": ["--steps", "1"]}
    if cmd == "build":
        return {"run": ["--cuda-check"]}
    return {"run": []}


def _outcome(capsys, argv):
    """(exit code, stderr) of ``fastgan ARGV`` in this process; a traceback fails the test."""
    try:
        code = cli.main(argv)
    except SystemExit as exc:
        code = exc.code
    return code, capsys.readouterr().err


def test_the_options_are_found():
    """The enumeration sees the options it is meant to (else the tests below test nothing)."""
    found = _names(NUMERIC)
    assert {("bench", "--min-run-time"), ("bench", "--rounds"), ("bench", "--fail-on-regression"),
            ("bench", "--threads"), ("compare", "--steps"), ("compare", "--seeds"), ("compare", "--jobs"),
            ("demo", "--steps"), ("demo", "--seed"), ("build", "--arch")} <= found
    assert not any(opt in ("--json", "--plot", "--op", "--device") for _, opt in found)
    assert _names(INPUTS) >= {("bench", "--compare")}
    assert _names(OUTPUTS) >= {
        ("bench", "--json"), ("bench", "--csv"), ("bench", "--plot"), ("compare", "--json"), ("compare", "--plot")}


@pytest.mark.parametrize("value", ["nan", "inf", "-1", "0"])
@pytest.mark.parametrize("cmd,option,action", NUMERIC)
def test_every_numeric_option_works_or_is_an_argument_error(tmp_path, capsys, cmd, option, action, value):
    """nan, inf, negative, zero: each either runs (a tiny case) or exits 2 naming the option."""
    for name, context in _contexts(cmd, tmp_path).items():
        code, err = _outcome(capsys, [cmd, *context, option, value])
        assert "Traceback" not in err, (name, err)
        if code == 2:
            assert option in err, (name, err)
        else:
            assert code in (0, 1), (name, code, err)


@pytest.mark.parametrize("shape", ["null", "3", "[]", '"text"', '{"rows": null}', '{"meta": {}, "rows": [1]}',
                                   '{"meta": {}, "rows": [{"op": "x", "size": 1}]}'])
@pytest.mark.parametrize("cmd,option,action", INPUTS)
def test_every_file_input_refuses_json_of_the_wrong_shape(tmp_path, capsys, cmd, option, action, shape):
    """Valid JSON that is not what the option reads: an argument error naming the option and the
    file, wherever the file stands among the option's values."""
    bad = tmp_path / "bad.json"
    bad.write_text(shape)
    good = _bench_run_json(tmp_path / "good.json")
    many = action.nargs in ("+", "*") or (isinstance(action.nargs, int) and action.nargs > 1)
    count = action.nargs if isinstance(action.nargs, int) else 2
    for files in ([[str(bad)] * count, [str(bad)] + [good] * (count - 1), [good] * (count - 1) + [str(bad)]]
                  if many else [[str(bad)]]):
        code, err = _outcome(capsys, [cmd, option, *files])
        assert code == 2 and "Traceback" not in err, err
        assert f"argument {option}" in err and str(bad) in err, err


@pytest.mark.parametrize("cmd,option,action", OUTPUTS)
def test_every_output_option_is_written_or_refused(tmp_path, capsys, cmd, option, action):
    """In every way the command runs: the file is written, or the combination is refused (exit 2)."""
    if option == "--plot":
        pytest.importorskip("matplotlib")
    for name, context in _contexts(cmd, tmp_path).items():
        out = tmp_path / f"{name}{option.replace('-', '_')}.out"
        code, err = _outcome(capsys, [cmd, *context, option, str(out)])
        assert "Traceback" not in err, (name, err)
        if code == 2:
            assert f"argument {option}" in err and not out.exists(), (name, err)
        else:
            assert code in (0, 1) and out.exists() and out.stat().st_size > 0, (name, code, err)


@pytest.mark.parametrize("option", ["--steps", "--seeds"])
def test_compare_quick_refuses_the_steps_and_seeds_it_would_ignore(monkeypatch, capsys, option):
    from fastgan.tools import compare
    _no_work(monkeypatch, compare)
    with pytest.raises(SystemExit) as exc:
        cli.main(["compare", "--quick", option, "3"])
    assert exc.value.code == 2
    assert f"argument {option}" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["--workers", "0"], ["--workers", "-1"], ["--arch", "0"], ["--arch", "-90"]])
def test_aot_rejects_non_positive_workers_and_arch(argv, capsys):
    from fastgan.tools import aot
    with pytest.raises(SystemExit) as exc:
        aot.main(argv)
    assert exc.value.code == 2
    assert "must be a positive integer" in capsys.readouterr().err
