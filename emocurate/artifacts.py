"""Typed stage artifacts: what every stage writes, read back by every reader.

Each stage folder holds a ``manifest.json`` (and the vectors folder ``vectorset.json``,
``evaluation.json``, ``steering.json``, ``calibration.json``); this module is the one place
their shapes are declared, as pydantic models. The writers build these models and the
readers (cards, the report, curate, push, ``emocurate run``) parse them, so a reader never
guesses a key or a column name: a manifest that does not fit is one line naming the file and
the field. The module imports no torch, so cards and reports can read a run cheaply.

Every manifest is written by :meth:`Manifest.save` (credentials in URLs redacted) and read by
:meth:`Manifest.read`; ``emocurate.io`` writes none. :class:`GenerateManifest` refuses unknown
keys; the other manifests still allow them (a newer writer may add some) and check the declared
ones.
On disk the formats stay what ``datasets.load_dataset`` and earlier versions read.
"""

from __future__ import annotations

import json
import platform
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import (
    ConfigDict,
    Field,
    JsonValue,
    SerializerFunctionWrapHandler,
    ValidationError,
    field_serializer,
    field_validator,
    model_serializer,
)

from emocurate import __version__
from emocurate.configs import GenerateConfig, ScoreConfig, ValidateConfig
from emocurate.corpus.columns import METRIC_KEYS as METRIC_KEYS  # re-exported: the row schemas
from emocurate.corpus.policy import CuratePolicy
from emocurate.errors import InputError, first_problem
from emocurate.io import MANIFEST, atomic_write_bytes
from emocurate.records import Flag, Model, utc_now
from emocurate.redact import redact_obj

A = TypeVar("A", bound="Manifest")


# ---------------------------------------------------------------------------------------------
# vectors: vectorset.json, evaluation.json, steering.json


def library_versions() -> dict[str, str]:
    """Versions recorded in every artifact, so results can be reproduced."""
    import torch
    import transformers

    return {
        "emocurate": __version__,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
    }


class FitDataSource(Model):
    """Where the fitted texts came from: a stage folder, or a labelled file (``fit --records``).

    Rows of a labelled file that could not be used are counted by reason (``excluded``), with
    the first rows named (``excluded_examples``): never dropped silently.
    """

    name: str
    """The folder, file, or ``bundled:scenarios``."""
    format: str = "stage"  # stage | jsonl | csv | parquet
    licence: str | None = None
    """Licence of the texts as stated by the user (``--data-licence``) or known for bundled
    data; ``None``: not stated."""
    text_field: str | None = None
    label_field: str | None = None
    id_field: str | None = None
    label_map: dict[str, str] = Field(default_factory=dict)
    n_rows: int = 0
    n_used: int = 0
    n_excluded: int = 0
    excluded: dict[str, int] = Field(default_factory=dict)
    excluded_examples: dict[str, list[str]] = Field(default_factory=dict)
    unmapped_labels: list[str] = Field(default_factory=list)
    human_written: bool | None = None


class EvaluationSummary(Model):
    """The held-out scalars kept in ``vectorset.json`` (``meta.evaluation``), from
    :meth:`Evaluation.summary`; the full evidence is ``evaluation.json``.

    Only the fields that were set are written (the classification scalars exist only when rows
    were held out, the lexical ones only with a baseline), so a set without an evaluation
    writes ``{}`` and sets written before ``seeds`` existed (``accuracy``, ``top3``, ``chance``,
    ``auroc_mean``, ``n``) read back as they were. An unset field reads as ``None``.
    """

    chance: float | None = None
    n: int | None = None
    seeds: int | None = None  # split seeds of the evaluation
    accuracy: float | None = None
    accuracy_sd: float | None = None
    accuracy_ci_low: float | None = None
    accuracy_ci_high: float | None = None
    top3: float | None = None
    majority: float | None = None
    auroc_mean: float | None = None
    lexical: float | None = None  # mean accuracy of the lexical baseline
    vs_lexical: Literal["above", "below", "not distinguishable"] | None = None

    @model_serializer(mode="wrap")
    def _set_fields_only(self, handler: SerializerFunctionWrapHandler) -> dict[str, object]:
        data: dict[str, object] = handler(self)
        return {k: v for k, v in data.items() if k in self.model_fields_set}


class VectorSetMeta(Model):
    """Metadata of a VectorSet (the JSON half)."""

    names: list[str]
    layers: list[int]
    default_layer: int
    model_id: str
    model_revision: str = ""
    model_type: str = ""  # transformers config.model_type (llama, qwen2, gpt2, ...)
    hidden_size: int
    n_model_layers: int
    kind: str = "emotion"  # emotion | speaker_human | speaker_assistant | regulation
    hook_site: str = "decoder_block_output"
    pooling: str = "mean"
    skip: int = 50
    short: str = "clip"
    """Records with no token at or after ``skip``: ``skip`` (left out of fitting, counted in
    ``n_skipped_short``) or ``clip`` (pooled from half their length). Sets written before this
    field existed clipped, hence the default."""
    method: str = "mean_diff"
    train_data_hash: str = ""
    n_train_records: int = 0  # records the saved vectors were fitted on
    n_skipped_short: int = 0  # records left out: no token in the pooling window
    label_leak_share: float | None = None
    """Share of fitted texts whose pooled part names their label or its word forms (the leakage
    validator's terms and matcher); ``None`` when not measured."""
    n_label_leak: int = 0
    n_leak_checked: int = 0
    neutral_pcs: dict[str, int] = Field(default_factory=dict)
    neutral_variance: float = 0.0
    standardize: str = "none"
    """``dims``: differences taken in per-dimension standardised coordinates (sd over the
    pooled fitted texts) and mapped back to a raw-space direction; ``none`` (sets written before the
    field existed): the raw mean difference."""
    has_reference: bool = False
    reference_source: str = ""  # neutral | train_tokens: what the z-score reference was measured on
    residual_norm: dict[str, float] = Field(
        default_factory=dict
    )  # mean token ‖h‖ per layer (steering scale)
    layer_selection: str = ""
    """How default_layer was chosen: the rule, and the test with its n and p-value."""
    sweep: dict[str, dict[str, float]] = Field(default_factory=dict)  # held-out metrics per layer
    holdout: float = 0.0
    seed: int = 0
    eval_seeds: int = 0  # split seeds of the held-out evaluation (0: none)
    emotion_counts: dict[str, int] = Field(default_factory=dict)
    data_source: FitDataSource | None = None
    """The fitted texts' source and licence (``None`` in sets written before it was stored)."""
    evaluation: EvaluationSummary = Field(default_factory=EvaluationSummary)
    versions: dict[str, str] = Field(default_factory=library_versions)
    created: str = Field(default_factory=utc_now)


