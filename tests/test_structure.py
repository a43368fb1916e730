"""Structure checks across languages: the C++ enums equal fastgan.registry's."""
from __future__ import annotations

import enum
import re
from pathlib import Path

import pytest

from fastgan import registry

CSRC = Path(__file__).resolve().parents[1] / "csrc"


def cpp_enum(name: str) -> dict:
    """``enum <name> : <type> { A = 0, B = 1 };`` in csrc/*.h, as {name: value} (values explicit)."""
    found = {}
    for header in sorted(CSRC.glob("*.h")):
        text = re.sub(r"//[^\n]*|/\*.*?\*/", "", header.read_text(), flags=re.S)
        for m in re.finditer(rf"\benum\s+(?:class\s+)?{name}\b[^{{;]*\{{([^}}]*)\}}", text):
            assert name not in found, f"enum {name} defined twice (in {found[name][0]} and {header.name})"
            members = {}
            for item in filter(None, (i.strip() for i in m.group(1).split(","))):
                mm = re.fullmatch(r"([A-Za-z_]\w*)\s*=\s*(-?\d+)", item)
                assert mm, f"enum {name} in {header.name}: member {item!r} has no explicit value"
                members[mm.group(1)] = int(mm.group(2))
            found[name] = (header.name, members)
    assert name in found, f"no enum {name} in {CSRC}/*.h"
    return found[name][1]


@pytest.mark.parametrize("name", ["Kind", "Reduction"])
def test_cpp_enums_equal_the_registry(name):
    py = getattr(registry, name)
    assert issubclass(py, enum.IntEnum)
    assert cpp_enum(name) == {m.name: int(m.value) for m in py}


def test_registry_enums_are_as_documented():
    assert {m.name: m.value for m in registry.Kind} == {"BCE": 0, "HINGE": 1, "LSGAN": 2, "LINEAR": 3}
    assert {m.name: m.value for m in registry.Reduction} == {"NONE": 0, "MEAN": 1, "SUM": 2}
