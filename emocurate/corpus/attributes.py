"""Dolma-style attribute files: flag spans as character offsets, one file per input file.

Dolma's mixers read a documents file and its attribute files line by line, side by side, and
filter on ``attributes[name] = [[start, end, score], ...]``. ``emocurate score --attributes DIR``
therefore writes, for every input file, ``DIR/<same relative name>`` (JSON lines; gzip when the
input is gzip, zstd when it is zstd; a CSV/Parquet/text input gets ``.jsonl``) holding one line
per input row, in input order::

    {"id": DOC_ID, "attributes": {"emocurate__distress_episode": [[12, 87, 1.93]], ...}}

Every flag kind has a key (an empty list when the document has no such flag), so a mixer rule
never meets a missing attribute. Offsets are character offsets into the row's text: the first
character of the first flagged token to the last character of the last one. A quarantined row
keeps its line (the files must stay aligned with the documents) with empty attributes and
``"emocurate__quarantined": REASON``.

While scoring, each shard writes its lines to ``OUT/attributes/shard-XXXXX.jsonl`` before its
completion marker (so a resumed run has them); :func:`assemble` then routes them to the
per-input files, streaming.
"""

from __future__ import annotations

import gzip
import io
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from emocurate.corpus.readers import Bad, CorpusPlan, Item
from emocurate.corpus.score import ScoredDoc
from emocurate.errors import ConfigError, InputError
from emocurate.records import FLAG_KINDS

PREFIX = "emocurate__"
STAGING = "attributes"
JSON_NAMES = (".jsonl", ".ndjson", ".json")


def doc_attributes(sd: ScoredDoc) -> dict[str, list[list[float]]]:
    """``{"emocurate__<flag kind>": [[start, end, severity], ...]}`` for every flag kind."""
    attrs: dict[str, list[list[float]]] = {f"{PREFIX}{k}": [] for k in FLAG_KINDS}
    if sd.char_spans is None:
        raise InputError(
            f"document {sd.row.doc_id}: the tokenizer gives no character offsets, so flag spans "
            "cannot be written as attributes (use a fast tokenizer)"
        )
    for kind, a, b, sev in sd.char_spans:
        attrs.setdefault(f"{PREFIX}{kind}", []).append([a, b, round(sev, 4)])
    return attrs


def shard_lines(items: list[Item], scored: list[ScoredDoc]) -> bytes:
    """The staging lines of one shard: one per input row (scored or quarantined), in order."""
    it = iter(scored)
    lines = []
    for item in items:
        rec: dict[str, Any]
        if isinstance(item, Bad):
            rec = {
                "source": item.source,
                "id": item.doc_id,
                "attributes": {},
                f"{PREFIX}quarantined": item.reason,
            }
        else:
            sd = next(it)
            rec = {"source": item.source, "id": sd.row.doc_id, "attributes": doc_attributes(sd)}
        lines.append(json.dumps(rec, ensure_ascii=False))
    return ("\n".join(lines) + "\n").encode("utf-8") if lines else b""


def output_name(rel: str) -> str:
    """The attribute file name for an input's relative name (JSON lines, same compression)."""
    comp = next((c for c in (".gz", ".zst") if rel.lower().endswith(c)), "")
    base = rel[: len(rel) - len(comp)]
    if not base.lower().endswith(JSON_NAMES):
        stem, dot, _ext = base.rpartition(".")
        base = (stem if dot and "/" not in _ext else base) + ".jsonl"
    return base + comp


def relative_names(plan: CorpusPlan) -> dict[str, str]:
    """``source -> attribute file name`` for every input; two inputs mapping to one name is an error."""
    names: dict[str, str] = {}
    owner: dict[str, str] = {}
    for u in plan.units:
        if u.kind == "bad" and u.position == "folder":
            continue
        rel = u.key or u.spec.replace(":", "_").replace("/", "_")
        name = output_name(rel)
        if name in owner and owner[name] != u.source:
            raise ConfigError(
                f"--attributes: {owner[name]} and {u.source} would both write {name}; "
                "score them into separate attribute folders"
            )
        owner[name] = u.source
        names[u.source] = name
    return names


def _open_out(path: Path) -> IO[bytes]:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    if path.name.endswith(".gz"):
        return gzip.open(tmp, "wb")  # type: ignore[return-value]
    if path.name.endswith(".zst"):
        import zstandard

        return zstandard.ZstdCompressor().stream_writer(open(tmp, "wb"))  # type: ignore[return-value,unused-ignore]  # zstandard is untyped without its stubs
    return open(tmp, "wb")


def _close_out(fh: IO[bytes], path: Path) -> None:
    fh.close()
    os.replace(path.with_name(f".{path.name}.tmp"), path)


def _staged(out: Path, shards: list[str]) -> Iterator[dict[str, Any]]:
    for name in shards:
        with (out / STAGING / f"{name}.jsonl").open("rb") as fh:
            for line in io.TextIOWrapper(fh, encoding="utf-8"):
                if line.strip():
                    yield json.loads(line)


def assemble(out: Path, shards: list[str], dest: str | Path, plan: CorpusPlan) -> dict[str, int]:
    """Write the per-input attribute files under ``dest`` from the staged shard lines.

    Inputs are read one after the other, so their lines are contiguous: one file is open at a
    time and each is renamed into place when complete. Returns ``{file name: lines}``.
    """
    names = relative_names(plan)
    root = Path(dest)
    counts: dict[str, int] = {}
    cur: tuple[str, Path, IO[bytes]] | None = None
    try:
        for rec in _staged(out, shards):
            src = rec.pop("source")
            if src not in names:  # an unreadable folder entry: no documents file to align with
                continue
            if cur is None or cur[0] != src:
                if cur is not None:
                    _close_out(cur[2], cur[1])
                name = names[src]
                if name in counts:  # pragma: no cover - readers never interleave inputs
                    raise InputError(f"--attributes: rows of {src} are not contiguous")
                counts[name] = 0
                cur = (src, root / name, _open_out(root / name))
            cur[2].write((json.dumps(rec, ensure_ascii=False) + "\n").encode("utf-8"))
            counts[name] += 1
        if cur is not None:
            _close_out(cur[2], cur[1])
            cur = None
    finally:
        if cur is not None:
            cur[2].close()
    return counts
