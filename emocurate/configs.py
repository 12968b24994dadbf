"""Every stage's options in one torch-free module: what a CLI command and a pipeline file pass.

One model per stage (``GenerateConfig``, ``ValidateConfig`` and its validators' settings,
``FitConfig``, ``ScoreConfig`` with its ``MetricConfig``). They live apart from the modules that
run the stages so that reading a pipeline file, checking a CLI option or reading a manifest's
``config`` loads no model library (torch, transformers, datasets); ``tests/test_configs.py``
imports this module in a fresh interpreter to keep it so. ``emocurate.config`` is the pipeline
*file* (which stages, in what folder) and composes these models; it is a different concept, so
it stays a module of its own.
"""

from __future__ import annotations

import sys
from typing import Annotated, Literal

import numpy as np
from pydantic import Field, PlainValidator, field_validator, model_validator
from pydantic_core import PydanticCustomError

from emocurate.corpus.calibration import DEFAULT_RATE, Calibration
from emocurate.errors import ConfigError
from emocurate.records import Model

# ---------------------------------------------------------------------------------------------
# generate

Kind = Literal["stories", "dialogues", "neutral", "regulation"]
PromptStyle = Literal["auto", "structured", "simple", "opening"]

DEFAULT_PER_REQUEST = {"stories": 12, "dialogues": 4, "neutral": 5, "regulation": 3}
DEFAULT_MAX_TOKENS_PER_ITEM = {"stories": 380, "dialogues": 650, "neutral": 450, "regulation": 700}


class GenerateConfig(Model):
    """Everything that decides which requests are planned and how they are sent."""

    kind: Kind
    backend: str = "anthropic"
    model: str = "claude-sonnet-4-6"
    base_url: str | None = None
    emotions: str = "focal12"
    person_emotions: str | None = Field(
        default=None, description="dialogues: the human's emotions (default: emotions)"
    )
    assistant_emotions: str | None = Field(
        default=None, description="dialogues: the assistant's emotions (default: emotions)"
    )
    pairing: Literal["cycle", "product"] = Field(
        default="cycle",
        description="dialogues: pair each human emotion with one assistant emotion per topic "
        "(cycle) or with every assistant emotion (product)",
    )
    topics: str = "10"
    per_topic: int = Field(
        default=12, ge=1, description="records per emotion (or emotion pair) and topic"
    )
    per_request: int | None = Field(
        default=None, ge=1, description="records asked for in one request"
    )
    concurrency: int = Field(default=8, ge=1)
    rpm: float | None = Field(default=None, gt=0)
    input_tpm: float | None = Field(default=None, gt=0)
    output_tpm: float | None = Field(default=None, gt=0)
    batch: bool = False
    budget_usd: float | None = Field(default=None, ge=0)
    cache: str | None = Field(
        default=None, description="response cache file (default: OUT/cache/responses.jsonl)"
    )
    seed: int = 0
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    max_tokens: int | None = Field(
        default=None, ge=16, description="per request (default: per item x items)"
    )
    max_retries: int = Field(default=6, ge=0)
    timeout_s: float = Field(default=120.0, gt=0)
    backoff_base_s: float = Field(
        default=1.0, ge=0, description="first retry waits up to this (doubling)"
    )
    backoff_max_s: float = Field(default=60.0, ge=0)
    price_input: float | None = Field(
        default=None, ge=0, description="USD per 1M input tokens (override)"
    )
    price_output: float | None = Field(
        default=None, ge=0, description="USD per 1M output tokens (override)"
    )
    prompt_cache: bool = Field(default=True, description="mark the shared system prompt cacheable")
    device: str = Field(default="cpu", description="transformers backend: torch device")
    prompt_style: PromptStyle = Field(
        default="auto",
        description="structured (several items per request in a schema or delimited format), "
        "simple (one item per request in plain words; the whole answer is the item), opening "
        "(a base model continues a story opening), or auto (see generators/style.py)",
    )
    dry_run: bool = False
    progress: bool = True
    batch_poll_s: float = Field(
        default=30.0, gt=0, description="--batch: seconds between status polls"
    )
    replace: bool = Field(
        default=False,
        exclude=True,  # says what may be dropped, not what is made: kept out of fingerprints
        description="allow a rerun whose plan leaves out records the output folder holds "
        "(they are dropped); without it such a rerun is refused before any request",
    )

    @field_validator("emotions", "person_emotions", "assistant_emotions")
    @classmethod
    def _names_some(cls, value: str | None) -> str | None:
        """An emotion spec that names nothing is a mistake, never "the default"."""
        if value is not None and not any(part.strip() for part in value.split(",")):
            raise ValueError(f"'{value}' names no emotion (a subset name or a comma list)")
        return value

    def items_per_request(self, style: str) -> int:
        """Records per request: one in the simple and opening styles (one story per answer)."""
        if style in ("simple", "opening"):
            return 1
        return self.per_request or DEFAULT_PER_REQUEST[self.kind]


