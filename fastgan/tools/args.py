"""Argument checks the command-line tools share (``fastgan`` and its subcommands)."""
from __future__ import annotations

import argparse
import importlib
import os
from typing import Optional


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {n}")
    return n


def output_problem(path: str) -> Optional[str]:
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
        problem = output_problem(path)
        if problem:
            parser.error(f"argument {opt}: cannot write {path!r}: {problem}")
        if opt == "--plot":
            try:
                importlib.import_module("matplotlib")
            except ImportError:
                parser.error("argument --plot: needs matplotlib (pip install matplotlib)")
