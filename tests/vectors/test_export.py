"""llama.cpp control-vector GGUF export: names, shapes, metadata, values."""

from __future__ import annotations

import gguf
import numpy as np
import pytest
import torch

from emocurate.errors import InputError
from emocurate.vectors.export import export_all, export_gguf, read_gguf
from emocurate.vectors.vectorset import VectorSet, VectorSetMeta


def make_set(layers=(0, 2, 3)) -> VectorSet:
    g = torch.Generator().manual_seed(0)
    meta = VectorSetMeta(
        names=["happy", "sad"],
        layers=list(layers),
        default_layer=2,
        model_id="tiny",
        model_type="qwen2",
        hidden_size=8,
        n_model_layers=4,
        residual_norm={str(i): 2.0 + i for i in layers},
    )
    return VectorSet(vectors={i: torch.randn(2, 8, generator=g) for i in layers}, meta=meta)


def test_gguf_round_trip(tmp_path):
    vs = make_set()
    path = export_gguf(vs, tmp_path / "sad.gguf", "sad")
    reader = gguf.GGUFReader(str(path))
    names = sorted(t.name for t in reader.tensors)
    assert names == [
        "direction.2",
        "direction.3",
    ]  # block 0's output cannot be steered by llama.cpp
    assert all(tuple(int(x) for x in t.shape) == (8,) for t in reader.tensors)
    meta, dirs = read_gguf(path)
    assert meta["general.architecture"] == "controlvector"
    assert meta["controlvector.model_hint"] == "qwen2"
    assert meta["controlvector.layer_count"] == 2
    for layer in (2, 3):
        want = (vs.unit(layer)[1] * (2.0 + layer)).numpy()
        np.testing.assert_allclose(dirs[layer], want, rtol=1e-6)


def test_gguf_unit_and_raw_scales(tmp_path):
    vs = make_set((1,))
    _, unit = read_gguf(export_gguf(vs, tmp_path / "u.gguf", "happy", scale="unit"))
    assert np.linalg.norm(unit[1]) == pytest.approx(1.0, rel=1e-5)
    _, raw = read_gguf(export_gguf(vs, tmp_path / "r.gguf", "happy", scale="raw"))
    np.testing.assert_allclose(raw[1], vs.vectors[1][0].numpy(), rtol=1e-6)


def test_gguf_errors(tmp_path):
    with pytest.raises(InputError, match="block 0"):
        export_gguf(make_set((0,)), tmp_path / "x.gguf", "happy")
    with pytest.raises(InputError, match="no direction 'calm'"):
        export_gguf(make_set(), tmp_path / "x.gguf", "calm")


def test_crafted_names_cannot_leave_the_output_folder(tmp_path):
    """A vectorset.json naming an emotion '../../x' must not write outside --out."""
    from emocurate.cli import main

    vs = make_set((1, 2))
    vs.meta.names = ["../../escaped", "/abs/olute"]
    src = tmp_path / "set"
    vs.save(src)
    out = tmp_path / "deep" / "er" / "out"
    main(["vectors", "export-gguf", str(src), "--out", str(out)])
    written = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.gguf"))
    assert written == ["deep/er/out/abs_olute.gguf", "deep/er/out/escaped.gguf"]
    single = tmp_path / "single"
    main(["vectors", "export-gguf", str(src), "--out", str(single), "-e", "../../escaped"])
    assert (single / "escaped.gguf").exists() and not (tmp_path / "escaped.gguf").exists()
    with pytest.raises(InputError, match="no usable file name"):
        export_all(make_named_set(["..", "ok"]), tmp_path / "x")
    with pytest.raises(InputError, match="same file"):
        export_all(make_named_set(["a/b", "a_b"]), tmp_path / "y")


def make_named_set(names: list[str]) -> VectorSet:
    vs = make_set((1,))
    vs.meta.names = names
    return vs
