"""The pipeline file: one pydantic-validated config for generate → … → report.

Each stage reuses the config model of the module that runs it, so an option documented for a
CLI command means the same thing in a pipeline file. Input paths inside the file (corpus,
policy, topic files) are relative to the file's folder (or absolute); ``out`` is relative to the
current directory, where the command runs, so ``emocurate run examples/x.yaml`` never writes
into ``examples/``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, ValidationError

from emocurate import yamlio
from emocurate.artifacts import Untrusted
from emocurate.configs import FitConfig, GenerateConfig, ScoreConfig, ValidateConfig
from emocurate.errors import ConfigError, first_problem
from emocurate.records import Model


class SteerStage(Model):
    """Measure the fitted vectors' steering dose-response (``steering.json``, on the card)."""

    emotions: list[str] | None = Field(
        default=None, description="emotions to measure (default: every vector of the set)"
    )
    strength: float = Field(default=0.5, gt=0, description="grid from -strength to +strength")
    steps: int = Field(default=11, ge=3)
    max_new_tokens: int = Field(default=24, ge=1)


class EvalSet(Model):
    """One labelled text set the fitted vectors are read on (e.g. human-written scenarios)."""

    name: str = Field(description="a short name: the report file is evaluation/NAME.json")
    records: str = Field(description="a labelled JSONL/CSV/Parquet file or bundled:scenarios")
    text_field: str = "text"
    label_field: str = "label"
    label_map: dict[str, str] | str | None = Field(
        default=None, description="source label -> emotion name (bundled:scenarios has its own)"
    )
    skip: int | None = Field(
        default=0, ge=0, description="pool from this token on (0: the whole text; None: the set's)"
    )
    per_label: int | None = Field(
        default=None, ge=1, description="read at most this many texts per label (a fixed sample)"
    )


class EvaluateStage(Model):
    """Transfer: the vectors read on labelled text they were not fitted on (``evaluation/``)."""

    sets: list[EvalSet] = Field(default_factory=list)


class ScoreStage(Model):
    """Corpus scoring: which corpora, and how."""

    corpus: list[str] = Field(default_factory=lambda: ["bundled:sample"])
    options: ScoreConfig = Field(default_factory=ScoreConfig)


class CurateStage(Model):
    """Curation policy applied to the scores (``bundled:default`` is the shipped policy)."""

    policy: str = "bundled:default"
    untrusted: Untrusted = Field(
        default="refuse",
        description="when the vectors do not beat chance: refuse drops, flag-only, or force",
    )


class CardsStage(Model):
    """What to write at the end."""

    dataset_card: bool = True
    vector_card: bool = True
    report: bool = True
    license: str = "cc-by-4.0"
    pretty_name: str | None = None


class PipelineConfig(Model):
    """A whole run. Omit a stage (set it to null) to skip it."""

    out: str = Field(
        default="emocurate-run",
        description="output folder, relative to the current directory (not to the pipeline file)",
    )
    generate: GenerateConfig | None = None
    neutral: GenerateConfig | None = None
    validate_: ValidateConfig | None = Field(default=None, alias="validate")
    fit: FitConfig | None = None
    evaluate: EvaluateStage | None = None
    steer: SteerStage | None = None
    score: ScoreStage | None = None
    curate: CurateStage | None = None
    cards: CardsStage | None = Field(default_factory=CardsStage)

    model_config = Model.model_config | {"populate_by_name": True}


def load_pipeline(path: str | Path) -> tuple[PipelineConfig, Path]:
    """Read and validate a pipeline YAML; returns the config and the folder paths resolve against."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"pipeline file not found: {p}")
    try:
        data: Any = yamlio.safe_load(p.read_text("utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p}: not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: a pipeline file must be a YAML mapping of stages")
    return parse_pipeline(data, where=str(p)), p.parent


def parse_pipeline(data: dict[str, Any], where: str = "pipeline") -> PipelineConfig:
    """Validate a pipeline mapping, turning the first pydantic error into one line."""
    try:
        return PipelineConfig.model_validate(data)
    except ValidationError as exc:
        loc, msg = first_problem(exc)
        raise ConfigError(f"{where}: invalid field '{loc}': {msg}") from None
