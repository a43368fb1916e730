"""pytest-benchmark suite over the cases of ``fastgan.bench`` (one place defines them).

    pytest benchmarks/ --benchmark-only            # every case, timed
    pytest benchmarks/                             # smoke: a few small cases, each run once (CI)
"""


def pytest_configure(config):
    if not config.getoption("benchmark_only", default=False):
        config.option.benchmark_disable = True  # smoke: run each body once, time nothing


def pytest_collection_modifyitems(config, items):
    if config.getoption("benchmark_only", default=False):
        return
    keep = [i for i in items if "smoke" in i.keywords]
    deselected = [i for i in items if "smoke" not in i.keywords]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = keep
