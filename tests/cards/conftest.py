"""Shared fixtures for the cards tests: synthetic stage folders, one thread for torch."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import cards_fixtures as fx  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def stages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Generation, validation, vectors and scores folders built once per session (read-only use)."""
    root = tmp_path_factory.mktemp("stages")
    recs = fx.stories(30)
    fx.make_generation(root / "gen", n=30)
    fx.make_validation(root / "val", recs)
    fx.make_vectorset(root / "vec")
    fx.make_vectorset(root / "vec_bare", evaluation=False)
    fx.make_scores(root / "scores")
    fx.make_curated(root / "cur")
    return {p.name: p for p in root.iterdir()}
