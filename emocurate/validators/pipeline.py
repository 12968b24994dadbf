"""The validate stage: run validators over a stage folder, keep every row, write the funnel.

``validate(in_dir, out_dir, cfg)`` reads records of any kind, runs the input checks and then
each configured validator in order. Validators are sequential, like a datatrove pipeline: each
one sees only the records every earlier one kept, so an expensive check (an LLM judge) is not
paid for rows already rejected, and dedup keeps as cluster representative a record that is
otherwise fine. Every input row is written back with verdict columns:

* ``keep`` (bool), ``rejected_by`` (first validator that rejected it, ``""`` when kept),
  ``reasons`` (``"validator: code: detail"`` strings);
* ``score_<validator>`` (float or null; null when the validator did not see the row);
* ``verdicts`` (JSON: each validator's keep/reason/score/details).

Kept rows go to ``out_dir/kept/data/<kind>.parquet``, rejected rows to
``out_dir/rejected/data/<kind>.parquet``; ``out_dir/manifest.json`` holds the funnel (rows in
and rejected per step, per validator with reason codes, per emotion).

A run is idempotent and resumable: each validator's verdicts are cached in
``out_dir/.cache/verdicts/`` under a key made of the validator's fingerprint (settings, model,
reference set) and a hash of exactly the records it checks. A rerun, or a run restarted after
a kill, recomputes only the validators whose cache entry is missing; the judge also resumes
request by request from its response cache.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from emocurate.artifacts import (
    EmotionFunnel,
    FunnelStep,
    ValidateInput,
    ValidateManifest,
    ValidatorStats,
)
from emocurate.configs import (
    ValidateConfig,
)
from emocurate.errors import ConfigError
from emocurate.fingerprint import fingerprint
from emocurate.io import atomic_write_bytes, ensure_dir, write_table
from emocurate.records import AnyRecord, Verdict, canonical_json
from emocurate.taxonomy import Taxonomy, load_taxonomy
from emocurate.validators.base import Validator, check_text, reason_code, record_emotions
from emocurate.validators.dedup import DedupValidator
from emocurate.validators.leakage import LeakageValidator
from emocurate.validators.records_in import Source, input_verdicts, load_records
from emocurate.validators.rules import RulesValidator

CACHE_VERSION = 1


def build_validators(cfg: ValidateConfig, taxonomy: Taxonomy, out_dir: Path) -> list[Validator]:
    """Instantiate the configured validators in order."""
    out: list[Validator] = []
    for name in cfg.validators:
        if name == "rules":
            out.append(RulesValidator(cfg.rules_config()))
        elif name == "leakage":
            out.append(LeakageValidator(cfg.leakage, taxonomy))
        elif name == "dedup":
            ref_texts: list[str] = []
            ref_ids: list[str] = []
            if cfg.reference_dir:
                refs, _ = load_records(cfg.reference_dir)
                ref_texts = [check_text(r) for r in refs]
                ref_ids = [r.id for r in refs]
            out.append(DedupValidator(cfg.dedup_config(), ref_texts, ref_ids))
        elif name == "judge":
            from emocurate.validators.judge import JudgeValidator

            specs = cfg.judge_specs()
            if not specs:
                raise ConfigError(
                    "the judge validator needs --judge-backend and --judge-model "
                    "(or 'judges' in the config)"
                )
            out.append(
                JudgeValidator(
                    specs,
                    cfg.judge,
                    taxonomy,
                    seed=cfg.seed,
                    cache_dir=out_dir / ".cache" / "judge",
                )
            )
        elif name == "rubric":
            from emocurate.validators.rubric import RubricValidator

            specs = cfg.judge_specs()
            out.append(
                RubricValidator(
                    specs[0] if specs else None,
                    cfg.rubric,
                    seed=cfg.seed,
                    cache_dir=out_dir / ".cache" / "rubric",
                )
            )
        elif name == "probe":
            from emocurate.validators.probe import ProbeValidator

            pcfg = cfg.probe.model_copy(update={"model": cfg.probe_model, "seed": cfg.seed})
            out.append(ProbeValidator(pcfg, taxonomy))
    return out


def records_hash(records: Sequence[AnyRecord]) -> str:
    """sha256 of the records' canonical JSON, in order."""
    h = hashlib.sha256()
    for r in records:
        h.update(canonical_json(r.model_dump(mode="json")).encode("utf-8"))
        h.update(b"\n")
    return h.hexdigest()


