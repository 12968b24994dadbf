"""fit --records: labelled files (JSONL/CSV/Parquet, bundled:scenarios), label maps, bad rows."""

from __future__ import annotations

import csv
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from emocurate.errors import ConfigError, InputError
from emocurate.vectors.labelled import (
    BUNDLED_SCENARIOS,
    parse_label_map,
    read_labelled,
)
from emocurate.vectors.vectorset import VectorSet

from .test_cli import run  # the CLI exit-code helper of this folder

JOY = ["I won the prize and laughed all day.", "The sun came out and we danced.", "We cheered."]
GLOOM = ["The dog died and I cried.", "Nobody came to the funeral.", "I sat alone in the rain."]


def rows(n: int = 8) -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    for i in range(n):
        out.append({"id": f"j{i}", "sentence": f"{JOY[i % 3]} Day {i}.", "emo": "joy"})
        out.append({"id": f"g{i}", "sentence": f"{GLOOM[i % 3]} Day {i}.", "emo": "grief"})
    return out


def write_jsonl(path, items) -> None:
    path.write_text("\n".join(x if isinstance(x, str) else json.dumps(x) for x in items) + "\n")


def test_label_map_forms(tmp_path):
    assert parse_label_map("joy=happy, grief=sad,other=") == {
        "joy": "happy",
        "grief": "sad",
        "other": "",
    }
    f = tmp_path / "map.yaml"
    f.write_text("joy: happy\ngrief: sad\n")
    assert parse_label_map(str(f)) == {"joy": "happy", "grief": "sad"}
    with pytest.raises(ConfigError, match="not SOURCE=NAME"):
        parse_label_map("joy:happy")
    with pytest.raises(ConfigError, match="file not found"):
        parse_label_map(str(tmp_path / "missing.json"))


def test_bad_rows_are_counted_and_named(tmp_path):
    items: list[object] = rows(3)
    items += [
        "{not json",
        {"id": "e1", "sentence": "   ", "emo": "joy"},
        {"id": "e2", "sentence": 5, "emo": "joy"},
        {"id": "e3", "sentence": "No label here."},
        {"id": "j0", "sentence": "A duplicate id.", "emo": "joy"},
        {"id": "e4", "sentence": "Dropped by the map.", "emo": "other"},
    ]
    path = tmp_path / "data.jsonl"
    write_jsonl(path, items)
    got = read_labelled(
        path,
        text_field="sentence",
        label_field="emo",
        label_map={"joy": "happy", "grief": "sad", "other": ""},
    )
    assert len(got.records) == 6
    assert {r.emotion for r in got.records} == {"happy", "sad"}
    src = got.source
    assert (src.n_rows, src.n_used, src.n_excluded) == (12, 6, 6)
    assert sum(src.excluded.values()) == 6
    assert src.excluded_examples["invalid JSON"] == ["line 7"]
    assert any("label field 'emo'" in r for r in src.excluded)
    assert any("duplicate id" in r for r in src.excluded)
    assert any("mapped to nothing" in r for r in src.excluded)
    assert len(got.warnings) == 6 and all("left out" in w for w in got.warnings)


def test_whole_file_problems_are_one_line(tmp_path):
    path = tmp_path / "data.csv"
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["sentence", "emo"])
        w.writeheader()
        w.writerows({"sentence": r["sentence"], "emo": r["emo"]} for r in rows(2))
    with pytest.raises(InputError, match=r"data.csv: no row has the field 'text' \(--text-field\)"):
        read_labelled(path, label_field="emo")
    with pytest.raises(InputError, match="unknown records format"):
        read_labelled(tmp_path / "map.xlsx" if (tmp_path / "map.xlsx").touch() is None else "")
    with pytest.raises(InputError, match="file not found"):
        read_labelled(tmp_path / "nope.jsonl")
    got = read_labelled(path, text_field="sentence", label_field="emo")
    assert (
        got.source.format == "csv" and len(got.records) == 4 and got.records[0].id == "data-line2"
    )


