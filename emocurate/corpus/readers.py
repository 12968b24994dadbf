"""Corpus readers: JSONL (plain, .gz, .zst), Parquet, text files and folders, HF datasets.

Every reader is a generator of :class:`Doc` (a row to score) or :class:`Bad` (a row to
quarantine, with the reason and where it came from), so one malformed row never stops a run and
"rows in = rows scored + rows quarantined" holds by construction. Problems with a whole input
(a path that does not exist, a folder with nothing readable, a Parquet file without the text
column) raise one-line :class:`~emocurate.errors.InputError`\\ s instead.

Document ids come from ``id_field`` when given, else they are generated (``d-`` + a hash) from
an *id key* and the row position (``line 3``, ``row 0``, ``item 2``, ``file``). The id key does
not depend on how the path is spelled, so ``x.jsonl``, ``./x.jsonl`` and ``/abs/x.jsonl`` (or a
different working directory) give the same ids, and ``curate --corpus`` finds the documents
that ``score`` saw:

* a file input: its file name (``x.jsonl``);
* a file inside a folder input: its path relative to that folder (``sub/x.jsonl``), so a file
  at the top of a folder gets the same ids as when given on its own;
* a saved HF dataset folder: the folder's name (plus ``[split]`` for a DatasetDict);
* ``hf:NAME[@SPLIT]``: ``hf:NAME@SPLIT`` as given.

Two different files with the same id key (``a/x.jsonl`` and ``b/x.jsonl``) would get the same
ids, so that is a one-line error unless ``id_field`` is given. The same file reached twice (two
spellings, or a file also inside a folder input) is read once.
"""

from __future__ import annotations

import gzip
import io
import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from emocurate.errors import InputError
from emocurate.records import Turn, render_turns, stable_id

JSON_SUFFIXES = (".jsonl", ".ndjson", ".json")
TEXT_SUFFIXES = (".txt", ".md", ".text")
COMPRESSED = (".gz", ".zst")
HF_PREFIX = "hf:"
BOM = b"\xef\xbb\xbf"


@dataclass
class Doc:
    """One document to score."""

    doc_id: str
    text: str
    source: str
    position: str


@dataclass
class Bad:
    """One input row that cannot be scored, with the reason and its source position."""

    source: str
    position: str
    reason: str
    doc_id: str = ""


Item = Doc | Bad


@dataclass
class ReadOptions:
    """What to read from each row."""

    text_field: str = "text"
    id_field: str | None = None
    max_chars: int = 2_000_000


@dataclass
class _Unit:
    """One thing to read: a file, a saved HF dataset folder, or an ``hf:`` stream."""

    kind: str  # "file" | "hf_disk" | "hf"
    spec: str
    path: Path | None = None
    source: str = ""  # shown in quarantine rows: the path as the user gave it
    key: str = ""  # hashed into generated ids: independent of how the path is spelled


def iter_corpus(inputs: Iterable[str | Path], opts: ReadOptions | None = None) -> Iterator[Item]:
    """Every row of every input, in a deterministic order; duplicate ``id_field`` ids are quarantined."""
    opts = opts or ReadOptions()
    specs = list(dict.fromkeys(str(i) for i in inputs))  # the same input twice is read once
    if not specs:
        raise InputError("no corpus inputs given")
    for spec in specs:
        _check_input(spec)
    units = _plan(specs, check_keys=opts.id_field is None)
    seen: set[str] = set()  # generated ids cannot collide (keys are checked): track given ids only
    for unit in units:
        for item in _iter_unit(unit, opts):
            if isinstance(item, Doc) and opts.id_field is not None:
                if item.doc_id in seen:
                    yield Bad(
                        item.source, item.position, f"duplicate id '{item.doc_id}'", item.doc_id
                    )
                    continue
                seen.add(item.doc_id)
            yield item


