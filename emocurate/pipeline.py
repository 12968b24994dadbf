"""Run a whole pipeline (generate → validate → fit → score → curate → cards/report).

Each stage is an object (:class:`Stage`) that declares its folder, its config, the stages it
reads (``upstream``), a ``fingerprint()`` (its config + the upstream fingerprints + a content
hash of the files it reads that no upstream stage wrote) and ``run()``, which writes only
inside its own folder and returns its typed manifest's one-line summary. ``run_pipeline``
builds the stages from a :class:`~emocurate.config.PipelineConfig` and runs them in order.

When a stage finishes, a marker with its fingerprint is written. A rerun skips stages whose
marker matches, so a finished run does no work; a changed config or input changes that
stage's fingerprint and, through ``upstream``, every fingerprint downstream of it, so exactly
those stages are redone from scratch (the cards stage included). A stage that was interrupted
resumes through its own mechanism (generation cache, scoring shards).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from emocurate.artifacts import TRANSFER_DIR, CardsManifest, TransferEvaluation
from emocurate.config import CardsStage as CardsStageConfig
from emocurate.config import CurateStage as CurateStageConfig
from emocurate.config import EvaluateStage as EvaluateStageConfig
from emocurate.config import PipelineConfig, SteerStage
from emocurate.config import ScoreStage as ScoreStageConfig
from emocurate.configs import FitConfig, GenerateConfig, ValidateConfig
from emocurate.errors import ConfigError
from emocurate.fingerprint import content_hash, fingerprint
from emocurate.io import atomic_write_bytes, ensure_dir

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
        "smollm2": "data/pipelines/smollm2.yaml",
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


class Stage(ABC):
    """One step of a pipeline: a folder of its own, a config, upstream stages, a fingerprint."""

    name: str = ""

    def __init__(self, out: Path, folder: str, config: Any, upstream: Sequence[Stage] = ()) -> None:
        self.out = out
        self.folder = folder
        self.config = config
        self.upstream = list(upstream)
        self._fp: str | None = None

    @property
    def path(self) -> Path:
        """The stage's folder: it writes nothing outside it."""
        return self.out / self.folder

    def config_json(self) -> Any:
        """The config as JSON values (what the fingerprint hashes)."""
        return self.config.model_dump(mode="json") if hasattr(self.config, "model_dump") else None

    def input_files(self) -> list[str]:
        """Files the stage reads that no upstream stage wrote (hashed by content)."""
        return []

    def content_hash(self) -> str:
        """A hash of what :meth:`input_files` hold."""
        files = self.input_files()
        return content_hash(files) if files else ""

    def fingerprint(self) -> str:
        """Config + upstream fingerprints + input content: equal means the output would be."""
        if self._fp is None:
            self._fp = fingerprint(
                self.name,
                self.config_json(),
                [u.fingerprint() for u in self.upstream],
                self.content_hash(),
            )
        return self._fp

    @abstractmethod
    def run(self) -> str:
        """Do the work into :attr:`path`; return a one-line summary for the table."""

    def artifacts(self) -> dict[str, Path]:
        """What a user looks at, by name."""
        return {}


class GenerateStage(Stage):
    """LLM generation of labelled records (``stories/`` or ``dialogues/``)."""

    name = "generate"
    config: GenerateConfig

    def run(self) -> str:
        from emocurate.generators.run import run_generation

        # A stage folder is what its config says: a rerun after a config change replaces it.
        m = run_generation(self.config.model_copy(update={"replace": True}), self.path)
        return (
            f"{m.records} {m.kind} records from {m.planned_requests} requests "
            f"({m.failed_requests} failed, reasons in manifest.json)"
        )

    def artifacts(self) -> dict[str, Path]:
        return {"generated records": self.path}


class NeutralStage(GenerateStage):
    """Neutral dialogues: the reference the vectors are z-scored and the flags calibrated on."""

    name = "neutral"

    def run(self) -> str:
        from emocurate.generators.run import run_generation

        m = run_generation(self.config.model_copy(update={"replace": True}), self.path)
        return f"{m.records} neutral records"

    def artifacts(self) -> dict[str, Path]:
        return {}


