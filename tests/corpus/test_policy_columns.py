"""The policy's list of metric columns is the scores table's numeric columns.

``emocurate.corpus.policy`` names them from ``emocurate.corpus.columns`` (it cannot import the
row schema without an import cycle through the artifacts); this keeps the two in step.
"""

from __future__ import annotations

import pyarrow.types as pat

from emocurate.corpus.policy import metric_columns
from emocurate.corpus.rows import score_schema


def test_policy_metric_columns_are_the_numeric_score_columns() -> None:
    numeric = [
        f.name
        for f in score_schema([])
        if pat.is_floating(f.type) or pat.is_integer(f.type) or pat.is_boolean(f.type)
    ]
    assert metric_columns() == numeric
