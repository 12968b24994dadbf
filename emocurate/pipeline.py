"""Run a whole pipeline (generate → validate → fit → score → curate → cards/report).

Each stage is an object (:class:`Stage`) that declares its folder, its typed config, the
stages it reads (``needs``, by name), the files it writes, a ``fingerprint()`` (its config +
the upstream fingerprints + a content hash of the files it reads that no upstream stage wrote)
and ``run()``, which writes only inside its own folder and returns its typed artifact; the
runner derives the summary line from that artifact. :data:`STAGES` lists the stage classes in
run order, and ``build_stages`` wires the ones a :class:`~emocurate.config.PipelineConfig`
configures; ``run_pipeline`` runs them in order.

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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatch
from importlib import resources
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel, ValidationError

from emocurate.artifacts import (
    EVALUATION_FILE,
    SPEAKER_SUBDIRS,
    STEERING_FILE,
    TRACES_DIR,
    TRANSFER_DIR,
    VECTORSET_META,
    VECTORSET_TENSORS,
    CardsManifest,
    CurateManifest,
    Evaluation,
    FittedVectors,
    GenerateManifest,
    Manifest,
    ScoreManifest,
    StageMarker,
    TransferEvaluation,
    TransferEvaluations,
    ValidateManifest,
)
from emocurate.config import CardsStage as CardsStageConfig
from emocurate.config import CurateStage as CurateStageConfig
from emocurate.config import EvalSet, PipelineConfig, SteerStage
from emocurate.config import EvaluateStage as EvaluateStageConfig
from emocurate.config import ScoreStage as ScoreStageConfig
from emocurate.configs import FitConfig, GenerateConfig, ScoreConfig, ValidateConfig
from emocurate.corpus.calibration import CALIBRATION_FILE, Calibration, load_calibration
from emocurate.errors import ConfigError, InputError
from emocurate.fingerprint import content_hash, fingerprint
from emocurate.io import DATA_DIR, LOCK_FILE, atomic_write_bytes, ensure_dir
from emocurate.vectors.fit import TRAIN_IDS_FILE

C = TypeVar("C", bound=BaseModel)
"""A stage's config model."""
A = TypeVar("A", bound=BaseModel)
"""A stage's typed artifact (its manifest or another model of :mod:`emocurate.artifacts`)."""
M = TypeVar("M", bound=Manifest)
S = TypeVar("S", bound="Stage[Any, Any]")

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


def _measure_steering(vs: Any, vec_dir: Path, sc: SteerStage, fcfg: FitConfig) -> None:
    """Dose-response of the fitted vectors, saved beside them for the vector card."""
    from emocurate.vectors.models import load_model
    from emocurate.vectors.steer import measure_steering, save_steering

    lm = load_model(fcfg.model, device=fcfg.device, dtype=fcfg.dtype)
    grid = [sc.strength * (2 * k / (sc.steps - 1) - 1) for k in range(sc.steps)]
    report = measure_steering(
        lm, vs, sc.emotions or vs.names, grid, max_new_tokens=sc.max_new_tokens
    )
    save_steering(report, vec_dir)


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


def _stage_done(path: Path, fp: str) -> StageMarker | None:
    """The stage's marker when it finished with fingerprint ``fp`` (else ``None``)."""
    marker = path / MARKER
    if not marker.exists():
        return None
    try:
        done = StageMarker.model_validate_json(marker.read_text("utf-8"))
    except (OSError, ValidationError):
        return None
    return done if done.fingerprint == fp else None


def _mark(path: Path, fp: str, summary: str) -> None:
    # json.dumps keeps the bytes earlier versions wrote (and read back)
    text = json.dumps(StageMarker(fingerprint=fp, summary=summary).model_dump())
    atomic_write_bytes(path / MARKER, text.encode())


def _read(model: type[M], folder: Path) -> M:
    """A finished stage's manifest (one line naming the folder when it has none)."""
    got = model.read(folder)
    if got is None:
        raise InputError(f"{folder}: no {model.__name__} (the stage did not finish); rerun it")
    return got


@dataclass(frozen=True)
class Input:
    """One upstream a stage reads, under its own ``name``: the first configured stage of
    ``sources``; ``missing`` is the error when none is configured (empty: optional)."""

    name: str
    sources: tuple[str, ...]
    missing: str = ""


