"""Corpus readers: formats, ids, quarantine reasons."""

from __future__ import annotations

import gzip
import io
import json
import os
from pathlib import Path
from typing import Any

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
    (tmp_path / "sub" / "a.txt").write_text("ay")
    (tmp_path / "sub" / "notes.md").write_text("Markdown in a folder is documentation")
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


# -- inputs that must never lose a row silently (issue 11) and be read by format (issue 13) -----


def _rows(n: int, width: int = 40) -> bytes:
    return b"".join(
        json.dumps({"text": f"row {i} " + "w" * width}).encode() + b"\n" for i in range(n)
    )


def _kinds(items: list) -> list[str]:
    return [type(i).__name__ for i in items]


def test_gzip_with_zlib_error_mid_file_quarantines_the_rest(tmp_path: Path) -> None:
    import zlib

    second = bytearray(gzip.compress(_rows(500)))
    second[20:24] = bytes(4)  # zeroed deflate bytes in the second member: a zlib error
    blob = gzip.compress(_rows(2000)) + bytes(second)
    # the fault really is a zlib error, not a clean EOF
    with pytest.raises(zlib.error), gzip.open(io.BytesIO(blob)) as fh:
        fh.read()
    for name in ("c.jsonl.gz", "c.txt.gz"):
        p = tmp_path / name
        p.write_bytes(blob)
        items = list(iter_corpus([p]))  # must not raise
        bad = [i for i in items if isinstance(i, Bad)]
        assert len(bad) == 1, bad
        assert "corrupt compressed stream" in bad[0].reason
        assert bad[0].source == str(p) and bad[0].position
    jsonl_items = list(iter_corpus([tmp_path / "c.jsonl.gz"]))
    assert len(_docs(jsonl_items)) == 2000
    assert jsonl_items[-1].position == "line 2001"  # type: ignore[union-attr]


