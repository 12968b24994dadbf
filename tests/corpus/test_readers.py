"""Corpus readers: formats, ids, quarantine reasons."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from emocurate.corpus.readers import Bad, Doc, ReadOptions, iter_corpus
from emocurate.errors import InputError


def _docs(items: list) -> list[Doc]:
    return [i for i in items if isinstance(i, Doc)]


def test_jsonl_plain_and_gz_and_ids_stable(tmp_path: Path) -> None:
    rows = [{"text": "one"}, {"text": "two"}]
    plain = tmp_path / "a.jsonl"
    plain.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    gz = tmp_path / "b.jsonl.gz"
    with gzip.open(gz, "wt") as fh:
        fh.write("\n".join(json.dumps(r) for r in rows))
    a = list(iter_corpus([plain, gz]))
    assert [d.text for d in _docs(a)] == ["one", "two", "one", "two"]
    assert len({d.doc_id for d in _docs(a)}) == 4  # ids include the file name
    again = list(iter_corpus([plain, gz]))
    assert [d.doc_id for d in _docs(again)] == [d.doc_id for d in _docs(a)]
    assert a[0].position == "line 1"


def test_id_field_and_text_field(tmp_path: Path) -> None:
    p = tmp_path / "a.jsonl"
    p.write_text(
        json.dumps({"key": 7, "body": "hello"})
        + "\n"
        + json.dumps({"body": "no id"})
        + "\n"
        + json.dumps({"key": 7, "body": "dup"})
        + "\n"
    )
    items = list(iter_corpus([p], ReadOptions(text_field="body", id_field="key")))
    assert isinstance(items[0], Doc) and items[0].doc_id == "7"
    assert isinstance(items[1], Bad) and "id field 'key'" in items[1].reason
    assert isinstance(items[2], Bad) and "duplicate id" in items[2].reason


def test_messages_list_rendered_as_turns(tmp_path: Path) -> None:
    p = tmp_path / "chat.jsonl"
    msgs = [
        {"role": "system", "content": "be nice"},
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"},
    ]
    p.write_text(json.dumps({"messages": msgs}) + "\n")
    (doc,) = list(iter_corpus([p]))
    assert isinstance(doc, Doc)
    assert doc.text == "Human: hi\n\nAssistant: hello"


def test_parquet_and_missing_column(tmp_path: Path) -> None:
    p = tmp_path / "x.parquet"
    pq.write_table(pa.table({"text": ["a", None, "c"], "n": [1, 2, 3]}), p)
    items = list(iter_corpus([p]))
    assert [type(i).__name__ for i in items] == ["Doc", "Bad", "Doc"]
    assert items[1].position == "row 1" and "null" in items[1].reason  # type: ignore[union-attr]
    with pytest.raises(InputError, match="no column 'body'"):
        list(iter_corpus([p], ReadOptions(text_field="body")))


def test_text_folder_recursive_sorted(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "b.txt").write_text("bee")
    (tmp_path / "sub" / "a.md").write_text("ay")
    (tmp_path / "ignored.bin").write_bytes(b"\x00\x01")
    (tmp_path / ".hidden.txt").write_text("hidden")
    docs = _docs(list(iter_corpus([tmp_path])))
    assert [d.text for d in docs] == ["bee", "ay"]


def test_hf_save_to_disk_and_streaming_local_dir(tmp_path: Path) -> None:
    import datasets

    ds = datasets.Dataset.from_dict({"text": ["x1", "x2", ""]})
    ds.save_to_disk(str(tmp_path / "saved"))
    items = list(iter_corpus([tmp_path / "saved"]))
    assert [i.text for i in _docs(items)] == ["x1", "x2"]
    assert isinstance(items[2], Bad) and items[2].reason == "empty text"

    data_dir = tmp_path / "pq"
    data_dir.mkdir()
    pq.write_table(pa.table({"text": ["s1", "s2"]}), data_dir / "train-00000.parquet")
    streamed = list(iter_corpus([f"hf:{data_dir}@train"]))
    assert [d.text for d in _docs(streamed)] == ["s1", "s2"]
    assert streamed[0].source.startswith("hf:")


def test_missing_inputs_are_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not found"):
        list(iter_corpus([tmp_path / "nope.jsonl"]))
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no readable files"):
        list(iter_corpus([tmp_path / "empty"]))


def test_zstd(tmp_path: Path) -> None:
    zstandard = pytest.importorskip("zstandard")
    p = tmp_path / "a.jsonl.zst"
    p.write_bytes(zstandard.ZstdCompressor().compress(b'{"text": "zz"}\n'))
    assert [d.text for d in _docs(list(iter_corpus([p])))] == ["zz"]


def test_generated_ids_do_not_depend_on_path_spelling(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sub = tmp_path / "sub"
    sub.mkdir()
    p = sub / "x.jsonl"
    p.write_text(json.dumps({"text": "one"}) + "\n" + json.dumps({"text": "two"}) + "\n")

    def ids(spec: str | Path) -> list[str]:
        return [d.doc_id for d in _docs(list(iter_corpus([spec])))]

    monkeypatch.chdir(sub)
    ref = ids("x.jsonl")
    assert len(set(ref)) == 2
    assert ids("./x.jsonl") == ref
    assert ids(str(p.resolve())) == ref
    assert ids("../sub/x.jsonl") == ref
    monkeypatch.chdir(tmp_path)
    assert ids("sub/x.jsonl") == ref
    assert ids("sub") == ref  # a file at the top of a folder input: same ids as on its own
    assert ids("./sub/") == ref
    # the source shown in quarantine rows is still the path as given
    assert _docs(list(iter_corpus(["./sub/x.jsonl"])))[0].source == "./sub/x.jsonl"


def test_same_file_twice_is_read_once_and_name_clashes_are_errors(tmp_path: Path) -> None:
    for d in ("a", "b"):
        (tmp_path / d).mkdir()
        (tmp_path / d / "x.jsonl").write_text(json.dumps({"text": d, "id": d}) + "\n")
    a = tmp_path / "a" / "x.jsonl"
    assert [
        d.text
        for d in _docs(list(iter_corpus([a, tmp_path / "a" / "." / "x.jsonl", tmp_path / "a"])))
    ] == ["a"]
    with pytest.raises(InputError, match="same generated document ids"):
        list(iter_corpus([a, tmp_path / "b" / "x.jsonl"]))
    both = _docs(list(iter_corpus([a, tmp_path / "b" / "x.jsonl"], ReadOptions(id_field="id"))))
    assert [d.doc_id for d in both] == ["a", "b"]


def test_utf8_bom_at_file_start_is_skipped(tmp_path: Path) -> None:
    rows = b'{"text": "first"}\n{"text": "second"}\n'
    p = tmp_path / "bom.jsonl"
    p.write_bytes(b"\xef\xbb\xbf" + rows)
    assert [d.text for d in _docs(list(iter_corpus([p])))] == ["first", "second"]
    arr = tmp_path / "bom.json"
    arr.write_bytes(b'\xef\xbb\xbf[{"text": "in array"}]')
    assert [d.text for d in _docs(list(iter_corpus([arr])))] == ["in array"]
    txt = tmp_path / "bom.txt"
    txt.write_bytes("\ufeffplain".encode())
    assert [d.text for d in _docs(list(iter_corpus([txt])))] == ["plain"]
    mid = tmp_path / "mid.jsonl"  # a BOM inside the file is still a broken row
    mid.write_bytes(rows + b'\xef\xbb\xbf{"text": "third"}\n')
    items = list(iter_corpus([mid]))
    assert [type(i).__name__ for i in items] == ["Doc", "Doc", "Bad"]
