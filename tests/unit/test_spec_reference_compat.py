"""Specs written by the reference `learnware` package load here and give its distances.

Fixtures come from tests/fixtures/make_reference_specs.py (run with the reference).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lwm.spec import RKMETableSpecification, load_stat_spec

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "reference_specs"
EXPECTED = json.loads((FIXTURES / "expected.json").read_text())


@pytest.fixture(scope="module")
def specs() -> dict[str, RKMETableSpecification]:
    return {name: load_stat_spec(FIXTURES / info["file"]) for name, info in EXPECTED["specs"].items()}


def test_reference_files_load(specs):
    for name, info in EXPECTED["specs"].items():
        spec = specs[name]
        assert spec.get_z().shape == (info["K"], info["d"])
        assert spec.get_beta().shape == (info["K"],)
        assert spec.num_points == info["num_points"]
        assert spec.gamma == 0.1


@pytest.mark.parametrize("pair", EXPECTED["pairs"], ids=lambda p: f"{p['a']}-{p['b']}")
def test_distances_match_reference(specs, pair):
    a, b = specs[pair["a"]], specs[pair["b"]]
    assert a.dist(b) == pytest.approx(pair["dist"], rel=1e-6, abs=1e-12)
    assert a.dist(b, omit_term1=True) == pytest.approx(pair["dist_omit_term1"], rel=1e-6, abs=1e-12)
    assert a.inner_prod(b) == pytest.approx(pair["inner_prod"], rel=1e-6, abs=1e-12)


@pytest.mark.parametrize("file_name", sorted(EXPECTED["aliases"]))
def test_old_style_files(specs, file_name):
    raw = json.loads((FIXTURES / file_name).read_text())
    assert raw.get("type", "missing") in ("RKMEStatSpecification", "missing")
    spec = load_stat_spec(FIXTURES / file_name)
    original = specs[EXPECTED["aliases"][file_name]]
    assert spec.type == "RKMETableSpecification"
    assert abs(spec.dist(original)) < 1e-12
    loaded = RKMETableSpecification()
    loaded.load(FIXTURES / file_name)
    assert abs(loaded.dist(original)) < 1e-12


def test_our_output_uses_reference_keys(specs, tmp_path):
    path = tmp_path / "out.json"
    specs["base"].save(path)
    ours = json.loads(path.read_text())
    theirs = json.loads((FIXTURES / "base.json").read_text())
    assert list(ours) == list(theirs)
    assert ours["type"] == theirs["type"] == "RKMETableSpecification"