class Stage(ABC, Generic[C, A]):
    """One step of a pipeline: a folder of its own, a typed config, named upstream stages, a
    fingerprint, and a typed artifact ``A`` that :meth:`run` returns.

    Subclasses declare, as data, what :func:`build_stages` needs: ``name``, the default
    ``folder``, the :class:`Input` stages they read (``needs``) and the files they write (``writes``,
    glob patterns relative to the folder: nothing else may appear there).
    """

    name: ClassVar[str] = ""
    folder_name: ClassVar[str] = ""
    needs: ClassVar[tuple[Input, ...]] = ()
    writes: ClassVar[tuple[str, ...]] = ("manifest.json",)

    def __init__(
        self,
        out: Path,
        config: C,
        upstream: Mapping[str, Stage[Any, Any]] | None = None,
        folder: str | None = None,
    ) -> None:
        self.out = out
        self.folder = folder or self.folder_name
        self.config = config
        self.upstream: dict[str, Stage[Any, Any]] = dict(upstream or {})
        self._fp: str | None = None
        self._artifact: A | None = None

    @classmethod
    @abstractmethod
    def configure(cls, cfg: PipelineConfig, base: Path) -> C | None:
        """This stage's config from the pipeline file (paths resolved); ``None``: not run."""

    @classmethod
    def wire(cls, config: C, found: Mapping[str, Stage[Any, Any]]) -> dict[str, Stage[Any, Any]]:
        """The upstream stages by input name (the first configured source of each input)."""
        up: dict[str, Stage[Any, Any]] = {}
        for i in cls.needs:
            src = next((found[s] for s in i.sources if s in found), None)
            if src is not None:
                up[i.name] = src
            elif i.missing:
                raise ConfigError(i.missing)
        return up

    @classmethod
    def create(
        cls, out: Path, cfg: PipelineConfig, base: Path, found: Mapping[str, Stage[Any, Any]]
    ) -> Stage[C, A] | None:
        """The stage a pipeline file configures, wired to ``found`` (``None``: not configured)."""
        config = cls.configure(cfg, base)
        return None if config is None else cls(out, config, cls.wire(config, found))

    @property
    def path(self) -> Path:
        """The stage's folder: it writes nothing outside it."""
        return self.out / self.folder

    def input(self, name: str, kind: type[S]) -> S:
        """The upstream stage wired as ``name`` (its folder and typed :meth:`artifact`)."""
        got = self.maybe(name, kind)
        if got is None:
            raise ConfigError(f"pipeline: '{self.name}' has no '{name}' input")
        return got

    def maybe(self, name: str, kind: type[S]) -> S | None:
        """The upstream stage wired as ``name``, or ``None`` when the pipeline has none."""
        stage = self.upstream.get(name)
        if stage is not None and not isinstance(stage, kind):
            raise TypeError(f"{self.name}: input '{name}' is a {type(stage).__name__}")
        return stage

    def config_json(self) -> Any:
        """The config as JSON values (what the fingerprint hashes)."""
        return self.config.model_dump(mode="json")

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
                [u.fingerprint() for u in self.upstream.values()],
                self.content_hash(),
            )
        return self._fp

    @abstractmethod
    def run(self) -> A:
        """Do the work into :attr:`path`; return the typed artifact it wrote."""

    @abstractmethod
    def load(self) -> A:
        """The typed artifact a finished run left in :attr:`path`."""

    @abstractmethod
    def summary(self, artifact: A) -> str:
        """One line for the table, from the artifact."""

    def execute(self) -> A:
        """Run the stage and keep its artifact for the stages downstream."""
        self._artifact = self.run()
        return self._artifact

    def artifact(self) -> A:
        """The artifact of this run, or read from the folder when the stage was skipped."""
        if self._artifact is None:
            self._artifact = self.load()
        return self._artifact

    def artifacts(self) -> dict[str, Path]:
        """What a user looks at, by name."""
        return {}


