"""Read stage folders into the summaries that cards and the report render.

Cards are written from what is on disk, not from what a config promised: the provenance of
every record (backend, model, prompt id and hash, sampling parameters, tokens, cost) is summed
from the Parquet rows, and stage manifests add what rows cannot say (the validation funnel).
Every reader tolerates missing pieces and returns ``None``/empty values, so a card or report
renders what exists and lists what is missing.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import ValidationError

from emocurate.artifacts import GenerateManifest, ValidateManifest
from emocurate.errors import InputError, first_problem
from emocurate.records import Provenance

LABEL_COLUMNS = ("emotion", "human_emotion", "assistant_emotion")
SUMMARY_COLUMNS = ("kind", "topic_id", "pov", "protagonist", "provenance", *LABEL_COLUMNS)


def data_files(folder: Path) -> list[Path]:
    """Parquet files of a stage folder (``data/`` preferred), sorted; empty when none."""
    base = folder / "data" if (folder / "data").is_dir() else folder
    if not base.is_dir():
        return []
    return sorted(p for p in base.glob("*.parquet") if not p.name.startswith("."))


def dataset_root(folder: str | Path) -> Path:
    """The folder holding the publishable rows: ``kept/`` inside a validation folder, else itself."""
    p = Path(folder)
    if not data_files(p) and (p / "kept").is_dir() and data_files(p / "kept"):
        return p / "kept"
    return p


def read_columns(folder: Path, wanted: tuple[str, ...] = SUMMARY_COLUMNS) -> pa.Table | None:
    """The ``wanted`` columns that exist, from every Parquet file of a folder (None when none)."""
    tables = []
    for path in data_files(folder):
        try:
            names = pq.read_schema(path).names
            cols = [c for c in wanted if c in names]
            tables.append(pq.read_table(path, columns=cols))
        except (OSError, pa.ArrowException) as exc:
            raise InputError(f"{path}: unreadable Parquet file ({exc})") from None
    if not tables:
        return None
    return pa.concat_tables(tables, promote_options="permissive") if len(tables) > 1 else tables[0]


def count_rows(folder: Path) -> int:
    """Number of rows in a stage folder's Parquet files (metadata only, no data read)."""
    return sum(pq.read_metadata(p).num_rows for p in data_files(folder))


@dataclass
class GenerationSummary:
    """Everything a card says about how records were made."""

    n_records: int = 0
    kinds: Counter[str] = field(default_factory=Counter)
    backends: Counter[str] = field(default_factory=Counter)
    models: Counter[str] = field(default_factory=Counter)
    prompts: dict[str, set[str]] = field(default_factory=dict)
    params: Counter[str] = field(default_factory=Counter)
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    cache_hits: int = 0
    with_provenance: int = 0
    topics: Counter[str] = field(default_factory=Counter)
    labels: dict[str, Counter[str]] = field(default_factory=dict)
    first_created: str = ""
    last_created: str = ""
    manifest: GenerateManifest | None = None
    source: str = ""

    @property
    def emotions(self) -> list[str]:
        """Every emotion label seen, sorted."""
        seen: set[str] = set()
        for c in self.labels.values():
            seen.update(c)
        return sorted(seen)


