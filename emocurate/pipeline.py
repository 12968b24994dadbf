"""Run a whole pipeline (generate → validate → fit → score → curate → cards/report).

Every stage writes its own folder under ``out``; when a stage finishes, a marker with the
fingerprint of its config and of its inputs is written. A rerun skips stages whose marker
matches, so a finished run does no work; a stage whose config changed is redone from scratch,
and a stage that was interrupted resumes through its own mechanism (generation cache, scoring
shards).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from emocurate.config import PipelineConfig
from emocurate.errors import ConfigError
from emocurate.io import atomic_write_bytes, ensure_dir
from emocurate.records import canonical_json

MARKER = ".emocurate-stage.json"


@dataclass
class StageResult:
    """What one stage did, for the summary table."""

    name: str
    path: Path
    summary: str
    seconds: float
    skipped: bool


@dataclass
class PipelineResult:
    """All stage results plus the artifacts a user looks at."""

    out: Path
    stages: list[StageResult] = field(default_factory=list)
    artifacts: dict[str, Path] = field(default_factory=dict)

    @property
    def did_work(self) -> bool:
        """True when at least one stage ran (False for a rerun of a finished pipeline)."""
        return any(not s.skipped for s in self.stages)


def bundled_path(spec: str) -> Path:
    """Resolve ``bundled:NAME`` to a file or folder shipped in the package."""
    name = spec.split(":", 1)[1]
    table = {
        "sample": "data/corpus",
        "default": "data/policy_default.yaml",
        "offline": "data/pipelines/offline.yaml",
    }
    if name not in table:
        raise ConfigError(
            f"unknown bundled item '{spec}' (known: {', '.join('bundled:' + k for k in table)})"
        )
    return Path(str(resources.files("emocurate").joinpath(table[name])))


def _measure_steering(vs: Any, vec_dir: Path, sc: Any, fcfg: Any) -> str:
    """Dose-response of the fitted vectors, saved beside them for the vector card."""
    from emocurate.vectors.models import load_model
    from emocurate.vectors.steer import measure_steering, save_steering

    lm = load_model(fcfg.model, device=fcfg.device, dtype=fcfg.dtype)
    grid = [sc.strength * (2 * k / (sc.steps - 1) - 1) for k in range(sc.steps)]
    report = measure_steering(
        lm, vs, sc.emotions or vs.names, grid, max_new_tokens=sc.max_new_tokens
    )
    save_steering(report, vec_dir)
    passed = [name for name, e in report.emotions.items() if e.verdict == "pass"]
    return f"passes for {len(passed)} of {len(report.emotions)} emotions"


def _resolve(spec: str, base: Path) -> str:
    if spec.startswith("bundled:"):
        return str(bundled_path(spec))
    p = Path(spec).expanduser()
    return str(p if p.is_absolute() else (base / p))


def _resolve_corpus(spec: str, base: Path) -> list[str]:
    """Corpus inputs: ``bundled:sample`` means the bundled JSONL files (not their notes)."""
    if spec == "bundled:sample":
        from emocurate.corpus import bundled_corpus

        return [str(p) for p in bundled_corpus()]
    return [_resolve(spec, base)]


def _fingerprint(*parts: Any) -> str:
    return hashlib.sha256(canonical_json(list(parts)).encode()).hexdigest()[:16]


def _stage_done(path: Path, fp: str) -> dict[str, Any] | None:
    marker = path / MARKER
    if not marker.exists():
        return None
    try:
        data = json.loads(marker.read_text("utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    return data if data.get("fingerprint") == fp else None


def _mark(path: Path, fp: str, summary: str) -> None:
    atomic_write_bytes(path / MARKER, json.dumps({"fingerprint": fp, "summary": summary}).encode())


class _Runner:
    def __init__(self, out: Path, log: Callable[[str], None]) -> None:
        self.out = out
        self.log = log
        self.result = PipelineResult(out=out)

    def stage(self, name: str, folder: str, fp: str, fn: Callable[[Path], str]) -> Path:
        path = self.out / folder
        done = _stage_done(path, fp)
        if done is not None:
            self.result.stages.append(
                StageResult(name, path, str(done.get("summary", "")), 0.0, True)
            )
            self.log(f"[skip] {name}: finished earlier ({path})")
            return path
        marker = path / MARKER
        if marker.exists():  # finished with another config: start this stage afresh
            shutil.rmtree(path)
        self.log(f"[run ] {name} -> {path}")
        t0 = time.perf_counter()
        summary = fn(path)
        secs = time.perf_counter() - t0
        _mark(path, fp, summary)
        self.result.stages.append(StageResult(name, path, summary, secs, False))
        return path


def run_pipeline(
    cfg: PipelineConfig,
    *,
    base_dir: Path | None = None,
    out: str | Path | None = None,
    log: Callable[[str], None] = print,
) -> PipelineResult:
    """Run every configured stage in order; finished stages are skipped."""
    from emocurate.cards.dataset_card import write_dataset_card
    from emocurate.cards.report import write_report
    from emocurate.cards.vector_card import write_vector_card
    from emocurate.corpus.curate import curate
    from emocurate.corpus.score import score_corpus
    from emocurate.generators.run import run_generation
    from emocurate.validators.pipeline import validate
    from emocurate.vectors.fit import fit_vectors

    base = base_dir or Path.cwd()
    # Outputs land where the command is run (like every --out), not next to the pipeline file:
    # `emocurate run examples/offline.yaml` must not write into examples/. Inputs named in the
    # file (corpus, policy, topics) still resolve against the file's folder.
    out_dir = ensure_dir(Path(out if out is not None else cfg.out).expanduser())
    r = _Runner(out_dir, log)
    res = r.result
    gen_dir = neutral_dir = val_dir = vec_dir = score_dir = cur_dir = None
    fp_gen = fp_neu = fp_val = fp_vec = fp_score = fp_cur = ""

    if cfg.generate is not None:
        gcfg = cfg.generate
        fp_gen = _fingerprint("generate", gcfg.model_dump(mode="json"))

        def _gen(path: Path) -> str:
            m = run_generation(gcfg, path)
            return (
                f"{m.get('records', 0)} {gcfg.kind} records from {m.get('planned_requests', '?')} requests "
                f"({m.get('failed_requests', 0)} failed, reasons in manifest.json)"
            )

        gen_dir = r.stage("generate", gcfg.kind, fp_gen, _gen)
        res.artifacts["generated records"] = gen_dir

    if cfg.neutral is not None:
        ncfg = cfg.neutral
        fp_neu = _fingerprint("neutral", ncfg.model_dump(mode="json"))

        def _neu(path: Path) -> str:
            m = run_generation(ncfg, path)
            return f"{m.get('records', 0)} neutral records"

        neutral_dir = r.stage("neutral", "neutral", fp_neu, _neu)

    train_dir = gen_dir
    if cfg.validate_ is not None:
        if gen_dir is None:
            raise ConfigError("pipeline: 'validate' needs a 'generate' stage")
        vcfg = cfg.validate_
        fp_val = _fingerprint("validate", vcfg.model_dump(mode="json"), fp_gen)
        src = gen_dir

        def _val(path: Path) -> str:
            m = validate(src, path, vcfg)
            return f"{m.get('kept', '?')} kept, {m.get('rejected', '?')} rejected of {m.get('total', '?')}"

        val_dir = r.stage("validate", "validated", fp_val, _val)
        train_dir = val_dir / "kept"
        res.artifacts["stories dataset"] = train_dir

    if cfg.fit is not None:
        if train_dir is None:
            raise ConfigError("pipeline: 'fit' needs a 'generate' stage")
        fcfg = cfg.fit
        steer_cfg = cfg.steer
        fp_vec = _fingerprint(
            "fit",
            fcfg.model_dump(mode="json"),
            steer_cfg.model_dump(mode="json") if steer_cfg else None,
            fp_val or fp_gen,
            fp_neu,
        )
        tdir, ndir = train_dir, neutral_dir

        def _fit(path: Path) -> str:
            vs = fit_vectors(tdir, fcfg, path, neutral_dir=ndir)
            ev = vs.meta.evaluation
            acc = ev.get("accuracy")
            acc_s = f", held-out accuracy {acc:.2f}" if isinstance(acc, float) else ""
            if steer_cfg is not None:
                acc_s += "; steering " + _measure_steering(vs, path, steer_cfg, fcfg)
            return f"{len(vs.names)} vectors at layer {vs.meta.default_layer}{acc_s}"

        vec_dir = r.stage("fit", "vectors", fp_vec, _fit)
        res.artifacts["vectors"] = vec_dir / "vectors.safetensors"

    if cfg.score is not None:
        if vec_dir is None:
            raise ConfigError("pipeline: 'score' needs a 'fit' stage")
        scfg = cfg.score
        inputs: list[str | Path] = [p for c in scfg.corpus for p in _resolve_corpus(c, base)]
        fp_score = _fingerprint("score", scfg.model_dump(mode="json"), inputs, fp_vec)
        vdir = vec_dir
        ndir_ref = neutral_dir

        def _score(path: Path) -> str:
            from emocurate.corpus.calibrate import CALIBRATION_FILE, calibrate

            opts = scfg.options
            if not opts.z_thresholds and not (vdir / CALIBRATION_FILE).exists():
                # Flags are calibrated on neutral text: the pipeline's neutral dialogues.
                if ndir_ref is None:
                    raise ConfigError(
                        "pipeline: 'score' needs calibrated flags: add a 'neutral' stage "
                        "(neutral dialogues to calibrate on) or set score.options.z_thresholds: true"
                    )
                calibrate(vdir, None, opts)  # the neutral texts fit kept in VECTORS/neutral
            m = score_corpus(inputs, vdir, path, opts)
            flagged = (m.get("summary") or {}).get("docs_flagged")
            flag_s = f", {flagged} flagged" if flagged is not None else ""
            return f"{m.get('scored', '?')} documents scored{flag_s}, {m.get('quarantined', 0)} quarantined"

        score_dir = r.stage("score", "scores", fp_score, _score)
        res.artifacts["scores"] = score_dir / "data"

    if cfg.curate is not None:
        if score_dir is None:
            raise ConfigError("pipeline: 'curate' needs a 'score' stage")
        policy = _resolve(cfg.curate.policy, base)
        fp_cur = _fingerprint(
            "curate",
            policy,
            Path(policy).read_bytes().hex() if Path(policy).is_file() else "",
            cfg.curate.untrusted,
            fp_score,
        )
        sdir = score_dir
        mode = cfg.curate.untrusted
        # Curated rows carry their text: a curator reads what was kept, flagged or dropped.
        corpus_inputs = list(inputs) if cfg.score is not None else None

        def _cur(path: Path) -> str:
            m = curate(sdir, policy, path, corpus=corpus_inputs, untrusted=mode)
            g = m.get("guardrail", {})
            note = f" ({g['decision']}: {g['reason']})" if g.get("decision") == "flag-only" else ""
            return f"{m.get('kept', '?')} kept, {m.get('flagged', 0)} flagged, {m.get('dropped', 0)} dropped{note}"

        cur_dir = r.stage("curate", "curated", fp_cur, _cur)
        res.artifacts["curated"] = cur_dir

    if cfg.cards is not None:
        ccfg = cfg.cards
        fp_cards = _fingerprint(
            "cards", ccfg.model_dump(mode="json"), fp_gen, fp_val, fp_vec, fp_score, fp_cur
        )
        gdir, vdir2, sdir2, valdir = gen_dir, vec_dir, score_dir, val_dir
        cdir2 = cur_dir
        dataset_dir = train_dir

        def _cards(path: Path) -> str:
            made = []
            if ccfg.dataset_card and dataset_dir is not None:
                write_dataset_card(
                    dataset_dir,
                    generation_dir=gdir,
                    validation_dir=valdir,
                    license=ccfg.license,
                    pretty_name=ccfg.pretty_name,
                )
                made.append("dataset card")
            if ccfg.vector_card and vdir2 is not None:
                write_vector_card(vdir2, training_dir=dataset_dir)
                made.append("vector card")
            if ccfg.report:
                write_report(
                    path / "report.html",
                    vectors_dir=vdir2,
                    scores_dir=sdir2,
                    validation_dir=valdir,
                    generation_dir=gdir,
                    curated_dir=cdir2,
                )
                made.append("report")
            return ", ".join(made) or "nothing"

        cards_dir = r.stage("cards", "report", fp_cards, _cards)
        if ccfg.dataset_card and dataset_dir is not None:
            res.artifacts["dataset card"] = dataset_dir / "README.md"
        if ccfg.vector_card and vec_dir is not None:
            res.artifacts["vector card"] = vec_dir / "README.md"
        if ccfg.report:
            res.artifacts["report"] = cards_dir / "report.html"
    return res