class GenerateStage(Stage[GenerateConfig, GenerateManifest]):
    """LLM generation of labelled records (``stories/`` or ``dialogues/``)."""

    name = "generate"
    writes = ("manifest.json", LOCK_FILE, "cache/*", f"{DATA_DIR}/*.parquet")

    def __init__(
        self,
        out: Path,
        config: GenerateConfig,
        upstream: Mapping[str, Stage[Any, Any]] | None = None,
        folder: str | None = None,
    ) -> None:
        # the folder: NeutralStage's ``neutral/``, else the kind generated (``stories/``, ...)
        super().__init__(out, config, upstream, folder or self.folder_name or config.kind)

    @classmethod
    def configure(cls, cfg: PipelineConfig, base: Path) -> GenerateConfig | None:
        return cfg.generate

    def run(self) -> GenerateManifest:
        from emocurate.generators.run import run_generation

        # A stage folder is what its config says: a rerun after a config change replaces it.
        return run_generation(self.config.model_copy(update={"replace": True}), self.path)

    def load(self) -> GenerateManifest:
        return _read(GenerateManifest, self.path)

    def summary(self, artifact: GenerateManifest) -> str:
        m = artifact
        return (
            f"{m.records} {m.kind} records from {m.planned_requests} requests "
            f"({m.failed_requests} failed, reasons in manifest.json)"
        )

    def artifacts(self) -> dict[str, Path]:
        return {"generated records": self.path}


class NeutralStage(GenerateStage):
    """Neutral dialogues: the reference the vectors are z-scored and the flags calibrated on."""

    name = "neutral"
    folder_name = "neutral"

    @classmethod
    def configure(cls, cfg: PipelineConfig, base: Path) -> GenerateConfig | None:
        return cfg.neutral

    def summary(self, artifact: GenerateManifest) -> str:
        return f"{artifact.records} neutral records"

    def artifacts(self) -> dict[str, Path]:
        return {}


class ValidateStage(Stage[ValidateConfig, ValidateManifest]):
    """Rules, leakage, dedup, judge, probe: ``validated/{kept,rejected}``."""

    name = "validate"
    folder_name = "validated"
    needs = (Input("records", ("generate",), "pipeline: 'validate' needs a 'generate' stage"),)
    writes = ("manifest.json", ".cache/verdicts/*.json", "kept/*", "rejected/*")

    @classmethod
    def configure(cls, cfg: PipelineConfig, base: Path) -> ValidateConfig | None:
        return cfg.validate_

    def run(self) -> ValidateManifest:
        from emocurate.validators.pipeline import validate

        return validate(self.input("records", GenerateStage).path, self.path, self.config)

    def load(self) -> ValidateManifest:
        return _read(ValidateManifest, self.path)

    def summary(self, artifact: ValidateManifest) -> str:
        m = artifact
        return f"{m.kept} kept, {m.rejected} rejected of {m.total}"

    def artifacts(self) -> dict[str, Path]:
        return {"stories dataset": self.path / "kept"}


def dataset_dir(stage: Stage[Any, Any]) -> Path:
    """The publishable rows a records stage leaves: ``kept/`` of a validation, else its folder."""
    return stage.path / "kept" if isinstance(stage, ValidateStage) else stage.path


def _accuracy_line(ev: Evaluation | None) -> str:
    """The held-out accuracy with its baselines, as the fit summary shows it."""
    if ev is None or ev.accuracy is None or ev.accuracy_ci is None:
        return ""
    lexical = ev.lexical.mean if ev.lexical is not None else 0
    verdict = ev.vs_lexical.verdict if ev.vs_lexical is not None else "not compared"
    return (
        f", held-out accuracy {ev.accuracy:.2f} ± {ev.accuracy_sd or 0:.2f} "
        f"(chance {ev.chance:.2f}, lexical {lexical or 0:.2f}: {verdict})"
    )