class ValidateStage(Stage):
    """Rules, leakage, dedup, judge, probe: ``validated/{kept,rejected}``."""

    name = "validate"
    config: ValidateConfig

    def run(self) -> str:
        from emocurate.validators.pipeline import validate

        m = validate(self.upstream[0].path, self.path, self.config)
        return f"{m.kept} kept, {m.rejected} rejected of {m.total}"

    def artifacts(self) -> dict[str, Path]:
        return {"stories dataset": self.path / "kept"}


def dataset_dir(stage: Stage) -> Path:
    """The publishable rows a records stage leaves: ``kept/`` of a validation, else its folder."""
    return stage.path / "kept" if isinstance(stage, ValidateStage) else stage.path


class FitStage(Stage):
    """Emotion vectors (+ optional steering measurement) into ``vectors/``."""

    name = "fit"
    config: FitConfig

    def __init__(
        self,
        out: Path,
        config: FitConfig,
        steer: SteerStage | None,
        train: Stage | None,
        neutral: Stage | None,
    ) -> None:
        super().__init__(out, "vectors", config, [s for s in (train, neutral) if s is not None])
        self.steer = steer
        self.train = train
        self.neutral = neutral

    def config_json(self) -> Any:
        records = self.config.records
        content = None  # an edited records file reruns the stage
        if records and Path(records).is_file():
            content = hashlib.sha256(Path(records).read_bytes()).hexdigest()[:16]
        return [
            self.config.model_dump(mode="json"),
            self.steer.model_dump(mode="json") if self.steer else None,
        ] + ([content] if content else [])

    def run(self) -> str:
        from emocurate.vectors.fit import fit_vectors

        neutral = self.neutral.path if self.neutral is not None else None
        # config.records (a labelled file, resolved against the pipeline file's folder by
        # build_stages) is fitted instead of the generated stories
        where = dataset_dir(self.train) if self.train is not None else self.config.records
        vs = fit_vectors(where or "", self.config, self.path, neutral_dir=neutral)
        ev = vs.meta.evaluation
        acc = ev.get("accuracy")
        acc_s = ""
        if isinstance(acc, float):
            acc_s = (
                f", held-out accuracy {acc:.2f} ± {ev.get('accuracy_sd') or 0:.2f} "
                f"(chance {ev.get('chance', 0):.2f}, lexical {ev.get('lexical') or 0:.2f}: "
                f"{ev.get('vs_lexical', 'not compared')})"
            )
        if self.steer is not None:
            acc_s += "; steering " + _measure_steering(vs, self.path, self.steer, self.config)
        return f"{len(vs.names)} vectors at layer {vs.meta.default_layer}{acc_s}"

    def artifacts(self) -> dict[str, Path]:
        return {"vectors": self.path / "vectors.safetensors"}