def summarize_records(folder: str | Path) -> GenerationSummary:
    """Sum provenance, labels and topics over the rows of a stage folder."""
    root = Path(folder)
    s = GenerationSummary(manifest=generation_manifest(root), source=str(root))
    table = read_columns(root)
    if table is None:
        return s
    s.n_records = table.num_rows
    cols = table.column_names
    if "kind" in cols:
        s.kinds.update(v for v in table.column("kind").to_pylist() if v)
    for col in LABEL_COLUMNS:
        if col in cols:
            s.labels[col] = Counter(v for v in table.column(col).to_pylist() if v)
    if "topic_id" in cols:
        s.topics.update(v for v in table.column("topic_id").to_pylist() if v)
    if "provenance" in cols:
        created: list[str] = []
        for i, raw in enumerate(table.column("provenance").to_pylist()):
            if not isinstance(raw, dict):
                continue
            prov = _provenance(raw, root, i)
            s.with_provenance += 1
            s.backends[prov.backend or "?"] += 1
            s.models[prov.model or "?"] += 1
            s.prompts.setdefault(prov.prompt_id or "?", set()).add(prov.prompt_hash)
            params = _sampling_params(prov.params)
            if params:
                s.params[json.dumps(params, sort_keys=True, separators=(",", ":"))] += 1
            s.input_tokens += prov.input_tokens
            s.output_tokens += prov.output_tokens
            s.cost_usd += prov.cost_usd
            s.cache_hits += int(prov.cache_hit)
            if prov.created:
                created.append(prov.created)
        if created:
            s.first_created, s.last_created = min(created), max(created)
    return s


@dataclass
class ValidationSummary:
    """The validation funnel: how many records each validator kept, overall and per emotion."""

    kept: int = 0
    rejected: int = 0
    funnel: list[dict[str, Any]] = field(default_factory=list)
    per_emotion: list[dict[str, Any]] = field(default_factory=list)
    reasons: Counter[str] = field(default_factory=Counter)
    manifest: ValidateManifest | None = None
    source: str = ""

    @property
    def total(self) -> int:
        """Records that entered validation."""
        return self.kept + self.rejected


def summarize_validation(folder: str | Path) -> ValidationSummary:
    """Read a validation folder: row counts of ``kept/`` and ``rejected/``, and its
    :class:`~emocurate.artifacts.ValidateManifest` (funnel, per emotion, reason codes)."""
    root = Path(folder)
    man = ValidateManifest.read(root)
    v = ValidationSummary(manifest=man, source=str(root))
    v.kept = count_rows(root / "kept") if (root / "kept").is_dir() else 0
    v.rejected = count_rows(root / "rejected") if (root / "rejected").is_dir() else 0
    if man is None:
        return v
    v.funnel = [s.model_dump(by_alias=True) for s in man.funnel]
    for emotion, f in man.per_emotion.items():
        by = {f"rejected_by {step}": n for step, n in f.rejected_by.items()}
        v.per_emotion.append({"emotion": emotion, "in": f.n_in, "kept": f.kept, **by})
    for name, stats in man.per_validator.items():
        for code, n in stats.reasons.items():
            if n:
                v.reasons[f"{name}: {code}"] += n
    return v


def generation_manifest(folder: Path) -> GenerateManifest | None:
    """A generation folder's typed manifest; ``None`` for a folder without one or one another
    stage wrote."""
    return GenerateManifest.read_stage(folder)


def size_category(n: int) -> str:
    """The Hub's ``size_categories`` bucket for ``n`` rows."""
    bounds = [
        (1_000, "n<1K"),
        (10_000, "1K<n<10K"),
        (100_000, "10K<n<100K"),
        (1_000_000, "100K<n<1M"),
        (10_000_000, "1M<n<10M"),
        (100_000_000, "10M<n<100M"),
        (1_000_000_000, "100M<n<1B"),
    ]
    for bound, name in bounds:
        if n < bound:
            return name
    return "1B<n<10B"


# Per-request facts stored beside the sampling parameters; a card groups rows by settings only.
PER_REQUEST_KEYS = frozenset({"custom_id", "stop_reason", "request_id"})


def _provenance(raw: dict[str, object], root: Path, row: int) -> Provenance:
    """One row's provenance as the typed record; a malformed one is a one-line error."""
    try:
        return Provenance.model_validate(raw)
    except ValidationError as exc:  # invalid params JSON included (pydantic wraps it)
        loc, msg = first_problem(exc)
        raise InputError(f"{root}: row {row}: provenance field '{loc}': {msg}") from None


def _sampling_params(params: dict[str, object]) -> dict[str, object]:
    """The sampling settings of one record's provenance, without per-request keys."""
    return {k: v for k, v in params.items() if k not in PER_REQUEST_KEYS}
