"""The dense metrics batched as tensors (corpus/batched.py) against the NumPy reference."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from emocurate.configs import MetricConfig, ScoreConfig
from emocurate.corpus.batched import dense_batch
from emocurate.corpus.regulation import (
    Analysis,
    DenseSeries,
    TurnSpan,
    analyse,
    analyse_dense,
    dense_series,
)
from emocurate.corpus.score import ScoredDoc, Scorer
from emocurate.records import FLAG_KINDS
from emocurate.vectors.models import LoadedModel

from .conftest import STORIES, make_vectorset
from .test_metric_defects import AXES, NAMES, _dialogue, traj

SERIES = (
    "mean",
    "p95",
    "valence",
    "arousal",
    "distress",
    "distress_raw",
    "calm",
    "regulation",
    "regulation_raw",
    "turn_means",
    "turn_distress",
    "smoothed",
)


def assert_same_dense(ref: DenseSeries, got: DenseSeries, where: str) -> None:
    assert got.n_tokens == ref.n_tokens, where
    for name in SERIES:
        a, b = getattr(ref, name), getattr(got, name)
        assert (a is None) == (b is None), f"{where}: {name}"
        if a is not None:
            assert a.shape == b.shape, f"{where}: {name} {a.shape} != {b.shape}"
            np.testing.assert_allclose(b, a, rtol=0, atol=1e-9, err_msg=f"{where}: {name}")
    assert list(got.smoothed_top) == list(ref.smoothed_top), where
    for k, col in ref.smoothed_top.items():
        np.testing.assert_allclose(got.smoothed_top[k], col, rtol=0, atol=1e-9, err_msg=where)


def _turns(n: int) -> list[TurnSpan]:
    """Alternating turns over ``n`` tokens, with an empty one in the middle."""
    cut = [0, n // 3, n // 3, 2 * n // 3, n]
    speakers = ["human", "assistant", "human", "assistant"]
    return [TurnSpan(s, a, b) for s, a, b in zip(speakers, cut, cut[1:], strict=False)]


@pytest.mark.parametrize("smooth_k", [1, 2, 5, 9])
@pytest.mark.parametrize("with_reg", [False, True])
def test_dense_batch_matches_dense_series(smooth_k: int, with_reg: bool) -> None:
    rng = np.random.default_rng(smooth_k)
    # 0, 1, 2 tokens, shorter than / equal to / just over the window, long; mixed in one call.
    lengths = [0, 1, 2, smooth_k - 1, smooth_k, smooth_k + 1, 3, 257, 40, 0, 1000]
    zs = [rng.normal(0, 1.5, size=(n, len(NAMES))).astype(np.float32) for n in lengths]
    regs = [
        rng.normal(size=(n, 3)).astype(np.float32) if with_reg and i % 3 else None
        for i, n in enumerate(lengths)
    ]
    turns = [_turns(n) if i % 2 else [] for i, n in enumerate(lengths)]
    kw: dict[str, Any] = {"keep_smoothed": True, "top_k": 4, "top_tokens": 100}
    # group_tokens small enough for several groups (and a document alone over the budget).
    got = dense_batch(
        [torch.from_numpy(z) for z in zs],
        AXES,
        smooth_k,
        regulations=[None if r is None else torch.from_numpy(r) for r in regs],
        turns=turns,
        group_tokens=600,
        **kw,
    )
    assert len(got) == len(zs)
    for i, (z, r, t, g) in enumerate(zip(zs, regs, turns, got, strict=True)):
        ref = dense_series(z, AXES, smooth_k, regulation=r, turns=t, **kw)
        assert_same_dense(ref, g, f"doc {i} ({len(z)} tokens)")


def test_dense_batch_without_smoothed_or_top_keeps_only_series() -> None:
    z = torch.randn(50, len(NAMES))
    (got,) = dense_batch([z], AXES, 9)
    assert got.smoothed is None and got.smoothed_top == {}
    ref = dense_series(z.numpy(), AXES, 9, keep_smoothed=False)
    assert_same_dense(ref, got, "plain")


def _planted() -> list[tuple[np.ndarray, list[TurnSpan], np.ndarray | None]]:
    """Trajectories that plant each flag kind (and the defects' corner cases)."""
    out: list[tuple[np.ndarray, list[TurnSpan], np.ndarray | None]] = []
    spike = np.zeros(100)
    spike[50] = 20.0
    out.append((traj(spike), [], None))
    sustained = np.zeros(200)
    sustained[60:90] = 3.0  # an episode that recovers
    out.append((traj(sustained), [], None))
    unrecovered = np.zeros(300)
    unrecovered[40:70] = 1.4  # recovery: halfway from 1.4 to rho 0.5, i.e. 0.95
    unrecovered[70:] = 0.98  # below the threshold (1.0), never back to 0.95
    out.append((traj(unrecovered), [], None))
    ending = np.zeros(150)
    ending[110:] = 3.0  # unresolved end (one run: not escalation)
    out.append((traj(ending), [], None))
    rising = np.zeros(60)
    for peak in (1.5, 2.5, 3.5):  # episodes of rising peak: escalation
        rising = np.concatenate([rising, np.full(20, peak), np.zeros(30)])
    out.append((traj(rising), [], None))
    out.append((traj(np.linspace(3.0, -1.0, 1000)), [], None))
    rng = np.random.default_rng(7)
    swing = traj(np.zeros(300))
    up = np.arange(300) % 20 < 10  # happy and sad taking turns
    swing[:, NAMES.index("happy")] = np.where(up, 12.0, 0.0)
    swing[:, NAMES.index("sad")] = np.where(up, 0.0, 12.0)
    out.append((swing + rng.normal(0, 0.1, swing.shape), [], None))
    reg = np.zeros((200, 2))
    reg[80:120] = -3.0  # unhealthy regulation run
    out.append((traj(np.zeros(200)), [], reg))
    z, turns = _dialogue([10.0, 0.0, 2.0, 0.3, 1.5], [9.5, 0.1, 2.2, 0.7, 0.2], turn_len=20)
    out.append((z, turns, None))
    rising = traj(np.concatenate([np.zeros(20), np.full(20, 12.0)]))
    out.append((rising, [TurnSpan("human", 0, 20), TurnSpan("assistant", 20, 40)], None))
    out.append((np.zeros((0, len(NAMES))), [], None))
    return out


def _same_analysis(a: Analysis, b: Analysis, where: str) -> None:
    assert a.dominant == b.dominant, where
    assert a.metrics.keys() == b.metrics.keys()
    for k, v in a.metrics.items():
        w = b.metrics[k]
        assert (v is None) == (w is None), f"{where}: {k}"
        if v is not None and w is not None:
            assert w == pytest.approx(v, abs=1e-9), f"{where}: {k}"
    assert [(f.kind, f.start, f.end, f.evidence) for f in a.flags] == [
        (f.kind, f.start, f.end, f.evidence) for f in b.flags
    ], where
    assert [f.severity for f in b.flags] == pytest.approx([f.severity for f in a.flags], abs=1e-9)
    assert [(e.start, e.end, e.status, e.time_to_recover) for e in a.episodes] == [
        (e.start, e.end, e.status, e.time_to_recover) for e in b.episodes
    ], where
    assert [t.model_dump() for t in b.turns] == [
        pytest.approx(t.model_dump(), abs=1e-9) for t in a.turns
    ]


def test_analyse_dense_of_batch_equals_analyse_on_planted_trajectories() -> None:
    cases = _planted()
    cfg = MetricConfig()
    dense = dense_batch(
        [torch.from_numpy(z) for z, _, _ in cases],
        AXES,
        cfg.smooth,
        regulations=[None if r is None else torch.from_numpy(r) for _, _, r in cases],
        turns=[t for _, t, _ in cases],
    )
    kinds: set[str] = set()
    for i, ((z, turns, reg), d) in enumerate(zip(cases, dense, strict=True)):
        ref = analyse(z, AXES, cfg, regulation=reg, turns=turns)
        got = analyse_dense(d, AXES, cfg, turns=turns)
        _same_analysis(ref, got, f"case {i}")
        kinds |= {f.kind for f in ref.flags}
    # The planted cases raise every declared flag kind, and no kind that is not declared.
    assert kinds == set(FLAG_KINDS), kinds


def _docs() -> list[tuple[str, str]]:
    long = " ".join(STORIES[:3]) + " " + STORIES[3]  # several windows, and turns in the end
    return [(f"d{i}", s) for i, s in enumerate(STORIES)] + [("long", long), ("empty", "")]


def _assert_close(a: Any, b: Any, where: str, tol: float = 1e-6) -> None:
    """Equal, except floats (anywhere in nested dicts/lists) within ``tol``."""
    if isinstance(a, float) and isinstance(b, float):
        assert b == pytest.approx(a, abs=tol), where
    elif isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), where
        for k in a:
            _assert_close(a[k], b[k], f"{where}.{k}", tol)
    elif isinstance(a, list | tuple):
        assert isinstance(b, list | tuple) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _assert_close(x, y, f"{where}[{i}]", tol)
    else:
        assert a == b, where


