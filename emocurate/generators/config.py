"""The configuration of one generation run (what ``emocurate generate`` and the pipeline pass)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from emocurate.records import Model

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