class FitStage(Stage[FitConfig, FittedVectors]):
    """Emotion vectors (+ optional steering measurement) into ``vectors/``."""

    name = "fit"
    folder_name = "vectors"
    # train: the validated stories, else the generated ones (unless config.records is fitted)
    needs = (Input("train", ("validate", "generate")), Input("neutral", ("neutral",)))
    writes = (
        VECTORSET_TENSORS,
        VECTORSET_META,
        EVALUATION_FILE,
        STEERING_FILE,
        TRAIN_IDS_FILE,
        "neutral/*",
        *(f"{sub}/*" for sub in sorted(set(SPEAKER_SUBDIRS.values()))),
    )

    def __init__(
        self,
        out: Path,
        config: FitConfig,
        upstream: Mapping[str, Stage[Any, Any]] | None = None,
        steer: SteerStage | None = None,
    ) -> None:
        super().__init__(out, config, upstream)
        self.steer = steer

    @classmethod
    def configure(cls, cfg: PipelineConfig, base: Path) -> FitConfig | None:
        fit = cfg.fit
        if fit is not None and fit.records and fit.records != "bundled:scenarios":
            fit = fit.model_copy(update={"records": _resolve(fit.records, base)})
        return fit

    @classmethod
    def wire(
        cls, config: FitConfig, found: Mapping[str, Stage[Any, Any]]
    ) -> dict[str, Stage[Any, Any]]:
        up = super().wire(config, found)
        if config.records:  # a labelled file (resolved by configure) is fitted instead
            up.pop("train", None)
        elif "train" not in up:
            raise ConfigError("pipeline: 'fit' needs a 'generate' stage or 'records: FILE'")
        return up

    @classmethod
    def create(
        cls, out: Path, cfg: PipelineConfig, base: Path, found: Mapping[str, Stage[Any, Any]]
    ) -> FitStage | None:
        config = cls.configure(cfg, base)
        return None if config is None else cls(out, config, cls.wire(config, found), cfg.steer)

    def config_json(self) -> Any:
        records = self.config.records
        content = None  # an edited records file reruns the stage
        if records and Path(records).is_file():
            content = hashlib.sha256(Path(records).read_bytes()).hexdigest()[:16]
        return [
            self.config.model_dump(mode="json"),
            self.steer.model_dump(mode="json") if self.steer else None,
        ] + ([content] if content else [])

    def run(self) -> FittedVectors:
        from emocurate.vectors.fit import fit_vectors

        neutral = self.maybe("neutral", NeutralStage)
        train = self.upstream.get("train")
        where = dataset_dir(train) if train is not None else self.config.records
        vs = fit_vectors(
            where or "",
            self.config,
            self.path,
            neutral_dir=neutral.path if neutral is not None else None,
        )
        if self.steer is not None:
            _measure_steering(vs, self.path, self.steer, self.config)
        return self.load()

    def load(self) -> FittedVectors:
        return FittedVectors.read(self.path)

    def summary(self, artifact: FittedVectors) -> str:
        line = _accuracy_line(artifact.evaluation)
        if artifact.steering is not None:
            st = artifact.steering.emotions
            passed = [name for name, e in st.items() if e.verdict == "pass"]
            line += f"; steering passes for {len(passed)} of {len(st)} emotions"
        return f"{len(artifact.meta.names)} vectors at layer {artifact.meta.default_layer}{line}"

    def artifacts(self) -> dict[str, Path]:
        return {"vectors": self.path / VECTORSET_TENSORS}