def _assert_same_rows(host: list[ScoredDoc], dev: list[ScoredDoc]) -> None:
    assert len(host) == len(dev)
    for a, b in zip(host, dev, strict=True):
        # ids, counts, dominant, turns, flags with their evidence; metrics to rounding
        _assert_close(a.row.model_dump(), b.row.model_dump(), a.row.doc_id)
        _assert_close(a.char_spans, b.char_spans, a.row.doc_id)
        assert (a.trace is None) == (b.trace is None), a.row.doc_id
        if a.trace is not None and b.trace is not None:
            # series are rounded to 3 decimals: a rounding tie may land one step apart
            _assert_close(a.trace.model_dump(), b.trace.model_dump(), a.row.doc_id, tol=1.01e-3)


@pytest.mark.parametrize("overlap", [False, True])
def test_scorer_device_metrics_give_the_host_rows(
    lm: LoadedModel, overlap: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    vs = make_vectorset(lm)
    reg = make_vectorset(
        lm, names=["regulation:afraid", "regulation:angry"], seed=3, kind="regulation"
    )
    kw: dict[str, Any] = {
        "window": 48,
        "stride": 24,
        "batch_tokens": 160,
        "trace_others": 100,
        "overlap": overlap,
        "metrics": MetricConfig(threshold=0.3, recover_level=0.1, volatility_high=0.2),
    }
    docs = _docs()
    host = Scorer(vs, lm, ScoreConfig(metrics_device="host", **kw), regulation=reg).score_full(docs)
    assert sum(len(sd.row.flags) for sd in host) > 0  # the comparison covers flags
    assert any(sd.row.n_windows > 3 for sd in host) and any(sd.row.is_dialogue for sd in host)
    assert host[-1].row.n_tokens == 0
    host_seen: list[int] = []
    orig = Scorer._finish

    def spy(self: Scorer, p: Any, z: np.ndarray, zr: np.ndarray | None) -> ScoredDoc:
        host_seen.append(len(z))
        return orig(self, p, z, zr)

    monkeypatch.setattr(Scorer, "_finish", spy)
    scorer = Scorer(vs, lm, ScoreConfig(metrics_device="device", **kw), regulation=reg)
    assert scorer.metrics_on_device
    dev = scorer.score_full(docs)
    # Only the empty document goes through the per-document host path.
    assert host_seen == [0]
    _assert_same_rows(host, dev)


def test_auto_metrics_stay_on_the_host_on_cpu(lm: LoadedModel) -> None:
    vs = make_vectorset(lm)
    assert not Scorer(vs, lm, ScoreConfig()).metrics_on_device
    assert Scorer(vs, lm, ScoreConfig(metrics_device="device")).metrics_on_device


def test_metrics_device_does_not_change_the_fingerprint(lm: LoadedModel) -> None:
    from emocurate.corpus.engines import fingerprint

    vs = make_vectorset(lm)
    a = fingerprint(["x.jsonl"], ScoreConfig(metrics_device="host"), vs, None, "c")
    b = fingerprint(["x.jsonl"], ScoreConfig(metrics_device="device"), vs, None, "c")
    assert a == b


def test_metrics_device_does_not_change_the_pipeline_fingerprint(tmp_path: Path) -> None:
    from emocurate.config import ScoreStage as ScoreStageConfig
    from emocurate.pipeline import ScoreStage

    # config_json never reads the upstream stages
    stages = [
        ScoreStage(
            tmp_path,
            ScoreStageConfig(options=ScoreConfig(metrics_device=where)),
            inputs=["x.jsonl"],
        )
        for where in ("auto", "host", "device")
    ]
    assert stages[0].config_json() == stages[1].config_json() == stages[2].config_json()
    other = ScoreStage(
        tmp_path, ScoreStageConfig(options=ScoreConfig(smooth=5)), inputs=["x.jsonl"]
    )
    assert other.config_json() != stages[0].config_json()


def test_cli_metrics_device_rows_match_host(lm: LoadedModel, vs_dir: Path, tmp_path: Path) -> None:
    import json

    import pyarrow.parquet as pq
    from typer.testing import CliRunner

    from emocurate.cli import app

    src = tmp_path / "in.jsonl"
    with src.open("w") as fh:
        for doc_id, text in _docs():
            fh.write(json.dumps({"id": doc_id, "text": text}) + "\n")
    rows = {}
    for where in ("host", "device"):
        out = tmp_path / where
        res = CliRunner().invoke(
            app,
            [
                "score",
                str(src),
                "--vectors",
                str(vs_dir),
                "--out",
                str(out),
                "--id-field",
                "id",
                "--window",
                "48",
                "--metrics-device",
                where,
            ],
        )
        assert res.exit_code == 0, res.output
        rows[where] = pq.read_table(out / "data" / "shard-00000.parquet").to_pylist()
    assert len(rows["host"]) == len([d for d in _docs() if d[1]])  # the empty one is quarantined
    _assert_close(rows["host"], rows["device"], "rows")
    bad = CliRunner().invoke(
        app,
        ["score", str(src), "--vectors", str(vs_dir), "--out", str(tmp_path / "x")]
        + ["--metrics-device", "gpu"],
    )
    assert bad.exit_code != 0 and "--metrics-device" in str(bad.exception)
