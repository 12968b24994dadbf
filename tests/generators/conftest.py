"""Generator tests: make ``tests.fakes`` importable, keep torch single-threaded, no real keys."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _test_keys(fake_api_keys: None) -> None:
    """Every generator test gets dummy keys (see ``fake_api_keys`` in tests/conftest.py)."""