VECTORSET_TENSORS = "vectors.safetensors"
"""A vector set folder's tensors (``VectorSet.load`` reads them; torch-side)."""
VECTORSET_META = "vectorset.json"
"""A vector set folder's metadata, :class:`VectorSetMeta` as JSON."""
SPEAKER_SUBDIRS = {
    "speaker_human": "human",
    "speaker_assistant": "assistant",
    "human": "human",
    "assistant": "assistant",
}
"""Subfolders a speaker-aware fit writes (``meta.kind`` -> folder name)."""


def vectorset_folder(in_dir: str | Path, kind: str | None = None) -> Path:
    """The vector set folder ``in_dir`` names: itself, or with ``kind`` (``speaker_human``/
    ``human``, ``speaker_assistant``/``assistant``) a speaker-aware fit's subfolder.

    Raises:
        InputError: the folder lacks the tensors or the metadata (naming the speaker subfolders
            when it is a speaker-aware fit).
    """
    d = Path(in_dir)
    if kind is not None:
        sub = SPEAKER_SUBDIRS.get(kind, kind)
        if (d / sub / VECTORSET_META).exists():
            d = d / sub
    if not (d / VECTORSET_TENSORS).exists() or not (d / VECTORSET_META).exists():
        subs = [s for s in SPEAKER_SUBDIRS.values() if (d / s / VECTORSET_META).exists()]
        if subs:
            raise InputError(
                f"{d} holds speaker-aware vector sets: load {', '.join(str(d / s) for s in subs)}"
            )
        raise InputError(
            f"{d} is not a vector set folder (needs {VECTORSET_TENSORS} and {VECTORSET_META})"
        )
    return d


def read_vectorset_meta(in_dir: str | Path, kind: str | None = None) -> VectorSetMeta:
    """A vector set's metadata without its tensors (and without torch): what the cards and the
    report need. ``VectorSet.load`` reads the metadata through here too, so both fail alike."""
    path = vectorset_folder(in_dir, kind) / VECTORSET_META
    try:
        return VectorSetMeta.model_validate_json(path.read_text("utf-8"))
    except Exception as exc:
        raise InputError(
            f"{path}: invalid vector set metadata: {str(exc).splitlines()[0]}"
        ) from None


EVALUATION_FILE = "evaluation.json"
INTERVAL = (
    "95% corrected resampled t interval over split seeds (Nadeau & Bengio 2003: "
    "sd^2 * (1/S + n_heldout/n_train), t with S-1 df), clipped to [0, 1]; Wilson score "
    "interval with one seed"
)
LEXICAL = "TF-IDF (words, sublinear tf) + logistic regression (C=1)"


# ---------------------------------------------------------------------------------------------
# the evaluation artifact


class Spread(Model):
    """One held-out figure over split seeds: mean, sd, 95% interval and the per-seed values."""

    mean: float
    sd: float
    ci: tuple[float, float]
    per_seed: list[float]


class PairedDifference(Model):
    """Vectors minus a baseline on the same records (or split seeds), with its 95% interval and
    verdict: the one shape of both comparisons below, which differ only in their wording."""

    diff_mean: float
    diff_ci: tuple[float, float]
    verdict: Literal["above", "below", "not distinguishable"]


class Comparison(PairedDifference):
    """Vectors minus the lexical baseline, paired by split seed (``evaluation.json``)."""

    sentence: str


class LayerMetrics(Model):
    """Held-out metrics of one swept layer (means over split seeds)."""

    accuracy: float
    accuracy_sd: float = 0.0
    top3: float = 0.0
    auroc_mean: float = 0.0
    selection_accuracy: float | None = None  # on the rows the selection test uses


class LayerSelection(Model):
    """How the layer was chosen, with the test that allowed (or refused) a move."""

    rule: str
    default_layer: int
    layer: int
    moved: bool = False
    candidates: list[int] = Field(default_factory=list)
    best_alternative: int | None = None
    test: str = ""
    n_rows: int = 0
    min_rows: int = 0
    b: int = 0  # rows the alternative gets right and the default wrong
    c: int = 0  # rows the default gets right and the alternative wrong
    p_value: float | None = None
    alpha: float | None = None  # after the Bonferroni correction