# ---------------------------------------------------------------------------------------------
# validate

Action = Literal["reject", "flag", "off"]


class RulesConfig(Model):
    """Settings of the rules validator (all thresholds are inclusive bounds)."""

    min_words: int = 20
    """Fewest words a record may have (dialogue: all turns; regulation: all three parts)."""
    max_words: int = 1200
    """Most words a record may have."""
    min_english: float = 0.15
    """Smallest share of English function words among words (texts of 8+ words)."""
    max_non_latin: float = 0.10
    """Largest share of letters outside the Latin script."""
    min_alpha: float = 0.70
    """Smallest share of letters among non-space characters."""
    max_vowelless: float = 0.15
    """Largest share of 4+-letter words without a vowel (keyboard mash)."""
    max_repeat_run: int = 4
    """Longest run of one word repeated back to back ("the the the the")."""
    min_distinct_trigrams: float = 0.5
    """Smallest share of distinct word trigrams (texts of 20+ words)."""
    truncation: Action = "reject"
    """What to do with a text that ends mid-sentence."""
    strict_stop_reason: bool = False
    """Treat a max-token stop as truncated even when the text ends on a full sentence."""
    meta_action: Action = "reject"
    """What to do with refusals and meta-text."""
    language_action: Action = "reject"
    """What to do with non-English or garbled text."""


class LeakageConfig(Model):
    """Settings of the leakage validator."""

    dialogue_scope: Literal["all", "own"] = "all"
    """``all``: each speaker's emotion is searched in every turn; ``own``: only in its turns."""
    inflect: bool = False
    """Also accept regular suffixes on single-word terms (see the module docstring)."""
    extra_terms: dict[str, list[str]] = Field(default_factory=dict)
    """Additional terms per emotion, on top of the taxonomy's forms and synonyms."""
    max_spans: int = 5
    """How many matched spans to keep in a verdict's details."""


class DedupConfig(Model):
    """Settings of the dedup validator."""

    threshold: float = Field(default=0.8, gt=0.0, le=1.0)
    """Estimated Jaccard similarity of shingle sets at which two texts are duplicates."""
    num_perm: int = Field(default=128, ge=16, le=1024)
    """MinHash permutations (more: finer similarity estimates, slower)."""
    unit: Literal["char", "word"] = "char"
    """Shingle unit: character n-grams (robust to word swaps and sentence reorders, the
    default) or word n-grams."""
    shingle: int = Field(default=4, ge=1, le=16)
    """Units per shingle (after lower-casing, removing punctuation and collapsing spaces)."""
    seed: int = 1
    """MinHash seed (fixed so results do not change between runs)."""


class JudgeSpec(Model):
    """One judge: a backend and model (and a base URL for compatible servers)."""

    backend: str
    model: str
    base_url: str | None = None


class JudgeConfig(Model):
    """Settings of the judge validator."""

    n_confusable: int = Field(default=3, ge=0)
    """Distractors drawn from the intended emotion's family."""
    n_random: int = Field(default=4, ge=0)
    """Distractors drawn from other families."""
    max_choices: int = Field(default=3, ge=1)
    """How many ranked emotions the judge may pick."""
    accept_rank: int = Field(default=2, ge=1)
    """A judge agrees when the intended emotion is within its first ``accept_rank`` picks."""
    min_agreement: float = Field(default=0.5, gt=0.0, le=1.0)
    """Share of judges that must agree for a text to pass."""
    temperature: float = 0.0
    """Sampling temperature of the judge."""
    max_tokens: int = 300
    """Answer length limit."""
    max_chars: int = 6000
    """Longer texts are cut to this many characters before judging."""
    reject: bool = True
    """Reject disagreeing records (False: keep them with the flag in the details)."""
    concurrency: int = Field(default=8, ge=1)
    """Requests in flight per judge."""
    rpm: float | None = None
    """Client-side requests-per-minute limit per judge."""
    budget_usd: float | None = None
    """Stop before spending more than this per judge."""
    max_retries: int = 6
    """Retries per request."""
    progress: bool = True
    """Show a progress bar (only on a terminal)."""