class EvaluateStage(Stage[EvaluateStageConfig, TransferEvaluations]):
    """Read the fitted vectors on labelled text they were not fitted on: ``evaluation/NAME.json``.

    With vectors fitted on generated stories and the bundled human-written scenarios as the
    set, this is the transfer check: does what was fitted on the model's own stories read
    emotion in text people wrote? Each report holds accuracy with its interval, the majority
    and lexical baselines, per-emotion AUROC and the count of texts left out.
    """

    name = "evaluate"
    folder_name = "evaluation"
    needs = (Input("fit", ("fit",), "pipeline: 'evaluate' needs a 'fit' stage"),)
    writes = (f"{TRANSFER_DIR}/*.json",)

    @classmethod
    def configure(cls, cfg: PipelineConfig, base: Path) -> EvaluateStageConfig | None:
        if cfg.evaluate is None:
            return None
        sets = [
            s
            if s.records == "bundled:scenarios"
            else s.model_copy(update={"records": _resolve(s.records, base)})
            for s in cfg.evaluate.sets
        ]
        return cfg.evaluate.model_copy(update={"sets": sets})

    @property
    def sets(self) -> list[EvalSet]:
        """The labelled sets, their paths resolved against the pipeline file's folder."""
        return self.config.sets

    def config_json(self) -> Any:
        return [s.model_dump(mode="json") for s in self.sets]

    def input_files(self) -> list[str]:
        from emocurate.vectors.labelled import scenarios_path

        return [
            str(scenarios_path()) if s.records == "bundled:scenarios" else s.records
            for s in self.sets
        ]

    def run(self) -> TransferEvaluations:
        from emocurate.vectors.evaluate import evaluate
        from emocurate.vectors.fit import fitted_texts, load_train_ids
        from emocurate.vectors.models import load_model
        from emocurate.vectors.vectorset import VectorSet

        vdir = self.input("fit", FitStage).path
        vs = VectorSet.load(vdir)
        lm = load_model(vs.meta.model_id)
        for s in self.sets:
            records, warnings = _read_set(s)
            report = evaluate(
                vs,
                lm,
                records,
                train_ids=load_train_ids(vdir),
                skip=s.skip,
                lexical_train=fitted_texts(vdir, vs),
            )
            report.source = s.records
            # The typed record the vector card lists, in this stage's own folder.
            TransferEvaluation.from_report(report).save(self.path, s.name)
            for w in warnings:
                print(f"warning: {s.name}: {w}", file=sys.stderr)
        return self.load()

    def load(self) -> TransferEvaluations:
        return TransferEvaluations.read(self.path, [s.name for s in self.sets])

    def summary(self, artifact: TransferEvaluations) -> str:
        parts: list[str] = []
        for name, r in artifact.reports.items():
            left = r.n_skipped_short + r.skipped
            parts.append(
                f"{name}: accuracy {r.accuracy:.2f} on {r.n} texts "
                f"(majority {r.majority:.2f}"
                + (f", lexical {r.lexical:.2f}" if isinstance(r.lexical, float) else "")
                + f"), macro-AUROC {r.auroc_mean:.2f}"
                + (f", {left} left out" if left else "")
            )
        return "; ".join(parts) or "no evaluation sets"

    def artifacts(self) -> dict[str, Path]:
        return {"transfer evaluation": self.path / TRANSFER_DIR}


def _read_set(s: EvalSet) -> tuple[list[Any], list[str]]:
    """One evaluation set's labelled records (a fixed, seeded sample per label when asked)."""
    import random

    from emocurate.vectors.labelled import parse_label_map, read_labelled

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
    return records, list(got.warnings)


def _score_options_json(opts: ScoreConfig) -> Any:
    # Where the dense metrics run does not change the scores: switching it reruns nothing.
    return opts.model_dump(mode="json", exclude={"metrics_device"})


class CalibrateStage(Stage[ScoreConfig, Calibration]):
    """Flag thresholds calibrated on the fit's neutral reference into ``calibration/``.

    The score stage reads them from here (``emocurate score`` alone reads
    ``VECTORS/calibration.json``); a changed fit or scoring option recalibrates, a changed
    corpus does not. Not run when the score options ask for fixed z-unit thresholds.
    """

    name = "calibrate"
    folder_name = "calibration"
    needs = (
        Input("fit", ("fit",), "pipeline: 'score' needs a 'fit' stage"),
        # fit keeps the neutral texts (VECTORS/neutral): they are the reference calibrated on
        Input(
            "neutral",
            ("neutral",),
            "pipeline: 'score' needs calibrated flags: add a 'neutral' stage "
            "(neutral dialogues to calibrate on) or set score.options.z_thresholds: true",
        ),
    )
    writes = (CALIBRATION_FILE,)

    @classmethod
    def configure(cls, cfg: PipelineConfig, base: Path) -> ScoreConfig | None:
        if cfg.score is None or cfg.score.options.z_thresholds:
            return None
        return cfg.score.options

    def config_json(self) -> Any:
        return _score_options_json(self.config)

    def run(self) -> Calibration:
        from emocurate.corpus.calibrate import calibrate

        # the neutral texts fit kept in VECTORS/neutral
        calibrate(self.input("fit", FitStage).path, None, self.config, out_dir=self.path)
        return self.load()

    def load(self) -> Calibration:
        return load_calibration(self.path)

    def summary(self, artifact: Calibration) -> str:
        return (
            f"flag thresholds on {artifact.n_docs} neutral documents "
            f"({artifact.reference_tokens} tokens, scored joined as "
            f"{artifact.n_joined} documents of {artifact.n_tokens} tokens)"
        )


