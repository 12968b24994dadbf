"""Reading any kind of record from a stage folder, with one-line errors for bad input.

The kind of each row comes from its ``kind`` column (``story``, ``dialogue``, ``neutral``,
``regulation``); a folder written without that column is recognised by its columns. A missing
column or a row that does not fit its record type stops the run with an
:class:`~emocurate.errors.InputError` naming the file, row and field; problems a curator
would rather see as rejected rows (empty text, unknown emotion, repeated id) are reported by
:func:`input_verdicts` instead.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq
from pydantic import ValidationError

from emocurate.errors import InputError, UnknownEmotionError, first_problem
from emocurate.io import parquet_files
from emocurate.records import RECORD_TYPES, AnyRecord, Story, Verdict
from emocurate.taxonomy import Taxonomy
from emocurate.validators.base import check_text, keep, record_emotions, reject


@dataclass(frozen=True)
class Source:
    """Where one record came from (file and 0-based row)."""

    file: str
    row: int


def infer_kind(columns: Sequence[str]) -> str | None:
    """The record kind a table without a ``kind`` column most likely holds."""
    cols = set(columns)
    if "setup" in cols:
        return "regulation"
    if "turns" in cols:
        return "dialogue" if "human_emotion" in cols else "neutral"
    if "text" in cols and "emotion" in cols:
        return "story"
    return None


def load_records(in_dir: str | os.PathLike[str]) -> tuple[list[AnyRecord], list[Source]]:
    """All records of a stage folder (``data/*.parquet``, or ``*.parquet`` directly in it)."""
    records: list[AnyRecord] = []
    sources: list[Source] = []
    for path in parquet_files(in_dir):
        try:
            table = pq.read_table(path)
        except Exception as exc:  # pyarrow raises several types for unreadable files
            raise InputError(
                f"{path}: not a readable Parquet file ({str(exc).splitlines()[0]})"
            ) from None
        cols = table.column_names
        fallback = infer_kind(cols)
        if "kind" not in cols and fallback is None:
            raise InputError(
                f"{path}: no 'kind' column and the columns {sorted(cols)} fit no "
                "record kind (story, dialogue, neutral, regulation)"
            )
        kinds = table.column("kind").to_pylist() if "kind" in cols else [fallback] * table.num_rows
        checked: set[str] = set()
        for row_idx, row in enumerate(table.to_pylist()):
            kind = kinds[row_idx] or fallback
            model = RECORD_TYPES.get(str(kind))
            if model is None:
                raise InputError(
                    f"{path}: row {row_idx}: unknown kind '{kind}' "
                    f"(expected one of {', '.join(RECORD_TYPES)})"
                )
            if kind not in checked:
                missing = [
                    f
                    for f, info in model.model_fields.items()
                    if info.is_required() and f not in cols
                ]
                if missing:
                    raise InputError(
                        f"{path}: missing column(s) {', '.join(missing)} for {kind} records"
                    )
                checked.add(str(kind))
            data = {k: v for k, v in row.items() if k in model.model_fields}
            data["kind"] = kind
            try:
                rec = model.model_validate(data)
            except ValidationError as exc:
                field, msg = first_problem(exc)
                raise InputError(
                    f"{path}: row {row_idx}: invalid {kind} record, field '{field}': {msg}"
                ) from None
            records.append(rec)  # type: ignore[arg-type]
            sources.append(Source(str(Path(path)), row_idx))
    return records, sources


def input_verdicts(records: Sequence[AnyRecord], taxonomy: Taxonomy) -> list[Verdict]:
    """The ``input`` step: reject rows with no text, an unknown emotion, or a repeated id."""
    out: list[Verdict] = []
    seen: set[str] = set()
    for r in records:
        problem = ""
        if not r.id.strip():
            problem = "missing_id: the id is empty"
        elif r.id in seen:
            problem = f"duplicate_id: id '{r.id}' already appeared earlier in the input"
        elif not check_text(r).strip():
            problem = (
                "empty_text: nothing was generated after the prompt opening"
                if isinstance(r, Story) and r.text.strip()
                else "empty_text: the record has no text to validate"
            )
        else:
            for e in record_emotions(r):
                if e == "neutral" and r.kind == "neutral":
                    continue
                try:
                    taxonomy.get(e)
                except UnknownEmotionError:
                    problem = f"unknown_emotion: '{e}' is not in the taxonomy"
                    break
        seen.add(r.id)
        out.append(reject(r, "input", problem) if problem else keep(r, "input"))
    return out
