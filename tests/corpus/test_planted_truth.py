"""A small run of bench/planted_truth.py: directions planted in a model's embedding rows, known
flags, and the CLI (fit, calibrate, score, curate) at its defaults (issue 18, item 4).

Slow (four CLI runs on a fresh model folder, ~1-3 minutes on 2 CPU cores): the full run and its
numbers are in docs/benchmarks.md.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "planted_truth.py"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def result() -> dict:
    spec = importlib.util.spec_from_file_location("planted_truth", BENCH)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules["planted_truth"] = mod
    spec.loader.exec_module(mod)
    return mod.main(
        ["--docs", "6", "--neutral-docs", "40", "--train", "16", "--neutral-ref", "150",
         "--no-save"]
    )  # fmt: skip


def test_signal_planted_in_the_weights_is_recovered_through_the_cli(result: dict) -> None:
    assert result["heldout_accuracy"] >= 0.9
    assert result["docs_longer_than_context"] > 0  # windowing is exercised
    for kind in ("distress_episode", "mirroring", "escalating_response", "high_volatility"):
        k = result["per_kind"][kind]
        assert k["f1"] is not None and k["f1"] >= 0.9, (kind, k)
        assert k["span_iou_mean"] is not None and k["span_iou_mean"] >= 0.8, (kind, k)


def test_episodes_are_runs_and_rising_means_rising(result: dict) -> None:
    pk = result["per_kind"]
    # one final run is unresolved_end, never escalation; recovered runs are never unrecovered
    assert pk["unresolved_end"]["recall"] >= 0.8 and pk["unresolved_end"]["fp"] == 0
    assert pk["escalation"]["recall"] >= 0.8
    assert pk["escalation"]["fp_by_type"].get("unresolved", 0) <= 1
    assert pk["unrecovered_distress"]["fp"] == 0
    assert result["curate"]["dropped_by_type"].get("recover", 0) == 0


def test_neutral_documents_from_another_source_keep_the_promise(result: dict) -> None:
    rate = result["rate"]
    for kind in ("distress_episode", "mirroring", "high_volatility"):
        k = result["neutral"]["per_kind"][kind]
        assert k["ci95"][0] <= 1.5 * rate, (kind, k)