def _plan(specs: list[str], check_keys: bool) -> list[_Unit]:
    """What to read, in order, each file once, with its id key (see the module docstring)."""
    units: list[_Unit] = []
    done: set[Path] = set()
    owner: dict[str, str] = {}
    for spec in specs:
        if spec.startswith(HF_PREFIX):
            units.append(_Unit("hf", spec))
            continue
        p = Path(spec)
        name = Path(os.path.abspath(p)).name  # normalised, but a symlink keeps its own name
        if p.is_dir() and _is_hf_disk(p):
            planned = [_Unit("hf_disk", spec, p, spec, name)]
        elif p.is_dir():
            planned = [
                _Unit("file", spec, f, str(f), f.relative_to(p).as_posix()) for f in _dir_files(p)
            ]
        else:
            planned = [_Unit("file", spec, p, spec, name)]
        for u in planned:
            assert u.path is not None
            r = u.path.resolve()
            if r in done:
                continue
            done.add(r)
            if check_keys and u.key in owner:
                raise InputError(
                    f"{owner[u.key]} and {u.source} would get the same generated document ids (ids come from "
                    f"the file name '{u.key}' and the row position); pass --id-field or rename one"
                )
            owner[u.key] = u.source
            units.append(u)
    return units


def _check_input(spec: str | Path) -> None:
    """Fail fast, before any scoring, on inputs that cannot be read at all."""
    s = str(spec)
    if s.startswith(HF_PREFIX):
        return
    p = Path(s)
    if not p.exists():
        raise InputError(f"corpus input not found: {p}")
    if p.is_dir() and not _is_hf_disk(p) and not _dir_files(p):
        raise InputError(
            f"{p}: no readable files (expected .jsonl/.json/.parquet/.txt/.md, optionally .gz/.zst)"
        )


def _iter_unit(unit: _Unit, opts: ReadOptions) -> Iterator[Item]:
    if unit.kind == "hf":
        yield from _iter_hf_streaming(unit.spec, opts)
    elif unit.kind == "hf_disk":
        assert unit.path is not None
        yield from _iter_hf_disk(unit.path, opts, unit.key)
    else:
        assert unit.path is not None
        yield from _iter_file(unit.path, unit.source, opts, unit.key)


def _is_hf_disk(p: Path) -> bool:
    """A ``datasets.save_to_disk`` folder (Dataset or DatasetDict)."""
    return (
        (p / "dataset_info.json").exists()
        or (p / "dataset_dict.json").exists()
        or (p / "state.json").exists()
    )


def _kind(p: Path) -> str | None:
    name = p.name.lower()
    for c in COMPRESSED:
        if name.endswith(c):
            name = name[: -len(c)]
            break
    if name.endswith(JSON_SUFFIXES):
        return "json"
    if name.endswith(".parquet"):
        return "parquet"
    if name.endswith(TEXT_SUFFIXES):
        return "text"
    return None


def _dir_files(p: Path) -> list[Path]:
    """Readable files under a folder (recursively, hidden files skipped), sorted."""
    return sorted(
        f
        for f in p.rglob("*")
        if f.is_file()
        and not any(part.startswith(".") for part in f.relative_to(p).parts)
        and _kind(f) is not None
    )


def _open_binary(p: Path) -> IO[bytes]:
    name = p.name.lower()
    if name.endswith(".gz"):
        return gzip.open(p, "rb")  # type: ignore[return-value]
    if name.endswith(".zst"):
        try:
            import zstandard
        except ImportError:
            raise InputError(
                f"{p}: reading .zst needs the 'zstandard' package (pip install zstandard)"
            ) from None
        raw = p.open("rb")
        return io.BufferedReader(zstandard.ZstdDecompressor().stream_reader(raw, closefd=True))
    return p.open("rb")


def _iter_file(p: Path, source: str, opts: ReadOptions, key: str | None = None) -> Iterator[Item]:
    """Rows of one file; ``key`` goes into generated ids (default: the file name)."""
    key = key if key is not None else Path(os.path.abspath(p)).name
    kind = _kind(p) or "text"
    if kind == "json":
        yield from _iter_jsonl(p, source, opts, key)
    elif kind == "parquet":
        yield from _iter_parquet(p, source, opts, key)
    else:
        yield from _iter_textfile(p, source, opts, key)