def test_parquet_and_bundled(tmp_path):
    path = tmp_path / "d.parquet"
    pq.write_table(pa.Table.from_pylist(rows(2)), path)
    got = read_labelled(path, text_field="sentence", label_field="emo", licence="CC0")
    assert len(got.records) == 4 and got.source.licence == "CC0" and got.records[0].id == "j0"
    bundled = read_labelled(BUNDLED_SCENARIOS)
    assert len(bundled.records) == 1250 and bundled.source.licence.startswith("MIT")
    assert {r.emotion for r in bundled.records} == {
        "angry",
        "disgusted",
        "afraid",
        "happy",
        "sad",
        "surprised",
    }


def test_cli_fit_records_with_label_map_and_bad_rows(tmp_path, capsys):
    items: list[object] = rows(8) + ["{broken", {"id": "x", "sentence": "", "emo": "joy"}]
    path = tmp_path / "data.jsonl"
    write_jsonl(path, items)
    out = tmp_path / "vs"
    args = ["fit", "--records", str(path), "--text-field", "sentence", "--label-field", "emo"]
    args += ["--label-map", "joy=happy,grief=sad", "--model", "stories260K", "--layers", "3,4"]
    args += ["--eval-seeds", "1", "--data-licence", "CC-BY-4.0", "--out", str(out)]
    assert run(args) == 0
    cap = capsys.readouterr()
    assert "warning:" in cap.err and "left out 1 of 18 rows: invalid JSON (line 17)" in cap.err
    assert "2 rows left out" in cap.out
    vs = VectorSet.load(out)
    assert vs.names == ["happy", "sad"]
    ds = vs.meta.data_source
    assert ds is not None and ds.licence == "CC-BY-4.0" and ds.n_excluded == 2
    assert ds.n_used == 16 and vs.meta.skip == 0  # the whole (short) text is pooled
    assert run(["card", str(out)]) == 0
    card = (out / "README.md").read_text()
    assert "Licence of the texts: CC-BY-4.0" in card and "joy→happy" in card
    assert "2 of 18 rows were left out" in card


def test_cli_fit_needs_exactly_one_input(tmp_path, capsys):
    assert run(["fit", "--out", str(tmp_path / "o")]) == 2
    assert "exactly one" in capsys.readouterr().err
    write_jsonl(tmp_path / "d.jsonl", rows(2))
    args = ["fit", "--records", str(tmp_path / "d.jsonl"), "--out", str(tmp_path / "o")]
    assert run(args + ["--text-field", "body"]) == 2
    assert "no row has the field 'body'" in capsys.readouterr().err


def test_one_split_comparison_below_lexical_does_not_crash():
    from emocurate.vectors.evaluate import compare

    c = compare([0.5], [0.75], 16, 4)  # a negative single-split gain (was a math domain error)
    assert c.verdict == "not distinguishable" and c.diff_ci == (-0.25, -0.25)


def test_pipeline_fit_stage_reads_records_relative_to_the_pipeline(tmp_path):
    from emocurate.config import parse_pipeline
    from emocurate.pipeline import run_pipeline

    write_jsonl(tmp_path / "data.jsonl", rows(8))
    fit = {"model": "stories260K", "records": "data.jsonl", "text_field": "sentence"}
    fit |= {"label_field": "emo", "label_map": {"joy": "happy", "grief": "sad"}}
    fit |= {"layers": "3,4", "eval_seeds": 1, "data_licence": "CC0"}
    cfg = parse_pipeline({"out": str(tmp_path / "run"), "fit": fit, "cards": None})
    res = run_pipeline(cfg, base_dir=tmp_path, log=lambda m: None)
    assert [s.name for s in res.stages] == ["fit"]
    vs = VectorSet.load(tmp_path / "run" / "vectors")
    assert vs.names == ["happy", "sad"] and vs.meta.data_source is not None
    assert vs.meta.data_source.name == str(tmp_path / "data.jsonl")
    assert vs.meta.data_source.licence == "CC0"
    # an edited records file reruns the stage
    write_jsonl(tmp_path / "data.jsonl", rows(7))
    res = run_pipeline(cfg, base_dir=tmp_path, log=lambda m: None)
    assert not res.stages[0].skipped