class RubricConfig(Model):
    """Settings of the story rubric."""

    min_score: int = Field(default=3, ge=1, le=5)
    """A story passes when every criterion scores at least this."""
    temperature: float = 0.0
    max_tokens: int = 500
    max_chars: int = 6000
    reject: bool = True
    """Reject failing stories (False: keep them with the flag in the details)."""
    concurrency: int = Field(default=8, ge=1)
    budget_usd: float | None = None
    max_retries: int = 6
    progress: bool = True


class ProbeConfig(Model):
    """Settings of the probe validator."""

    model: str = "stories260K"
    """Model whose activations are the features, or ``tfidf`` for text features."""
    layers: list[int] | None = None
    """Layers whose pooled activations are concatenated (None: every layer of a model with
    at most 8 layers, otherwise about two thirds of the way up)."""
    skip: int = 0
    """Tokens skipped before pooling (the BOS position is never pooled)."""
    device: str = "cpu"
    """Torch device for the model."""
    folds: int = Field(default=5, ge=2)
    """Cross-validation folds (fewer when a class is smaller)."""
    min_per_class: int = Field(default=5, ge=2)
    """Smallest number of texts an emotion needs to be probed."""
    C: float | None = Field(default=None, gt=0)
    """Inverse L2 regularisation of the logistic regression; None picks it by an inner
    3-fold cross-validation (log loss: cleanlab needs good probabilities, not just good
    argmaxes) over 0.01, 0.1 and 1 within each training fold (pooled
    activations of several layers are wide and correlated, so the best strength depends on
    the model and the data size)."""
    filter_by: str = "prune_by_noise_rate"
    """cleanlab ``find_label_issues`` method (prune_by_noise_rate, prune_by_class, both,
    confident_learning, predicted_neq_given)."""
    reject: bool = True
    """Reject flagged records (False: keep them, with the flag in the details)."""
    max_p_informative: float = Field(default=0.01, gt=0, le=1)
    """The probe only rejects when its out-of-sample accuracy beats the majority-class rate
    (one-sided binomial test p below this); otherwise its flags are noise and only noted."""
    seed: int = 0
    """Seed of the fold split."""
    batch_tokens: int = 4096
    """Token budget per forward batch."""


KNOWN_VALIDATORS = ("rules", "leakage", "dedup", "judge", "rubric", "probe")


class ValidateConfig(Model):
    """Everything the validate stage needs; flat fields are the common knobs, nested ones the rest."""

    validators: list[str] = Field(default_factory=lambda: ["rules", "leakage", "dedup"])
    """Validators to run, in order (each sees only rows the earlier ones kept)."""
    dedup_threshold: float = Field(default=0.8, gt=0.0, le=1.0)
    """Estimated Jaccard similarity at which two texts are near-duplicates."""
    reference_dir: str | None = None
    """A stage folder of records to deduplicate against (matches are rejected)."""
    min_words: int = Field(default=20, ge=0)
    """Fewest words a record may have."""
    max_words: int = Field(default=1200, ge=1)
    """Most words a record may have."""
    judge_backend: str | None = None
    """Backend of the (first) LLM judge: anthropic, openai, transformers, fake."""
    judge_model: str | None = None
    """Model of the (first) LLM judge."""
    base_url: str | None = None
    """Base URL of the judge's API (OpenAI-compatible servers, proxies, fakes)."""
    judges: list[JudgeSpec] = Field(default_factory=list)
    """Further judges (each backend/model/base_url); several give agreement statistics."""
    probe_model: str = "stories260K"
    """Model whose pooled activations the probe reads ("tfidf" for text features)."""
    seed: int = 0
    """Seed for the judge's option shuffling and the probe's folds."""
    taxonomy: str | None = None
    """A taxonomy YAML to use instead of the bundled one."""
    rules: RulesConfig | None = None
    """Advanced rules settings (min_words/max_words above take precedence when set)."""
    leakage: LeakageConfig = Field(default_factory=LeakageConfig)
    """Leakage settings."""
    dedup: DedupConfig | None = None
    """Advanced dedup settings (dedup_threshold above takes precedence when set)."""
    judge: JudgeConfig = Field(default_factory=JudgeConfig)
    rubric: RubricConfig = Field(default_factory=RubricConfig)
    """The story rubric (graded by the first judge: --judge-backend/--judge-model)."""
    """Judge settings (options shown, acceptance rule, engine limits)."""
    probe: ProbeConfig = Field(default_factory=ProbeConfig)
    """Probe settings (layers, folds, cleanlab filter)."""
    cache: bool = True
    """Reuse cached verdicts of finished validators (resume after a kill)."""

    @model_validator(mode="after")
    def _check(self) -> ValidateConfig:
        unknown = [v for v in self.validators if v not in KNOWN_VALIDATORS]
        if unknown:
            raise ValueError(
                f"unknown validator(s) {unknown}; known: {', '.join(KNOWN_VALIDATORS)}"
            )
        if len(set(self.validators)) != len(self.validators):
            raise ValueError("a validator is listed twice")
        if self.min_words > self.max_words:
            raise ValueError(f"min_words {self.min_words} > max_words {self.max_words}")
        return self

    def rules_config(self) -> RulesConfig:
        """The rules settings with the flat word bounds applied."""
        base = self.rules or RulesConfig()
        upd = {
            k: getattr(self, k)
            for k in ("min_words", "max_words")
            if k in self.model_fields_set or self.rules is None
        }
        return base.model_copy(update=upd)

    def dedup_config(self) -> DedupConfig:
        """The dedup settings with the flat threshold applied."""
        base = self.dedup or DedupConfig()
        if "dedup_threshold" in self.model_fields_set or self.dedup is None:
            return base.model_copy(update={"threshold": self.dedup_threshold})
        return base

    def judge_specs(self) -> list[JudgeSpec]:
        """The flat judge (if any) followed by ``judges``."""
        specs = list(self.judges)
        if self.judge_backend or self.judge_model:
            if not (self.judge_backend and self.judge_model):
                raise ConfigError("the judge needs both --judge-backend and --judge-model")
            specs.insert(
                0,
                JudgeSpec(
                    backend=self.judge_backend, model=self.judge_model, base_url=self.base_url
                ),
            )
        return specs


