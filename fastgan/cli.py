"""The ``fastgan`` command (also ``python -m fastgan``).

``info`` and ``build`` live here; ``demo``, ``verify``, ``bench`` and ``compare`` are the
modules of ``fastgan.tools``, imported only when their command runs.
"""
from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys

from .tools.args import positive_int


def _info(args) -> int:
    import contextlib
    import io
    import logging

    import torch

    # A CUDA build of torch without a GPU says "No CUDA runtime is found, using CUDA_HOME=..."
    # when torch.utils.cpp_extension is imported (as the native backend's status does); info
    # reports nvcc and the devices itself, so that one line is dropped, the rest kept.
    no_runtime = "No CUDA runtime is found"
    drop = logging.Filter()
    drop.filter = lambda record: not record.getMessage().startswith(no_runtime)  # torch >= 2.6: a log record
    cpp_log = logging.getLogger("torch.utils.cpp_extension")
    cpp_log.addFilter(drop)
    printed = io.StringIO()
    try:
        with contextlib.redirect_stderr(printed):  # torch < 2.6: a print to stderr
            import torch.utils.cpp_extension  # noqa: F401
    finally:
        cpp_log.removeFilter(drop)
        sys.stderr.write("".join(line for line in printed.getvalue().splitlines(True)
                                 if not line.startswith(no_runtime)))

    import fastgan
    print(f"fastgan  {fastgan.__version__}")
    print(f"python   {platform.python_version()} ({sys.executable})")
    print(f"torch    {torch.__version__} (CUDA build: {torch.version.cuda or 'no'})")
    try:
        import triton
        print(f"triton   {triton.__version__}")
    except Exception as exc:  # noqa: BLE001
        print(f"triton   not importable ({type(exc).__name__}: {exc})")
    for tool in ("ninja", "nvcc", "c++"):
        print(f"{tool:<8} {shutil.which(tool) or 'not found'}")
    print("devices  cpu" + "".join(f", cuda:{i} {torch.cuda.get_device_name(i)}"
                                   for i in range(torch.cuda.device_count())))
    code = 0
    try:
        print(f"backend  {fastgan.get_backend()} (selected)")
    except ValueError:  # a bad FASTGAN_BACKEND: report it, print the rest
        names = ", ".join(("auto", *fastgan.available_backends()))
        print(f"backend  FASTGAN_BACKEND={os.environ.get('FASTGAN_BACKEND', '')!r} is invalid "
              f"(valid names: {names})")
        code = 1
    for name, (ok, reason) in fastgan.available_backends().items():
        print(f"  {name:<7} {'usable' if ok else 'unusable':<9} {reason}")
    if args.ops:
        from . import backends
        print()
        print("what each backend's family op declares (eager on each device; under compile, torch.func "
              "transforms and CUDA-graph capture):")
        print(backends.support_table(backends.BACKENDS))
    return code


def _demo(args) -> int:
    from .tools.demo import train
    train(loss=args.loss, steps=args.steps, seed=args.seed, device=args.device)
    return 0


def _build(args) -> int:
    import tempfile

    from .backends import native_loader as nb
    problem = nb.prerequisites()
    if problem:
        print(f"fastgan build: cannot build the native extension: {problem}", file=sys.stderr)
        return 1
    cuda = nb.with_cuda()
    print(f"building the native extension ({'CPU and CUDA' if cuda else 'CPU only'}) "
          f"from {nb.source_dir()} ...", flush=True)
    try:
        res = nb.build(verbose=args.verbose)
    except nb.NativeBuildError as exc:
        print(f"fastgan build: failed: {exc}", file=sys.stderr)
        return 1
    how = "loaded from the cache" if res["cached"] else "built"
    print(f"{how} in {res['seconds']:.1f} s: {res['path']}")
    if args.cuda_check:
        with tempfile.TemporaryDirectory() as tmp:
            try:
                chk = nb.compile_check(tmp, archs=args.arch or (90, 80))
            except nb.NativeBuildError as exc:
                print(f"CUDA compile check: skipped ({exc})")
                return 0
            archs = ", ".join(f"sm_{a}" for a in (args.arch or (90, 80)))
            print(f"CUDA compile check ({archs}, nvcc, no GPU): {'ok' if chk['ok'] else 'FAILED'} "
                  f"in {chk['seconds']:.1f} s")
            if not chk["ok"]:
                print(chk["log"])
                return 1
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The ``fastgan`` parser: a subcommand each (``verify``, ``bench`` and ``compare`` forward
    the rest of the command line to their tool's own parser)."""
    p = argparse.ArgumentParser(prog="fastgan", description="Fused GAN losses for PyTorch")
    # not required=True: with it, an unknown option before the command reads as a missing command
    sub = p.add_subparsers(dest="cmd")
    s = sub.add_parser("info", help="versions, devices and each backend's (usable, reason)")
    s.add_argument("--ops", action="store_true",
                   help="also the support matrix: family × backend × device and mode, with the reasons")
    s.set_defaults(fn=_info)
    s = sub.add_parser("demo", help="train a tiny GAN on 2-d data with fastgan losses")
    s.add_argument("--loss", default="hinge", choices=["bce", "hinge", "lsgan", "wasserstein"])
    s.add_argument("--steps", type=positive_int, default=300)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--device", default="cpu")
    s.set_defaults(fn=_demo)
    s = sub.add_parser("build", help="build the native C++/CUDA extension now; report where and how long")
    s.add_argument("--cuda-check", action="store_true",
                   help="also compile csrc/cuda.cu to object code with nvcc (no GPU needed)")
    s.add_argument("--arch", type=positive_int, action="append",
                   help="compute capability for --cuda-check, e.g. 90 (repeatable)")
    s.add_argument("--verbose", action="store_true")
    s.set_defaults(fn=_build)
    s = sub.add_parser("verify", help="every op x backend x device against the float64 reference",
                       add_help=False)
    s.set_defaults(fn=None, forward="verify")
    s = sub.add_parser("bench", help="time every op against eager PyTorch and torch.compile; --compare two runs",
                       add_help=False)
    s.set_defaults(fn=None, forward="bench")
    s = sub.add_parser("compare", help="train small GANs per loss and measure the classic claims",
                       add_help=False)
    s.set_defaults(fn=None, forward="compare")
    return p


def main(argv=None) -> int:
    p = build_parser()
    args, rest = p.parse_known_args(argv)
    if args.cmd is None:
        if rest:
            p.error(f"unrecognized arguments: {' '.join(rest)}")
        p.error("the following arguments are required: cmd")
    if args.fn is None:
        if args.forward == "verify":
            from .tools.verify import main as tool_main
        elif args.forward == "compare":
            from .tools.compare import main as tool_main
        else:
            from .tools.bench import main as tool_main
        return tool_main(rest)
    if rest:
        p.error(f"unrecognized arguments: {' '.join(rest)}")
    if args.cmd == "build" and args.arch and not args.cuda_check:
        p.error("argument --arch: only with --cuda-check")
    return args.fn(args)


if __name__ == "__main__":
    sys.exit(main())
