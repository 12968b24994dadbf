"""The scorer's background model load never outlives the command (an input error included)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from emocurate.configs import ScoreConfig
from emocurate.corpus.engines import score_corpus
from emocurate.errors import InputError


def test_input_error_waits_for_the_background_load(tmp_path: Path, vs_dir: Path) -> None:
    """An empty input is refused after the load started; the load thread is joined before the
    error reaches the caller, so no half-built model is left running in the process."""
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(InputError, match="nothing to score"):
        score_corpus([empty], vs_dir, tmp_path / "out", ScoreConfig(z_thresholds=True))
    assert not [t for t in threading.enumerate() if t.name == "emocurate-load"]