class GeometryReport(Model):
    """PCA of the vectors and its agreement with the taxonomy's valence and arousal.

    Principal components have no sign of their own: PC1 is oriented so that its correlation
    with valence is >= 0 and PC2 so that its correlation with arousal is >= 0 (``orientation``).
    The cross correlations keep their sign under that orientation. ``*_p`` are permutation
    p-values of ``|r|`` (emotion labels shuffled), ``n_in_taxonomy`` the emotions they rest on.
    """

    variance_explained: list[float] = Field(default_factory=list)
    coords: dict[str, list[float]] = Field(default_factory=dict)
    pc1_valence_r: float | None = None
    pc2_arousal_r: float | None = None
    pc1_arousal_r: float | None = None
    pc2_valence_r: float | None = None
    pc1_valence_p: float | None = None
    pc2_arousal_p: float | None = None
    n_in_taxonomy: int = 0
    orientation: str = "PC1 sign: r(PC1, valence) >= 0; PC2 sign: r(PC2, arousal) >= 0"


class LensTokens(Model):
    """The tokens one vector most promotes (``top``) and suppresses (``bottom``) through the
    final norm's gain and the unembedding, most first."""

    top: list[str]
    bottom: list[str]


class Evaluation(Model):
    """``evaluation.json``: held-out evidence of one fitted vector set, read by cards and reports.

    Classification fields are ``None`` when nothing was held out (``holdout`` 0). ``n_train``
    and ``n_heldout`` are the rows of one split (the first seed); the saved vectors are refitted
    on all ``n_records`` records after the evaluation.
    """

    kind: str = "emotion"
    method: str = "mean_diff"
    layer: int
    chosen_layer: int
    layer_selection: str = ""
    selection: LayerSelection | None = None
    labels: list[str]
    seeds: list[int] = Field(default_factory=list)
    holdout: float = 0.0
    n_records: int = 0
    n_train: int = 0
    n_heldout: int = 0
    n: int = 0  # held-out rows per split (older readers call it n)
    n_skipped_short: int = 0
    label_leak_share: float | None = None
    n_label_leak: int = 0
    n_leak_checked: int = 0
    accuracy: float | None = None
    accuracy_sd: float | None = None
    accuracy_ci: tuple[float, float] | None = None
    accuracy_per_seed: list[float] = Field(default_factory=list)
    interval: str = INTERVAL
    top3: float | None = None
    chance: float
    majority: float | None = None
    majority_per_seed: list[float] = Field(default_factory=list)
    lexical: Spread | None = None
    lexical_method: str = LEXICAL
    vs_lexical: Comparison | None = None
    auroc: dict[str, float] = Field(default_factory=dict)
    auroc_mean: float | None = None
    confusion: list[list[int]] = Field(default_factory=list)  # summed over the split seeds
    sweep: dict[str, LayerMetrics] = Field(default_factory=dict)
    geometry: GeometryReport = Field(default_factory=GeometryReport)
    logit_lens: dict[str, LensTokens] = Field(default_factory=dict)
    reference_source: str = ""
    n_neutral_texts: int = 0

    def summary(self) -> EvaluationSummary:
        """The scalars kept in ``vectorset.json`` (``meta.evaluation``)."""
        out: dict[str, Any] = {"chance": self.chance, "n": self.n, "seeds": len(self.seeds)}
        if self.accuracy is not None and self.accuracy_ci is not None:
            out.update(
                accuracy=self.accuracy,
                accuracy_sd=self.accuracy_sd,
                accuracy_ci_low=self.accuracy_ci[0],
                accuracy_ci_high=self.accuracy_ci[1],
                top3=self.top3,
                majority=self.majority,
                auroc_mean=self.auroc_mean,
            )
        if self.lexical is not None:
            out["lexical"] = self.lexical.mean
        if self.vs_lexical is not None:
            out["vs_lexical"] = self.vs_lexical.verdict
        return EvaluationSummary(**out)


def read_evaluation(folder: str | Path) -> Evaluation | None:
    """The folder's ``evaluation.json`` through :class:`Evaluation` (``None`` when absent)."""
    path = Path(folder) / EVALUATION_FILE
    if not path.exists():
        return None
    try:
        return Evaluation.model_validate_json(path.read_text("utf-8"))
    except ValidationError as exc:
        field, msg = first_problem(exc)
        raise InputError(
            f"{path}: not an evaluation this emocurate writes ({field}: {msg}); refit the vectors"
        ) from None


TRANSFER_DIR = "transfer"
"""``vectors evaluate --save`` writes one :class:`TransferEvaluation` per evaluated data set
here (``<set>/transfer/<name>.json``); the vector card lists them."""


class TransferDifference(PairedDifference):
    """Vectors minus a baseline on the same transfer records (``vectors evaluate``)."""

    interval: str


class ClassificationMetrics(Model):
    """Nearest-vector classification of scored rows: accuracy, top-3, chance (1/E), mean and
    per-emotion one-vs-rest AUROC, the confusion matrix (rows: truth, columns: prediction) in
    ``labels`` order."""

    n: int
    accuracy: float
    top3: float
    chance: float
    auroc_mean: float
    auroc: dict[str, float]
    confusion: list[list[int]]
    labels: list[str]


class LexicalBaseline(Model):
    """The lexical baseline on the evaluated records and its paired bootstrap comparison with
    the vectors; only ``lexical`` (``None``) and ``lexical_kind`` when it was not measured."""

    lexical: float | None
    lexical_ci: tuple[float, float] | None = None
    lexical_kind: str
    vs_lexical: TransferDifference | None = None


