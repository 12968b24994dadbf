"""Labelled text from any file ("comprehension" data) as fitting records.

``emocurate fit --records FILE --text-field F --label-field F [--label-map ...]`` fits vectors
on human-written (or any) labelled text instead of a stage folder of generated stories. The
file is JSON lines (``.jsonl``/``.ndjson``, also ``.gz``), CSV/TSV (a header row) or Parquet;
``bundled:scenarios`` is the bundled Representation Engineering scenarios (MIT, Andy Zou; labels
mapped to the taxonomy's names unless a map is given).

Whole-file problems (no such file, an unknown format, a text or label column that no row has,
a map that cannot be read) are one-line :class:`InputError` / :class:`ConfigError`\\ s naming
the file and the field. A single bad row (invalid JSON, a missing/empty/non-string text, a
missing label, a label mapped to nothing, a duplicate id) is left out and *counted* by reason,
with the first few rows named, in :class:`~emocurate.artifacts.FitDataSource` (the vector set's
``meta.data_source``, shown on the vector card) and on stderr: never dropped silently.

Each row becomes a :class:`~emocurate.records.Story` with no ``prompt_prefix`` (the whole text
is the writer's), so the fitting code is the same as for generated stories.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
from collections import Counter
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from emocurate.artifacts import FitDataSource
from emocurate.errors import ConfigError, InputError
from emocurate.records import Story

BUNDLED_SCENARIOS = "bundled:scenarios"
SCENARIOS_LICENCE = (
    "MIT, Copyright (c) 2023 Andy Zou (Representation Engineering, "
    "andyzoujm/representation-engineering data/emotions)"
)
SCENARIOS_MAP = {
    "anger": "angry",
    "disgust": "disgusted",
    "fear": "afraid",
    "happiness": "happy",
    "sadness": "sad",
    "surprise": "surprised",
}
"""The bundled scenarios' labels in the taxonomy's names (PROVENANCE.md beside the file)."""
MAX_EXAMPLES = 5
"""Rows named per exclusion reason (the rest are counted)."""


def scenarios_path() -> Path:
    """The bundled scenarios file (``emocurate/data/scenarios/repe_emotions.jsonl``)."""
    return Path(str(resources.files("emocurate").joinpath("data/scenarios/repe_emotions.jsonl")))


def parse_label_map(spec: str | None) -> dict[str, str]:
    """``a=b,c=d``, or a YAML/JSON file holding one mapping of source label -> name.

    A target of ``""`` or ``-`` leaves rows with that label out (counted).
    """
    if spec is None or not spec.strip():
        return {}
    path = Path(spec)
    if path.suffix.lower() in (".yaml", ".yml", ".json") or path.is_file():
        if not path.is_file():
            raise ConfigError(f"--label-map: file not found: {path}")
        from emocurate import yamlio

        try:
            data = yamlio.safe_load(path.read_text("utf-8"))
        except Exception as exc:  # yaml or decoding error: one line
            raise ConfigError(f"--label-map: {path}: not YAML/JSON ({exc})") from None
        if not isinstance(data, dict) or not all(
            isinstance(k, str | int) and isinstance(v, str | int | None) for k, v in data.items()
        ):
            raise ConfigError(f"--label-map: {path}: expected one mapping of source label to name")
        return {str(k): "" if v is None else str(v) for k, v in data.items()}
    out: dict[str, str] = {}
    for part in spec.split(","):
        if "=" not in part:
            raise ConfigError(
                f"--label-map: '{part}' is not SOURCE=NAME (give a=b,c=d or a YAML/JSON file)"
            )
        k, v = part.split("=", 1)
        if not k.strip():
            raise ConfigError(f"--label-map: '{part}' has an empty source label")
        out[k.strip()] = v.strip()
    return out


@dataclass
class LabelledRecords:
    """The usable rows as Story records, and where they came from (with what was left out)."""

    records: list[Story]
    source: FitDataSource
    warnings: list[str] = field(default_factory=list)


def _rows(path: Path) -> tuple[list[tuple[str, Any]], str]:
    """``(position, row or error)`` for every row of the file, and the format name."""
    name = path.name.lower()
    base = name[:-3] if name.endswith(".gz") else name
    opener: Any = gzip.open if name.endswith(".gz") else open
    if base.endswith((".jsonl", ".ndjson", ".json")):
        out: list[tuple[str, Any]] = []
        with opener(path, "rb") as fh:
            for i, raw in enumerate(fh, 1):
                line = raw.decode("utf-8-sig" if i == 1 else "utf-8", errors="replace").strip()
                if not line:
                    continue
                try:
                    out.append((f"line {i}", json.loads(line)))
                except ValueError as exc:
                    out.append((f"line {i}", InputError(f"invalid JSON ({exc.args[0]})")))
        return out, "jsonl"
    if base.endswith((".csv", ".tsv")):
        with opener(path, "rb") as fh:
            text = io.TextIOWrapper(fh, encoding="utf-8-sig", errors="replace", newline="")
            reader = csv.DictReader(text, delimiter="\t" if base.endswith(".tsv") else ",")
            # line numbers of a CSV count the header as line 1
            return [(f"line {i + 2}", dict(r)) for i, r in enumerate(reader)], "csv"
    if base.endswith(".parquet"):
        import pyarrow.parquet as pq

        try:
            rows = pq.read_table(path).to_pylist()
        except Exception as exc:  # pyarrow raises several types for a corrupt file
            raise InputError(f"{path}: not a readable Parquet file ({exc})") from None
        return [(f"row {i}", r) for i, r in enumerate(rows)], "parquet"
    raise InputError(
        f"{path}: unknown records format (give .jsonl, .ndjson, .json, .csv, .tsv or .parquet, "
        "optionally .gz for the text formats)"
    )


def read_labelled(
    spec: str | Path,
    *,
    text_field: str = "text",
    label_field: str = "label",
    id_field: str | None = None,
    label_map: dict[str, str] | None = None,
    licence: str | None = None,
) -> LabelledRecords:
    """Read a labelled file (or ``bundled:scenarios``) into Story records; see the module doc."""
    bundled = str(spec) == BUNDLED_SCENARIOS
    path = scenarios_path() if bundled else Path(spec)
    if not path.exists():
        raise InputError(f"--records: file not found: {path}")
    if path.is_dir():
        raise InputError(
            f"--records: {path} is a folder; give one JSONL/CSV/Parquet file (a stage folder of "
            "stories is the positional argument)"
        )
    mapping = dict(SCENARIOS_MAP if bundled and not label_map else label_map or {})
    rows, fmt = _rows(path)
    if not rows:
        raise InputError(f"{path}: no rows")
    dict_rows = [r for _, r in rows if isinstance(r, dict)]
    _check_fields(path, dict_rows, text_field, label_field)
    if id_field is None and dict_rows and all("id" in r for r in dict_rows):
        id_field = "id"
    excluded: Counter[str] = Counter()
    examples: dict[str, list[str]] = {}
    seen: set[str] = set()
    records: list[Story] = []
    raw_labels: Counter[str] = Counter()

    def leave_out(pos: str, reason: str) -> None:
        excluded[reason] += 1
        examples.setdefault(reason, [])
        if len(examples[reason]) < MAX_EXAMPLES:
            examples[reason].append(pos)

    stem = path.name.split(".")[0]
    for pos, row in rows:
        got = _text_and_label(row, text_field, label_field)
        if isinstance(got, str):
            leave_out(pos, got)
            continue
        text, src_label = got
        raw_labels[src_label] += 1
        name = mapping.get(src_label, src_label)
        if name in ("", "-"):
            leave_out(pos, f"label '{src_label}' mapped to nothing (--label-map)")
            continue
        rid = str(row.get(id_field)) if id_field is not None and row.get(id_field) else ""
        rid = rid or f"{stem}-{pos.replace(' ', '')}"
        if rid in seen:
            leave_out(pos, f"duplicate id (field '{id_field}')")
            continue
        seen.add(rid)
        records.append(Story(id=rid, text=text.strip(), emotion=name, topic=""))
    unmapped = sorted(lab for lab in raw_labels if mapping and lab not in mapping)
    source = FitDataSource(
        name=BUNDLED_SCENARIOS if bundled else str(path),
        format=fmt,
        licence=SCENARIOS_LICENCE if bundled and licence is None else licence,
        text_field=text_field,
        label_field=label_field,
        id_field=id_field,
        label_map=mapping,
        n_rows=len(rows),
        n_used=len(records),
        n_excluded=sum(excluded.values()),
        excluded=dict(excluded),
        excluded_examples=examples,
        unmapped_labels=unmapped,
        human_written=bundled or None,
    )
    return LabelledRecords(records=records, source=source, warnings=_warnings(source, len(rows)))


def _check_fields(
    path: Path, dict_rows: list[dict[str, Any]], text_field: str, label_field: str
) -> None:
    """A text or label field that no row has is a wrong option, not rows to leave out."""
    for fld, flag in ((text_field, "--text-field"), (label_field, "--label-field")):
        if dict_rows and not any(fld in r for r in dict_rows):
            fields = sorted({str(k) for r in dict_rows[:50] for k in r})
            raise InputError(
                f"{path}: no row has the field '{fld}' ({flag}); fields: {', '.join(fields[:12])}"
            )


def _text_and_label(row: Any, text_field: str, label_field: str) -> tuple[str, str] | str:
    """A row's text and stripped source label, or the reason it is left out."""
    if isinstance(row, Exception):
        return str(row).split(" (")[0]
    if not isinstance(row, dict):
        return f"row is a JSON {type(row).__name__}, not an object"
    text = row.get(text_field)
    if not isinstance(text, str):
        return f"text field '{text_field}' missing or not a string"
    if not text.strip():
        return f"text field '{text_field}' empty"
    label = row.get(label_field)
    if label is None or isinstance(label, dict | list) or not str(label).strip():
        return f"label field '{label_field}' missing or empty"
    return text, str(label).strip()


def _warnings(source: FitDataSource, n_rows: int) -> list[str]:
    """One line per reason rows were left out (most frequent first, with examples), and one
    for source labels the --label-map does not name."""
    warnings = [
        f"{source.name}: left out {n} of {n_rows} rows: {reason} "
        f"({', '.join(source.excluded_examples[reason])}"
        f"{', ...' if n > len(source.excluded_examples[reason]) else ''})"
        for reason, n in Counter(source.excluded).most_common()
    ]
    if source.unmapped_labels:
        warnings.append(
            f"{source.name}: label(s) not in --label-map kept as themselves: "
            f"{', '.join(source.unmapped_labels)}"
        )
    return warnings
