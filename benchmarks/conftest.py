"""pytest-benchmark suite over the cases of ``fastgan.tools.bench`` (one place defines them).

    pytest benchmarks/ --benchmark-only            # every case, timed
    pytest benchmarks/                             # smoke: a few small cases, each run once (CI)
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
