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
* ``hf:NAME[@SPLIT]``: ``hf:NAME@SPLIT`` as given;
* ``bundled:sample``: the bundled demo corpus files (``emocurate/data/corpus/*.jsonl``), each
  keyed by its file name, exactly as the pipeline's ``score: corpus: [bundled:sample]`` reads them.

Two different files with the same id key (``a/x.jsonl`` and ``b/x.jsonl``) would get the same
ids, so that is a one-line error unless ``id_field`` is given. The same file reached twice (two
spellings, or a file also inside a folder input) is read once.

What is read, and what never is (see also ``docs/architecture.md``, "Corpus inputs"):

* A file named on its own is read by its format: JSON lines (``.jsonl``/``.ndjson``/``.json``),
  ``.csv``/``.tsv`` (a header row; ``text_field`` names the column), ``.parquet``, anything else
  as one plain-text document -- except formats that are known not to be text (``.xlsx``,
  ``.pdf``, ``.feather``, ``.bz2``, ...), which are refused by name rather than scored as bytes.
* A folder is walked recursively and only *data files* are read: ``.jsonl``, ``.ndjson``,
  ``.json``, ``.csv``, ``.tsv``, ``.txt``, ``.text`` (each optionally ``.gz``/``.zst``) and
  ``.parquet``. Hidden entries, Markdown, files named like documentation (README, LICENSE,
  PROVENANCE, CHANGELOG, manifest, ...) and every other extension are skipped and listed in
  :attr:`CorpusPlan.skipped` (the score manifest's ``skipped``).
* Non-regular files (a FIFO, a socket, a device) are never opened: refused when named, a
  quarantine row inside a folder. Dangling links and unreadable subfolders are quarantine rows.
* A JSON/CSV line longer than :attr:`ReadOptions.line_cap` (8 x ``max_chars`` bytes) is
  quarantined while streaming, without being held in memory whole.
* A decompression error (zlib, a bad gzip CRC, a truncated gzip or zstd stream, a file that is
  not zstd) becomes one quarantine row at the line where reading stopped; a Parquet row group
  that cannot be decoded quarantines each of its remaining rows (the count is in the footer).
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import os
import stat
import zlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import IO, Any

from emocurate.errors import InputError
from emocurate.fingerprint import hash_file
from emocurate.records import Turn, render_turns, stable_id

JSON_SUFFIXES = (".jsonl", ".ndjson", ".json")
TEXT_SUFFIXES = (".txt", ".md", ".text")
TABLE_SUFFIXES = {".csv": ",", ".tsv": "\t"}
COMPRESSED = (".gz", ".zst")
HF_PREFIX = "hf:"
BUNDLED_SAMPLE = "bundled:sample"
BOM = b"\xef\xbb\xbf"
# Read from folders: data extensions only (Markdown is documentation there; named on its own it is read).
FOLDER_SUFFIXES = (*JSON_SUFFIXES, ".csv", ".tsv", ".txt", ".text")
# File stems that are documentation or metadata next to data, never documents of a folder corpus.
DOC_STEMS = frozenset(
    {
        "readme",
        "license",
        "licence",
        "provenance",
        "notice",
        "changelog",
        "citation",
        "authors",
        "copying",
        "contributing",
        "manifest",
    }
)
# Formats that are not text: refused by name instead of being scored as bytes.
NOT_READ = {
    ".xlsx": "Excel",
    ".xls": "Excel",
    ".ods": "OpenDocument spreadsheet",
    ".docx": "Word",
    ".doc": "Word",
    ".pdf": "PDF",
    ".feather": "Arrow Feather",
    ".arrow": "Arrow IPC",
    ".avro": "Avro",
    ".orc": "ORC",
    ".pkl": "pickle",
    ".pickle": "pickle",
    ".npy": "NumPy",
    ".npz": "NumPy",
    ".h5": "HDF5",
    ".hdf5": "HDF5",
    ".sqlite": "SQLite",
    ".db": "database",
    ".zip": "zip",
    ".tar": "tar",
    ".tgz": "tar",
    ".7z": "7-Zip",
    ".rar": "RAR",
    ".bz2": "bzip2",
    ".xz": "xz",
    ".lz4": "lz4",
    ".png": "image",
    ".jpg": "image",
    ".jpeg": "image",
}
READ_HINT = "convert to JSONL, CSV/TSV, Parquet or plain text"
# What a broken compressed or plain stream raises while being read (zstandard's ZstdError is
# matched by name so the package stays optional).
STREAM_ERRORS: tuple[type[BaseException], ...] = (OSError, EOFError, zlib.error)
_CHUNK = 1 << 16
_OVERLONG = "\x00\ufffeemocurate-overlong-line\x00"
# Field names that usually hold the text, suggested first when ``text_field`` is missing.
TEXT_LIKE = (
    "content",
    "body",
    "document",
    "story",
    "passage",
    "article",
    "review",
    "sentence",
    "completion",
    "response",
    "prompt",
)


@dataclass
class Doc:
    """One document to score: the one type a document has from the reader to its row.

    The reader yields it, :class:`~emocurate.corpus.prepared.Prepared` carries it (with its
    tokens) through the model, and :meth:`~emocurate.corpus.rows.CorpusScore.of` builds the row
    from it and the analysis, so ``doc_id``, ``source`` and ``position`` are copied once, into
    the row.
    """

    doc_id: str
    text: str
    source: str = ""  # the input as given (empty for documents passed in as (id, text) pairs)
    position: str = ""  # where in the input: "line 3", "row 0", "item 2", "file"

    def record(self) -> dict[str, str]:
        """The fields as a plain dict (a Ray Data row); :meth:`from_record` reads it back."""
        return asdict(self)

    @classmethod
    def from_record(cls, rec: Mapping[str, Any]) -> Doc:
        """Inverse of :meth:`record` (extra keys, such as a Ray row's shard, are ignored)."""
        return cls(**{f.name: str(rec[f.name]) for f in fields(cls)})


DocLike = Doc | tuple[str, str]
"""What the in-memory scoring API (``Scorer.score``) takes: Docs or ``(doc_id, text)`` pairs."""


def as_docs(docs: Iterable[DocLike]) -> list[Doc]:
    """Docs as they are (the same objects) and ``(doc_id, text)`` pairs as Docs."""
    return [d if isinstance(d, Doc) else Doc(*d) for d in docs]


@dataclass
class Bad:
    """One input row that cannot be scored, with the reason and its source position."""

    source: str
    position: str
    reason: str
    doc_id: str = ""

    def record(self) -> dict[str, str]:
        """The quarantine line: the file, the row in it, why it was not scored, its id."""
        return asdict(self)


Item = Doc | Bad


@dataclass
class ReadOptions:
    """What to read from each row."""

    text_field: str = "text"
    id_field: str | None = None
    max_chars: int = 2_000_000

    @property
    def line_cap(self) -> int:
        """Longest JSON/CSV line read, in bytes: 8 x ``max_chars`` (room for escapes and fields)."""
        return 8 * self.max_chars


@dataclass
class Skipped:
    """A folder entry that was not read, and why (listed in the score manifest)."""

    path: str
    reason: str


@dataclass
class _Unit:
    """One thing to read: a file, a saved HF dataset folder, an ``hf:`` stream, or a bad entry."""

    kind: str  # "file" | "hf_disk" | "hf" | "bad"
    spec: str
    path: Path | None = None
    source: str = ""  # shown in quarantine rows: the path as the user gave it
    key: str = ""  # hashed into generated ids: independent of how the path is spelled
    reason: str = ""  # kind "bad": why the entry is quarantined
    position: str = "file"


@dataclass
class CorpusPlan:
    """What :func:`plan_corpus` found: the units to read, in order, and what it skipped."""

    units: list[_Unit]
    skipped: list[Skipped] = field(default_factory=list)
    opts: ReadOptions = field(default_factory=ReadOptions)

    def items(self) -> Iterator[Item]:
        """Every row of every unit; duplicate ``id_field`` ids are quarantined."""
        opts = self.opts
        seen: set[str] = set()  # generated ids cannot collide (keys are checked): given ids only
        for unit in self.units:
            for item in _iter_unit(unit, opts):
                if isinstance(item, Doc) and opts.id_field is not None:
                    if item.doc_id in seen:
                        yield Bad(
                            item.source,
                            item.position,
                            f"duplicate id '{item.doc_id}'",
                            item.doc_id,
                        )
                        continue
                    seen.add(item.doc_id)
                yield item

    def content_fingerprint(self) -> str:
        """A hash of what the units hold (sizes and SHA-256 of the bytes), not of their paths.

        An edited file changes it even at the same path, size and name; rewriting the same bytes
        (a new mtime, a copy) does not, so a resume is refused exactly when the rows may differ.
        ``hf:`` streams are hashed by their spec only (their content cannot be read twice).
        """
        h = hashlib.sha256()
        for u in self.units:
            h.update(f"{u.kind}\x1f{u.key}\x1f{u.reason}\x1e".encode())
            if u.kind == "file" and u.path is not None:
                hash_file(h, u.path)
            elif u.kind == "hf_disk" and u.path is not None:
                for f in sorted(x for x in u.path.rglob("*") if x.is_file()):
                    h.update(f.relative_to(u.path).as_posix().encode() + b"\x1f")
                    hash_file(h, f)
            elif u.kind == "hf":
                h.update(u.spec.encode())
        return h.hexdigest()[:16]


def plan_corpus(inputs: Iterable[str | Path], opts: ReadOptions | None = None) -> CorpusPlan:
    """Check every input and list what will be read; one-line :class:`InputError` if one cannot be."""
    opts = opts or ReadOptions()
    specs = list(dict.fromkeys(s for i in inputs for s in _expand(str(i))))  # each input once
    if not specs:
        raise InputError("no corpus inputs given")
    for spec in specs:
        _check_input(spec)
    units, skipped = _plan(specs, check_keys=opts.id_field is None)
    return CorpusPlan(units, skipped, opts)


def iter_corpus(inputs: Iterable[str | Path], opts: ReadOptions | None = None) -> Iterator[Item]:
    """Every row of every input, in a deterministic order; duplicate ``id_field`` ids are quarantined."""
    yield from plan_corpus(inputs, opts).items()


def _expand(spec: str) -> list[str]:
    """``bundled:sample`` is the bundled corpus files (not their PROVENANCE notes); else the spec."""
    if spec != BUNDLED_SAMPLE:
        return [spec]
    from emocurate.corpus.bundled import bundled_corpus

    return [str(p) for p in bundled_corpus()]


def _plan(specs: list[str], check_keys: bool) -> tuple[list[_Unit], list[Skipped]]:
    """What to read, in order, each file once, with its id key (see the module docstring)."""
    units: list[_Unit] = []
    skipped: list[Skipped] = []
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
            planned, skip = _walk(p)
            skipped += skip
        else:
            planned = [_Unit("file", spec, p, spec, name)]
        for u in planned:
            assert u.path is not None
            if u.kind == "bad":
                units.append(u)
                continue
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
    return units, skipped


def _file_type(mode: int) -> str:
    for test, name in (
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
    ):
        if test(mode):
            return name
    return "not a plain file"


def _check_input(spec: str | Path) -> None:
    """Fail fast, before any scoring, on inputs that cannot be read at all."""
    s = str(spec)
    if s.startswith(HF_PREFIX):
        return
    p = Path(s)
    if not p.exists():
        if p.is_symlink():
            raise InputError(f"{p}: dangling symbolic link (its target does not exist)")
        raise InputError(f"corpus input not found: {p}")
    if p.is_dir():
        if _is_hf_disk(p):
            return
        units, skipped = _walk(p)
        if not units:
            shown = ", ".join(Path(x.path).name for x in skipped[:5])
            raise InputError(
                f"{p}: no readable files (folders are read for .jsonl/.ndjson/.json/.csv/.tsv/.txt/"
                f".text, optionally .gz/.zst, and .parquet"
                + (f"; skipped {len(skipped)}: {shown}" if skipped else "")
                + ")"
            )
        return
    mode = p.stat().st_mode
    if not stat.S_ISREG(mode):
        raise InputError(f"{p}: not a regular file ({_file_type(mode)}); give a file or a folder")
    fmt = _not_read(p)
    if fmt:
        raise InputError(f"{p}: {fmt} files are not read ({READ_HINT})")


def _iter_unit(unit: _Unit, opts: ReadOptions) -> Iterator[Item]:
    if unit.kind == "hf":
        yield from _iter_hf_streaming(unit.spec, opts)
    elif unit.kind == "hf_disk":
        assert unit.path is not None
        yield from _iter_hf_disk(unit.path, opts, unit.key)
    elif unit.kind == "bad":
        yield Bad(unit.source, unit.position, unit.reason)
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


def _base_name(p: Path) -> str:
    """The lower-case file name without a .gz/.zst suffix."""
    name = p.name.lower()
    for c in COMPRESSED:
        if name.endswith(c):
            return name[: -len(c)]
    return name


def _kind(p: Path) -> str | None:
    name = _base_name(p)
    if name.endswith(JSON_SUFFIXES):
        return "json"
    if name.endswith(".parquet"):
        return "parquet"
    if name.endswith(tuple(TABLE_SUFFIXES)):
        return "table"
    if name.endswith(TEXT_SUFFIXES):
        return "text"
    return None


def _not_read(p: Path) -> str | None:
    """The name of a format that is not read, or None."""
    name = p.name.lower()
    if name.endswith((".parquet.gz", ".parquet.zst")):
        return "compressed Parquet (Parquet compresses inside the file)"
    return NOT_READ.get(Path(name).suffix)


def _folder_skip_reason(name: str) -> str | None:
    """Why a file inside a folder input is not read (None: it is a data file)."""
    lower = name.lower()
    if lower.split(".", 1)[0] in DOC_STEMS:
        return "documentation or metadata file (skipped by name)"
    fmt = _not_read(Path(lower))
    if fmt:
        return f"{fmt} files are not read"
    if _base_name(Path(lower)).endswith((".parquet", *FOLDER_SUFFIXES)):
        return None
    if _base_name(Path(lower)).endswith(".md"):
        return "Markdown is read only when named on its own"
    return "not a data file"


def _walk(root: Path) -> tuple[list[_Unit], list[Skipped]]:
    """The data files under a folder (sorted, recursively), quarantined entries, and skipped ones.

    Uses ``os.scandir`` so an unreadable subfolder or a dangling link becomes a quarantine row
    instead of vanishing (``Path.rglob`` skips both silently). Links to folders are followed
    once (a link cycle is not walked twice).
    """
    units: list[_Unit] = []
    skipped: list[Skipped] = []
    seen_dirs: set[str] = set()

    def visit(d: Path) -> None:
        real = os.path.realpath(d)
        if real in seen_dirs:
            return
        seen_dirs.add(real)
        try:
            with os.scandir(d) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            units.append(
                _Unit(
                    "bad",
                    str(d),
                    d,
                    str(d),
                    reason=f"unreadable folder: {exc.strerror or exc}",
                    position="folder",
                )
            )
            return
        for e in entries:
            path = d / e.name
            if e.name.startswith("."):
                skipped.append(Skipped(str(path), "hidden"))
                continue
            try:
                is_dir = e.is_dir()  # follows links
            except OSError:
                is_dir = False
            if is_dir:
                visit(path)
                continue
            why = _folder_skip_reason(e.name)
            if why:
                skipped.append(Skipped(str(path), why))
                continue
            key = path.relative_to(root).as_posix()
            try:
                mode = os.stat(path).st_mode
                bad = (
                    None
                    if stat.S_ISREG(mode)
                    else f"not a regular file ({_file_type(mode)}); not read"
                )
            except FileNotFoundError:
                bad = "dangling symbolic link (its target does not exist)"
            except OSError as exc:
                bad = f"unreadable: {exc.strerror}"
            if bad is not None:
                units.append(_Unit("bad", str(path), path, str(path), key, bad))
                continue
            units.append(_Unit("file", str(root), path, str(path), key))

    visit(root)
    return units, skipped


class _ZstdRaw(io.RawIOBase):
    """A zstd stream that raises ``EOFError`` when the input ends inside a frame.

    ``zstandard``'s ``stream_reader`` returns end-of-file silently on a truncated stream (a
    half-copied ``.zst`` would read as empty or short); this reader tracks whether the current
    frame finished. Concatenated frames (``zstd`` multi-frame output, pzstd) are read in turn.
    Input is fed in 16 KiB pieces so one read never expands a whole file at once.
    """

    def __init__(self, raw: IO[bytes]) -> None:
        import zstandard

        self._zstd = zstandard
        self._raw = raw
        self._dec = zstandard.ZstdDecompressor().decompressobj()
        self._pending = b""
        self._pos = 0  # read offset into _pending (slicing it on every read would copy)
        self._in_frame = False

    def readable(self) -> bool:
        return True

    def _feed(self, data: bytes) -> None:
        self._in_frame = True
        self._pending, self._pos = self._dec.decompress(data), 0

    def readinto(self, b: Any) -> int:
        while self._pos >= len(self._pending):
            if self._dec.eof:  # the frame ended; what follows starts a new one
                rest = self._dec.unused_data
                self._dec = self._zstd.ZstdDecompressor().decompressobj()
                self._in_frame = False
                if rest:
                    self._feed(rest)
                    continue
            chunk = self._raw.read(1 << 14)
            if not chunk:
                if self._in_frame:
                    raise EOFError("zstd stream ends inside a frame (truncated file)")
                return 0
            self._feed(chunk)
        n = min(len(b), len(self._pending) - self._pos)
        b[:n] = self._pending[self._pos : self._pos + n]
        self._pos += n
        return n

    def close(self) -> None:
        self._raw.close()
        super().close()


def _open_binary(p: Path) -> IO[bytes]:
    name = p.name.lower()
    if name.endswith(".gz"):
        return gzip.open(p, "rb")  # type: ignore[return-value]
    if name.endswith(".zst"):
        try:
            import zstandard  # noqa: F401
        except ImportError:
            raise InputError(
                f"{p}: reading .zst needs the 'zstandard' package (pip install zstandard)"
            ) from None
        return io.BufferedReader(_ZstdRaw(p.open("rb")), buffer_size=_CHUNK)
    return p.open("rb")


def _is_stream_error(exc: BaseException) -> bool:
    return isinstance(exc, STREAM_ERRORS) or type(exc).__name__ == "ZstdError"


def _stream_reason(exc: BaseException) -> str:
    if isinstance(exc, PermissionError | FileNotFoundError | IsADirectoryError):
        return f"unreadable file: {exc.strerror}"
    what = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return f"corrupt compressed stream or read error ({what}); the rest of the file is unreadable"


def _capped_lines(fh: IO[bytes], cap: int) -> Iterator[bytes | None]:
    """Lines of a binary stream; ``None`` stands for a line over ``cap`` bytes, skipped in pieces."""
    while True:
        line = fh.readline(cap + 1)
        if not line:
            return
        if len(line) > cap and not line.endswith(b"\n"):
            while True:  # skip the rest of the line without holding it
                piece = fh.readline(_CHUNK)
                if not piece or piece.endswith(b"\n"):
                    break
            yield None
        else:
            yield line


def _iter_file(p: Path, source: str, opts: ReadOptions, key: str | None = None) -> Iterator[Item]:
    """Rows of one file; ``key`` goes into generated ids (default: the file name)."""
    key = key if key is not None else Path(os.path.abspath(p)).name
    kind = _kind(p) or "text"
    if kind == "json":
        yield from _iter_jsonl(p, source, opts, key)
    elif kind == "parquet":
        yield from _iter_parquet(p, source, opts, key)
    elif kind == "table":
        yield from _iter_table(p, source, opts, key)
    else:
        yield from _iter_textfile(p, source, opts, key)


def _iter_textfile(p: Path, source: str, opts: ReadOptions, key: str) -> Iterator[Item]:
    """One document per plain-text file (a leading UTF-8 BOM is not part of the text)."""
    pos = "file"
    doc_id = stable_id(key, pos, prefix="d-")
    try:
        with _open_binary(p) as fh:
            data = fh.read(opts.max_chars * 4 + 1)
    except Exception as exc:
        if not _is_stream_error(exc):
            raise
        yield Bad(source, pos, _stream_reason(exc), doc_id)
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
    return None, missing_field_reason(row, opts.text_field)


def missing_field_reason(row: dict[str, Any], text_field: str) -> str:
    """``missing text field`` with the fields the row has and the ``--text-field`` to try."""
    keys = [str(k) for k in row]
    shown = ", ".join(keys[:8]) + (", ..." if len(keys) > 8 else "")
    texts = [k for k in keys if isinstance(row[k], str) and row[k].strip()]
    guess = next((k for k in TEXT_LIKE if k in texts), None)
    if guess is None and texts:
        guess = max(texts, key=lambda k: len(row[k]))
    hint = f"; use --text-field {guess}" if guess else ""
    return f"missing text field '{text_field}' (fields: {shown or 'none'}{hint})"


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
    skipped; one anywhere else is invalid JSON and quarantines that row. Lines over
    ``opts.line_cap`` bytes are quarantined without being read whole; a stream that breaks
    (decompression error, truncation) ends in one quarantine row at the line where it broke.
    """
    lineno = 0
    try:
        fh = _open_binary(p)
        with fh:
            head = fh.peek(64)[:64] if hasattr(fh, "peek") else b""
            if p.name.lower().endswith(".json") and head.removeprefix(BOM).lstrip().startswith(
                b"["
            ):
                yield from _iter_json_array(fh, source, opts, key)
                return
            for raw in _capped_lines(fh, opts.line_cap):
                lineno += 1
                pos = f"line {lineno}"
                if raw is None:
                    yield Bad(
                        source,
                        pos,
                        f"line longer than {opts.line_cap} bytes (8 x max_chars); not read",
                        stable_id(key, pos, prefix="d-"),
                    )
                    continue
                if not raw.strip():
                    continue
                item = _json_line_item(raw, lineno, source, opts, key)
                if item is not None:
                    yield item
    except Exception as exc:
        if not _is_stream_error(exc):
            raise
        pos = f"line {lineno + 1}" if lineno else "file"
        yield Bad(source, pos, _stream_reason(exc))


def _json_line_item(
    raw: bytes, lineno: int, source: str, opts: ReadOptions, key: str
) -> Item | None:
    """One JSON line as a row, or None for a line holding only a byte order mark (like a blank)."""
    pos = f"line {lineno}"
    try:
        line = raw.decode("utf-8-sig" if lineno == 1 else "utf-8")
    except UnicodeDecodeError as exc:
        return Bad(source, pos, f"not UTF-8 (byte {exc.start})", stable_id(key, pos, prefix="d-"))
    if not line.strip():  # a line holding only a BOM
        return None
    try:
        row = json.loads(line)
    except json.JSONDecodeError as exc:
        return Bad(
            source,
            pos,
            f"invalid JSON: {exc.msg} at column {exc.colno}",
            stable_id(key, pos, prefix="d-"),
        )
    except RecursionError:
        return Bad(source, pos, "invalid JSON: nested too deeply", stable_id(key, pos, prefix="d-"))
    return _row_item(row, source, pos, opts, key)


def _iter_json_array(fh: IO[bytes], source: str, opts: ReadOptions, key: str) -> Iterator[Item]:
    """A ``.json`` file holding one array; files over ``line_cap`` bytes are refused (use JSONL)."""
    data = fh.read(opts.line_cap + 1)
    if len(data) > opts.line_cap:
        yield Bad(
            source,
            "file",
            f"JSON array file over {opts.line_cap} bytes is not read whole; convert it to JSON lines",
        )
        return
    try:
        rows = json.loads(data.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        yield Bad(source, "file", f"invalid JSON array: {str(exc) or type(exc).__name__}")
        return
    if not isinstance(rows, list):
        yield Bad(source, "file", "JSON file does not hold an array of objects")
        return
    for i, row in enumerate(rows):
        yield _row_item(row, source, f"item {i}", opts, key)


def _text_lines(fh: IO[bytes], cap: int) -> Iterator[str]:
    """Decoded lines for the CSV parser; a line over ``cap`` bytes becomes a marker line."""
    first = True
    for raw in _capped_lines(fh, cap):
        if raw is None:
            yield _OVERLONG + "\n"
            continue
        if first:
            raw = raw.removeprefix(BOM)
            first = False
        yield raw.decode("utf-8", errors="surrogateescape")  # bad bytes: that row is quarantined


def _iter_table(p: Path, source: str, opts: ReadOptions, key: str) -> Iterator[Item]:
    """CSV or TSV with a header row; ``text_field`` (and ``id_field``) name columns.

    Rows are numbered from 0 after the header (``row 0``), as in Parquet. A row whose field
    count differs from the header's, or that holds a line over ``line_cap`` bytes, is quarantined.
    """
    delim = TABLE_SUFFIXES[Path(_base_name(p)).suffix]
    csv.field_size_limit(max(csv.field_size_limit(), opts.line_cap))
    row_no = 0
    try:
        with _open_binary(p) as fh:
            reader = csv.reader(_text_lines(fh, opts.line_cap), delimiter=delim)
            header: list[str] | None = None
            while True:
                try:
                    rec = next(reader, None)
                except csv.Error as exc:
                    pos = f"row {row_no}"
                    yield Bad(source, pos, f"invalid CSV: {exc}", stable_id(key, pos, prefix="d-"))
                    row_no += 1
                    continue
                if rec is None:
                    return
                if not rec:
                    continue  # a blank line
                if header is None:
                    header = rec
                    _check_columns(p, header, opts)
                    continue
                pos = f"row {row_no}"
                row_no += 1
                if any(_OVERLONG in v for v in rec):
                    yield Bad(
                        source,
                        pos,
                        f"line longer than {opts.line_cap} bytes (8 x max_chars); not read",
                        stable_id(key, pos, prefix="d-"),
                    )
                elif len(rec) != len(header):
                    yield Bad(
                        source,
                        pos,
                        f"row has {len(rec)} fields, the header has {len(header)}",
                        stable_id(key, pos, prefix="d-"),
                    )
                else:
                    yield _row_item(dict(zip(header, rec, strict=True)), source, pos, opts, key)
    except Exception as exc:
        if not _is_stream_error(exc):
            raise
        yield Bad(source, f"row {row_no}", _stream_reason(exc))


def _check_columns(p: Path, cols: list[str], opts: ReadOptions) -> None:
    """One-line error when a table lacks the text (or id) column, with a did-you-mean."""
    import difflib

    shown = ", ".join(cols[:12])
    if opts.text_field not in cols and not {"messages", "turns"} & set(cols):
        close = difflib.get_close_matches(opts.text_field, cols, n=1)
        guess = close[0] if close else next((c for c in TEXT_LIKE if c in cols), None)
        hint = f"; did you mean --text-field {guess}?" if guess else "; use --text-field"
        raise InputError(f"{p}: no column '{opts.text_field}' (columns: {shown}){hint}")
    if opts.id_field and opts.id_field not in cols:
        raise InputError(f"{p}: no id column '{opts.id_field}' (columns: {shown})")


def _iter_parquet(p: Path, source: str, opts: ReadOptions, key: str) -> Iterator[Item]:
    """Parquet, row group by row group; a row group that cannot be decoded quarantines its rows."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        fh = p.open("rb")
    except OSError as exc:
        yield Bad(source, "file", f"unreadable file: {exc.strerror}")
        return
    with fh:
        try:
            pf = pq.ParquetFile(fh)
        except (OSError, pa.ArrowException) as exc:
            raise InputError(
                f"{p}: not a readable Parquet file ({str(exc).splitlines()[0]})"
            ) from None
        cols = pf.schema_arrow.names
        _check_columns(p, cols, opts)
        wanted = [
            c for c in (opts.text_field, opts.id_field, "messages", "turns") if c and c in cols
        ]
        row_no = 0
        for rg in range(pf.num_row_groups):
            n_rows = pf.metadata.row_group(rg).num_rows
            done = 0
            try:
                for batch in pf.iter_batches(batch_size=512, columns=wanted, row_groups=[rg]):
                    for row in batch.to_pylist():
                        yield _row_item(row, source, f"row {row_no}", opts, key)
                        row_no += 1
                        done += 1
            except (OSError, pa.ArrowException) as exc:
                why = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                for _ in range(n_rows - done):  # the footer says how many rows were lost
                    pos = f"row {row_no}"
                    yield Bad(
                        source,
                        pos,
                        f"unreadable Parquet data in row group {rg} ({why})",
                        stable_id(key, pos, prefix="d-"),
                    )
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
