"""datatrove: JsonlReader -> EmocurateScorer -> EmocurateFilter -> JsonlWriter, 2 tasks."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import polars as pl
import pytest

pytest.importorskip("datatrove")

from datatrove.executor import LocalPipelineExecutor  # noqa: E402
from datatrove.pipeline.readers import JsonlReader  # noqa: E402
from datatrove.pipeline.writers import JsonlWriter  # noqa: E402

from emocurate.configs import ScoreConfig  # noqa: E402
from emocurate.corpus.curate import CuratePolicy  # noqa: E402
from emocurate.corpus.engines import score_corpus  # noqa: E402
from emocurate.errors import InputError  # noqa: E402
from emocurate.integrations.datatrove import EmocurateFilter, EmocurateScorer  # noqa: E402

from .conftest import STORIES  # noqa: E402

POLICY = CuratePolicy.model_validate(
    {"rules": [{"name": "drop_distress", "when": {"flag": "distress_episode"}, "action": "drop"}]}
)
FPR = 0.3  # a high false-positive rate so these few short stories get flags


def _docs(tmp_path: Path) -> Path:
    src = tmp_path / "in"
    src.mkdir()
    rows = [{"id": f"s{i}", "text": f"{t} ({i})"} for i, t in enumerate(STORIES * 2)]
    rows.append({"id": "nul", "text": "binary\u0000junk"})  # (datatrove's reader skips empty texts)
    for name, part in (("a.jsonl", rows[:6]), ("b.jsonl", rows[6:])):
        (src / name).write_text("".join(json.dumps(r) + "\n" for r in part))
    return src


def _read(folder: Path) -> dict[str, dict[str, object]]:
    out = {}
    for f in sorted(folder.glob("*.jsonl.gz")):
        for line in gzip.decompress(f.read_bytes()).decode().splitlines():
            d = json.loads(line)
            out[d["id"]] = d
    return out


def test_filter_refuses_drops_on_untrusted_vectors(vs_dir: Path) -> None:
    with pytest.raises(InputError, match="refuses to drop"):
        EmocurateFilter(POLICY, vs_dir)
    assert EmocurateFilter(POLICY, vs_dir, flag_only=True).guard.decision == "flag-only"


def test_pipeline_matches_emocurate_score(tmp_path: Path, vs_dir: Path) -> None:
    src = _docs(tmp_path)
    kept_dir, excl_dir = tmp_path / "kept", tmp_path / "excluded"
    LocalPipelineExecutor(
        pipeline=[
            JsonlReader(str(src)),
            EmocurateScorer(vs_dir, {"fpr": FPR}, batch_docs=3),
            EmocurateFilter(
                POLICY, vs_dir, force=True, exclusion_writer=JsonlWriter(str(excl_dir))
            ),
            JsonlWriter(str(kept_dir)),
        ],
        tasks=2,
        workers=2,  # two processes: the steps are pickled as under Slurm or Ray
        logging_dir=str(tmp_path / "logs"),
    ).run()
    kept, excluded = _read(kept_dir), _read(excl_dir)
    assert set(kept) | set(excluded) == {f"s{i}" for i in range(10)} | {"nul"}
    assert not set(kept) & set(excluded)
    # The same documents through `emocurate score` (same vectors, calibration, rate).
    score_corpus(
        [src],
        vs_dir,
        tmp_path / "scores",
        ScoreConfig(id_field="id", fpr=FPR, progress=False),
    )
    ref = {
        r["doc_id"]: r
        for r in pl.read_parquet(
            sorted((tmp_path / "scores" / "data").glob("*.parquet"))
        ).to_dicts()
    }
    assert set(ref) == {f"s{i}" for i in range(10)}  # the NUL one is quarantined there too
    n_flagged = 0
    for doc_id, d in {**kept, **excluded}.items():
        meta = d["metadata"]["emocurate"]
        if doc_id == "nul":
            reason = "binary content (NUL characters), not text"
            assert meta == {"quarantined": reason}
            assert d["metadata"]["filter_reason"] == f"quarantined: {reason}"
            continue
        r = ref[doc_id]
        assert meta["flag_kinds"] == r["flag_kinds"] and len(meta["flags"]) == len(r["flags"])
        for f, g in zip(meta["flags"], r["flags"], strict=True):  # batches pad differently:
            assert f["severity"] == pytest.approx(g["severity"], abs=1e-6)  # float noise only
            assert {**f, "severity": 0} == {**g, "severity": 0}
        for k in ("n_tokens", "distress_max", "valence_mean", "mean__afraid", "p95__calm"):
            assert meta[k] == pytest.approx(r[k], abs=1e-6), k
        assert len(meta["char_spans"]) == len(r["flags"])
        dropped = "distress_episode" in r["flag_kinds"]
        assert (doc_id in excluded) == dropped
        assert meta["decision"] == ("drop" if dropped else "keep")
        if dropped:
            assert d["metadata"]["filter_reason"] == "drop_distress"
        n_flagged += bool(r["flags"])
    assert n_flagged >= 2 and excluded  # the comparison covered flagged and dropped documents
