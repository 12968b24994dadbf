"""OpenAI Chat Completions backend (also vLLM, llama.cpp server, Ollama via ``base_url``).

Structured output uses ``response_format={"type": "json_schema", ...}`` with ``strict``; the
message content is parsed as JSON (an answer cut off at the token limit is left as text so
the generator's parser reports it and the engine retries). OpenAI caches long prompt prefixes
automatically; cached input shows up as ``cache_read_tokens``. ``max_retries=0``: the engine
does all retrying. OpenAI-compatible local servers usually need no key: any
``OPENAI_API_KEY`` value works, and with a ``base_url`` a missing key defaults to ``"none"``.
"""

from __future__ import annotations

import inspect
import json
import os
from typing import Any

from emocurate.generators.backends.base import ChatRequest, Completion
from emocurate.generators.backends.hosted import (
    OPENAI_LIMIT_HEADERS,
    HostedBackend,
    rate_limits,
    require_key,
)


class OpenAIBackend(HostedBackend):
    """GPT models or any OpenAI-compatible server through the official async SDK."""

    name = "openai"
    sdk_error = "OpenAIError"
    limit_headers = OPENAI_LIMIT_HEADERS
    supports_schema = True

    def __init__(
        self,
        model: str,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout_s: float = 120.0,
        client: Any = None,
        token_param: str | None = None,
    ) -> None:
        import openai

        self.sdk = openai
        self.model = model
        self.base_url = base_url or os.environ.get("OPENAI_BASE_URL") or None
        local = self.base_url is not None and "api.openai.com" not in self.base_url
        key = api_key or os.environ.get("OPENAI_API_KEY") or ("none" if local else None)
        key = require_key(("OPENAI_API_KEY",), key, "openai")
        self._make = lambda: openai.AsyncOpenAI(
            api_key=key, base_url=self.base_url, timeout=timeout_s, max_retries=0
        )
        self._fixed = client
        self._clients: dict[int, Any] = {}
        # OpenAI's own models want max_completion_tokens; compatible servers know max_tokens.
        self.token_param = token_param or ("max_tokens" if local else "max_completion_tokens")

    def build_params(self, request: ChatRequest) -> dict[str, Any]:
        """Chat Completions parameters for one request (also used for batch files)."""
        messages: list[dict[str, str]] = []
        if request.system:
            messages.append({"role": "system", "content": request.system})
        messages.extend({"role": m.role, "content": m.content} for m in request.messages)
        params: dict[str, Any] = {
            "model": request.model or self.model,
            "messages": messages,
            self.token_param: request.max_tokens,
            "temperature": request.temperature,
        }
        if request.top_p is not None:
            params["top_p"] = request.top_p
        if request.seed is not None:
            params["seed"] = request.seed
        if request.stop:
            params["stop"] = list(request.stop)
        if request.schema_:
            params["response_format"] = {
                "type": "json_schema",
                "json_schema": {
                    "name": request.schema_name or "output",
                    "schema": request.schema_,
                    "strict": True,
                },
            }
        return params

    async def complete(self, request: ChatRequest) -> Completion:
        """One Chat Completions call (no SDK retries)."""
        with self.sdk_errors():
            raw = await self.client().chat.completions.with_raw_response.create(
                **self.build_params(request)
            )
            resp = raw.parse()
            if inspect.isawaitable(resp):
                resp = await resp
        limits = rate_limits(raw.headers, OPENAI_LIMIT_HEADERS)
        return self.to_completion(
            resp,
            structured=bool(request.schema_),
            limits=limits,
            request_id=raw.headers.get("x-request-id", ""),
        )

    def to_completion(
        self,
        resp: Any,
        *,
        structured: bool,
        limits: dict[str, float] | None = None,
        request_id: str = "",
    ) -> Completion:
        """A Completion from a ChatCompletion (dict or SDK object)."""
        d = resp if isinstance(resp, dict) else resp.model_dump()
        choice = (d.get("choices") or [{}])[0]
        content = ((choice.get("message") or {}).get("content")) or ""
        finish = choice.get("finish_reason") or ""
        data: Any = None
        if structured and content:
            try:
                data = json.loads(content)
            except json.JSONDecodeError:
                data = None
        usage = d.get("usage") or {}
        cached = int(((usage.get("prompt_tokens_details") or {}).get("cached_tokens")) or 0)
        prompt = int(usage.get("prompt_tokens") or 0)
        return Completion(
            text="" if data is not None else content,
            data=data,
            stop_reason="max_tokens" if finish == "length" else str(finish),
            input_tokens=max(0, prompt - cached),
            output_tokens=int(usage.get("completion_tokens") or 0),
            cache_read_tokens=cached,
            request_id=request_id or str(d.get("id") or ""),
            model=str(d.get("model") or self.model),
            rate_limits=limits or {},
        )