# ---------------------------------------------------------------------------------------------
# fit

BUILTIN_FIT_METHODS = ("mean_diff", "pca", "logistic")
"""The fitting methods :mod:`emocurate.vectors.fit` registers when it loads, in that order."""


def fit_methods() -> list[str]:
    """The names ``FitConfig.method`` accepts: the registered aggregators
    (``emocurate.vectors.fit.AGGREGATORS``) once that module is loaded, else the built-in ones.

    A method is registered only by code that imported ``emocurate.vectors.fit``, so before that
    the built-in names are the whole registry; looking the module up in ``sys.modules`` (not
    importing it) keeps this module free of torch.
    """
    fit = sys.modules.get("emocurate.vectors.fit")
    return list(fit.AGGREGATORS) if fit is not None else list(BUILTIN_FIT_METHODS)


def expected_fit_methods() -> str:
    """The registered names as pydantic words a ``Literal``'s choices: 'a', 'b' or 'c'."""
    names = [repr(n) for n in fit_methods()]
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


def _known_method(value: object) -> str:
    """``FitConfig.method`` validator: a registered name, else pydantic's ``Literal`` error
    (same type and words as when the names were a ``Literal``, so messages are unchanged)."""
    if isinstance(value, str) and value in fit_methods():
        return value
    raise PydanticCustomError(
        "literal_error", "Input should be {expected}", {"expected": expected_fit_methods()}
    )


