"""The tools around the runtime: ``fastgan bench``, ``verify``, ``compare``, ``demo``, ``aot``, ``bandwidth`` (the byte model and predicted times),
and what the tests share with them: ``cases`` (the per-op test data), ``checking`` (the
comparison with tolerances and input sampling) and ``args`` (the commands' argument checks).
Nothing here is imported by the runtime, and nothing here imports ``fastgan.cli``."""
