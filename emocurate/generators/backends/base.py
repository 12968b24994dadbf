"""The backend contract: one class, one async method.

A backend turns a fully rendered :class:`ChatRequest` into a :class:`Completion`. Everything
else (concurrency, rate limits, retries, caching, cost) lives in the engine, so a new backend
is a page of code.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field

from emocurate.errors import EmocurateError
from emocurate.records import JsonDict, Model, canonical_json


class Message(Model):
    """One chat message."""

    role: Literal["user", "assistant"]
    content: str


class ChatRequest(Model):
    """A fully rendered request; its canonical JSON is the cache key.

    ``schema_`` is the JSON schema of the structured output wanted (tool input for Anthropic,
    ``response_format`` for OpenAI); backends without structured output fall back to a
    delimiter-based text format described in the prompt.
    """

    custom_id: str
    model: str
    system: str = ""
    messages: list[Message]
    max_tokens: int = 1024
    temperature: float = 1.0
    top_p: float | None = None
    seed: int | None = None
    stop: list[str] = Field(default_factory=list)
    schema_name: str = ""
    schema_: JsonDict = Field(default_factory=dict, alias="schema")
    cache_system: bool = True
    prompt_id: str = ""
    prompt_hash: str = ""
    meta: JsonDict = Field(default_factory=dict)
    raw: bool = False
    """Send the text as is, without the model's chat template (a chat model asked to continue
    a story opening; local backends only)."""

    model_config = Model.model_config | {"populate_by_name": True}

    def cache_key(self, backend: str) -> str:
        """Everything that changes the answer: backend, model, messages, system, schema, sampling."""
        data = self.model_dump(
            mode="json", by_alias=True, exclude={"custom_id", "meta", "prompt_id"}
        )
        if not data.get("raw"):
            data.pop("raw", None)  # keys of requests from before the flag stay valid
        return canonical_json({"backend": backend, **data})


class Completion(Model):
    """What a backend returns: text and/or structured data, usage and the stop reason."""

    text: str = ""
    data: Any = None
    stop_reason: str = ""
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    request_id: str = ""
    model: str = ""
    created: str = ""
    """When the answer arrived (set by the engine; kept in the cache so a resumed run writes
    the same provenance as an uninterrupted one)."""
    rate_limits: dict[str, float] = Field(default_factory=dict)
    """Limits a provider announced in its response headers (``rpm``, ``input_tpm``,
    ``output_tpm``, and ``*_remaining``); the engine seeds its token buckets from them. Not
    part of the answer, so the cache does not store it."""


class CallError(EmocurateError):
    """A failed call, classified so the engine (the only place that retries) knows what to do.

    Backends translate their SDK's exceptions into this one type: ``retryable`` for 429, 529,
    5xx, timeouts and dropped connections; ``fatal`` for problems no retry can fix and that
    concern every request (bad key, unknown model, unreachable server), which stop the run
    with one line; anything else fails only this request.
    """

    def __init__(
        self,
        message: str,
        *,
        kind: str = "error",
        retryable: bool = False,
        fatal: bool = False,
        status: int | None = None,
        retry_after: float | None = None,
        rate_limits: dict[str, float] | None = None,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.retryable = retryable
        self.fatal = fatal
        self.status = status
        self.retry_after = retry_after
        self.rate_limits = rate_limits or {}


class Backend:
    """Implement :meth:`complete`; set ``name`` and whether structured output is supported.

    ``chat`` is False for a base model without a chat template: generators then write
    continuation prompts (a story opening the model carries on) instead of instructions.
    ``supports_prompt_cache`` tells the engine that shared system prompts are cached
    server-side, so it sends one request first to warm the cache before fanning out.
    """

    name: ClassVar[str] = "base"
    supports_schema: ClassVar[bool] = False
    supports_prompt_cache: ClassVar[bool] = False
    chat: bool = True
    model: str = ""
    base_url: str | None = None
    n_params: int | None = None

    async def complete(self, request: ChatRequest) -> Completion:
        """Send one request and return its completion (raise on transport errors)."""
        raise NotImplementedError

    def expected_seconds(self, request: ChatRequest) -> float | None:
        """How long an answer to ``request`` should take here, when the backend can tell
        (a local model knows its step time and queue); None when it cannot. The engine's
        timeout for the call is at least a few times this."""
        return None

    async def aclose(self) -> None:
        """Release connections or models (default: nothing to do)."""
