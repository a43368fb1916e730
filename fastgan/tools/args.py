"""Argument checks the command-line tools share (``fastgan`` and its subcommands)."""
from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
from typing import Any, Callable, NamedTuple, Optional


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


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0 (no nan, no inf)."""
    return _finite(text, "a positive finite number", lambda x: x > 0)


def nonnegative_float(text: str) -> float:
    """argparse type: a finite number >= 0 (no nan, no inf)."""
    return _finite(text, "a finite number >= 0", lambda x: x >= 0)


def _finite(text: str, what: str, ok: Callable[[float], bool]) -> float:
    try:
        x = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}") from None
    if not math.isfinite(x) or not ok(x):
        raise argparse.ArgumentTypeError(f"must be {what}, got {text}")
    return x


class OutputFile:
    """argparse type of an output option: the path must be writable as a file (its folder
    exists and is writable), checked as the command line is parsed, before any work; with
    ``needs``, that module must be importable too (``--plot``: matplotlib).  The tests find
    every output option of every command by this type."""

    def __init__(self, needs: Optional[str] = None):
        self.needs = needs

    def __call__(self, path: str) -> str:
        problem = output_problem(path)
        if problem:
            raise argparse.ArgumentTypeError(f"cannot write {path!r}: {problem}")
        if self.needs and importlib.util.find_spec(self.needs) is None:  # a third-party package, not imported here
            raise argparse.ArgumentTypeError(f"needs {self.needs} (pip install {self.needs})")
        return path


class JsonFile(NamedTuple):
    """A JSON file an option read: its path and its content."""
    path: str
    data: Any


class InputJson:
    """argparse type of an input option: a JSON file, read and checked as the command line is
    parsed.  ``problem(data)`` says why the content is not ``what`` (or None); an unreadable
    file, one that is not JSON, or one of the wrong shape is an argument error naming the file.
    Returns a ``JsonFile``.  The tests find every file input of every command by this type."""

    def __init__(self, problem: Callable[[Any], Optional[str]], what: str):
        self.problem, self.what = problem, what

    def __call__(self, path: str) -> JsonFile:
        try:
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
        except OSError as exc:
            raise argparse.ArgumentTypeError(f"cannot read {path!r}: {exc.strerror or exc}") from None
        except ValueError as exc:  # not JSON, or not UTF-8
            raise argparse.ArgumentTypeError(f"{path!r} is not a JSON file: {exc}") from None
        problem = self.problem(data)
        if problem:
            raise argparse.ArgumentTypeError(f"{path!r} is not {self.what}: {problem}")
        return JsonFile(path, data)