class EvaluateStage(Stage):
    """Read the fitted vectors on labelled text they were not fitted on: ``evaluation/NAME.json``.

    With vectors fitted on generated stories and the bundled human-written scenarios as the
    set, this is the transfer check: does what was fitted on the model's own stories read
    emotion in text people wrote? Each report holds accuracy with its interval, the majority
    and lexical baselines, per-emotion AUROC and the count of texts left out.
    """

    name = "evaluate"
    config: EvaluateStageConfig

    def __init__(self, out: Path, config: EvaluateStageConfig, fit: Stage, base: Path) -> None:
        super().__init__(out, "evaluation", config, [fit])
        self.sets = [
            s
            if s.records == "bundled:scenarios"
            else s.model_copy(update={"records": _resolve(s.records, base)})
            for s in config.sets
        ]

    def config_json(self) -> Any:
        return [s.model_dump(mode="json") for s in self.sets]

    def input_files(self) -> list[str]:
        from emocurate.vectors.labelled import scenarios_path

        return [
            str(scenarios_path()) if s.records == "bundled:scenarios" else s.records
            for s in self.sets
        ]

    def run(self) -> str:
        import random

        from emocurate.vectors.evaluate import evaluate
        from emocurate.vectors.fit import fitted_texts, load_train_ids
        from emocurate.vectors.labelled import parse_label_map, read_labelled
        from emocurate.vectors.models import load_model
        from emocurate.vectors.vectorset import VectorSet

        vdir = self.upstream[0].path
        vs = VectorSet.load(vdir)
        lm = load_model(vs.meta.model_id)
        parts: list[str] = []
        for s in self.sets:
            lmap = s.label_map
            got = read_labelled(
                s.records,
                text_field=s.text_field,
                label_field=s.label_field,
                label_map=lmap if isinstance(lmap, dict) else parse_label_map(lmap),
            )
            records = list(got.records)
            if s.per_label is not None:  # a fixed, seeded sample of each label
                by: dict[str, list[Any]] = {}
                for r in records:
                    by.setdefault(r.emotion, []).append(r)
                rng = random.Random(0)
                records = [
                    r
                    for label in sorted(by)
                    for r in rng.sample(by[label], min(s.per_label, len(by[label])))
                ]
            report = evaluate(
                vs,
                lm,
                records,
                train_ids=load_train_ids(vdir),
                skip=s.skip,
                lexical_train=fitted_texts(vdir, vs),
            )
            report["source"] = s.records
            # The typed record the vector card lists, in this stage's own folder.
            TransferEvaluation.from_report(report).save(self.path, s.name)
            for w in got.warnings:
                print(f"warning: {s.name}: {w}", file=sys.stderr)
            left = report["n_skipped_short"] + report["skipped"]
            lex = report.get("lexical")
            parts.append(
                f"{s.name}: accuracy {report['accuracy']:.2f} on {report['n']} texts "
                f"(majority {report['majority']:.2f}"
                + (f", lexical {lex:.2f}" if isinstance(lex, float) else "")
                + f"), macro-AUROC {report['auroc_mean']:.2f}"
                + (f", {left} left out" if left else "")
            )
        return "; ".join(parts) or "no evaluation sets"

    def artifacts(self) -> dict[str, Path]:
        return {"transfer evaluation": self.path / TRANSFER_DIR}


class ScoreStage(Stage):
    """Token-level corpus scores (flags calibrated on VECTORS/neutral first) into ``scores/``."""

    name = "score"
    config: ScoreStageConfig

    def __init__(
        self, out: Path, config: ScoreStageConfig, inputs: list[str], fit: Stage, has_neutral: bool
    ) -> None:
        super().__init__(out, "scores", config, [fit])
        self.inputs = inputs
        self.has_neutral = has_neutral

    def config_json(self) -> Any:
        # Where the dense metrics run does not change the scores: switching it reruns nothing.
        dump = self.config.model_dump(mode="json", exclude={"options": {"metrics_device"}})
        return [dump, self.inputs]

    def content_hash(self) -> str:
        # The corpus readers' own content fingerprint (what the scoring shards resume on).
        from emocurate.corpus.readers import plan_corpus

        return plan_corpus(self.inputs).content_fingerprint()

    def run(self) -> str:
        from emocurate.corpus.calibrate import CALIBRATION_FILE, calibrate
        from emocurate.corpus.engines import score_corpus

        vdir = self.upstream[0].path
        opts = self.config.options
        if not opts.z_thresholds and not (vdir / CALIBRATION_FILE).exists():
            # Flags are calibrated on neutral text: the pipeline's neutral dialogues.
            if not self.has_neutral:
                raise ConfigError(
                    "pipeline: 'score' needs calibrated flags: add a 'neutral' stage "
                    "(neutral dialogues to calibrate on) or set score.options.z_thresholds: true"
                )
            calibrate(vdir, None, opts)  # the neutral texts fit kept in VECTORS/neutral
        m = score_corpus(list(self.inputs), vdir, self.path, opts)
        flag_s = f", {m.summary.docs_flagged} flagged" if m.summary is not None else ""
        return f"{m.scored} documents scored{flag_s}, {m.quarantined} quarantined"

    def artifacts(self) -> dict[str, Path]:
        return {"scores": self.path / "data"}