def _geometry_in_report(g: GeometryReport) -> dict[str, Any]:
    """The geometry as ``vectors evaluate`` has always printed it: the keys it measured, the
    coordinates last, no ``orientation``."""
    out = g.model_dump(exclude_unset=True)
    out.pop("orientation", None)
    out["coords"] = out.pop("coords", {})
    return out


class VectorsReport(Model):
    """Classification (when rows were scored), geometry and logit lens of a set at one layer.

    Written with ``exclude_unset`` (:meth:`as_json`): a part that was not measured is absent.
    """

    layer: int
    kind: str
    method: str
    n: int | None = None
    accuracy: float | None = None
    top3: float | None = None
    chance: float | None = None
    auroc_mean: float | None = None
    auroc: dict[str, float] | None = None
    confusion: list[list[int]] | None = None
    labels: list[str] | None = None
    geometry: GeometryReport
    logit_lens: dict[str, LensTokens] | None = None

    @field_serializer("geometry")
    def _geometry(self, g: GeometryReport) -> dict[str, Any]:
        return _geometry_in_report(g)

    def as_json(self) -> str:
        """The report as ``vectors evaluate --json`` prints it and ``--out`` writes it."""
        return json.dumps(self.model_dump(exclude_unset=True), indent=2, default=float)


class TransferReport(VectorsReport):
    """``vectors evaluate``: a set read on labelled records, with the Wilson interval of the
    accuracy, the records left out (``skipped``: a label the set lacks; ``n_skipped_short``: no
    token in the pooling window), the majority and lexical baselines on the same records and
    the records the set was fitted on (``n_overlap``). ``source`` names the records once the
    caller sets it. :class:`TransferEvaluation` keeps its headline."""

    n: int
    accuracy: float
    top3: float
    chance: float
    auroc_mean: float
    auroc: dict[str, float]
    confusion: list[list[int]]
    labels: list[str]
    accuracy_ci: tuple[float, float]
    interval: str
    skipped: int
    n_skipped_short: int
    skip: int
    n_input: int
    majority: float
    majority_label: str
    lexical: float | None
    lexical_ci: tuple[float, float] | None = None
    lexical_kind: str
    vs_lexical: TransferDifference | None = None
    n_overlap: int | None
    overlap_warning: str | None
    source: str | None = None


class TransferEvaluation(Model):
    """A vector set read on labelled records it was not fitted on (``vectors evaluate``)."""

    source: str
    layer: int
    n: int
    n_input: int
    n_skipped_short: int
    skipped: int
    skip: int
    accuracy: float
    accuracy_ci: tuple[float, float]
    auroc_mean: float | None = None
    majority: float
    majority_label: str
    lexical: float | None = None
    lexical_kind: str
    vs_lexical: TransferDifference | None = None
    n_overlap: int | None = None
    created: str = Field(default_factory=utc_now)

    @classmethod
    def from_report(cls, report: TransferReport) -> TransferEvaluation:
        """The headline of a ``vectors.evaluate.evaluate`` report (its other fields dropped)."""
        fields = set(cls.model_fields) & set(report.model_fields_set)
        return cls.model_validate(report.model_dump(include=fields))

    def save(self, folder: str | Path, name: str) -> Path:
        """Write ``folder/transfer/<name>.json`` (atomically); return the path."""
        from emocurate.io import ensure_dir

        target = ensure_dir(Path(folder) / TRANSFER_DIR) / f"{name}.json"
        atomic_write_bytes(target, (self.model_dump_json(indent=2) + "\n").encode())
        return target


def read_transfers(folder: str | Path) -> list[TransferEvaluation]:
    """Every saved transfer evaluation of a set (name order); an invalid file is one line."""
    out: list[TransferEvaluation] = []
    for path in sorted((Path(folder) / TRANSFER_DIR).glob("*.json")):
        try:
            out.append(TransferEvaluation.model_validate_json(path.read_text("utf-8")))
        except ValidationError as exc:
            field, msg = first_problem(exc)
            raise InputError(f"{path}: not a transfer evaluation ({field}: {msg})") from None
    return out


STEERING_FILE = "steering.json"
"""The dose-response report, saved in the vector set folder and read by the vector card."""

STRENGTH_UNIT = (
    "fraction of the mean token residual norm at the layer: delta = strength × norm × unit "
    "vector, added to the block output at every position, during generation too"
)
STATISTIC = (
    "rho = mean over prompts of Spearman's rho between strength and the measure; p one-sided "
    "(rho > 0), from permuting the strengths within each prompt; pass = rho > 0 and p < alpha"
)


class Monotonicity(Model):
    """Whether one measure rises with the steering strength, with its sign and significance."""

    rho: float  # mean within-prompt Spearman rho, in [-1, 1]
    p: float  # one-sided permutation p-value for rho > 0
    n: int  # observations: strengths × prompts
    n_prompts: int
    n_permutations: int
    alpha: float
    peak_strength: float  # where the mean over prompts is highest (a hump shows up here)
    verdict: Literal["pass", "fail"]


class SteeringPoint(Model):
    """Both measures at one strength, mean and sd over prompts."""

    strength: float
    projection: float
    projection_sd: float
    word_logprob: float
    word_logprob_sd: float


class EmotionSteering(Model):
    """The dose-response of one emotion direction."""

    emotion: str
    layer: int
    residual_norm: float  # the scale a strength of 1 stands for at this layer
    projection_unit: Literal["z", "raw"]  # z when the set has a neutral reference at the layer
    words: list[str]  # the word forms behind word_logprob
    points: list[SteeringPoint]
    projection_by_prompt: list[list[float]]  # [prompt][strength]
    word_logprob_by_prompt: list[list[float]]  # [prompt][strength]
    projection: Monotonicity  # read-back of the vector's own projection
    word_logprob: Monotonicity  # log P(next word is one of the forms)
    verdict: Literal["pass", "fail"]  # pass = both measures pass