class FitConfig(Model):
    """Options of ``emocurate fit`` (one per CLI flag)."""

    model: str = "stories260K"
    layers: str = "auto"  # auto | all | "N,M"
    method: Annotated[str, PlainValidator(_known_method)] = "mean_diff"
    """A registered fitting method (``emocurate.vectors.fit.AGGREGATORS``): ``mean_diff`` (the study's), ``pca``,
    ``logistic``, or a name added with :func:`register_aggregator`."""
    skip: int | None = Field(None, ge=0)
    """Pool from this token on; ``None``: the study's 50 for stage folders of generated stories,
    0 (the whole text, a document-level reading) for ``records`` files of labelled text, which
    have no prompt opening and are often one sentence."""
    short: Literal["skip", "clip"] = "skip"
    """Records with no token at or after the pooling start: ``skip`` leaves them out (counted),
    ``clip`` pools them from half their length (never before the generated part)."""
    pooling: Literal["mean", "last"] = (
        "mean"  # mean from token skip (anchor), or the last token only
    )
    batch_tokens: int = Field(8192, ge=16)
    neutral_variance: float = Field(0.5, ge=0.0, le=1.0)
    standardize: Literal["dims", "none"] = "none"
    """``none`` (default): the study's raw mean difference; massive-activation dimensions are
    handled by never pooling the first position and by the neutral-PC projection. ``dims``
    (opt-in): differences in coordinates scaled by each dimension's sd over the pooled fitted
    texts; slightly better on SmolLM2's classification, but its saved direction (md/sd^2)
    misdirects known-answer recovery (docs/vectors.md has both measurements)."""
    holdout: float = Field(0.2, ge=0.0, lt=1.0)
    seed: int = 0
    eval_seeds: int = Field(5, ge=1)
    """Split seeds of the held-out evaluation (``seed``, ``seed + 1``, ...)."""
    device: str = "cpu"
    dtype: str = "auto"
    max_length: int | None = None
    logit_lens_k: int = 10
    max_auto_layers: int = Field(16, ge=2)  # layers swept by "auto" on deep models
    records: str | None = None
    """A labelled file (JSONL/CSV/Parquet) or ``bundled:scenarios`` to fit instead of a stage
    folder (:mod:`emocurate.vectors.labelled`)."""
    text_field: str = "text"
    label_field: str = "label"
    id_field: str | None = None
    label_map: dict[str, str] | str | None = None
    """Source label -> emotion name: a mapping, ``a=b,c=d`` or a YAML/JSON file."""
    data_licence: str | None = None
    """Licence of the fitted texts, named on the vector card."""

    def resolved_skip(self) -> int:
        """``skip``, or its default for the input: 50 for stage folders, 0 for records files."""
        if self.skip is not None:
            return self.skip
        return 0 if self.records else STUDY_SKIP


STUDY_SKIP = 50
"""The study's pooling start for generated stories (tokens)."""


# ---------------------------------------------------------------------------------------------
# score


class MetricConfig(Model):
    """Thresholds of the regulation metrics (z units of the neutral reference).

    When the vector set is calibrated, ``threshold``, ``recover_level``, ``escalation_margin``,
    ``volatility_high``, ``regulation_threshold`` and ``arousal_high`` are replaced per document
    by quantiles of the reference (:meth:`emocurate.corpus.calibrate.Calibration.metric_config`).
    """

    smooth: int = Field(default=9, ge=1, description="moving-average window in tokens")
    threshold: float = Field(
        default=1.0, description="distress composite level that starts an episode"
    )
    recover_level: float = Field(
        default=0.5, description="neutral level recovery is measured towards (calibrated: rho)"
    )
    recover_fraction: float = Field(
        default=0.5,
        gt=0.0,
        le=1.0,
        description="share of the way back from a run's peak to recover_level that counts as "
        "recovered (0.5: half-recovery; 1: all the way to recover_level)",
    )
    min_episode: int = Field(
        default=3,
        ge=1,
        description="shortest episode in tokens, on the smoothed series and in raw tokens above",
    )
    merge_gap: int = Field(
        default=4,
        ge=0,
        description="runs of the smoothed series closer than this many tokens merge (and runs "
        "that do not fall back to recover_level in between, whatever the gap)",
    )
    recovery_factor: float = Field(
        default=2.0,
        gt=0.0,
        description="recovery window = max(recovery_min, recovery_factor x episode length)",
    )
    recovery_min: int = Field(default=32, ge=1, description="shortest recovery window in tokens")
    tail: int = Field(
        default=32, ge=1, description="tokens at the end used for end-of-document levels"
    )
    escalation_margin: float = Field(
        default=0.25,
        ge=0.0,
        description="escalation: each rising episode peak (or segment mean) must exceed the "
        "previous one by more than this",
    )
    escalation_rise: float = Field(
        default=0.15,
        ge=0.0,
        description="escalation: each rising episode peak must also exceed the previous one by "
        "this share of its height above recover_level (distress builds with the context)",
    )
    escalation_segments: int = Field(
        default=4, ge=3, description="escalation by trend: segments whose means must all rise"
    )
    volatility_high: float = Field(
        default=1.0,
        description="valence swinging above +this and below -this (z) and back, in quick "
        "succession, flags a volatile span",
    )
    volatility_low: float | None = Field(
        default=None,
        description="the negative side's level: valence below -this (None: volatility_high); "
        "calibration sets each side to the level neutral text reaches on a share RATE of "
        "documents",
    )
    swing_gap: int = Field(
        default=18,
        ge=1,
        description="valence swings (visits beyond +/-volatility_high) at most this many tokens "
        "apart chain into a volatile span",
    )
    regulation_threshold: float = Field(
        default=-1.0, description="regulation-axis level that flags unhealthy spans"
    )
    arousal_high: float = Field(
        default=0.5, description="turn arousal treated as high in dialogues"
    )
    mirror_margin: float = Field(
        default=0.25,
        description="responder arousal within this of the speaker's counts as mirroring",
    )
    dominant_k: int = Field(default=3, ge=1, description="how many dominant emotions to report")
    coreg_min_pairs: int = Field(
        default=5, ge=3, description="human->assistant turn pairs needed for coreg_r"
    )

    def recovery_window(self, episode_len: int) -> int:
        """Tokens after an episode of ``episode_len`` tokens in which it must recover."""
        return max(self.recovery_min, int(np.ceil(self.recovery_factor * episode_len)))


