"""The backend contract: one class, one async method.

A backend turns a fully rendered :class:`ChatRequest` into a :class:`Completion`. Everything
else (concurrency, rate limits, retries, caching, cost) lives in the engine, so a new backend
is a page of code.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field

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

    model_config = Model.model_config | {"populate_by_name": True}

    def cache_key(self, backend: str) -> str:
        """Everything that changes the answer: backend, model, messages, system, schema, sampling."""
        data = self.model_dump(mode="json", by_alias=True, exclude={"custom_id", "meta", "prompt_id"})
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


class Backend:
    """Implement :meth:`complete`; set ``name`` and whether structured output is supported."""

    name: ClassVar[str] = "base"
    supports_schema: ClassVar[bool] = False

    async def complete(self, request: ChatRequest) -> Completion:
        """Send one request and return its completion (raise on transport errors)."""
        raise NotImplementedError