class SteeringReport(Model):
    """``steering.json``: how steering along each vector moves the model, measured two ways.

    *Projection read-back*: a greedy continuation is generated under steering, then the
    unsteered model reads prompt + continuation and the mean projection of the continuation's
    activations on the emotion's unit vector is taken at the layer. *Word log-prob*: the log of
    the total probability that the next word after a neutral prompt is one of the emotion's
    taxonomy word forms (a plain mean of per-form log-probs is dominated by rare forms such as
    "happiest", whose probability can fall while the emotion's words as a whole rise).
    """

    model_id: str
    model_revision: str
    vectors_created: str  # the fitted set this was measured on (meta.created)
    train_data_hash: str
    strength_unit: str = STRENGTH_UNIT
    statistic: str = STATISTIC
    decoding: str
    max_new_tokens: int
    prompts: list[str]
    emotions: dict[str, EmotionSteering]
    versions: dict[str, str] = Field(default_factory=library_versions)
    created: str = Field(default_factory=utc_now)

    def matches(self, meta: VectorSetMeta) -> bool:
        """Whether this report was measured on the set ``meta`` describes (not on an earlier fit
        in the same folder); the metadata is enough, so readers need not load the tensors."""
        return (
            self.vectors_created == meta.created
            and self.train_data_hash == meta.train_data_hash
            and self.model_id == meta.model_id
        )


def load_steering(vectors_dir: str | Path) -> SteeringReport | None:
    """The saved ``steering.json`` of a vector set folder (None when steering was not measured)."""
    path = Path(vectors_dir) / STEERING_FILE
    if not path.exists():
        return None
    try:
        return SteeringReport.model_validate_json(path.read_text("utf-8"))
    except ValidationError as exc:
        loc, msg = first_problem(exc)
        raise InputError(f"{path}: invalid steering report: {loc}: {msg}") from None
    except OSError as exc:
        raise InputError(f"{path}: unreadable steering report ({exc})") from None


def verdict_sentence(e: EmotionSteering) -> str:
    """One plain sentence on what steering along this vector did (console and vector card; here
    beside the artifact so the card renders it without torch)."""
    top = max(pt.strength for pt in e.points)

    def hump(m: Monotonicity) -> str:
        return f", though it is highest at {m.peak_strength:+.2f}" if m.peak_strength < top else ""

    p, w = e.projection, e.word_logprob
    own = (
        f"steering along '{e.emotion}' raises its own projection on the continuations "
        f"(rho {p.rho:+.2f}, p {p.p:.3g}, n {p.n}{hump(p)})"
        if p.verdict == "pass"
        else f"steering along '{e.emotion}' does not move its own projection on the "
        f"continuations up on this model (rho {p.rho:+.2f}, p {p.p:.3g}, n {p.n})"
    )
    words = (
        f"and raises the probability of its words (rho {w.rho:+.2f}, p {w.p:.3g}{hump(w)})"
        if w.verdict == "pass"
        else f"and does not raise the probability of its words (rho {w.rho:+.2f}, p {w.p:.3g})"
    )
    return f"{own}, {words}."


# ---------------------------------------------------------------------------------------------
# curate guardrail

Untrusted = Literal["refuse", "flag-only", "force"]


class HeldOut(Model):
    """The part of a vector set's ``evaluation.json`` the guardrail reads."""

    model_config = ConfigDict(extra="ignore")

    accuracy: float | None = None
    accuracy_ci: tuple[float, float] | None = None
    chance: float
    n_heldout: int = 0


class Guardrail(Model):
    """What the guardrail found and did; stored in the curate manifest."""

    vectors_dir: str = ""
    trusted: bool
    reason: str
    risky_actions: list[str]
    decision: Literal["not needed", "allowed", "refused", "flag-only", "forced"]


# ---------------------------------------------------------------------------------------------
# stage manifests (manifest.json)


class Manifest(Model):
    """Common header of every ``manifest.json``: which stage wrote it, with which version, when."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    stage: str
    emocurate_version: str = __version__
    created: str = Field(default_factory=utc_now)

    @classmethod
    def read(cls: type[A], folder: str | Path) -> A | None:
        """The folder's manifest as this model (``None`` when it has none)."""
        path = Path(folder) / MANIFEST
        data = _load_manifest(path)
        return None if data is None else cls.parse(data, where=str(path))

    @classmethod
    def read_stage(cls: type[A], folder: str | Path) -> A | None:
        """The folder's manifest as this model when this model's stage wrote it: ``None`` when
        the folder has no manifest or another stage's (its header is still checked)."""
        path = Path(folder) / MANIFEST
        data = _load_manifest(path)
        if data is None:
            return None
        if Manifest.parse(data, where=str(path)).stage != cls.model_fields["stage"].default:
            return None
        return cls.parse(data, where=str(path))

    @classmethod
    def parse(cls: type[A], data: Any, where: str = "manifest") -> A:
        """Validate a manifest mapping; the first problem becomes one line naming the field."""
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            loc, msg = first_problem(exc)
            raise InputError(
                f"{where}: not a {cls.__name__} emocurate writes (field '{loc}': {msg})"
            ) from None

    def unwritten(self) -> set[str]:
        """Fields left out of the file (none here; a manifest with fields that only some runs
        set leaves them out when unset, as its writers always did)."""
        return set()

    def save(self, folder: str | Path) -> Path:
        """Write ``folder/manifest.json`` atomically (keys in declaration order); credentials in
        URLs (a ``--base-url``, an error message naming one) are never written."""
        path = Path(folder) / MANIFEST
        data = redact_obj(self.model_dump(mode="json", by_alias=True, exclude=self.unwritten()))
        text = json.dumps(data, indent=2, default=str)
        atomic_write_bytes(path, (text + "\n").encode())
        return path