class ScoreConfig(Model):
    """How to read, window, batch, score and trace a corpus."""

    text_field: str = Field(
        default="text", description="JSON/Parquet field holding the document text"
    )
    id_field: str | None = Field(
        default=None, description="field holding a document id (generated when absent)"
    )
    engine: Literal["local", "ray"] = "local"
    address: str | None = Field(
        default=None, description="Ray cluster address (engine=ray); local Ray when absent"
    )
    ray_actors: int = Field(default=1, ge=1, description="model actors for the Ray engine")
    batch_tokens: int = Field(default=8192, ge=16, description="padded tokens per forward batch")
    window: int | None = Field(
        default=None, ge=8, description="window in tokens (default: model context)"
    )
    stride: int | None = Field(
        default=None, ge=1, description="window start spacing (default: 3/4 of the window)"
    )
    device: str = "cpu"
    dtype: str = Field(
        default="auto", description="model dtype when loading (auto: bf16 on GPU, fp32 on CPU)"
    )
    model: str | None = Field(
        default=None, description="model path/id (default: the VectorSet's model_id)"
    )
    limit: int | None = Field(default=None, ge=1, description="read at most this many input rows")
    smooth: int = Field(
        default=9, ge=1, description="moving-average window in tokens before metrics"
    )
    shard_size: int = Field(default=256, ge=1, description="input rows per output shard")
    layer: int | None = Field(
        default=None, description="probe layer (default: the VectorSet's default layer)"
    )
    max_chars: int = Field(default=2_000_000, ge=1, description="longer documents are quarantined")
    regulation_vectors: str | None = Field(
        default=None, description="folder of a regulation VectorSet (healthy minus unhealthy)"
    )
    metrics: MetricConfig = Field(default_factory=lambda: MetricConfig())
    fpr: float = Field(
        default=DEFAULT_RATE,
        gt=0.0,
        lt=1.0,
        description="false-positive rate per flag kind on the calibration reference",
    )
    z_thresholds: bool = Field(
        default=False,
        description="use the fixed z-unit thresholds of `metrics` instead of the calibration",
    )
    calibration: Calibration | None = Field(
        default=None,
        description="the vector set's calibration (score_corpus loads calibration.json)",
    )
    flags_off: bool = Field(
        default=False,
        description="no calibration.json and no z-unit thresholds asked for: no flags are raised "
        "(metric columns use the fixed z-unit thresholds); the manifest's flags_note says so",
    )
    trace_flagged: int = Field(
        default=50, ge=0, description="token traces kept per shard for flagged documents"
    )
    trace_others: int = Field(
        default=5, ge=0, description="token traces kept per shard for the first unflagged documents"
    )
    trace_top: int = Field(
        default=8, ge=1, description="emotions per trace (highest document means)"
    )
    trace_max_tokens: int = Field(default=4096, ge=1, description="tokens kept per trace")
    overlap: bool | None = Field(
        default=None,
        description="pipeline CPU work (tokenising, metrics) "
        "with the model (default: on for accelerators, off on CPU)",
    )
    attributes: str | None = Field(
        default=None,
        description="folder for Dolma-style attribute files (flag spans as character offsets)",
    )
    metrics_device: Literal["auto", "device", "host"] = Field(
        default="auto",
        description="where the dense part of the metrics (smoothing, means, p95, composites) "
        "runs: 'device' = batched float64 tensors on the model's device (no host copy of the "
        "[tokens, emotions] scores), 'host' = NumPy per document, 'auto' = device on CUDA, "
        "host otherwise; the results are the same (to float64 rounding)",
    )
    progress: bool = True

    def metric_config(self) -> MetricConfig:
        """Metric thresholds with this config's smoothing window."""
        return self.metrics.model_copy(update={"smooth": self.smooth})
