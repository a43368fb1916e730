"""Smoke test of one installed (torch, triton, numpy): what benchmarks/compat_matrix.sh runs
in each of its virtual environments.  Not a benchmark and not a pytest file.

Checks, each against the float64 reference (``fastgan.reference``), value and gradient:

* every loss family (pair, lists of discriminators, drop-in BCE, gradient-norm penalty,
  relativistic, divergences, feature matching) on backend ``"torch"`` and on ``"native"``
  (which JIT-builds the C++ extension into ``$FASTGAN_CACHE_DIR`` first);
* two ops (a pair loss and the drop-in BCE) on ``"triton"`` through the Triton interpreter,
  when ``TRITON_INTERPRET=1`` is set and triton is installed;
* one ``torch.compile`` of a pair loss (backend ``"triton"`` where the interpreter is usable,
  so the custom ops are traced, else ``"auto"``);
* ``fastgan info`` runs and prints no "No CUDA runtime is found" line.

Prints one ``CHECK <name> ok|FAIL|skip <detail>`` line per check, then
``RESULT import=.. torch=.. native=.. triton=.. compile=.. info=..`` and ``VERSIONS ...``, and exits
non-zero if any check failed.  Usage: ``TRITON_INTERPRET=1 python benchmarks/compat_smoke.py``.
"""
import os
import platform
import sys
import time
import traceback

RESULTS = {}


def check(part, name, fn):
    try:
        detail = fn() or ""
        print(f"CHECK {part}:{name} ok {detail}", flush=True)
        RESULTS.setdefault(part, []).append(True)
    except Exception as exc:  # noqa: BLE001 - report and go on
        msg = f"{type(exc).__name__}: {exc}".replace("\n", " | ")[:400]
        print(f"CHECK {part}:{name} FAIL {msg}", flush=True)
        traceback.print_exc(file=sys.stderr)
        RESULTS.setdefault(part, []).append(False)


