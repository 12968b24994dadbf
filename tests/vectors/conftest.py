"""Fixtures for the vector tests: one thread, the embedded model, tiny random models."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

torch.set_num_threads(1)
sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(scope="session")
def lm260k():
    """The embedded stories260K model (real, pretrained, tiny)."""
    from emocurate.vectors.models import load_model

    return load_model("stories260K")


@pytest.fixture(scope="session")
def tokenizer260k(lm260k):
    """Its tokenizer (vocab 512), reused by tiny random models."""
    return lm260k.tokenizer
