"""The run summary streams the shards and equals the whole-table computation it replaced."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow.parquet as pq
import pytest

from emocurate.configs import MetricConfig, ScoreConfig
from emocurate.corpus.engines import score_corpus
from emocurate.corpus.regulation import pearson
from emocurate.corpus.summary import SUMMARY_METRICS, CoMoments, summarize_shards
from emocurate.vectors.models import LoadedModel
from tests.corpus.conftest import write_jsonl


def _whole_table_summary(out: Path) -> dict:
    """The former implementation: every shard read into one polars frame."""
    df = pl.read_parquet(sorted((out / "data").glob("shard-*.parquet")))
    kinds = df["flag_kinds"].explode().drop_nulls().to_list()
    means = {}
    for col in SUMMARY_METRICS:
        v = df[col].drop_nulls()
        means[col] = float(v.mean()) if len(v) else None  # type: ignore[arg-type]
    xs, ys = [], []
    for turns in df.filter(pl.col("is_dialogue"))["turns"].to_list():
        for a, b in zip(turns, turns[1:], strict=False):
            if a["speaker"] == "human" and b["speaker"] == "assistant":
                xs.append(a["arousal"])
                ys.append(b["arousal"])
    return {
        "docs_flagged": int((df["n_flags"] > 0).sum()),
        "flags": {k: kinds.count(k) for k in set(kinds)},
        "means": means,
        "dialogues": int(df["is_dialogue"].sum()),
        "pairs": len(xs),
        "r": pearson(xs, ys),
        "speaker": float(np.mean(xs)) if xs else None,
        "dominant": [d[0] for d in df["dominant"].to_list() if d],
    }


def test_streamed_summary_equals_the_whole_table(
    lm: LoadedModel, vs_dir: Path, tmp_path: Path
) -> None:
    src = write_jsonl(tmp_path / "c.jsonl", 24)
    out = tmp_path / "o"
    cfg = ScoreConfig(
        shard_size=5,
        id_field="id",
        window=64,
        z_thresholds=True,
        metrics=MetricConfig(threshold=0.2, arousal_high=0.0),
    )
    m = score_corpus([src], vs_dir, out, cfg, lm=lm)
    assert m.shards == 5 and m.summary is not None
    ref = _whole_table_summary(out)
    s = m.summary
    assert ref["docs_flagged"] > 0 and ref["pairs"] >= 5  # the comparison means something
    assert s.docs_flagged == ref["docs_flagged"] and s.flags == ref["flags"]
    for k, v in ref["means"].items():
        assert s.metric_means[k] == (None if v is None else pytest.approx(round(v, 4), abs=1e-4))
    assert s.dialogues == ref["dialogues"] and s.coregulation.pairs == ref["pairs"]
    assert s.coregulation.r == pytest.approx(ref["r"], abs=1e-12)
    assert s.coregulation.mean_speaker_arousal == pytest.approx(ref["speaker"], abs=1e-12)
    counts = {d: ref["dominant"].count(d) for d in set(ref["dominant"])}
    top = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:10]
    assert list(s.top_dominant.items()) == top


def test_summary_reads_one_shard_at_a_time_and_only_its_columns(
    lm: LoadedModel, vs_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = write_jsonl(tmp_path / "c.jsonl", 12)
    out = tmp_path / "o"
    score_corpus([src], vs_dir, out, ScoreConfig(shard_size=4, id_field="id", window=64), lm=lm)
    reads: list[tuple[str, tuple[str, ...]]] = []
    real = pq.read_table

    def spy(path: object, columns: list[str] | None = None, **kw: object) -> object:
        reads.append((Path(str(path)).name, tuple(columns or ())))
        return real(path, columns=columns, **kw)

    monkeypatch.setattr(pq, "read_table", spy)
    summarize_shards(sorted((out / "data").glob("shard-*.parquet")))
    assert [r[0] for r in reads if "turns" not in r[1]] == [
        "shard-00000.parquet",
        "shard-00001.parquet",
        "shard-00002.parquet",
    ]
    assert all(not any(c.startswith("mean__") for c in cols) for _, cols in reads)


def test_comoments_merge_equals_pearson_on_all_pairs() -> None:
    rng = random.Random(0)
    xs = [rng.gauss(2.0, 1.0) for _ in range(200)]
    ys = [0.6 * x + rng.gauss(0.0, 0.5) for x in xs]
    parts = [CoMoments() for _ in range(7)]
    for i, (x, y) in enumerate(zip(xs, ys, strict=True)):
        parts[rng.randrange(7) if i > 6 else i].add(x, y)
    total = CoMoments()
    for p in parts:
        total.merge(p)
    assert total.n == 200
    assert total.pearson() == pytest.approx(pearson(xs, ys), abs=1e-12)
    assert total.mx == pytest.approx(float(np.mean(xs)), abs=1e-12)
    assert CoMoments(2, 1.0, 1.0).pearson() is None  # too few pairs
    const = CoMoments()
    for y in (1.0, 2.0, 3.0):
        const.add(5.0, y)
    assert const.pearson() is None  # no variance in x


def test_score_command_does_not_import_polars(vs_dir: Path, tmp_path: Path) -> None:
    """The score command has no use for a data-frame library (it cost ~0.4 s of every run)."""
    src = write_jsonl(tmp_path / "c.jsonl", 3)
    code = (
        "import sys\n"
        "from emocurate.cli import main\n"
        "try:\n"
        f"    main(['score', {str(src)!r}, '--vectors', {str(vs_dir)!r}, '--out', "
        f"{str(tmp_path / 'o')!r}, '--id-field', 'id'])\n"
        "except SystemExit as e:\n"
        "    assert not e.code, e.code\n"
        "print(json.dumps(sorted(m for m in ('polars', 'pandas') if m in sys.modules)))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", "import json\n" + code], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    loaded = json.loads(proc.stdout.strip().splitlines()[-1])
    assert "polars" not in loaded
