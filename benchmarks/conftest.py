"""pytest-benchmark suite over the cases of ``fastgan.tools.bench`` (one place defines them,
and the warm-up to a steady state is the same as ``fastgan bench``'s).

    pytest benchmarks/ --benchmark-only            # every case, timed
    pytest benchmarks/                             # smoke: a few small cases, each run once (CI)

Saving runs and comparing them (pytest-benchmark's own store, ``.benchmarks/``):

    pytest benchmarks/ --benchmark-only -n 0 --benchmark-autosave     # saves .benchmarks/<machine>/0001_<commit>.json
    ... change something ...
    pytest benchmarks/ --benchmark-only -n 0 --benchmark-autosave --benchmark-compare   # against the last save
    pytest benchmarks/ --benchmark-only -n 0 --benchmark-compare=0001 --benchmark-compare-fail=median:10%
    pytest-benchmark compare 0001 0002 --sort=name --columns=median,iqr,rounds   # two saved runs, side by side
    pytest benchmarks/ --benchmark-only -n 0 -k "hinge_d_loss and 2^20"          # a subset

``-n 0``: timings need the machine to themselves (no xdist workers).  pytest-benchmark
times one case after another; for numbers that survive a busy machine (interleaved
rounds, per-round ratios, noise flags, ``--compare`` with a noise test) use
``fastgan bench``.
"""
from pathlib import Path


def pytest_configure(config):
    if not config.getoption("benchmark_only", default=False):
        config.option.benchmark_disable = True  # smoke: run each benchmark body once, time nothing


HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config, items):
    if config.getoption("benchmark_only", default=False):
        return
    # this hook sees the whole session: only thin out the benchmark cases, never tests/
    def is_bench(item):
        return HERE in Path(str(item.fspath)).resolve().parents
    keep = [i for i in items if not is_bench(i) or "smoke" in i.keywords]
    deselected = [i for i in items if is_bench(i) and "smoke" not in i.keywords]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = keep