def _load_manifest(path: Path) -> Any:
    """The JSON in ``path`` (``None`` when there is no such file); unreadable is one line."""
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text("utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: unreadable manifest ({exc})") from None


class TokenCounts(Model):
    """Tokens over a generation run."""

    input: int = 0
    output: int = 0
    cache_read: int = 0
    cache_write: int = 0
    billed: int = 0


class Spend(Model):
    """What a generation run cost: the manifest's ``usd`` report (this run, the folder's total,
    cached answers, prices). The folder's total comes from the spend ledger's
    :class:`~emocurate.generators.ledger.FolderSpend`, the raw sum the budget is checked against.
    """

    spent_this_run: float = 0.0
    spent_total_for_folder: float = 0.0  # the budget is a total per output folder
    settled: float = 0.0  # the folder's answers booked at their billed usage
    in_flight_at_kill: float = 0.0  # the folder's requests whose answers were lost: worst case
    in_flight_at_kill_requests: int = 0
    cached: float = 0.0  # what this run's cached answers cost when they were first paid
    total_including_cached: float = 0.0
    price_known: bool = True
    batch_pricing: bool = False


class RequestFailure(Model):
    """A planned request that ended without records, and why (a rerun asks for it again)."""

    custom_id: str
    reason: str


class PartialAnswer(Model):
    """An answer that held fewer items than it was asked for (a rerun refills the missing)."""

    custom_id: str
    missing: int


class BatchRun(Model):
    """``--batch``: the provider batches this run submitted or resumed, and its state file."""

    submitted: list[str] = Field(default_factory=list)
    resumed: list[str] = Field(default_factory=list)
    state_file: str = ""


DRY_RUN_FIELDS = ("dry_run", "estimated_usd_max", "price_known", "example_request")
"""Fields of a dry run's manifest only (it is returned, never written)."""


class GenerateManifest(Manifest):
    """``<generate>/manifest.json`` (also the neutral stage's): the plan and what came of it.

    Fields are in the order they are written; a dry run's fields (:data:`DRY_RUN_FIELDS`) and
    ``batches`` (set by ``--batch`` only) are left out of the file when unset.
    """

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    stage: str = "generate"
    kind: str
    backend: str
    model: str
    seed: int | None = None
    prompt_id: str = ""
    prompt_hash: str = ""
    prompts: dict[str, str] = Field(default_factory=dict)
    prompt_style: str = ""
    """structured, simple or opening: what ``--prompt-style`` (auto by default) resolved to."""
    prompt_style_reason: str = ""
    config: GenerateConfig | None = None
    """The run's options, credentials in URLs redacted (every run writes them; ``None`` only
    in a manifest made by hand, whose ``{}`` reads as ``None``)."""
    planned_requests: int
    planned_records: int = 0
    completed_requests: int = 0
    cached_requests: int = 0
    failed_requests: int = 0
    skipped_requests: int = 0
    failures: list[RequestFailure] = Field(default_factory=list)
    refill_requests: int = 0  # requests planned for items missing from partial answers
    partial_requests: int = 0
    missing_records: int = 0
    partial: list[PartialAnswer] = Field(default_factory=list)
    records: int = 0
    kept_records: int = 0  # records of the plan held from earlier runs, not got back this time
    calls: int = 0
    retries: int = 0
    malformed_answers: int = 0
    error_counts: dict[str, int] = Field(default_factory=dict)
    tokens: TokenCounts = Field(default_factory=TokenCounts)
    usd: Spend = Field(default_factory=Spend)
    budget_usd: float | None = None
    budget_is_total: bool = True
    budget_reached: bool = False
    interrupted: str | None = None  # SIGINT / SIGTERM: the run stopped early, resumable
    rate_limits: dict[str, float | None] = Field(default_factory=dict)
    """Per minute, as the client enforced them at the end (``None``: unlimited)."""
    time_s: float = 0.0
    cache_file: str = ""
    batches: BatchRun | None = None  # --batch only
    dry_run: bool = False
    estimated_usd_max: float | None = None  # dry run only
    price_known: bool | None = None  # dry run only
    example_request: dict[str, JsonValue] | None = None  # dry run only: a ChatRequest as JSON

    @field_validator("config", mode="before")
    @classmethod
    def _empty_config(cls, value: object) -> object:
        """``{}`` (what a manifest made without a config held before the field was typed) is
        no config, not an invalid one."""
        return None if value == {} else value

    def unwritten(self) -> set[str]:
        """The dry run's fields when this is no dry run, and ``batches`` without ``--batch``."""
        out = set() if self.dry_run else set(DRY_RUN_FIELDS)
        return out | ({"batches"} if self.batches is None else set())


class FunnelStep(Model):
    """One validator's step of the funnel: rows in, rejected, out."""

    model_config = ConfigDict(populate_by_name=True)

    step: str
    n_in: int = Field(alias="in")
    rejected: int
    out: int
    status: str = "used"