def main() -> int:
    versions = {"python": platform.python_version()}
    try:
        import numpy
        versions["numpy"] = numpy.__version__
    except ImportError:
        versions["numpy"] = "none"
    import torch
    versions["torch"] = torch.__version__
    try:
        import triton
        versions["triton"] = triton.__version__
    except ImportError:
        versions["triton"] = "none"
    print("VERSIONS " + " ".join(f"{k}={v}" for k, v in versions.items()), flush=True)

    try:
        import fastgan
        from fastgan import F, reference as R
    except Exception as exc:  # noqa: BLE001
        print(f"CHECK import:fastgan FAIL {type(exc).__name__}: {exc}")
        traceback.print_exc()
        print("RESULT import=FAIL torch=- native=- triton=- compile=- info=-")
        return 1
    print("CHECK import:fastgan ok " + fastgan.__file__, flush=True)
    RESULTS["import"] = [True]
    for name, (ok, reason) in fastgan.available_backends().items():
        print(f"BACKEND {name} {'usable' if ok else 'unusable'}: {reason}", flush=True)

    gen = torch.Generator().manual_seed(0)

    def randn(*shape):
        return torch.randn(*shape, generator=gen)

    def rand(*shape):
        return torch.rand(*shape, generator=gen)

    # (name, function of (module, *tensors), tensors); the module is F or the reference
    x, y = randn(37), randn(29)
    cases = [
        ("bce_d_loss", lambda m, r, f: m.bce_d_loss(r, f), (x, y)),
        ("bce_g_loss", lambda m, f: m.bce_g_loss(f), (y,)),
        ("hinge_d_loss", lambda m, r, f: m.hinge_d_loss(r, f), (x, y)),
        ("hinge_g_loss", lambda m, f: m.hinge_g_loss(f), (y,)),
        ("lsgan_d_loss", lambda m, r, f: m.lsgan_d_loss(r, f), (x, y)),
        ("lsgan_g_loss", lambda m, f: m.lsgan_g_loss(f), (y,)),
        ("wasserstein_d_loss", lambda m, r, f: m.wasserstein_d_loss(r, f), (x, y)),
        ("wasserstein_g_loss", lambda m, f: m.wasserstein_g_loss(f), (y,)),
        ("hinge_d_loss[lists]", lambda m, r1, r2, f1, f2: (m.hinge_d_loss([r1, r2], [f1, f2]) if m is F else
                                                           m.hinge_d_loss(r1, f1) + m.hinge_d_loss(r2, f2)),
         (randn(9), randn(4, 5), randn(9), randn(4, 5))),
        ("binary_cross_entropy_with_logits",
         lambda m, i, t, w, p: m.binary_cross_entropy_with_logits(i, t, w, pos_weight=p),
         (randn(6, 5), rand(6, 5), rand(6, 5), rand(5) + 0.5)),
        ("grad_norm_penalty", lambda m, g: m.grad_norm_penalty(g), (randn(6, 33),)),
        ("ragan_d_loss", lambda m, r, f: m.ragan_d_loss(r, f), (randn(31), randn(31))),
        ("rpgan_g_loss", lambda m, r, f: m.rpgan_g_loss(r, f), (randn(31), randn(31))),
        ("gaussian_kl", lambda m, mu, lv: m.gaussian_kl(mu, lv), (randn(5, 7), randn(5, 7))),
        ("kl_div_logits", lambda m, p, q: m.kl_div_logits(p, q), (randn(4, 9), randn(4, 9))),
        ("js_div_logits", lambda m, p, q: m.js_div_logits(p, q), (randn(4, 9), randn(4, 9))),
        ("feature_matching_loss", lambda m, a, b, c, d: m.feature_matching_loss([a, b], [c, d]),
         (randn(3, 8), randn(2, 3, 5), randn(3, 8), randn(2, 3, 5))),
    ]
    # feature matching detaches the real maps by default: no gradient reaches them
    reference_for = {"feature_matching_loss": lambda m, a, b, c, d: m.feature_matching_maps([a.detach(), b.detach()],
                                                                                             [c, d])}

    def compare(name, fn, tensors, backend):
        xs = [t.clone().requires_grad_() for t in tensors]
        with fastgan.use_backend(backend):
            out = fn(F, *xs)
        gs = torch.autograd.grad(out, xs, allow_unused=True)
        xs64 = [t.double().requires_grad_() for t in tensors]
        ref = reference_for.get(name, fn)(R, *xs64)
        gs64 = torch.autograd.grad(ref, xs64, allow_unused=True)
        torch.testing.assert_close(out.double(), ref.detach(), rtol=1e-4, atol=1e-5)
        for x, g, g64 in zip(xs, gs, gs64):
            g = torch.zeros_like(x) if g is None else g
            g64 = torch.zeros_like(x, dtype=torch.float64) if g64 is None else g64
            torch.testing.assert_close(g.double(), g64, rtol=1e-4, atol=1e-5)

    for n, fn, ts in cases:
        check("torch", n, lambda n=n, fn=fn, ts=ts: compare(n, fn, ts, "torch"))

    native_ok, reason = fastgan.available_backends()["native"]
    if native_ok:
        def build():
            from fastgan.backends import native_loader
            t0 = time.perf_counter()
            res = native_loader.build()
            return f"{'cached' if res['cached'] else 'built'} in {time.perf_counter() - t0:.0f} s"
        check("native", "build", build)
        for n, fn, ts in cases:
            check("native", n, lambda n=n, fn=fn, ts=ts: compare(n, fn, ts, "native"))
    else:
        print(f"CHECK native:all skip {reason}")

    triton_ok, reason = fastgan.available_backends()["triton"]
    interp = os.environ.get("TRITON_INTERPRET") == "1"
    if interp and versions["triton"] != "none":
        for n, fn, ts in cases:
            if n in ("hinge_d_loss", "binary_cross_entropy_with_logits"):
                check("triton", n, lambda n=n, fn=fn, ts=ts: compare(n, fn, ts, "triton"))
    else:
        print(f"CHECK triton:all skip {'no triton' if interp else 'TRITON_INTERPRET is not 1'}")

    def compiled():
        backend = "triton" if (interp and triton_ok) else "auto"
        real, fake = randn(40), randn(40)

        def step(r, f):
            return F.hinge_d_loss(r, f) + F.lsgan_g_loss(f)

        with fastgan.use_backend(backend):
            t0 = time.perf_counter()
            got = torch.compile(step, fullgraph=True)(real, fake)
        ref = R.hinge_d_loss(real.double(), fake.double()) + R.lsgan_g_loss(fake.double())
        torch.testing.assert_close(got.double(), ref, rtol=1e-5, atol=1e-6)
        return f"backend {backend}, {time.perf_counter() - t0:.0f} s"
    check("compile", "hinge+lsgan", compiled)

    def info_quiet():
        import subprocess
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        out = subprocess.run([sys.executable, "-m", "fastgan", "info"], capture_output=True, text=True, env=env,
                             timeout=300)
        assert out.returncode == 0 and "backend" in out.stdout, out.stdout[-1000:] + out.stderr[-1000:]
        assert "No CUDA runtime is found" not in out.stderr, out.stderr[-1000:]
        return "no stderr" if not out.stderr.strip() else f"stderr: {out.stderr.strip()[:200]!r}"
    check("info", "quiet", info_quiet)

    def verdict(part):
        if part not in RESULTS:
            return "-"
        return "ok" if all(RESULTS[part]) else f"FAIL({RESULTS[part].count(False)})"
    print("RESULT " + " ".join(f"{p}={verdict(p)}" for p in ("import", "torch", "native", "triton", "compile", "info")))
    return 0 if all(all(v) for v in RESULTS.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