class CurateStage(Stage):
    """The YAML policy applied to the scores (texts attached) into ``curated/``."""

    name = "curate"
    config: CurateStageConfig

    def __init__(
        self, out: Path, config: CurateStageConfig, policy: str, score: ScoreStage
    ) -> None:
        super().__init__(out, "curated", config, [score])
        self.policy = policy
        self.corpus = list(score.inputs)

    def config_json(self) -> Any:
        return [self.config.model_dump(mode="json"), self.policy]

    def input_files(self) -> list[str]:
        return [self.policy]

    def run(self) -> str:
        from emocurate.corpus.curate import curate

        # Curated rows carry their text: a curator reads what was kept, flagged or dropped.
        m = curate(
            self.upstream[0].path,
            self.policy,
            self.path,
            corpus=list(self.corpus),
            untrusted=self.config.untrusted,
        )
        g = m.guardrail
        note = f" ({g.decision}: {g.reason})" if g.decision == "flag-only" else ""
        return f"{m.kept} kept, {m.flagged} flagged, {m.dropped} dropped{note}"

    def artifacts(self) -> dict[str, Path]:
        return {"curated": self.path}


class CardsStage(Stage):
    """Dataset card, vector card and the HTML report, all inside ``report/``.

    Cards describe other stages' folders but are written here, never into them (a stage that
    wrote into another's folder would be undone by that stage's rerun, and would change a
    finished folder). ``emocurate push`` places a card at the root of the published tree.
    """

    name = "cards"
    config: CardsStageConfig
    DATASET_CARD = "dataset/README.md"
    VECTOR_CARD = "vectors/README.md"
    REPORT = "report.html"

    def __init__(self, out: Path, config: CardsStageConfig, stages: dict[str, Stage]) -> None:
        super().__init__(out, "report", config, list(stages.values()))
        self.stages = stages

    def _dir(self, name: str) -> Path | None:
        stage = self.stages.get(name)
        return stage.path if stage is not None else None

    def _dataset(self) -> Path | None:
        src = self.stages.get("validate") or self.stages.get("generate")
        return dataset_dir(src) if src is not None else None

    def run(self) -> str:
        from emocurate.cards.dataset_card import write_dataset_card
        from emocurate.cards.report import write_report
        from emocurate.cards.vector_card import write_vector_card

        c = self.config
        made: list[str] = []
        man = CardsManifest()
        data, vecs = self._dataset(), self._dir("fit")
        if c.dataset_card and data is not None:
            write_dataset_card(
                data,
                generation_dir=self._dir("generate"),
                validation_dir=self._dir("validate"),
                license=c.license,
                pretty_name=c.pretty_name,
                out_dir=self.path / Path(self.DATASET_CARD).parent,
            )
            man.dataset_card, man.dataset_dir = self.DATASET_CARD, str(data)
            made.append("dataset card")
        if c.vector_card and vecs is not None:
            write_vector_card(
                vecs,
                training_dir=data,
                out_dir=self.path / Path(self.VECTOR_CARD).parent,
                transfer_dir=self._dir("evaluate"),
            )
            man.vector_card, man.vectors_dir = self.VECTOR_CARD, str(vecs)
            made.append("vector card")
        if c.report:
            write_report(
                self.path / self.REPORT,
                vectors_dir=vecs,
                scores_dir=self._dir("score"),
                validation_dir=self._dir("validate"),
                generation_dir=self._dir("generate"),
                curated_dir=self._dir("curate"),
                transfer_dir=self._dir("evaluate"),
            )
            man.report = self.REPORT
            made.append("report")
        man.save(self.path)
        return ", ".join(made) or "nothing"

    def artifacts(self) -> dict[str, Path]:
        man = CardsManifest.read(self.path)
        if man is None:
            return {}
        named = {
            "dataset card": man.dataset_card,
            "vector card": man.vector_card,
            "report": man.report,
        }
        return {k: self.path / v for k, v in named.items() if v and (self.path / v).exists()}


