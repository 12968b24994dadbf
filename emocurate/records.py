"""Records shared by every stage, and their Arrow/Parquet round-trip.

Records are pydantic models with ``extra="forbid"`` so that a typo in a field name is an
error, not a silently dropped value. Free-form mappings (sampling parameters, validator
details) are stored as canonical JSON strings so that every row of a Parquet file has the
same Arrow schema whatever keys a row uses.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, TypeVar, get_args

import pyarrow as pa
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer, model_validator


def _parse_json_dict(value: Any) -> Any:
    if isinstance(value, str):
        return json.loads(value) if value else {}
    return {} if value is None else value


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no whitespace: equal values give equal strings (and hashes)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


JsonDict = Annotated[
    dict[str, Any],
    BeforeValidator(_parse_json_dict),
    PlainSerializer(canonical_json, return_type=str),
]
"""A free-form mapping stored as a canonical JSON string on disk."""

FloatMap = Annotated[
    dict[str, float],
    BeforeValidator(_parse_json_dict),
    PlainSerializer(canonical_json, return_type=str),
]
"""Name → number mapping stored as JSON (Arrow structs cannot be empty or vary per row)."""


def utc_now() -> str:
    """Current UTC time as an ISO-8601 string (what every record stores)."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def stable_id(*parts: str, prefix: str = "") -> str:
    """A short deterministic id from the given parts (same inputs, same id on every run)."""
    digest = hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()[:16]
    return f"{prefix}{digest}"


class Model(BaseModel):
    """Base of every record and config: unknown fields are errors."""

    model_config = ConfigDict(extra="forbid", defer_build=True)


class Provenance(Model):
    """Where a generated record came from; enough to reproduce or audit it."""

    backend: str
    model: str
    prompt_id: str
    prompt_hash: str
    params: JsonDict = Field(default_factory=dict)
    seed: int | None = None
    request_id: str = ""
    cache_hit: bool = False
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    created: str = Field(default_factory=utc_now)


Speaker = Literal["human", "assistant"]
PointOfView = Literal["first", "third"]


class Turn(Model):
    """One turn of a two-party conversation."""

    speaker: Speaker
    text: str


class Story(Model):
    """A short story in which a character feels one emotion, shown rather than named."""

    kind: Literal["story"] = "story"
    id: str
    text: str
    emotion: str
    topic: str
    topic_id: str = ""
    pov: PointOfView = "third"
    prompt_prefix: str = ""
    """Opening supplied by the prompt (base models continue a story opening); ``text`` starts
    with it, and label checks such as leakage look only at the generated remainder."""
    provenance: Provenance | None = None

    @property
    def generated_text(self) -> str:
        """The part of ``text`` the model wrote (everything after ``prompt_prefix``)."""
        if self.prompt_prefix and self.text.startswith(self.prompt_prefix):
            return self.text[len(self.prompt_prefix) :]
        return self.text


class Dialogue(Model):
    """A human/assistant conversation with one emotion per speaker."""

    kind: Literal["dialogue"] = "dialogue"
    id: str
    turns: list[Turn]
    human_emotion: str
    assistant_emotion: str
    topic: str = ""
    scenario: str = ""
    provenance: Provenance | None = None

    @property
    def text(self) -> str:
        """The conversation rendered as ``Human: ...`` / ``Assistant: ...`` lines."""
        return render_turns(self.turns)


class NeutralDialogue(Model):
    """An emotionally neutral human/assistant conversation, used to denoise vectors.

    A base model cannot hold a conversation, so for one (the embedded stories260K) the neutral
    baseline is plain narrative in the model's own register instead: ``narrative`` is set and
    ``turns`` is empty.
    """

    kind: Literal["neutral"] = "neutral"
    id: str
    turns: list[Turn] = Field(default_factory=list)
    narrative: str = ""
    topic: str = ""
    provenance: Provenance | None = None

    @model_validator(mode="after")
    def _has_text(self) -> NeutralDialogue:
        if not self.turns and not self.narrative.strip():
            raise ValueError("a neutral record needs turns or a narrative")
        return self

    @property
    def text(self) -> str:
        """The conversation rendered as ``Human: ...`` / ``Assistant: ...`` lines (or the narrative)."""
        return render_turns(self.turns) if self.turns else self.narrative


