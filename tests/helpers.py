"""The test-and-verify helpers, re-exported for the test modules: the comparison with
tolerances lives in ``fastgan.tools.checking`` (``fastgan verify`` uses the same)."""
from __future__ import annotations

from fastgan.tools.checking import as_tuple, call, check_against_reference, compare

__all__ = ["as_tuple", "call", "check_against_reference", "compare"]