class _VerdictCache:
    """Per-validator verdict files keyed by fingerprint and input hash."""

    def __init__(self, root: Path, enabled: bool) -> None:
        self.root = root
        self.enabled = enabled

    def key(self, v: Validator, input_hash: str) -> str:
        return fingerprint(
            {"v": CACHE_VERSION, "name": v.name, "fp": v.fingerprint(), "input": input_hash},
            length=20,
        )

    def path(self, name: str, key: str) -> Path:
        return self.root / f"{name}-{key}.json"

    def get(
        self, name: str, key: str, ids: list[str]
    ) -> tuple[list[Verdict], dict[str, Any]] | None:
        p = self.path(name, key)
        if not self.enabled or not p.exists():
            return None
        try:
            data = json.loads(p.read_text("utf-8"))
            verdicts = [Verdict.model_validate(v) for v in data["verdicts"]]
        except (OSError, ValueError, KeyError):
            return None  # unreadable: recompute
        if [v.record_id for v in verdicts] != ids:
            return None
        return verdicts, dict(data.get("stats", {}))

    def put(self, name: str, key: str, verdicts: list[Verdict], stats: dict[str, Any]) -> None:
        data = {"verdicts": [v.model_dump(mode="json") for v in verdicts], "stats": stats}
        atomic_write_bytes(self.path(name, key), json.dumps(data, default=str).encode("utf-8"))


class _Steps:
    """What each step did: its verdicts by record index, its funnel row and its stats (said
    on ``say`` one line per step)."""

    def __init__(self, say: Callable[[str], None]) -> None:
        self.say = say
        self.verdicts: dict[str, dict[int, Verdict]] = {}
        self.funnel: list[FunnelStep] = []
        self.vstats: dict[str, ValidatorStats] = {}

    def apply(
        self,
        name: str,
        vs: list[Verdict],
        idx: list[int],
        seconds: float,
        cached: bool,
        stats: dict[str, Any],
    ) -> list[int]:
        """Record a step's verdicts on the records ``idx``; return the indices it kept."""
        if len(vs) != len(idx):
            raise RuntimeError(
                f"validator {name} returned {len(vs)} verdicts for {len(idx)} records"
            )
        self.verdicts[name] = dict(zip(idx, vs, strict=True))
        survivors = [i for i, v in zip(idx, vs, strict=True) if v.keep]
        codes = Counter(reason_code(v.reason) for v in vs if not v.keep)
        used = stats.get("used", True) is not False
        status = "used" if used else f"not used: {stats.get('not_used_reason', 'uninformative')}"
        self.funnel.append(
            FunnelStep.model_validate(  # "in" is the field's alias (a keyword in Python)
                {
                    "step": name,
                    "in": len(idx),
                    "rejected": len(idx) - len(survivors),
                    "out": len(survivors),
                    "status": status,
                }
            )
        )
        self.vstats[name] = ValidatorStats(
            checked=len(idx),
            rejected=len(idx) - len(survivors),
            reasons=dict(codes.most_common()),
            seconds=round(seconds, 3),
            cached=cached,
            used=used,
            status=status,
            stats=stats,
        )
        self.say(
            (
                f"{name}: {len(idx) - len(survivors)} of {len(idx)} rejected"
                if used
                else f"{name}: NOT USED ({status[len('not used: ') :]})"
            )
            + (" (cached)" if cached else "")
        )
        return survivors


def _run_cached(
    v: Validator, subset: list[AnyRecord], cache: _VerdictCache
) -> tuple[list[Verdict], dict[str, Any], bool, float]:
    """A validator's verdicts, stats, whether they came from the cache (this validator already
    checked these records) and the seconds it took; an incomplete run (e.g. failed judge
    requests) is not cached, so the next run retries it."""
    key = cache.key(v, records_hash(subset))
    t0 = time.perf_counter()
    hit = cache.get(v.name, key, [r.id for r in subset])
    if hit is not None:
        vs, stats = hit
        return vs, stats, True, time.perf_counter() - t0
    vs = v.check(subset) if subset else []
    stats = dict(v.stats)
    if not stats.get("incomplete"):  # e.g. judge requests that failed: retry next run
        cache.put(v.name, key, vs, stats)
    return vs, stats, False, time.perf_counter() - t0


def validate(
    in_dir: str | Path,
    out_dir: str | Path,
    cfg: ValidateConfig | None = None,
    *,
    log: Callable[[str], None] | None = None,
) -> ValidateManifest:
    """Validate a stage folder and write ``kept/``, ``rejected/`` and ``manifest.json``.

    Args:
        in_dir: a stage folder (``data/*.parquet``) of any record kind.
        out_dir: where to write; created if missing; cached verdicts there are reused.
        cfg: settings (defaults: rules, leakage, dedup).
        log: called with one line per step (e.g. ``print``); silent when None.

    Returns:
        The typed manifest (also written to ``out_dir/manifest.json``).

    Raises:
        InputError: unreadable input, missing columns or a row that fits no record type.
        ConfigError: an unusable setting (unknown validator, judge without a model).
    """
    cfg = cfg or ValidateConfig()
    say = log or (lambda _msg: None)
    out = ensure_dir(out_dir)
    taxonomy = load_taxonomy(cfg.taxonomy)
    records, sources = load_records(in_dir)
    n = len(records)
    say(f"read {n} records from {in_dir}")

    steps_done = _Steps(say)
    alive = list(range(n))
    t0 = time.perf_counter()
    alive = steps_done.apply(
        "input", input_verdicts(records, taxonomy), alive, time.perf_counter() - t0, False, {}
    )
    cache = _VerdictCache(out / ".cache" / "verdicts", cfg.cache)
    for v in build_validators(cfg, taxonomy, out):
        subset = [records[i] for i in alive]
        vs, stats, cached, seconds = _run_cached(v, subset, cache)
        alive = steps_done.apply(v.name, vs, alive, seconds, cached, stats)

    steps = ["input", *cfg.validators]
    verdicts, funnel, vstats = steps_done.verdicts, steps_done.funnel, steps_done.vstats
    rows = _rows(records, verdicts, steps)
    _write_splits(out, records, rows, steps)
    manifest = _manifest(cfg, in_dir, records, sources, rows, funnel, vstats, steps)
    manifest.save(out)
    say(f"kept {manifest.kept} of {n}; wrote {out / 'kept'} and {out / 'rejected'}")
    return manifest


