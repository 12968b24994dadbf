"""The Ray engine gives the same scores as the local engine."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from emocurate.configs import ScoreConfig
from emocurate.corpus.engines import score_corpus

from .conftest import write_jsonl

pytestmark = [pytest.mark.ray, pytest.mark.slow]


def _rows(out: Path) -> list[dict]:
    return [
        r
        for f in sorted((out / "data").glob("shard-*.parquet"))
        for r in pq.read_table(f).to_pylist()
    ]


def test_ray_matches_local(vs_dir: Path, tmp_path: Path) -> None:
    ray = pytest.importorskip("ray")
    src = write_jsonl(tmp_path / "c.jsonl", 9, extra_bad=True)
    local = score_corpus(
        [src], vs_dir, tmp_path / "local", ScoreConfig(shard_size=4, window=64, progress=False)
    )
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        remote = score_corpus(
            [src],
            vs_dir,
            tmp_path / "ray",
            ScoreConfig(shard_size=4, window=64, engine="ray", progress=False),
        )
    finally:
        ray.shutdown()
    for key in ("rows_in", "scored", "quarantined", "tokens", "shards"):
        assert getattr(local, key) == getattr(remote, key), key
    a, b = _rows(tmp_path / "local"), _rows(tmp_path / "ray")
    assert [r["doc_id"] for r in a] == [r["doc_id"] for r in b]
    for ra, rb in zip(a, b, strict=True):
        assert ra["flag_kinds"] == rb["flag_kinds"] and ra["dominant"] == rb["dominant"]
        for k, v in ra.items():
            if isinstance(v, float):
                assert np.isclose(v, rb[k], atol=1e-4, rtol=1e-4), k
    assert (tmp_path / "ray" / "quarantine.jsonl").read_text() == (
        tmp_path / "local" / "quarantine.jsonl"
    ).read_text()
    assert sorted(p.name for p in (tmp_path / "ray" / "tokens").glob("*")) == sorted(
        p.name for p in (tmp_path / "local" / "tokens").glob("*")
    )
