"""Scoring loads the model only up to the probe layer, with identical results."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

import emocurate.vectors.models as models
from emocurate.configs import ScoreConfig
from emocurate.corpus.engines import Prefetch, score_corpus
from emocurate.corpus.rows import CorpusScore
from emocurate.corpus.score import Scorer
from emocurate.vectors.models import LoadedModel, load_model

from .conftest import STORIES, make_vectorset, write_jsonl


def test_truncated_model_has_no_upper_blocks_or_head(lm: LoadedModel) -> None:
    t = load_model("stories260K", upto_layer=2)
    assert t.n_layers == 3 and lm.n_layers == 5
    assert t.extra == {"full_layers": 5, "truncated": True}
    assert not hasattr(t.model, "lm_head")
    n_full = sum(p.numel() for p in lm.model.parameters())
    n_trunc = sum(p.numel() for p in t.model.parameters())
    per_block = sum(p.numel() for p in lm.layers[0].parameters())
    assert n_full - n_trunc >= 2 * per_block  # two blocks fewer (the head is tied here)


def test_truncated_and_full_model_score_identically(lm: LoadedModel) -> None:
    vs = make_vectorset(lm)
    layer = vs.meta.default_layer
    t = load_model("stories260K", upto_layer=layer)
    docs = [(f"d{i}", s) for i, s in enumerate(STORIES)] + [("long", " ".join(STORIES) * 3)]
    cfg = ScoreConfig(window=64, stride=40, metrics={"threshold": 0.0})
    full = Scorer(vs, lm, cfg).score_full(docs)
    trunc = Scorer(vs, t, cfg).score_full(docs)
    assert any(s.row.flags for s in full)
    for a, b in zip(full, trunc, strict=True):
        _same(a.row, b.row)
        assert a.char_spans == b.char_spans


def _same(a: CorpusScore, b: CorpusScore) -> None:
    ra, rb = json.loads(a.model_dump_json()), json.loads(b.model_dump_json())
    assert ra["flags"] == rb["flags"] and ra["dominant"] == rb["dominant"]
    for k in ("emotion_mean", "emotion_p95", "metrics"):
        assert ra[k].keys() == rb[k].keys()
        for key, v in ra[k].items():
            assert v == pytest.approx(rb[k][key], abs=1e-5), (k, key)


def test_score_corpus_loads_only_up_to_the_probe(
    tmp_path: Path, vs_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[dict[str, object]] = []
    real = models.load_model

    def spy(*args: object, **kwargs: object) -> LoadedModel:
        calls.append(kwargs)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(models, "load_model", spy)
    src = write_jsonl(tmp_path / "c.jsonl", 3)
    m = score_corpus([src], vs_dir, tmp_path / "o", ScoreConfig(progress=False))
    assert m.scored == 3
    assert [c.get("upto_layer") for c in calls] == [m.vectors.layer]


def test_prefetch_propagates_errors_and_stops_early() -> None:
    def boom():  # type: ignore[no-untyped-def]
        yield 1
        raise ValueError("bad row")

    it = iter(Prefetch(boom()))
    assert next(it) == 1
    with pytest.raises(ValueError, match="bad row"):
        next(it)
    produced: list[int] = []

    def many():  # type: ignore[no-untyped-def]
        for i in range(10_000):
            produced.append(i)
            yield i

    p = Prefetch(many(), depth=2)
    for x in p:
        if x == 3:
            break
    p.close()
    assert len(produced) < 20  # bounded: the producer did not run ahead of the queue
    assert not any(t.name == "emocurate-prefetch" and t.is_alive() for t in threading.enumerate())