def _rows(
    records: Sequence[AnyRecord], verdicts: dict[str, dict[int, Verdict]], steps: list[str]
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for i, r in enumerate(records):
        row = r.model_dump(mode="json")
        keep_all = True
        rejected_by = ""
        reasons: list[str] = []
        per: dict[str, Any] = {}
        for name in steps:
            v = verdicts.get(name, {}).get(i)
            if name != "input":
                row[f"score_{name}"] = v.score if v is not None else None
            if v is None:
                continue
            per[name] = {"keep": v.keep, "reason": v.reason, "score": v.score, "details": v.details}
            if not v.keep:
                keep_all = False
                rejected_by = rejected_by or name
                reasons.append(f"{name}: {v.reason}")
        row["keep"] = keep_all
        row["rejected_by"] = rejected_by
        row["reasons"] = reasons
        row["verdicts"] = canonical_json(per)
        rows.append(row)
    return rows


def _write_splits(
    out: Path, records: Sequence[AnyRecord], rows: list[dict[str, Any]], steps: list[str]
) -> None:
    by_kind: dict[str, list[int]] = {}
    for i, r in enumerate(records):
        by_kind.setdefault(r.kind, []).append(i)
    for split in ("kept", "rejected"):
        folder = out / split / "data"
        if folder.exists():  # a rerun may have fewer kinds: drop stale files
            for old in folder.glob("*.parquet"):
                if old.stem not in by_kind:
                    old.unlink()
    for kind, idx in by_kind.items():
        table = pa.Table.from_pylist([rows[i] for i in idx])
        table = _fix_types(table, steps)
        keep_mask = pa.array([bool(rows[i]["keep"]) for i in idx])
        write_table(out / "kept" / "data" / f"{kind}.parquet", table.filter(keep_mask))
        write_table(
            out / "rejected" / "data" / f"{kind}.parquet", table.filter(pc.invert(keep_mask))
        )


def _fix_types(table: pa.Table, steps: list[str]) -> pa.Table:
    """All-null columns get concrete types so every split has the same, loadable schema."""
    wanted = {f"score_{s}": pa.float64() for s in steps if s != "input"}
    wanted["reasons"] = pa.list_(pa.string())
    for name, typ in wanted.items():
        if name in table.column_names and table.schema.field(name).type != typ:
            i = table.column_names.index(name)
            table = table.set_column(i, pa.field(name, typ), table.column(name).cast(typ))
    for i, field in enumerate(table.schema):
        if pa.types.is_null(field.type):
            table = table.set_column(
                i, pa.field(field.name, pa.string()), table.column(i).cast(pa.string())
            )
    return table


def _manifest(
    cfg: ValidateConfig,
    in_dir: str | Path,
    records: Sequence[AnyRecord],
    sources: Sequence[Source],
    rows: list[dict[str, Any]],
    funnel: list[FunnelStep],
    vstats: dict[str, ValidatorStats],
    steps: list[str],
) -> ValidateManifest:
    """The funnel manifest: counts per step, per validator and per emotion, and the config."""
    per_emotion: dict[str, dict[str, Any]] = {}
    for r, row in zip(records, rows, strict=True):
        for e in record_emotions(r):
            slot = per_emotion.setdefault(
                e, {"in": 0, "rejected_by": {s: 0 for s in steps}, "kept": 0}
            )
            slot["in"] += 1
            if row["keep"]:
                slot["kept"] += 1
            else:
                slot["rejected_by"][row["rejected_by"]] += 1
    kinds = Counter[str](r.kind for r in records)
    kept = sum(1 for row in rows if row["keep"])
    return ValidateManifest(
        total=len(records),
        kept=kept,
        rejected=len(records) - kept,
        kinds=dict(kinds),
        validators=list(cfg.validators),
        funnel=funnel,
        per_validator=vstats,
        per_emotion={e: EmotionFunnel.model_validate(f) for e, f in sorted(per_emotion.items())},
        per_emotion_note="a dialogue counts once under each distinct speaker emotion",
        input=ValidateInput(
            dir=str(in_dir), files=sorted({s.file for s in sources}), hash=records_hash(records)
        ),
        outputs={"kept": "kept/data", "rejected": "rejected/data"},
        config=cfg,
    )
