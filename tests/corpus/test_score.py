"""Scoring: windows, projections, shards, resume, traces."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow.parquet as pq
import pytest
import torch

from emocurate.configs import ScoreConfig
from emocurate.corpus.engines import score_corpus
from emocurate.corpus.score import Scorer, find_turns, plan_windows
from emocurate.vectors.capture import token_activations
from emocurate.vectors.models import LoadedModel
from emocurate.vectors.vectorset import VectorSet

from .conftest import STORIES, make_vectorset, write_jsonl


def test_plan_windows_tile_every_token_once() -> None:
    for n, length, stride in [(10, 20, 15), (100, 20, 15), (101, 20, 20), (57, 16, 5), (0, 8, 4)]:
        covered = []
        for start, seg, keep in plan_windows(n, length, stride):
            assert seg <= length and keep <= seg
            covered.extend(range(start + keep, start + seg))
        assert covered == list(range(n)), (n, length, stride)


def test_find_turns() -> None:
    t = "Human: hi\nthere\n\nAssistant: hello\nHuman: bye"
    turns = find_turns(t)
    assert [s for s, _, _ in turns] == ["human", "assistant", "human"]
    assert t[turns[0][1] : turns[0][2]].strip() == "hi\nthere"
    assert find_turns("Human: only one speaker\nHuman: again") == []
    assert find_turns("A story with no turns.") == []


def test_short_document_matches_direct_projection(lm: LoadedModel) -> None:
    vs = make_vectorset(lm)
    scorer = Scorer(vs, lm, ScoreConfig(smooth=1))
    text = STORIES[0]
    sd = scorer.score_full([("a", text)])[0]
    layer = vs.meta.default_layer
    _, ids, acts = next(iter(token_activations(lm, [text], layer)))
    z = vs.project(acts, layer)[1:].numpy()  # BOS dropped, as the scorer does
    assert sd.row.n_tokens == len(ids) - 1
    assert np.allclose([sd.row.emotion_mean[n] for n in vs.names], z.mean(0), atol=1e-4)
    assert sd.trace is not None and "".join(sd.trace.tokens) == text


def test_long_document_windows_stitch(lm: LoadedModel) -> None:
    vs = make_vectorset(lm)
    text = " ".join(STORIES[:3])
    full = Scorer(vs, lm, ScoreConfig(smooth=1)).score_full([("a", text)])[0]
    win = Scorer(vs, lm, ScoreConfig(smooth=1, window=48, stride=24)).score_full([("a", text)])[0]
    assert full.row.n_windows == 1 and win.row.n_windows > 5
    assert win.row.n_tokens == full.row.n_tokens
    assert full.trace is not None and win.trace is not None
    # The first window's tokens see the same context in both runs.
    i = full.trace.series_names.index("distress")
    a = np.array(full.trace.series[i][:40])
    b = np.array(win.trace.series[i][:40])
    assert np.allclose(a, b, atol=2e-3)
    # Later tokens have less context but stay correlated with the full-context values.
    fa, wa = np.array(full.trace.series[i]), np.array(win.trace.series[i])
    assert np.corrcoef(fa, wa)[0, 1] > 0.5


def test_batching_does_not_change_scores(lm: LoadedModel) -> None:
    vs = make_vectorset(lm)
    docs = [(f"d{i}", s) for i, s in enumerate(STORIES)]
    big = Scorer(vs, lm, ScoreConfig(batch_tokens=8192)).score(docs)
    small = Scorer(vs, lm, ScoreConfig(batch_tokens=64)).score(docs)
    for a, b in zip(big, small, strict=True):
        assert a.doc_id == b.doc_id
        assert np.allclose(list(a.emotion_mean.values()), list(b.emotion_mean.values()), atol=1e-4)


def test_overlapped_metrics_thread_gives_same_rows(lm: LoadedModel) -> None:
    vs = make_vectorset(lm)
    docs = [(f"d{i}", s) for i, s in enumerate(STORIES)] + [("empty", " ")]
    serial = Scorer(vs, lm, ScoreConfig(overlap=False, batch_tokens=128)).score_full(docs)
    threaded = Scorer(vs, lm, ScoreConfig(overlap=True, batch_tokens=128)).score_full(docs)
    assert [a.row for a in serial] == [b.row for b in threaded]
    assert [a.trace for a in serial] == [b.trace for b in threaded]


def test_dialogue_document_gets_turns(lm: LoadedModel) -> None:
    vs = make_vectorset(lm)
    (row,) = Scorer(vs, lm, ScoreConfig()).score([("chat", STORIES[3])])
    assert row.is_dialogue
    assert [t.speaker for t in row.turns] == ["human", "assistant", "human", "assistant"]
    assert row.metrics["n_turns"] == 4


def test_regulation_vectors_are_scored(lm: LoadedModel, tmp_path: Path) -> None:
    vs = make_vectorset(lm)
    reg = make_vectorset(
        lm, names=["regulation:afraid", "regulation:angry"], seed=3, kind="regulation"
    )
    (row,) = Scorer(vs, lm, ScoreConfig(), regulation=reg).score([("a", STORIES[0])])
    assert row.metrics["regulation_mean"] is not None
    (plain,) = Scorer(vs, lm, ScoreConfig()).score([("a", STORIES[0])])
    assert plain.metrics["regulation_mean"] is None


def test_hidden_size_mismatch_is_clear(lm: LoadedModel) -> None:
    from emocurate.errors import ConfigError

    vs = make_vectorset(lm)
    bad = VectorSet(
        {vs.meta.default_layer: torch.randn(2, 32)},
        vs.meta.model_copy(update={"names": ["a", "b"], "hidden_size": 32}),
    )
    with pytest.raises(ConfigError, match="hidden size"):
        Scorer(bad, lm, ScoreConfig())


def _table(out: Path) -> list[dict]:
    files = sorted((out / "data").glob("shard-*.parquet"))
    return [r for f in files for r in pq.read_table(f).to_pylist()]


def test_score_corpus_outputs_and_determinism(
    lm: LoadedModel, vs_dir: Path, tmp_path: Path
) -> None:
    src = write_jsonl(tmp_path / "c.jsonl", 12, extra_bad=True)
    cfg = ScoreConfig(shard_size=5, id_field="id", window=64, trace_others=1)
    m1 = score_corpus([src], vs_dir, tmp_path / "o1", cfg, lm=lm)
    score_corpus([src], vs_dir, tmp_path / "o2", cfg, lm=lm)
    assert m1.rows_in == 14 and m1.scored == 12 and m1.quarantined == 2
    assert m1.shards == 3 and m1.tokens > 0 and m1.vectors.model_id == "stories260K"
    assert _table(tmp_path / "o1") == _table(tmp_path / "o2")
    rows = _table(tmp_path / "o1")
    assert [r["doc_id"] for r in rows] == [f"doc{i}" for i in range(12)]
    assert "mean__afraid" in rows[0] and "p95__calm" in rows[0] and "distress_max" in rows[0]
    # Traces exist for flagged docs and the first doc of each shard; they hold token strings.
    traces = pl.read_parquet(sorted((tmp_path / "o1" / "tokens").glob("*.parquet")))
    assert traces.height >= 3
    assert set(traces["doc_id"]) >= {"doc0", "doc5", "doc10"}
    assert "distress" in traces["series_names"][0].to_list()
    q = (tmp_path / "o1" / "quarantine.jsonl").read_text().splitlines()
    assert len(q) == 2 and json.loads(q[1])["reason"].startswith("text field")
    # A rerun skips finished shards.
    m3 = score_corpus([src], vs_dir, tmp_path / "o1", cfg, lm=lm)
    assert m3.resumed_shards == 3 and _table(tmp_path / "o1") == rows
    # datasets can read the sidecar.
    import datasets

    ds = datasets.load_dataset("parquet", data_dir=str(tmp_path / "o1" / "data"), split="train")
    assert ds.num_rows == 12


def test_changed_config_refuses_to_mix(lm: LoadedModel, vs_dir: Path, tmp_path: Path) -> None:
    from emocurate.errors import ConfigError

    src = write_jsonl(tmp_path / "c.jsonl", 3)
    score_corpus([src], vs_dir, tmp_path / "o", ScoreConfig(window=64), lm=lm)
    with pytest.raises(ConfigError, match="different run"):
        score_corpus([src], vs_dir, tmp_path / "o", ScoreConfig(window=64, fpr=0.05), lm=lm)


KILL_SCRIPT = """
import sys, time
import torch
torch.set_num_threads(1)
import emocurate.corpus.engines as eng
orig = eng.write_shard
def slow(*a, **k):
    m = orig(*a, **k)
    time.sleep(0.4)
    return m
