"""A small run of bench/planted_truth.py: planted directions and known flags end to end."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "planted_truth.py"


@pytest.fixture(scope="module")
def result() -> dict:
    spec = importlib.util.spec_from_file_location("planted_truth", BENCH)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules["planted_truth"] = mod
    spec.loader.exec_module(mod)
    return mod.main(
        [
            "--docs", "6", "--neutral-docs", "20", "--train", "12",
            "--neutral-fit", "20", "--neutral-ref", "80", "--no-save",
        ]
    )  # fmt: skip


def test_fitted_vectors_recover_planted_directions(result: dict) -> None:
    assert result["cosine_min"] > 0.6, result["cosine_fitted_vs_planted"]


def test_every_planted_flag_kind_is_found(result: dict) -> None:
    for kind in ("distress_episode", "unresolved_end", "escalation", "mirroring"):
        k = result["per_kind"][kind]
        assert k["f1"] is not None and k["f1"] >= 0.9, (kind, k)
        assert k["span_iou_mean"] is not None and k["span_iou_mean"] >= 0.5, (kind, k)


def test_neutral_documents_are_rarely_flagged(result: dict) -> None:
    assert result["neutral_flag_rate"] <= 0.05, result["neutral_flagged_kinds"]
    assert (
        result["curate_rule_matches"]["distress_episode"]
        == result["per_kind"]["distress_episode"]["tp"]
        + result["per_kind"]["distress_episode"]["fp"]
    )