class RegulationPair(Model):
    """One setup under pressure with a healthy and an unhealthy continuation."""

    kind: Literal["regulation"] = "regulation"
    id: str
    setup: str
    healthy: str
    unhealthy: str
    emotion: str
    protagonist: Literal["person", "ai_assistant"] = "person"
    topic: str = ""
    provenance: Provenance | None = None


class Verdict(Model):
    """One validator's decision on one record; rejected records keep their reasons."""

    record_id: str
    validator: str
    keep: bool
    reason: str = ""
    score: float | None = None
    details: JsonDict = Field(default_factory=dict)


FlagKind = Literal[
    "distress_episode",
    "unrecovered_distress",
    "unresolved_end",
    "escalation",
    "high_volatility",
    "unhealthy_regulation",
    "mirroring",
    "escalating_response",
]
"""Every pattern a scored document can be flagged for, declared once.

The detectors that raise them are in ``emocurate.corpus.regulation`` (``volatility_flags``,
``analyse_dense``, ``escalation``, ``_turns``; formulas in ``docs/metrics.md``, "Flags"). The
Literal lives here, beside the :class:`Flag` record that carries it, because ``records`` is
imported by ``corpus.regulation`` and cannot import it back. A flag of another kind is a
validation error, and a curation policy naming one is refused at load time."""

FLAG_KINDS: tuple[FlagKind, ...] = get_args(FlagKind)
"""The flag kinds in declaration order (attribute files list their keys in this order)."""


class Flag(Model):
    """A pattern found in a scored document, with the token span that caused it."""

    kind: FlagKind
    start: int
    end: int
    severity: float = 0.0
    evidence: str = ""


class DocScore(Model):
    """Per-document summary of a scored corpus document (one row of the scores sidecar)."""

    doc_id: str
    source: str = ""
    n_tokens: int
    dominant: list[str] = Field(default_factory=list)
    emotion_mean: FloatMap = Field(default_factory=dict)
    emotion_p95: FloatMap = Field(default_factory=dict)
    metrics: FloatMap = Field(default_factory=dict)
    flags: list[Flag] = Field(default_factory=list)


def render_turns(turns: list[Turn]) -> str:
    """Render turns the way emocurate feeds conversations to models and scorers."""
    return "\n\n".join(
        f"{'Human' if t.speaker == 'human' else 'Assistant'}: {t.text}" for t in turns
    )


AnyRecord = Story | Dialogue | NeutralDialogue | RegulationPair
RECORD_TYPES: dict[str, type[Model]] = {
    "story": Story,
    "dialogue": Dialogue,
    "neutral": NeutralDialogue,
    "regulation": RegulationPair,
}

M = TypeVar("M", bound=BaseModel)


def record_text(record: BaseModel) -> str:
    """The text a validator or model sees for any record kind."""
    if isinstance(record, Story):
        return record.text
    if isinstance(record, Dialogue | NeutralDialogue):
        return record.text
    if isinstance(record, RegulationPair):
        return f"{record.setup}\n\n{record.healthy}\n\n{record.unhealthy}"
    text = getattr(record, "text", None)
    if isinstance(text, str):
        return text
    raise TypeError(f"no text for record type {type(record).__name__}")


def to_table(records: list[M], model: type[M] | None = None) -> pa.Table:
    """Records to an Arrow table; an empty list keeps the model's schema when ``model`` is given."""
    rows = [r.model_dump(mode="json") for r in records]
    if rows:
        return pa.Table.from_pylist(rows)
    if model is None:
        return pa.table({})
    return pa.Table.from_pylist([], schema=_empty_schema(model))


def from_table(table: pa.Table, model: type[M]) -> list[M]:
    """Arrow table rows back to validated records (raises pydantic errors on bad rows)."""
    names = set(model.model_fields)
    out: list[M] = []
    for row in table.to_pylist():
        out.append(model.model_validate({k: v for k, v in row.items() if k in names}))
    return out


def _empty_schema(model: type[BaseModel]) -> pa.Schema:
    return pa.schema([pa.field(name, pa.string()) for name in model.model_fields])
