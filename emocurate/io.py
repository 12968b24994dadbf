"""Stage output folders: ``data/*.parquet`` plus ``manifest.json`` (written and read through
the typed models of :mod:`emocurate.artifacts`: ``Manifest.save``/``Manifest.read``).

Every stage writes a folder that ``datasets.load_dataset("parquet", data_dir=DIR/"data")``
(or ``load_dataset(DIR)``) reads. Writes are atomic (temporary file, then rename) so a killed
process never leaves a half-written Parquet file or manifest behind. One process at a time
writes a folder (:func:`folder_lock`).
"""

from __future__ import annotations

import fcntl
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel, ValidationError

from emocurate import __version__
from emocurate.errors import InputError, OutputError, first_problem
from emocurate.records import from_table, to_table

M = TypeVar("M", bound=BaseModel)

MANIFEST = "manifest.json"
DATA_DIR = "data"


def ensure_dir(path: str | os.PathLike[str]) -> Path:
    """Create ``path`` (and parents) or raise a one-line :class:`OutputError`."""
    p = Path(path)
    try:
        p.mkdir(parents=True, exist_ok=True)
        probe = p / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise OutputError(f"cannot write to output folder {p}: {exc.strerror or exc}") from None
    return p


LOCK_FILE = ".emocurate.lock"
"""The lock file of an output folder (a dot file: no stage reader or Hub push picks it up)."""

_HELD: dict[str, int] = {}
"""Folders this process holds, by resolved path (a nested hold of the same folder is free:
``flock`` would otherwise refuse a second descriptor of the same process)."""


@contextmanager
def folder_lock(folder: str | os.PathLike[str]) -> Iterator[Path]:
    """Hold ``folder`` for this process while the block runs: one writer per output folder.

    An OS lock (``flock`` on ``folder/.emocurate.lock``): released on any exit, ``kill -9``
    included, so a lock is never stale once its process is gone. The holder's pid is written in
    the file so a refused run can name it.

    Raises:
        OutputError: another process holds the folder (one line naming its pid).
    """
    path = ensure_dir(folder)
    key = str(path.resolve())
    if key in _HELD:
        yield path
        return
    lock = path / LOCK_FILE
    try:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise OutputError(f"cannot create the lock file {lock}: {exc.strerror}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
        os.close(fd)
        raise OutputError(
            f"{path} is in use by another emocurate run (pid {holder}); wait for it to end "
            "or stop it, or choose another output folder"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
    _HELD[key] = fd
    try:
        yield path
    finally:
        del _HELD[key]
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _temp_beside(path: Path) -> tuple[int, str]:
    """A temporary file next to ``path`` with the permissions a plain ``open`` would give.

    ``mkstemp`` creates files readable by the owner only; outputs are meant to be shared
    (datasets, cards, reports), so the usual umask applies instead.
    """
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.fchmod(fd, 0o666 & ~_umask())
    return fd, tmp


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file and rename (all or nothing)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _temp_beside(path)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_table(path: Path, table: pa.Table) -> None:
    """Write one Parquet file atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _temp_beside(path)
    os.close(fd)
    try:
        pq.write_table(table, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_records(
    out_dir: str | os.PathLike[str],
    records: list[M],
    *,
    model: type[M] | None = None,
    name: str = "part-00000",
    subdir: str = DATA_DIR,
) -> Path:
    """Write records as ``out_dir/subdir/name.parquet`` and return the file path."""
    out = ensure_dir(out_dir)
    path = out / subdir / f"{name}.parquet"
    write_table(path, to_table(records, model))
    return path


def parquet_files(in_dir: str | os.PathLike[str], subdir: str = DATA_DIR) -> list[Path]:
    """The Parquet files of a stage folder, sorted; a one-line error when there are none."""
    root = Path(in_dir)
    if not root.exists():
        raise InputError(f"input folder not found: {root}")
    base = root / subdir if (root / subdir).is_dir() else root
    files = sorted(p for p in base.glob("*.parquet") if not p.name.startswith("."))
    if not files:
        raise InputError(f"no Parquet files in {base} (expected an emocurate stage folder)")
    return files


def read_table(in_dir: str | os.PathLike[str], subdir: str = DATA_DIR) -> pa.Table:
    """All Parquet files of a stage folder concatenated into one table."""
    tables = [pq.read_table(p) for p in parquet_files(in_dir, subdir)]
    return pa.concat_tables(tables, promote_options="default") if len(tables) > 1 else tables[0]


def read_records(in_dir: str | os.PathLike[str], model: type[M], subdir: str = DATA_DIR) -> list[M]:
    """Read a stage folder back into records, naming the file and row of the first bad row."""
    out: list[M] = []
    for path in parquet_files(in_dir, subdir):
        table = pq.read_table(path)
        missing = [
            f
            for f, info in model.model_fields.items()
            if info.is_required() and f not in table.column_names
        ]
        if missing:
            raise InputError(
                f"{path}: missing column(s) {', '.join(missing)} for {model.__name__} records"
            )
        try:
            out.extend(from_table(table, model))
        except ValidationError as exc:
            field, msg = first_problem(exc)
            raise InputError(
                f"{path}: invalid {model.__name__} row, field '{field}': {msg}"
            ) from None
    return out


def iter_jsonl(lines: Iterable[str]) -> Iterable[dict[str, Any]]:
    """Parse JSON lines, skipping blank lines (callers handle errors with positions)."""
    for line in lines:
        if line.strip():
            yield json.loads(line)


def write_configs_readme(
    out_dir: str | os.PathLike[str], configs: dict[str, str], *, title: str, note: str = ""
) -> Path | None:
    """Declare a stage folder's tables as ``datasets`` configs in a minimal ``README.md``.

    A folder with side tables (token traces, exclusions, summaries) beside ``data/`` would
    otherwise be read by ``load_dataset(DIR)`` as one table with mismatched columns. The first
    config is the default. An existing README (a user's or a dataset card) is left alone.
    """
    out = ensure_dir(out_dir)
    path = out / "README.md"
    if path.exists():
        return None
    lines = ["---", "configs:"]
    for name, pattern in configs.items():
        lines += [f"- config_name: {name}", f"  data_files: {pattern}"]
    lines += ["---", f"# {title}", ""]
    if note:
        lines += [note, ""]
    loads = ", ".join(f'`load_dataset(DIR, "{n}")`' for n in list(configs)[1:])
    lines += [
        f"Written by emocurate {__version__}. `load_dataset(DIR)` reads `{next(iter(configs.values()))}`"
        + (f"; {loads} read the others." if loads else "."),
        "",
    ]
    atomic_write_bytes(path, "\n".join(lines).encode("utf-8"))
    return path