class ValidatorStats(Model):
    """What one validator did (reason codes with counts, time, cache use)."""

    checked: int
    rejected: int
    reasons: dict[str, int] = Field(default_factory=dict)
    seconds: float = 0.0
    cached: bool = False
    used: bool = True
    status: str = "used"
    stats: dict[str, Any] = Field(default_factory=dict)
    """The validator's own figures, left open: each validator has its own (rules: problems per
    code; leakage: leaky rows; dedup: clusters; judge: engine use per judge, agreement and the
    multi-annotator report; probe: cross-validated accuracy or why it was not used; rubric:
    engine use), a validator added later brings new ones, and a rerun reads them back from its
    verdict cache as written. The funnel and the reasons above are the typed part every reader uses."""


class EmotionFunnel(Model):
    """The funnel of one emotion (a dialogue counts under each distinct speaker emotion)."""

    model_config = ConfigDict(populate_by_name=True)

    n_in: int = Field(alias="in")
    rejected_by: dict[str, int] = Field(default_factory=dict)
    kept: int = 0


class ValidateInput(Model):
    """The folder validated, its files and the hash of its records."""

    dir: str
    files: list[str] = Field(default_factory=list)
    hash: str = ""


class ValidateManifest(Manifest):
    """``<validated>/manifest.json``: the funnel, per validator and per emotion."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    stage: str = "validate"
    total: int
    kept: int
    rejected: int
    kinds: dict[str, int] = Field(default_factory=dict)
    validators: list[str] = Field(default_factory=list)
    funnel: list[FunnelStep] = Field(default_factory=list)
    per_validator: dict[str, ValidatorStats] = Field(default_factory=dict)
    per_emotion: dict[str, EmotionFunnel] = Field(default_factory=dict)
    per_emotion_note: str = ""
    input: ValidateInput | None = None
    outputs: dict[str, str] = Field(
        default_factory=lambda: {"kept": "kept/data", "rejected": "rejected/data"}
    )
    config: ValidateConfig = Field(default_factory=ValidateConfig)


VALIDATE_ROW_COLUMNS = ("keep", "rejected_by", "reasons", "verdicts")
"""Columns every validated row carries beside its record (``score_<validator>`` too)."""


class VectorsRef(Model):
    """The vector set a corpus was scored with."""

    dir: str
    model_id: str = ""
    model_revision: str = ""
    kind: str = "emotion"
    layer: int | None = None
    n_vectors: int = 0
    has_reference: bool = False


class RegulationVectorsRef(Model):
    """The regulation vector set (healthy minus unhealthy) a corpus was scored with, if any."""

    model_id: str
    n_vectors: int


class Coregulation(Model):
    """Pooled human→assistant arousal pairs of the scored dialogues."""

    pairs: int = 0
    r: float | None = None
    mean_speaker_arousal: float | None = None


class ScoreSummary(Model):
    """Corpus-level summary of a scoring run."""

    docs_flagged: int = 0
    flags: dict[str, int] = Field(default_factory=dict)
    metric_means: dict[str, float | None] = Field(default_factory=dict)
    dialogues: int = 0
    coregulation: Coregulation = Field(default_factory=Coregulation)
    top_dominant: dict[str, int] = Field(default_factory=dict)
    pct_medians: dict[str, float] = Field(
        default_factory=dict,
        description="per calibrated percentile column (distress_pct, mirroring_pct): its "
        "median over the documents that have one (1-point steps)",
    )
    pct_docs: dict[str, int] = Field(
        default_factory=dict, description="per percentile column: documents that have one"
    )


class SkippedEntry(Model):
    """A folder entry that was not read (not a data file), and why."""

    path: str
    reason: str


class AttributeFiles(Model):
    """The Dolma-style attribute files of ``score --attributes``: their folder and the lines
    (documents) written to each file (named after its input, relative to the inputs' root)."""

    dir: str
    files: dict[str, int]


class ReferenceShift(Model):
    """Where the scored corpus's typical document sits in the calibration reference.

    Flags are calibrated on the reference; text that sits higher on the distress axis than
    the reference (another genre, another source) is flagged far more often than the promise
    (issue 18: 118 of 400 neutral documents at a promised 1% on the planted model's seed 1).
    """

    statistic: Literal["distress", "mirroring"] = Field(description="the statistic compared")
    docs: int = Field(description="documents with a calibrated percentile of it")
    median_percentile: float = Field(
        description="median over the documents of distress_pct (or mirroring_pct): where a "
        "document's level sits among reference documents of its length or pairs (50 for "
        "reference-like text)"
    )
    warning: str = Field(default="", description="set when outside the reference's middle half")


class ScoreManifest(Manifest):
    """``<scores>/manifest.json``: rows in = scored + quarantined, the vectors, the options."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    stage: str = "score"
    inputs: list[str]
    rows_in: int
    scored: int
    quarantined: int = 0
    tokens: int = 0
    shards: int = 0
    resumed_shards: int = 0
    seconds: float = 0.0
    tokens_per_s: float | None = None
    engine: str = "local"
    fingerprint: str = ""
    flags_note: str = Field(
        default="", description="why no flag was raised when flags are off (not calibrated)"
    )
    vectors: VectorsRef
    regulation_vectors: RegulationVectorsRef | None = None
    config: ScoreConfig = Field(default_factory=ScoreConfig)
    summary: ScoreSummary | None = None
    reference_shift: list[ReferenceShift] = Field(
        default_factory=list,
        description="the corpus against the calibration reference, per calibrated statistic",
    )
    skipped: list[SkippedEntry] = Field(default_factory=list)
    skipped_total: int = 0
    attributes: AttributeFiles | None = Field(
        default=None, description="where `score --attributes` wrote Dolma-style attribute files"
    )
    timing: dict[str, float | None] = Field(
        default_factory=dict,
        description="start-up timing: started_at (epoch seconds), first_batch_s (when a batch ran)",
    )

    @field_validator("summary", mode="before")
    @classmethod
    def _empty_summary(cls, v: Any) -> Any:
        return v or None  # written as {} when nothing was scored


class ShardMarker(Model):
    """``<scores>/_done/shard-XXXXX.json``: shard ``shard`` of a score run is written.

    Written last (after the shard's Parquet and quarantine files), so its presence means the
    shard is finished; ``fingerprint`` stops a rerun with other inputs, config or vectors from
    reusing it. The counts add up into :class:`ScoreManifest` without reading the shard again.
    """

    shard: int
    rows_in: int = Field(description="input rows of the shard (quarantined ones included)")
    scored: int
    quarantined: int
    tokens: int
    traces: int = Field(description="rows in the shard's tokens/*.parquet")
    fingerprint: str

    def to_bytes(self) -> bytes:
        """The file's bytes (``json.dumps`` of the fields, the layout markers always had)."""
        return json.dumps(self.model_dump()).encode()


class RuleCount(Model):
    """What one policy rule did (``summary/rules.parquet`` holds the same rows)."""

    rule: str
    action: str
    matched: int
    decided: int
    share: float


class CurateManifest(Manifest):
    """``<curated>/manifest.json``: each rule's counts and what the guardrail decided."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    stage: str = "curate"
    scores_dir: str
    policy: CuratePolicy = Field(default_factory=CuratePolicy)
    """The policy applied: the file's, or its flag-only form when the guardrail did not trust
    the vectors (``untrusted: flag-only``)."""
    rows_in: int
    kept: int
    flagged: int = 0
    dropped: int = 0
    rules: list[RuleCount] = Field(default_factory=list)
    kept_by_dominant: dict[str, int] = Field(default_factory=dict)
    with_text: bool = False
    guardrail: Guardrail


class CardsManifest(Manifest):
    """``<report>/manifest.json``: the cards stage's outputs, relative to its folder."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    stage: str = "cards"
    dataset_card: str | None = None  # e.g. "dataset/README.md"; placed at the tree root on push
    dataset_dir: str | None = None  # the dataset folder the card describes
    vector_card: str | None = None
    vectors_dir: str | None = None
    report: str | None = None


class StageMarker(Model):
    """``<stage>/.emocurate-stage.json``: the stage finished with this fingerprint.

    A rerun skips a stage whose marker holds its current fingerprint and shows ``summary``
    (the line its typed artifact gave when it ran) instead of reading the artifact again.
    """

    fingerprint: str
    summary: str = ""


class FittedVectors(Model):
    """What the pipeline's fit stage leaves: the fitted set's metadata, its held-out
    ``evaluation.json`` and, when measured, its ``steering.json``."""

    meta: VectorSetMeta
    evaluation: Evaluation | None = None
    steering: SteeringReport | None = None

    @classmethod
    def read(cls, folder: str | Path) -> FittedVectors:
        """The fit stage folder's set (a speaker-aware fit: the assistant set, which
        ``fit_vectors`` returns); steering is saved beside the stage folder's top."""
        top = Path(folder)
        sub = top / SPEAKER_SUBDIRS["assistant"]
        d = sub if not (top / VECTORSET_META).exists() and (sub / VECTORSET_META).exists() else top
        return cls(
            meta=read_vectorset_meta(d), evaluation=read_evaluation(d), steering=load_steering(top)
        )


class TransferEvaluations(Model):
    """What the pipeline's evaluate stage leaves: one report per configured set, by set name
    (``transfer/NAME.json`` in its folder)."""

    reports: dict[str, TransferEvaluation] = Field(default_factory=dict)

    @classmethod
    def read(cls, folder: str | Path, names: list[str]) -> TransferEvaluations:
        """The reports of the sets ``names``, in that order (an absent one is one line)."""
        reports: dict[str, TransferEvaluation] = {}
        for name in names:
            path = Path(folder) / TRANSFER_DIR / f"{name}.json"
            try:
                reports[name] = TransferEvaluation.model_validate_json(path.read_text("utf-8"))
            except (OSError, ValidationError) as exc:
                raise InputError(f"{path}: no transfer evaluation ({exc})") from None
        return cls(reports=reports)


# ---------------------------------------------------------------------------------------------
# row schemas the readers rely on


SCORE_ID = "doc_id"
"""The document id column of score, trace and curate rows."""
TRACES_DIR = "tokens"
"""Token-level traces of a scores folder: ``tokens/shard-*.parquet``."""
# METRIC_KEYS (imported above): the regulation metrics, one column each in score rows
# (corpus/regulation.py computes them; declared in emocurate.corpus.columns, which the policy reads).


FlagSpan = Flag
"""A flag on a scored document (``flags`` column): the record ``Flag``, token span end exclusive."""


class TraceRow(Model):
    """One row of ``tokens/*.parquet``: decoded tokens and smoothed series (``emotion:<name>``
    for an emotion, plain names for the composites), ``series[k][t]`` for ``series_names[k]``."""

    model_config = ConfigDict(extra="ignore")

    doc_id: str
    n_tokens: int = 0
    truncated: bool = False
    tokens: list[str]
    series_names: list[str]
    series: list[list[float]]
    flags: list[FlagSpan] = Field(default_factory=list)