def build_stages(cfg: PipelineConfig, out: Path, base: Path) -> list[Stage]:
    """The configured stages in run order, each wired to the stages it reads."""
    stages: list[Stage] = []
    by_name: dict[str, Stage] = {}

    def add(stage: Stage) -> Stage:
        stages.append(stage)
        by_name[stage.name] = stage
        return stage

    gen = add(GenerateStage(out, cfg.generate.kind, cfg.generate)) if cfg.generate else None
    neutral = add(NeutralStage(out, "neutral", cfg.neutral)) if cfg.neutral else None
    train = gen
    if cfg.validate_ is not None:
        if gen is None:
            raise ConfigError("pipeline: 'validate' needs a 'generate' stage")
        train = add(ValidateStage(out, "validated", cfg.validate_, [gen]))
    fit = None
    if cfg.fit is not None:
        if train is None and not cfg.fit.records:
            raise ConfigError("pipeline: 'fit' needs a 'generate' stage or 'records: FILE'")
        fit_cfg = cfg.fit
        if fit_cfg.records and fit_cfg.records != "bundled:scenarios":
            fit_cfg = fit_cfg.model_copy(update={"records": _resolve(fit_cfg.records, base)})
        fit = add(FitStage(out, fit_cfg, cfg.steer, None if fit_cfg.records else train, neutral))
    if cfg.evaluate is not None:
        if fit is None:
            raise ConfigError("pipeline: 'evaluate' needs a 'fit' stage")
        add(EvaluateStage(out, cfg.evaluate, fit, base))
    score: ScoreStage | None = None
    if cfg.score is not None:
        if fit is None:
            raise ConfigError("pipeline: 'score' needs a 'fit' stage")
        inputs = [p for c in cfg.score.corpus for p in _resolve_corpus(c, base)]
        score = ScoreStage(out, cfg.score, inputs, fit, has_neutral=neutral is not None)
        add(score)
    if cfg.curate is not None:
        if score is None:
            raise ConfigError("pipeline: 'curate' needs a 'score' stage")
        add(CurateStage(out, cfg.curate, _resolve(cfg.curate.policy, base), score))
    if cfg.cards is not None:
        add(CardsStage(out, cfg.cards, {k: v for k, v in by_name.items() if k != "neutral"}))
    return stages


def run_pipeline(
    cfg: PipelineConfig,
    *,
    base_dir: Path | None = None,
    out: str | Path | None = None,
    log: Callable[[str], None] = print,
) -> PipelineResult:
    """Run every configured stage in order; stages whose fingerprint matches are skipped."""
    base = base_dir or Path.cwd()
    # Outputs land where the command is run (like every --out), not next to the pipeline file:
    # `emocurate run examples/offline.yaml` must not write into examples/. Inputs named in the
    # file (corpus, policy, topics) still resolve against the file's folder.
    out_dir = ensure_dir(Path(out if out is not None else cfg.out).expanduser())
    res = PipelineResult(out=out_dir)
    for stage in build_stages(cfg, out_dir, base):
        res.stages.append(_run_stage(stage, log))
        res.artifacts.update(stage.artifacts())
    return res


def _run_stage(stage: Stage, log: Callable[[str], None]) -> StageResult:
    path, fp = stage.path, stage.fingerprint()
    done = _stage_done(path, fp)
    if done is not None:
        log(f"[skip] {stage.name}: finished earlier ({path})")
        return StageResult(stage.name, path, str(done.get("summary", "")), 0.0, True)
    if (path / MARKER).exists():  # finished with another config or input: start afresh
        shutil.rmtree(path)
    log(f"[run ] {stage.name} -> {path}")
    t0 = time.perf_counter()
    ensure_dir(path)
    summary = stage.run()
    secs = time.perf_counter() - t0
    _mark(path, fp, summary)
    return StageResult(stage.name, path, summary, secs, False)