class ScoreStage(Stage[ScoreStageConfig, ScoreManifest]):
    """Token-level corpus scores (flags calibrated by the calibrate stage) into ``scores/``."""

    name = "score"
    folder_name = "scores"
    needs = (
        Input("fit", ("fit",), "pipeline: 'score' needs a 'fit' stage"),
        Input("calibration", ("calibrate",)),
    )
    writes = (
        "manifest.json",
        "README.md",
        "quarantine.jsonl",
        "quarantine/*.jsonl",
        "_done/*.json",
        f"{DATA_DIR}/*.parquet",
        f"{TRACES_DIR}/*.parquet",
    )

    def __init__(
        self,
        out: Path,
        config: ScoreStageConfig,
        upstream: Mapping[str, Stage[Any, Any]] | None = None,
        inputs: Sequence[str] = (),
    ) -> None:
        super().__init__(out, config, upstream)
        self.inputs = list(inputs)

    @classmethod
    def configure(cls, cfg: PipelineConfig, base: Path) -> ScoreStageConfig | None:
        return cfg.score

    @classmethod
    def create(
        cls, out: Path, cfg: PipelineConfig, base: Path, found: Mapping[str, Stage[Any, Any]]
    ) -> ScoreStage | None:
        config = cls.configure(cfg, base)
        if config is None:
            return None
        inputs = [p for c in config.corpus for p in _resolve_corpus(c, base)]
        return cls(out, config, cls.wire(config, found), inputs)

    def config_json(self) -> Any:
        return [_score_options_json(self.config.options), self.inputs]

    def content_hash(self) -> str:
        # The corpus readers' own content fingerprint (what the scoring shards resume on).
        from emocurate.corpus.readers import plan_corpus

        return plan_corpus(self.inputs).content_fingerprint()

    def run(self) -> ScoreManifest:
        from emocurate.corpus.engines import score_corpus

        opts = self.config.options
        cal = self.maybe("calibration", CalibrateStage)
        if cal is not None:  # z-unit thresholds asked for: no calibrate stage
            opts = opts.model_copy(update={"calibration": cal.artifact()})
        vdir = self.input("fit", FitStage).path
        return score_corpus(list(self.inputs), vdir, self.path, opts)

    def load(self) -> ScoreManifest:
        return _read(ScoreManifest, self.path)

    def summary(self, artifact: ScoreManifest) -> str:
        m = artifact
        flag_s = f", {m.summary.docs_flagged} flagged" if m.summary is not None else ""
        return f"{m.scored} documents scored{flag_s}, {m.quarantined} quarantined"

    def artifacts(self) -> dict[str, Path]:
        return {"scores": self.path / DATA_DIR}


class CurateStage(Stage[CurateStageConfig, CurateManifest]):
    """The YAML policy applied to the scores (texts attached) into ``curated/``."""

    name = "curate"
    folder_name = "curated"
    needs = (Input("scores", ("score",), "pipeline: 'curate' needs a 'score' stage"),)
    writes = ("manifest.json", "README.md", "*/*.parquet")

    def __init__(
        self,
        out: Path,
        config: CurateStageConfig,
        upstream: Mapping[str, Stage[Any, Any]] | None = None,
        policy: str = "",
    ) -> None:
        super().__init__(out, config, upstream)
        self.policy = policy or config.policy

    @classmethod
    def configure(cls, cfg: PipelineConfig, base: Path) -> CurateStageConfig | None:
        return cfg.curate

    @classmethod
    def create(
        cls, out: Path, cfg: PipelineConfig, base: Path, found: Mapping[str, Stage[Any, Any]]
    ) -> CurateStage | None:
        config = cls.configure(cfg, base)
        if config is None:
            return None
        return cls(out, config, cls.wire(config, found), _resolve(config.policy, base))

    def config_json(self) -> Any:
        return [self.config.model_dump(mode="json"), self.policy]

    def input_files(self) -> list[str]:
        return [self.policy]

    def run(self) -> CurateManifest:
        from emocurate.corpus.curate import curate

        scores = self.input("scores", ScoreStage)
        # Curated rows carry their text (from the corpus the scores were made on): a curator
        # reads what was kept, flagged or dropped.
        return curate(
            scores.path,
            self.policy,
            self.path,
            corpus=list(scores.artifact().inputs),
            untrusted=self.config.untrusted,
        )

    def load(self) -> CurateManifest:
        return _read(CurateManifest, self.path)

    def summary(self, artifact: CurateManifest) -> str:
        m = artifact
        g = m.guardrail
        note = f" ({g.decision}: {g.reason})" if g.decision == "flag-only" else ""
        return f"{m.kept} kept, {m.flagged} flagged, {m.dropped} dropped{note}"

    def artifacts(self) -> dict[str, Path]:
        return {"curated": self.path}


