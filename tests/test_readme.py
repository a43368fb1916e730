"""Every Python code block of the README runs as written: each in a namespace of its own,
in a fresh process (so no test's state or import helps it), on the default backend."""
from __future__ import annotations

import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FENCE = re.compile(r"^```python\n(.*?)^```", re.S | re.M)

RUNNER = r"""
import sys, traceback
blocks = {blocks!r}
failed = 0
for i, (line, code) in enumerate(blocks):
    try:
        exec(compile(code, f"README.md, block at line {{line}}", "exec"), {{"__name__": "__readme__"}})
        print(f"OK block {{i}} (line {{line}})")
    except Exception:
        failed += 1
        print(f"FAIL block {{i}} (line {{line}})")
        traceback.print_exc(file=sys.stdout)
sys.exit(1 if failed else 0)
"""


def readme_blocks(path=os.path.join(ROOT, "README.md")):
    text = open(path, encoding="utf-8").read()
    return [(text.count("\n", 0, m.start()) + 1, m.group(1)) for m in FENCE.finditer(text)]


def test_readme_has_python_blocks():
    assert len(readme_blocks()) >= 5


def test_every_readme_python_block_runs_as_written(tmp_path):
    blocks = readme_blocks()
    env = dict(os.environ, PYTHONPATH=ROOT)
    env.pop("TRITON_INTERPRET", None)  # as a user runs it: the default backend, no interpreter
    env.pop("FASTGAN_BACKEND", None)
    out = subprocess.run([sys.executable, "-c", RUNNER.format(blocks=blocks)], cwd=str(tmp_path), env=env,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-6000:] + out.stderr[-3000:]
    assert out.stdout.count("OK block") == len(blocks)


def test_a_broken_block_fails(tmp_path):
    """The runner reports a block that raises (so the test above can fail)."""
    code = RUNNER.format(blocks=[(1, "x = 1\n"), (5, "d_real + 1\n")])
    out = subprocess.run([sys.executable, "-c", code], cwd=str(tmp_path), capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 1 and "FAIL block 1 (line 5)" in out.stdout and "NameError" in out.stdout


def test_readme_is_a_users_document_of_at_most_450_lines():
    """Method narratives and measurement history live in benchmarks/README.md."""
    n = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read().count("\n")
    assert n <= 450, f"README.md has {n} lines"
