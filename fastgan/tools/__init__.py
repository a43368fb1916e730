"""The tools around the runtime: ``fastgan bench``, ``verify``, ``compare``, ``demo``, ``aot``,
and what the tests share with them (``cases``: the per-op test data)."""