def test_truncated_zstd_is_detected(tmp_path: Path) -> None:
    zstandard = pytest.importorskip("zstandard")
    whole = zstandard.ZstdCompressor().compress(_rows(1200))
    p = tmp_path / "t.jsonl.zst"
    p.write_bytes(whole[: len(whole) // 2])
    items = list(iter_corpus([p]))
    assert isinstance(items[-1], Bad), _kinds(items)[-3:]
    assert "truncated" in items[-1].reason
    # a complete multi-frame file (concatenated frames, as `zstd` and pzstd write) is read whole
    two = tmp_path / "two.jsonl.zst"
    two.write_bytes(whole + zstandard.ZstdCompressor().compress(_rows(5)))
    assert len(_docs(list(iter_corpus([two])))) == 1205


def test_non_zstd_file_named_zst_is_one_quarantine_row(tmp_path: Path) -> None:
    pytest.importorskip("zstandard")
    p = tmp_path / "fake.jsonl.zst"
    p.write_bytes(_rows(3))
    (bad,) = list(iter_corpus([p]))
    assert isinstance(bad, Bad) and "corrupt compressed stream" in bad.reason


@pytest.mark.timeout(20)
def test_fifo_is_refused_not_read(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.jsonl"
    os.mkfifo(fifo)
    with pytest.raises(InputError, match="not a regular file"):
        list(iter_corpus([fifo]))
    (tmp_path / "ok.jsonl").write_bytes(_rows(2))
    items = list(iter_corpus([tmp_path]))  # inside a folder: a quarantine row, not a hang
    assert _kinds(items) == ["Doc", "Doc", "Bad"]
    assert items[2].source == str(fifo) and "not a regular file" in items[2].reason  # type: ignore[union-attr]


def test_dangling_link_in_folder_is_quarantined(tmp_path: Path) -> None:
    (tmp_path / "a.jsonl").write_bytes(_rows(1))
    (tmp_path / "b.jsonl").symlink_to(tmp_path / "gone.jsonl")
    items = list(iter_corpus([tmp_path]))
    assert _kinds(items) == ["Doc", "Bad"]
    assert "dangling" in items[1].reason and items[1].source.endswith("b.jsonl")  # type: ignore[union-attr]
    with pytest.raises(InputError, match="dangling"):
        list(iter_corpus([tmp_path / "b.jsonl"]))


def test_unreadable_subfolder_is_quarantined(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "a.jsonl").write_bytes(_rows(1))
    locked = tmp_path / "locked"
    locked.mkdir()
    (locked / "b.jsonl").write_bytes(_rows(1))
    real = os.scandir

    def scandir(path: Any = ".") -> Any:  # root ignores chmod 000, so simulate its effect
        if Path(path) == locked:
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)
    items = list(iter_corpus([tmp_path]))
    assert _kinds(items) == ["Doc", "Bad"]
    assert items[1].source == str(locked) and "unreadable folder" in items[1].reason  # type: ignore[union-attr]


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a chmod 000 folder")
def test_unreadable_subfolder_real_permissions(tmp_path: Path) -> None:  # pragma: no cover
    (tmp_path / "a.jsonl").write_bytes(_rows(1))
    locked = tmp_path / "locked"
    locked.mkdir()
    (locked / "b.jsonl").write_bytes(_rows(1))
    locked.chmod(0)
    try:
        assert _kinds(list(iter_corpus([tmp_path]))) == ["Doc", "Bad"]
    finally:
        locked.chmod(0o755)


def test_overlong_line_is_quarantined_while_streaming(tmp_path: Path) -> None:
    import tracemalloc

    opts = ReadOptions(max_chars=1000)  # line cap: 8 x max_chars bytes
    assert opts.line_cap == 8000
    p = tmp_path / "long.jsonl"
    with p.open("wb") as fh:
        fh.write(_rows(1))
        fh.write(b'{"text": "')
        for _ in range(64):  # a 4 MiB line, written in pieces
            fh.write(b"x" * 65536)
        fh.write(b'"}\n')
        fh.write(_rows(1))
    tracemalloc.start()
    items = list(iter_corpus([p], opts))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert _kinds(items) == ["Doc", "Bad", "Doc"]
    assert items[1].position == "line 2" and "8000 bytes" in items[1].reason  # type: ignore[union-attr]
    assert items[2].position == "line 3"
    assert peak < 1_000_000, peak  # the 4 MiB line was never held whole


def test_csv_and_tsv_are_read_by_their_format(tmp_path: Path) -> None:
    c = tmp_path / "a.csv"
    c.write_text('id,text,label\n1,"Hello, world",x\n2,"two\nlines",y\n3,,z\n')
    items = list(iter_corpus([c]))
    assert [d.text for d in _docs(items)] == ["Hello, world", "two\nlines"]
    assert isinstance(items[2], Bad) and items[2].position == "row 2"
    assert _docs(items)[0].position == "row 0"
    t = tmp_path / "b.tsv"
    t.write_text("body\tid\nfirst doc\tq1\nsecond doc\tq2\n")
    got = _docs(list(iter_corpus([t], ReadOptions(text_field="body", id_field="id"))))
    assert [(d.doc_id, d.text) for d in got] == [("q1", "first doc"), ("q2", "second doc")]
    with pytest.raises(InputError, match=r"a\.csv: no column 'body'.*id, text, label"):
        list(iter_corpus([c], ReadOptions(text_field="body")))


@pytest.mark.parametrize("name", ["book.xlsx", "paper.pdf", "data.feather", "x.jsonl.bz2"])
def test_formats_not_read_are_refused_by_name(tmp_path: Path, name: str) -> None:
    p = tmp_path / name
    p.write_bytes(b"PK\x03\x04 binary")
    with pytest.raises(InputError, match=rf"{name}.*not read"):
        list(iter_corpus([p]))


def test_folder_reads_only_data_files_and_lists_what_it_skipped(tmp_path: Path) -> None:
    from emocurate.corpus.readers import plan_corpus

    (tmp_path / "data.jsonl").write_bytes(_rows(2))
    (tmp_path / "PROVENANCE.md").write_text("# where this came from\n")
    (tmp_path / "README.txt").write_text("read me")
    (tmp_path / "manifest.json").write_text('{"stage": "x"}')
    (tmp_path / "image.png").write_bytes(b"\x89PNG")
    (tmp_path / "story.txt").write_text("A story.")
    plan = plan_corpus([tmp_path])
    assert [d.text for d in _docs(list(plan.items()))][2:] == ["A story."]
    skipped = {Path(s.path).name: s.reason for s in plan.skipped}
    assert set(skipped) == {"PROVENANCE.md", "README.txt", "manifest.json", "image.png"}
    assert all(skipped.values())
    md = tmp_path / "PROVENANCE.md"  # a Markdown file named on its own is still read
    assert [d.text for d in _docs(list(iter_corpus([md])))] == ["# where this came from\n"]


def test_missing_text_field_reason_names_fields_and_option(tmp_path: Path) -> None:
    p = tmp_path / "c.jsonl"
    p.write_text(json.dumps({"id": 1, "content": "hello there"}) + "\n")
    (bad,) = list(iter_corpus([p]))
    assert isinstance(bad, Bad)
    assert "missing text field 'text'" in bad.reason
    assert "fields: id, content" in bad.reason and "--text-field content" in bad.reason


def test_corrupt_parquet_row_group_names_the_file_and_keeps_the_count(tmp_path: Path) -> None:
    p = tmp_path / "c.parquet"
    texts = [f"document number {i} " + "z" * (i % 7) for i in range(300)]
    pq.write_table(
        pa.table({"text": texts}), p, row_group_size=100, compression="snappy", use_dictionary=False
    )
    meta = pq.ParquetFile(p).metadata
    col = meta.row_group(1).column(0)
    blob = bytearray(p.read_bytes())
    start = col.data_page_offset + 40
    blob[start : start + 200] = b"\xff" * 200
    p.write_bytes(bytes(blob))
    items = list(iter_corpus([p]))
    assert len(items) == 300  # rows in = scored + quarantined
    bad = [i for i in items if isinstance(i, Bad)]
    assert bad and all(b.source == str(p) for b in bad)
    assert all("row group 1" in b.reason for b in bad)
    assert len(_docs(items)) == 200


def test_plan_fingerprint_follows_content_not_paths(tmp_path: Path) -> None:
    from emocurate.corpus.readers import plan_corpus

    p = tmp_path / "c.jsonl"
    p.write_bytes(_rows(3))
    fp = plan_corpus([p]).content_fingerprint()
    p.write_bytes(_rows(3))  # same bytes, new mtime
    assert plan_corpus([p]).content_fingerprint() == fp
    p.write_bytes(_rows(3).replace(b"row 1", b"row 9"))  # same size, other content
    assert plan_corpus([p]).content_fingerprint() != fp


@pytest.mark.parametrize("name", ["a.jsonl", "a.csv", "a.txt", "a.parquet"])
def test_unreadable_file_in_folder_is_quarantined(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    import emocurate.corpus.readers as readers

    (tmp_path / "ok.jsonl").write_bytes(_rows(1))
    locked = tmp_path / name
    locked.write_bytes(b"x")
    real_open, real_path_open = readers._open_binary, Path.open

    def denied(p: Path, *a: Any, **k: Any) -> Any:  # root ignores chmod 000: simulate it
        if p == locked:
            raise PermissionError(13, "Permission denied", str(p))
        return real_open(p) if not a and not k else real_path_open(p, *a, **k)

    monkeypatch.setattr(readers, "_open_binary", denied)
    monkeypatch.setattr(Path, "open", denied)
    items = list(iter_corpus([tmp_path]))
    assert _kinds(items) == ["Bad", "Doc"]
    assert items[0].reason == "unreadable file: Permission denied"  # type: ignore[union-attr]


def test_bundled_sample_is_a_corpus_input_on_the_cli_too() -> None:
    """`emocurate score bundled:sample` reads the bundled files, as the pipeline's corpus does."""
    from emocurate.corpus import bundled_corpus
    from emocurate.corpus.readers import plan_corpus

    plan = plan_corpus(["bundled:sample"])
    files = sorted(str(u.path) for u in plan.units)
    assert files == sorted(str(p) for p in bundled_corpus()) and files
    assert not any("PROVENANCE" in f for f in files)
    assert sum(1 for _ in plan.items()) > 10
