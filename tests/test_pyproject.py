"""The package's dependencies earn their place: each required one is imported by avattn; Triton is an extra."""

import pathlib
import re

import pytest

tomllib = pytest.importorskip("tomllib")  # Python >= 3.11

ROOT = pathlib.Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
IMPORT_NAME = {"opt-einsum": "opt_einsum"}


def _name(requirement: str) -> str:
    return re.split(r"[\s<>=!~;\[]", requirement, maxsplit=1)[0].lower()


def test_triton_is_not_required_but_is_the_triton_extra():
    assert "triton" not in {_name(r) for r in PROJECT["dependencies"]}
    assert "triton" in {_name(r) for r in PROJECT["optional-dependencies"]["triton"]}


def test_the_dev_extra_brings_triton_for_the_kernel_tests():
    assert "avattn[triton]" in PROJECT["optional-dependencies"]["dev"]


def test_every_required_dependency_is_imported_by_the_library():
    sources = "\n".join(p.read_text() for p in (ROOT / "avattn").rglob("*.py"))
    for requirement in PROJECT["dependencies"]:
        module = IMPORT_NAME.get(_name(requirement), _name(requirement))
        assert re.search(rf"^\s*(import|from) {module}\b", sources, flags=re.M), f"nothing in avattn imports {module}"
