"""The ``fastgan`` command (also ``python -m fastgan``)."""
from __future__ import annotations

import argparse
import platform
import shutil
import sys


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
    print(f"backend  {fastgan.get_backend()} (selected)")
    for name, (ok, reason) in fastgan.available_backends().items():
        print(f"  {name:<7} {'usable' if ok else 'unusable':<9} {reason}")
    return 0


def _demo(args) -> int:
    from .demo import train
    train(loss=args.loss, steps=args.steps, seed=args.seed, device=args.device)
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="fastgan", description="Fused GAN losses for PyTorch")
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("info", help="versions, devices and each backend's (usable, reason)")
    s.set_defaults(fn=_info)
    s = sub.add_parser("demo", help="train a tiny GAN on 2-d data with fastgan losses")
    s.add_argument("--loss", default="hinge", choices=["bce", "hinge", "lsgan", "wasserstein"])
    s.add_argument("--steps", type=int, default=300)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--device", default="cpu")
    s.set_defaults(fn=_demo)
    s = sub.add_parser("verify", help="every op x backend x device against the float64 reference",
                       add_help=False)
    s.set_defaults(fn=None, forward="verify")
    s = sub.add_parser("bench", help="time every op against eager PyTorch and torch.compile", add_help=False)
    s.set_defaults(fn=None, forward="bench")
    args, rest = p.parse_known_args(argv)
    if args.fn is None:
        if args.forward == "verify":
            from .verify import main as verify_main
            return verify_main(rest)
        from .bench import main as bench_main
        return bench_main(rest)
    if rest:
        p.error(f"unrecognized arguments: {' '.join(rest)}")
    return args.fn(args)


if __name__ == "__main__":
    sys.exit(main())
