"""The bundled demo corpus (a leaf module: the readers and the package both use it)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def bundled_corpus() -> list[Path]:
    """The bundled demo corpus files (public-domain Austen passages and texts written for emocurate)."""
    root = Path(str(resources.files("emocurate").joinpath("data/corpus")))
    return sorted(root.glob("*.jsonl"))
