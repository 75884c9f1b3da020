"""Each timing figure has one name and one definition; the jitter says which it is."""

from detectors.base import schema as S
from detectors.report.figures import (
    FIGURES,
    JITTER_COV,
    JITTER_UNIFORM,
    jitter_definition,
)


def test_one_label_per_figure_and_columns_from_the_schema():
    assert [(f.label, f.column) for f in FIGURES] == [
        ("interval", S.C_INTERVAL),
        ("sleep", S.C_PERIOD),
        ("jitter", S.C_JITTER),
    ]


def test_jitter_definition_follows_the_hunt_the_merge_took_it_from():
    assert jitter_definition({S.C_DETECTORS: ["intervals"]}) == JITTER_COV
    assert jitter_definition({S.C_DETECTORS: ["intervals", "periodicity"]}) == JITTER_UNIFORM
    kind = {"jitter_kind": "one-sided", S.C_DETECTORS: ["periodicity"]}
    assert jitter_definition(kind) == f"{JITTER_UNIFORM} (one-sided)"
    assert jitter_definition({}) == JITTER_COV