class CardsStage(Stage[CardsStageConfig, CardsManifest]):
    """Dataset card, vector card and the HTML report, all inside ``report/``.

    Cards describe other stages' folders but are written here, never into them (a stage that
    wrote into another's folder would be undone by that stage's rerun, and would change a
    finished folder). ``emocurate push`` places a card at the root of the published tree.
    """

    name = "cards"
    folder_name = "report"
    needs = tuple(
        Input(n, (n,)) for n in ("generate", "validate", "fit", "evaluate", "score", "curate")
    )
    DATASET_CARD = "dataset/README.md"
    VECTOR_CARD = "vectors/README.md"
    REPORT = "report.html"
    writes = ("manifest.json", REPORT, "dataset/*", "vectors/*")

    @classmethod
    def configure(cls, cfg: PipelineConfig, base: Path) -> CardsStageConfig | None:
        return cfg.cards

    def _dir(self, name: str) -> Path | None:
        stage = self.upstream.get(name)
        return stage.path if stage is not None else None

    def _dataset(self) -> Path | None:
        src = self.upstream.get("validate") or self.upstream.get("generate")
        return dataset_dir(src) if src is not None else None

    def run(self) -> CardsManifest:
        from emocurate.cards.dataset_card import write_dataset_card
        from emocurate.cards.report import write_report
        from emocurate.cards.vector_card import write_vector_card

        c = self.config
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
        if c.vector_card and vecs is not None:
            write_vector_card(
                vecs,
                training_dir=data,
                out_dir=self.path / Path(self.VECTOR_CARD).parent,
                transfer_dir=self._dir("evaluate"),
            )
            man.vector_card, man.vectors_dir = self.VECTOR_CARD, str(vecs)
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
        man.save(self.path)
        return man

    def load(self) -> CardsManifest:
        return _read(CardsManifest, self.path)

    def summary(self, artifact: CardsManifest) -> str:
        m = artifact
        made = [m.dataset_card and "dataset card", m.vector_card and "vector card"]
        return ", ".join(x for x in [*made, m.report and "report"] if x) or "nothing"

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


STAGES: tuple[type[Stage[Any, Any]], ...] = (
    GenerateStage,
    NeutralStage,
    ValidateStage,
    FitStage,
    EvaluateStage,
    CalibrateStage,
    ScoreStage,
    CurateStage,
    CardsStage,
)
"""Every stage class in run order; each declares its config (``configure``), its upstream
(``needs``) and its folder, so :func:`build_stages` is one loop over this table."""


def build_stages(cfg: PipelineConfig, out: Path, base: Path) -> list[Stage[Any, Any]]:
    """The configured stages in run order, each wired to the stages it reads."""
    found: dict[str, Stage[Any, Any]] = {}
    for cls in STAGES:
        stage = cls.create(out, cfg, base, found)
        if stage is not None:
            found[stage.name] = stage
    return list(found.values())


def foreign_files(stage: Stage[Any, Any]) -> list[Path]:
    """Files in the stage's folder that it does not declare (``writes`` and its marker):
    another stage wrote them, or the stage wrote something undeclared."""
    allowed = (*stage.writes, MARKER)
    return sorted(
        p
        for p in stage.path.rglob("*")
        if p.is_file()
        and not any(fnmatch(p.relative_to(stage.path).as_posix(), pat) for pat in allowed)
    )


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


def _run_stage(stage: Stage[Any, Any], log: Callable[[str], None]) -> StageResult:
    path, fp = stage.path, stage.fingerprint()
    done = _stage_done(path, fp)
    if done is not None:
        log(f"[skip] {stage.name}: finished earlier ({path})")
        return StageResult(stage.name, path, done.summary, 0.0, True)
    if (path / MARKER).exists():  # finished with another config or input: start afresh
        shutil.rmtree(path)
    log(f"[run ] {stage.name} -> {path}")
    t0 = time.perf_counter()
    ensure_dir(path)
    summary = stage.summary(stage.execute())
    secs = time.perf_counter() - t0
    _mark(path, fp, summary)
    return StageResult(stage.name, path, summary, secs, False)