def _iter_textfile(p: Path, source: str, opts: ReadOptions, key: str) -> Iterator[Item]:
    """One document per plain-text file (a leading UTF-8 BOM is not part of the text)."""
    pos = "file"
    doc_id = stable_id(key, pos, prefix="d-")
    try:
        with _open_binary(p) as fh:
            data = fh.read(opts.max_chars * 4 + 1)
    except (OSError, EOFError) as exc:
        yield Bad(source, pos, f"unreadable file: {exc}", doc_id)
        return
    if len(data) > opts.max_chars * 4:
        yield Bad(
            source,
            pos,
            f"document too long (> {opts.max_chars * 4} bytes; max_chars {opts.max_chars})",
            doc_id,
        )
        return
    if b"\x00" in data:
        yield Bad(source, pos, "binary content (NUL bytes), not text", doc_id)
        return
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        yield Bad(source, pos, f"not UTF-8 (byte {exc.start})", doc_id)
        return
    yield _check_text(text, doc_id, source, pos, opts)


def _check_text(text: Any, doc_id: str, source: str, pos: str, opts: ReadOptions) -> Item:
    if not isinstance(text, str):
        kind = "null" if text is None else type(text).__name__
        return Bad(source, pos, f"text field '{opts.text_field}' is {kind}, not a string", doc_id)
    if not text.strip():
        return Bad(source, pos, "empty text", doc_id)
    if "\x00" in text:
        return Bad(source, pos, "binary content (NUL characters), not text", doc_id)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return Bad(source, pos, "invalid Unicode (lone surrogate escape)", doc_id)
    if len(text) > opts.max_chars:
        return Bad(
            source,
            pos,
            f"document too long ({len(text)} chars > max_chars {opts.max_chars})",
            doc_id,
        )
    return Doc(doc_id, text, source, pos)


def row_text(row: dict[str, Any], opts: ReadOptions) -> tuple[Any, str | None]:
    """The text of a row: ``text_field``, or a chat ``messages``/``turns`` list rendered as turns.

    Returns ``(text, error)``; ``error`` names what is missing.
    """
    if opts.text_field in row:
        return row[opts.text_field], None
    for key in ("messages", "turns"):
        msgs = row.get(key)
        if isinstance(msgs, list) and msgs:
            turns = []
            for m in msgs:
                if not isinstance(m, dict):
                    return None, f"'{key}' items must be objects"
                role = str(m.get("role", m.get("speaker", ""))).lower()
                content = m.get("content", m.get("text"))
                if not isinstance(content, str):
                    return None, f"'{key}' item without string content"
                if role == "system":
                    continue
                if role in ("assistant", "model", "bot", "gpt"):
                    turns.append(Turn(speaker="assistant", text=content))
                else:
                    turns.append(Turn(speaker="human", text=content))
            return render_turns(turns), None
    return None, f"missing text field '{opts.text_field}'"


def _row_item(row: Any, source: str, pos: str, opts: ReadOptions, key: str) -> Item:
    gen_id = stable_id(key, pos, prefix="d-")
    if not isinstance(row, dict):
        return Bad(source, pos, f"row is a JSON {type(row).__name__}, not an object", gen_id)
    doc_id = gen_id
    if opts.id_field is not None:
        raw = row.get(opts.id_field)
        if (
            raw is None
            or isinstance(raw, dict | list)
            or (isinstance(raw, str) and not raw.strip())
        ):
            return Bad(source, pos, f"missing or invalid id field '{opts.id_field}'", gen_id)
        doc_id = str(raw)
    text, err = row_text(row, opts)
    if err:
        return Bad(source, pos, err, doc_id)
    return _check_text(text, doc_id, source, pos, opts)