eng.write_shard = slow
from emocurate.configs import ScoreConfig
from emocurate.corpus.engines import score_corpus
score_corpus([sys.argv[1]], sys.argv[2], sys.argv[3], ScoreConfig(shard_size=3, window=64, id_field="id"))
"""


def test_kill_9_then_rerun_is_identical(lm: LoadedModel, vs_dir: Path, tmp_path: Path) -> None:
    src = write_jsonl(tmp_path / "c.jsonl", 30)
    cfg = ScoreConfig(shard_size=3, window=64, id_field="id")
    ref = tmp_path / "ref"
    score_corpus([src], vs_dir, ref, cfg, lm=lm)
    out = tmp_path / "killed"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen(
        [sys.executable, "-c", KILL_SCRIPT, str(src), str(vs_dir), str(out)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 60
    while time.time() < deadline:
        done = list((out / "_done").glob("*.json")) if (out / "_done").exists() else []
        if len(done) >= 3:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    n_done = len(list((out / "_done").glob("*.json")))
    assert 3 <= n_done < 10, "the run should have been killed mid-way"
    assert not (out / "manifest.json").exists()
    m = score_corpus([src], vs_dir, out, cfg, lm=lm)
    assert m.resumed_shards == n_done and m.shards == 10
    assert _table(out) == _table(ref)
    assert (out / "quarantine.jsonl").read_bytes() == (ref / "quarantine.jsonl").read_bytes()


def test_progress_is_fed_per_forward_batch(lm: LoadedModel) -> None:
    """The bar moves with every forward batch (not once per 256-row shard) and shows documents
    and tokens/s; the callback does not change the scores."""
    import io

    from rich.console import Console

    from emocurate.corpus.engines import _Progress

    vs = make_vectorset(lm)
    docs = [(f"d{i}", s) for i, s in enumerate(STORIES)]
    calls: list[tuple[int, int]] = []
    scorer = Scorer(vs, lm, ScoreConfig(batch_tokens=64, z_thresholds=True))
    scorer.on_batch = lambda d, t: calls.append((d, t))
    rows = scorer.score(docs)
    assert len(calls) >= 3 and sum(d for d, _ in calls) == len(docs)
    assert sum(t for _, t in calls) >= sum(r.n_tokens for r in rows)
    plain = Scorer(vs, lm, ScoreConfig(batch_tokens=64, z_thresholds=True)).score(docs)
    assert [r.emotion_mean for r in rows] == [r.emotion_mean for r in plain]

    buf = io.StringIO()
    bar = _Progress(True, 10, console=Console(file=buf, force_terminal=True, width=120))
    bar.batch(4, 1000)
    bar.close()
    shown = buf.getvalue()
    assert "4/10 docs" in shown and "tok/s" in shown
