"""`emocurate score --attributes DIR`: Dolma-style attribute files with character offsets."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import polars as pl
import pytest

from emocurate.cli import main
from emocurate.corpus.attributes import PREFIX, output_name
from emocurate.records import FLAG_KINDS
from emocurate.vectors.models import LoadedModel

from .conftest import STORIES

# Long enough for distress episodes; the z threshold below the neutral level flags them.
TEXTS = [
    " ".join(STORIES[:3]),
    STORIES[3],
    "Lily was scared. The dog barked and barked and she ran home crying, afraid of the dark.",
]


def _write(path: Path, rows: list[dict[str, object]], bad: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = "".join(json.dumps(r) + "\n" for r in rows) + ("{broken\n" if bad else "")
    if path.name.endswith(".gz"):
        path.write_bytes(gzip.compress(data.encode()))
    else:
        path.write_text(data)
    return path


def _lines(path: Path) -> list[dict[str, object]]:
    raw = gzip.decompress(path.read_bytes()) if path.name.endswith(".gz") else path.read_bytes()
    return [json.loads(x) for x in raw.decode().splitlines() if x.strip()]


def _norm(s: str) -> str:
    return " ".join(s.replace("▁", " ").split())


def test_attribute_offsets_slice_the_flagged_text(
    tmp_path: Path, vs_dir: Path, lm: LoadedModel, capsys: pytest.CaptureFixture[str]
) -> None:
    docs = tmp_path / "docs"
    _write(docs / "part" / "a.jsonl.gz", [{"id": f"a{i}", "text": t} for i, t in enumerate(TEXTS)])
    _write(docs / "b.jsonl", [{"id": "b0", "text": TEXTS[2]}], bad=True)
    out, attrs = tmp_path / "scores", tmp_path / "attributes"
    main(
        [
            "score",
            str(docs),
            "--vectors",
            str(vs_dir),
            "--out",
            str(out),
            "--id-field",
            "id",
            "--z-threshold",
            "-0.5",
            "--shard-size",
            "2",
            "--attributes",
            str(attrs),
        ]
    )
    fa, fb = attrs / "part" / "a.jsonl.gz", attrs / "b.jsonl"
    assert fa.exists() and fb.exists()  # same relative names, gzip kept
    la, lb = _lines(fa), _lines(fb)
    # One line per input row, in input order (the broken row keeps its line: files stay aligned).
    assert [x["id"] for x in la] == ["a0", "a1", "a2"]
    assert [x["id"] for x in lb][:1] == ["b0"] and len(lb) == 2
    assert lb[1]["attributes"] == {} and f"{PREFIX}quarantined" in lb[1]
    texts = {f"a{i}": t for i, t in enumerate(TEXTS)} | {"b0": TEXTS[2]}
    scores = pl.read_parquet(sorted((out / "data").glob("*.parquet")))
    flags_by_id = {r["doc_id"]: r["flags"] for r in scores.to_dicts()}
    tok = lm.tokenizer
    n_spans = 0
    for line in la + lb[:1]:
        doc_id, attributes = str(line["id"]), line["attributes"]
        assert isinstance(attributes, dict)
        assert set(attributes) == {f"{PREFIX}{k}" for k in FLAG_KINDS}
        text = texts[doc_id]
        ids = tok(text, add_special_tokens=False)["input_ids"]
        flags = flags_by_id[doc_id]
        spans = [(k[len(PREFIX) :], s) for k, v in attributes.items() for s in v]
        assert len(spans) == len([f for f in flags if f["end"] > f["start"]])
        for kind, (start, end, score) in spans:
            assert 0 <= start < end <= len(text)
            # The token span of a flag of this kind with this severity, decoded independently.
            match = [
                f
                for f in flags
                if f["kind"] == kind and abs(f["severity"] - score) < 1e-3 and f["end"] > f["start"]
            ]
            assert match
            decoded = {_norm(tok.decode(ids[f["start"] : f["end"]])) for f in match}
            assert _norm(text[start:end]) in decoded, (text[start:end], decoded)
            # ... and the evidence quotes (word-widened; long quotes are cut) text containing it.
            if len(_norm(text[start:end])) < 70:
                assert any(_norm(text[start:end]) in f["evidence"] for f in match)
            n_spans += 1
    assert n_spans >= 3  # the test exercised real spans
    m = json.loads((out / "manifest.json").read_text())
    assert m["attributes"]["files"] == {"part/a.jsonl.gz": 3, "b.jsonl": 2}


def test_attributes_on_resume_and_names(tmp_path: Path, vs_dir: Path) -> None:
    assert output_name("x/c.csv.gz") == "x/c.jsonl.gz"
    assert output_name("c.parquet") == "c.jsonl" and output_name("d.ndjson.zst") == "d.ndjson.zst"
    assert output_name("notes.txt") == "notes.jsonl"
    f = _write(tmp_path / "in" / "c.jsonl", [{"text": t} for t in TEXTS])
    out = tmp_path / "scores"
    main(["score", str(f), "--vectors", str(vs_dir), "--out", str(out), "--shard-size", "2"])
    # A rerun with --attributes redoes the shards that lack attribute lines, then writes them.
    attrs = tmp_path / "attrs"
    main(
        [
            "score",
            str(f),
            "--vectors",
            str(vs_dir),
            "--out",
            str(out),
            "--shard-size",
            "2",
            "--attributes",
            str(attrs),
        ]
    )
    m = json.loads((out / "manifest.json").read_text())
    assert m["resumed_shards"] == 0 and m["attributes"]["files"] == {"c.jsonl": 3}
    assert len(_lines(attrs / "c.jsonl")) == 3
