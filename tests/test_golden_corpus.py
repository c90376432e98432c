"""Every exportable DAG's definition equals its golden file (regenerate: ``make golden``, then review the diff)."""

from __future__ import annotations

import json

import pytest

from tests import golden_corpus
from tests.asl_check import assert_valid


@pytest.fixture(scope="module")
def corpus():
    return golden_corpus.load_corpus()


def test_every_good_dag_and_only_those_has_a_golden_file(corpus):
    have = {path.name.removesuffix(golden_corpus.SUFFIX) for path in golden_corpus.GOLDEN.glob("*.asl.json")}
    assert "model_retraining" in corpus and "fan_out_fan_in" in corpus and "custom_operator" in corpus
    assert have == set(corpus), "golden files out of step with the DAGs: run `make golden` and review the diff"


def test_each_export_matches_its_golden_file(corpus):
    mismatched = []
    for dag_id, dag in sorted(corpus.items()):
        text = golden_corpus.export_text(dag)
        path = golden_corpus.golden_path(dag_id)
        if not path.exists() or path.read_text() != text:
            mismatched.append(dag_id)
            continue
        assert_valid(json.loads(text))
    assert not mismatched, (
        f"the export of {', '.join(mismatched)} differs from tests/golden/: "
        "if intended, run `make golden` and review `git diff tests/golden`"
    )
