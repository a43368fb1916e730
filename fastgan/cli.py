"""The ``fastgan`` command (also ``python -m fastgan``)."""
from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {n}")
    return n


def _output_problem(path: str):
    """Why ``path`` cannot be written as a file, or None."""
    if not path:
        return "the path is empty"
    if os.path.isdir(path):
        return "it is a folder"
    folder = os.path.dirname(os.path.abspath(path))
    shown = os.path.dirname(path) or "."
    if not os.path.exists(folder):
        return f"the folder {shown} does not exist"
    if not os.path.isdir(folder):
        return f"{shown} is not a folder"
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"the folder {shown} is not writable"
    if os.path.exists(path) and not os.access(path, os.W_OK):
        return "the file exists and is not writable"
    return None


def check_outputs(parser: argparse.ArgumentParser, args, options) -> None:
    """Before any work: every output option given must name a writable file (its folder
    exists and is writable), and ``--plot`` needs matplotlib; else ``parser.error`` (exit 2)."""
    for opt in options:
        path = getattr(args, opt.lstrip("-").replace("-", "_"))
        if path is None:
            continue
        problem = _output_problem(path)
        if problem:
            parser.error(f"argument {opt}: cannot write {path!r}: {problem}")
        if opt == "--plot":
            try:
                import matplotlib  # noqa: F401
            except ImportError:
                parser.error("argument --plot: needs matplotlib (pip install matplotlib)")


def _info(args) -> int:
    import torch

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
    return code


def _demo(args) -> int:
    from .demo import train
    train(loss=args.loss, steps=args.steps, seed=args.seed, device=args.device)
    return 0


def _build(args) -> int:
    import tempfile

    from .backends import native_backend as nb
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


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="fastgan", description="Fused GAN losses for PyTorch")
    # not required=True: with it, an unknown option before the command reads as a missing command
    sub = p.add_subparsers(dest="cmd")
    s = sub.add_parser("info", help="versions, devices and each backend's (usable, reason)")
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
    s.add_argument("--arch", type=int, action="append", help="compute capability for --cuda-check (repeatable)")
    s.add_argument("--verbose", action="store_true")
    s.set_defaults(fn=_build)
    s = sub.add_parser("verify", help="every op x backend x device against the float64 reference",
                       add_help=False)
    s.set_defaults(fn=None, forward="verify")
    s = sub.add_parser("bench", help="time every op against eager PyTorch and torch.compile", add_help=False)
    s.set_defaults(fn=None, forward="bench")
    s = sub.add_parser("compare", help="train small GANs per loss and measure the classic claims",
                       add_help=False)
    s.set_defaults(fn=None, forward="compare")
    args, rest = p.parse_known_args(argv)
    if args.cmd is None:
        if rest:
            p.error(f"unrecognized arguments: {' '.join(rest)}")
        p.error("the following arguments are required: cmd")
    if args.fn is None:
        if args.forward == "verify":
            from .verify import main as verify_main
            return verify_main(rest)
        if args.forward == "compare":
            from .compare import main as compare_main
            return compare_main(rest)
        from .bench import main as bench_main
        return bench_main(rest)
    if rest:
        p.error(f"unrecognized arguments: {' '.join(rest)}")
    return args.fn(args)


if __name__ == "__main__":
    sys.exit(main())
