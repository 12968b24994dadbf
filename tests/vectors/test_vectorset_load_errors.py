"""A damaged vector set file is a one-line error naming the file, never an internal error."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from emocurate.errors import InputError
from emocurate.vectors.vectorset import VectorSet, VectorSetMeta


def _saved(tmp_path: Path) -> Path:
    meta = VectorSetMeta(
        names=["happy", "sad"],
        layers=[1],
        default_layer=1,
        model_id="tiny",
        hidden_size=8,
        n_model_layers=2,
    )
    VectorSet({1: torch.randn(2, 8)}, meta).save(tmp_path / "vs")
    return tmp_path / "vs"


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_damaged_safetensors_is_one_line_error(tmp_path: Path, damage: str) -> None:
    d = _saved(tmp_path)
    f = d / "vectors.safetensors"
    data = f.read_bytes()
    f.write_bytes(data[: len(data) - 20] if damage == "truncate" else b"\x00" * 64)
    with pytest.raises(InputError, match=r"vectors\.safetensors: cannot read"):
        VectorSet.load(d)
    VectorSet.load(_saved(tmp_path / "ok"))  # an intact set still loads
