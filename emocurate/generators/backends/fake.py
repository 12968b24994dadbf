"""An in-process backend for unit tests and offline dry runs: no network, no model.

It answers any request with content that fits the request's JSON schema (or, with
``structured=False``, the same content in the delimiter text format), optionally after a
delay and with injected failures. ``responder`` replaces the default answer entirely.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
from collections.abc import Callable
from typing import Any

from emocurate.generators.backends.base import Backend, CallError, ChatRequest, Completion
from emocurate.generators.parse import render_delimited

WORDS = [
    "the",
    "morning",
    "light",
    "fell",
    "across",
    "a",
    "narrow",
    "kitchen",
    "table",
    "where",
    "a",
    "chipped",
    "mug",
    "waited",
    "beside",
    "an",
    "unopened",
    "letter",
    "and",
    "somewhere",
    "down",
    "the",
    "hall",
    "a",
    "radio",
    "murmured",
    "about",
    "rain",
    "while",
    "she",
    "turned",
    "the",
    "envelope",
    "over",
    "twice",
    "before",
    "setting",
    "it",
    "down",
    "again",
    "near",
    "the",
    "window",
]


def _rng_for(request: ChatRequest, salt: str = "") -> random.Random:
    digest = hashlib.sha256((request.cache_key("fake") + salt).encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "little"))


def sample_text(rng: random.Random, n_words: int = 60) -> str:
    """Plausible filler prose (deterministic for a given rng)."""
    words = [rng.choice(WORDS) for _ in range(n_words)]
    out, sentence = [], []
    for w in words:
        sentence.append(w)
        if len(sentence) >= rng.randint(8, 14):
            s = " ".join(sentence)
            out.append(s[0].upper() + s[1:] + ".")
            sentence = []
    if sentence:
        s = " ".join(sentence)
        out.append(s[0].upper() + s[1:] + ".")
    return " ".join(out)


def sample_from_schema(schema: dict[str, Any], rng: random.Random, *, words: int = 60) -> Any:
    """A value that validates against a (simple) JSON schema: objects, arrays, enums, strings."""
    if "enum" in schema:
        return rng.choice(schema["enum"])
    t = schema.get("type")
    if t == "object":
        props = schema.get("properties", {})
        return {k: sample_from_schema(v, rng, words=words) for k, v in props.items()}
    if t == "array":
        lo = int(schema.get("minItems", 1))
        hi = int(schema.get("maxItems", max(lo, 3)))
        n = hi if hi >= lo else lo
        item = schema.get("items", {"type": "string"})
        if item.get("type") == "object" and set(item.get("properties", {})) == {"speaker", "text"}:
            return [
                {"speaker": ("human", "assistant")[i % 2], "text": sample_text(rng, 25)}
                for i in range(max(n, 4))
            ]
        return [sample_from_schema(item, rng, words=words) for _ in range(n)]
    if t == "integer":
        return rng.randint(int(schema.get("minimum", 0)), int(schema.get("maximum", 10)))
    if t == "number":
        return rng.random()
    if t == "boolean":
        return rng.random() < 0.5
    return sample_text(rng, words)


def default_answer(request: ChatRequest, rng: random.Random) -> Any:
    """Schema-shaped data for structured requests; prose for plain ones."""
    if request.schema_:
        return sample_from_schema(request.schema_, rng)
    return sample_text(rng, min(200, max(10, request.max_tokens // 2)))


def count_tokens(text: str) -> int:
    """The fakes' token count: one per four characters (rounded up)."""
    return max(1, (len(text) + 3) // 4)


Responder = Callable[[ChatRequest], Any]


class FakeBackend(Backend):
    """Deterministic answers per request; optional latency and failure injection."""

    name = "fake"
    supports_schema = True

    def __init__(
        self,
        model: str = "fake-model",
        *,
        responder: Responder | None = None,
        latency_s: float = 0.0,
        fail_rate: float = 0.0,
        malformed_rate: float = 0.0,
        structured: bool = True,
        chat: bool = True,
        seed: int = 0,
    ) -> None:
        self.model = model
        self.responder = responder
        self.latency_s = latency_s
        self.fail_rate = fail_rate
        self.malformed_rate = malformed_rate
        self.structured = structured
        self.chat = chat
        self.calls = 0
        self.calls_by_id: dict[str, int] = {}
        self._faults = random.Random(seed)

    async def complete(self, request: ChatRequest) -> Completion:
        """Answer after ``latency_s``; maybe fail or garble the answer first."""
        self.calls += 1
        self.calls_by_id[request.custom_id] = self.calls_by_id.get(request.custom_id, 0) + 1
        if self.latency_s:
            await asyncio.sleep(self.latency_s)
        roll = self._faults.random()
        if roll < self.fail_rate:
            raise CallError("fake overload", kind="overloaded", retryable=True, status=529)
        answer = (
            self.responder(request)
            if self.responder
            else default_answer(request, _rng_for(request))
        )
        if isinstance(answer, Completion):
            return answer
        malformed = roll < self.fail_rate + self.malformed_rate
        prompt = request.system + "".join(m.content for m in request.messages)
        if request.schema_ and self.structured and not isinstance(answer, str):
            data = {"garbled": True} if malformed else answer
            text = ""
            out_tokens = count_tokens(str(data))
        else:
            text = answer if isinstance(answer, str) else render_delimited(_items(answer))
            if malformed:
                text = text[: len(text) // 3]
            data = None
            out_tokens = count_tokens(text)
        return Completion(
            text=text,
            data=data,
            stop_reason="max_tokens" if malformed else "end_turn",
            input_tokens=count_tokens(prompt),
            output_tokens=out_tokens,
            model=self.model,
            request_id=f"fake-{self.calls}",
        )


def _items(answer: Any) -> list[dict[str, Any]]:
    if isinstance(answer, dict) and isinstance(answer.get("items"), list):
        return list(answer["items"])
    if isinstance(answer, list):
        return answer
    return [answer if isinstance(answer, dict) else {"text": str(answer)}]