def _iter_jsonl(p: Path, source: str, opts: ReadOptions, key: str) -> Iterator[Item]:
    """JSON lines (a ``.json`` file holding one array is read as its elements).

    A UTF-8 byte order mark at the start of the file (common in files saved by Windows tools) is
    skipped; one anywhere else is invalid JSON and quarantines that row.
    """
    try:
        fh = _open_binary(p)
        head = fh.peek(64)[:64] if hasattr(fh, "peek") else b""
    except OSError as exc:
        yield Bad(source, "file", f"unreadable file: {exc}")
        return
    with fh:
        if p.name.lower().endswith(".json") and head.removeprefix(BOM).lstrip().startswith(b"["):
            try:
                rows = json.loads(fh.read().decode("utf-8-sig"))
            except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
                yield Bad(source, "file", f"invalid JSON array: {str(exc) or type(exc).__name__}")
                return
            if not isinstance(rows, list):
                yield Bad(source, "file", "JSON file does not hold an array of objects")
                return
            for i, row in enumerate(rows):
                yield _row_item(row, source, f"item {i}", opts, key)
            return
        lineno = 0
        try:
            for raw in fh:
                lineno += 1
                pos = f"line {lineno}"
                if not raw.strip():
                    continue
                try:
                    line = raw.decode("utf-8-sig" if lineno == 1 else "utf-8")
                except UnicodeDecodeError as exc:
                    yield Bad(
                        source,
                        pos,
                        f"not UTF-8 (byte {exc.start})",
                        stable_id(key, pos, prefix="d-"),
                    )
                    continue
                if not line.strip():  # a line holding only a BOM
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    yield Bad(
                        source,
                        pos,
                        f"invalid JSON: {exc.msg} at column {exc.colno}",
                        stable_id(key, pos, prefix="d-"),
                    )
                    continue
                except RecursionError:
                    yield Bad(
                        source,
                        pos,
                        "invalid JSON: nested too deeply",
                        stable_id(key, pos, prefix="d-"),
                    )
                    continue
                yield _row_item(row, source, pos, opts, key)
        except (OSError, EOFError) as exc:  # truncated or corrupt gzip/zstd stream
            yield Bad(source, f"line {lineno + 1}", f"corrupt compressed stream: {exc}")
        except Exception as exc:  # zstandard raises its own ZstdError
            if type(exc).__name__ != "ZstdError":
                raise
            yield Bad(source, f"line {lineno + 1}", f"corrupt compressed stream: {exc}")


def _iter_parquet(p: Path, source: str, opts: ReadOptions, key: str) -> Iterator[Item]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(p)
    except (OSError, pa.ArrowException) as exc:
        raise InputError(f"{p}: not a readable Parquet file ({str(exc).splitlines()[0]})") from None
    cols = pf.schema_arrow.names
    wanted = [c for c in (opts.text_field, opts.id_field, "messages", "turns") if c and c in cols]
    if opts.text_field not in cols and not {"messages", "turns"} & set(cols):
        raise InputError(
            f"{p}: no column '{opts.text_field}' (columns: {', '.join(cols[:12])}); use --text-field"
        )
    if opts.id_field and opts.id_field not in cols:
        raise InputError(f"{p}: no id column '{opts.id_field}' (columns: {', '.join(cols[:12])})")
    row_no = 0
    for batch in pf.iter_batches(batch_size=512, columns=wanted):
        for row in batch.to_pylist():
            yield _row_item(row, source, f"row {row_no}", opts, key)
            row_no += 1


def _iter_rows(rows: Iterable[Any], source: str, opts: ReadOptions, key: str) -> Iterator[Item]:
    for i, row in enumerate(rows):
        yield _row_item(row, source, f"row {i}", opts, key)


def _iter_hf_disk(p: Path, opts: ReadOptions, key: str) -> Iterator[Item]:
    """A ``save_to_disk`` folder; a DatasetDict is read split by split (sorted)."""
    import datasets

    try:
        ds = datasets.load_from_disk(str(p))
    except Exception as exc:
        raise InputError(
            f"{p}: cannot load the saved dataset ({str(exc).splitlines()[0]})"
        ) from None
    if isinstance(ds, datasets.DatasetDict):
        for split in sorted(ds):
            yield from _iter_rows(ds[split], f"{p}[{split}]", opts, f"{key}[{split}]")
    else:
        yield from _iter_rows(ds, str(p), opts, key)


def _iter_hf_streaming(spec: str, opts: ReadOptions) -> Iterator[Item]:
    """``hf:PATH_OR_NAME[@SPLIT]`` read with ``load_dataset(..., streaming=True)``."""
    import datasets

    target = spec[len(HF_PREFIX) :]
    split = "train"
    if "@" in target:
        target, split = target.rsplit("@", 1)
    try:
        ds = datasets.load_dataset(target, split=split, streaming=True)
    except Exception as exc:
        raise InputError(f"{spec}: cannot open the dataset ({str(exc).splitlines()[0]})") from None
    source = f"{HF_PREFIX}{target}@{split}"
    yield from _iter_rows(ds, source, opts, source)
