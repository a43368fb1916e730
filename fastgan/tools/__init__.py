"""The tools around the runtime: ``fastgan bench`` (``bench``: the command; ``bench_cases``:
the cases, sizes and providers; ``timing``: warm-up and interleaved rounds; ``bench_run``: a
run and its rows; ``bench_report``: table and CSV; ``bench_plot``: the picture;
``bench_compare``: two runs compared), ``verify``, ``compare``, ``demo``, ``aot``,
``bandwidth`` (the byte model and predicted times), and what the tests share with them:
``cases`` (the per-op test data), ``checking`` (the comparison with tolerances and input
sampling) and ``args`` (the commands' argument checks).  Nothing here is imported by the
runtime, and nothing here imports ``fastgan.cli``."""
