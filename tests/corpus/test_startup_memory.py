"""Start-up and streaming memory of the local engine: the model loads beside the input hashing,
and the heap is kept from creeping with the number of rows read."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

import emocurate.corpus.engines as engines
from emocurate.configs import ScoreConfig
from emocurate.corpus.engines import score_corpus
from emocurate.corpus.readers import CorpusPlan
from emocurate.errors import ModelLoadError

from .conftest import write_jsonl


def test_model_loads_while_the_corpus_is_hashed(
    tmp_path: Path, vs_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The load starts before the content hash finishes (it used to start after the hash)."""
    started = threading.Event()
    real_load = engines.load_scoring_model
    real_hash = CorpusPlan.content_fingerprint
    seen: list[bool] = []

    def load(*args: object, **kwargs: object) -> object:
        started.set()
        return real_load(*args, **kwargs)  # type: ignore[arg-type]

    def slow_hash(self: CorpusPlan) -> str:
        seen.append(started.wait(timeout=20))  # a sequential load would never get here first
        return real_hash(self)

    monkeypatch.setattr(engines, "load_scoring_model", load)
    monkeypatch.setattr(CorpusPlan, "content_fingerprint", slow_hash)
    m = score_corpus(
        [write_jsonl(tmp_path / "c.jsonl", 3)], vs_dir, tmp_path / "o", ScoreConfig(progress=False)
    )
    assert m.scored == 3 and seen == [True]


def test_a_failed_background_load_is_the_commands_error(
    tmp_path: Path, vs_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail(*args: object, **kwargs: object) -> object:
        raise ModelLoadError("cannot load model 'x': gone")

    monkeypatch.setattr(engines, "load_scoring_model", fail)
    with pytest.raises(ModelLoadError, match="gone"):
        score_corpus(
            [write_jsonl(tmp_path / "c.jsonl", 3)],
            vs_dir,
            tmp_path / "o",
            ScoreConfig(progress=False),
        )


def test_scoring_streams_the_heap(
    tmp_path: Path, vs_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The local engine asks glibc for one arena once and trims the heap after each shard."""
    calls: list[str] = []
    monkeypatch.setattr(engines, "stream_malloc", lambda: calls.append("mallopt") or True)
    real = engines.release_memory
    monkeypatch.setattr(engines, "release_memory", lambda: (calls.append("trim"), real())[1])
    src = write_jsonl(tmp_path / "c.jsonl", 5)
    m = score_corpus([src], vs_dir, tmp_path / "o", ScoreConfig(progress=False, shard_size=2))
    assert m.shards == 3
    assert calls == ["mallopt", "trim", "trim", "trim"]


@pytest.mark.skipif(getattr(engines, "_LIBC", None) is None, reason="glibc only")
def test_stream_malloc_is_accepted_by_glibc() -> None:
    assert engines.stream_malloc() is True
    engines.release_memory()
