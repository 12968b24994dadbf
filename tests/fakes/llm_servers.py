"""Fake Anthropic and OpenAI HTTP servers on 127.0.0.1 that the real SDKs talk to.

Usage (tests, benchmarks, other helpers' tests)::

    from tests.fakes.llm_servers import Faults, fake_anthropic_server, fake_openai_server

    with fake_anthropic_server(latency_s=0.01, faults=Faults(rate_limit=0.1)) as srv:
        backend = make_backend("anthropic", "claude-sonnet-4-5", base_url=srv.base_url,
                               api_key="test-key")
        ...
        srv.stats.calls, srv.stats.ok, srv.stats.by_status, srv.stats.ok_by_key

Both servers:

* answer ``POST /v1/messages`` (Anthropic) or ``POST /v1/chat/completions`` (OpenAI) in the
  real wire format, including ``usage`` and rate-limit headers (``limits=...``);
* build the answer with a pluggable ``responder(request_json) -> content``: a ``dict`` becomes the
  forced tool's input (Anthropic) or the JSON message content (OpenAI), a ``str`` becomes text.
  The default responder fills the request's JSON schema with deterministic filler prose (same
  request body, same answer), or writes prose when there is no schema;
* inject faults per call with :class:`Faults` probabilities: 429 with ``retry-after``, 529
  (Anthropic) / 503, 500, a connection reset (TCP RST), a hang past the client timeout, and
  malformed (schema-violating) or truncated (cut off at ``max_tokens``) answers;
  ``Faults(reset_first=N)`` resets the first N calls whatever the draws;
* delay every answer by ``latency_s`` (so a test can kill a client while requests are in flight)
  and log every billed answer's usage in ``stats.billed`` (``stats.billed_usd(price)``), billed
  even when the client is gone by the time the answer is ready, as a real provider does;
* count tokens as one per four characters and emulate prompt caching: an Anthropic system block
  with ``cache_control`` of at least ``min_cache_tokens`` tokens is written on first sight and
  read afterwards; OpenAI caches a repeated system prompt of at least ``min_cache_tokens``
  automatically;
* keep :class:`Stats`: calls, successful answers, statuses, faults injected and, per request key
  (sha256 of the canonical request body), how many calls and well-formed answers it received;
  ``stats.user_texts`` lists the last user message of every call, in arrival order.

Batch APIs (``batch_faults=BatchFaults(...)``): Anthropic ``POST /v1/messages/batches``,
``GET /v1/messages/batches/{id}`` and ``.../results`` (JSONL, custom_id + succeeded/errored/
expired result); OpenAI ``POST /v1/files`` (multipart JSONL upload), ``POST /v1/batches``,
``GET /v1/batches/{id}`` and ``GET /v1/files/{id}/content`` (output and error files). A batch
ends after ``BatchFaults.polls`` status requests; items error or expire with the configured
fractions; ``stats.batch_submissions`` counts submissions per custom_id. Batch ids are
deterministic in the batch content, so two fresh servers given the same batches agree.

The server runs in a daemon thread (``ThreadingHTTPServer``), so it can serve a subprocess
too (the kill -9 test). Nothing here talks to any real host.
"""

from __future__ import annotations

import hashlib
import json
import random
import socket
import struct
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from email import policy as email_policy
from email.parser import BytesParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from emocurate.generators.backends.fake import count_tokens, sample_from_schema, sample_text

Responder = Callable[[dict[str, Any]], Any]


FAULT_KINDS = (
    "rate_limit",
    "overloaded",
    "unavailable",
    "server_error",
    "reset",
    "timeout",
    "malformed",
    "truncated",
)
"""Every fault the fake servers can inject (each a rate on :class:`Faults`)."""


@dataclass
class Faults:
    """Per-call fault probabilities (independent draws, checked in this order)."""

    rate_limit: float = 0.0
    overloaded: float = 0.0
    unavailable: float = 0.0
    server_error: float = 0.0
    reset: float = 0.0
    timeout: float = 0.0
    malformed: float = 0.0
    truncated: float = 0.0
    retry_after_s: float = 0.05
    hang_s: float = 3.0
    seed: int = 0
    reset_first: int = 0
    """The first this many calls are reset (TCP RST) whatever the draws say: a deterministic
    burst of resets at the start of a run (the warm-up request's attempts)."""

    def total(self) -> float:
        """Probability that a call is faulty."""
        return (
            self.rate_limit
            + self.overloaded
            + self.unavailable
            + self.server_error
            + self.reset
            + self.timeout
            + self.malformed
            + self.truncated
        )


@dataclass
class BatchFaults:
    """How the fake batch endpoints behave: when a batch ends and which items fail.

    Each item's outcome is drawn from a generator seeded by ``(seed, custom_id, n)`` where ``n``
    is how many times that custom_id was submitted before, so a resubmitted item gets a fresh
    draw and the same submissions always end the same way.
    """

    errored: float = 0.0
    expired: float = 0.0
    malformed: float = 0.0
    """Items that succeed with a schema-violating answer (billed, but unusable)."""
    polls: int = 2
    """Status requests (retrieve calls) a batch answers as in progress before it ends."""
    seed: int = 0


@dataclass
class FakeBatch:
    """One submitted batch: its items ``(custom_id, body, outcome)`` and, once ended, results."""

    id: str
    items: list[tuple[str, dict[str, Any], str]]
    created_at: float
    polls: int = 0
    ended: bool = False
    results: list[dict[str, Any]] = field(default_factory=list)
    input_file_id: str = ""
    output_file_id: str | None = None
    error_file_id: str | None = None


@dataclass
class Stats:
    """What the server saw (thread-safe updates)."""

    calls: int = 0
    ok: int = 0
    by_status: Counter[int] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)
    calls_by_key: Counter[str] = field(default_factory=Counter)
    ok_by_key: Counter[str] = field(default_factory=Counter)
    user_texts: list[str] = field(default_factory=list)
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    started: float = field(default_factory=time.monotonic)
    first_call: float | None = None
    last_call: float | None = None
    batches_created: int = 0
    batch_polls: int = 0
    batch_submissions: Counter[str] = field(default_factory=Counter)
    """How many times each custom_id was submitted in a batch."""
    batch_outcomes: Counter[str] = field(default_factory=Counter)
    """succeeded / errored / expired item results produced."""
    billed: list[dict[str, Any]] = field(default_factory=list)
    """One entry per answer the provider bills (``key``, ``input``, ``output``, ``read``,
    ``write`` tokens), logged when the answer is produced: an answer whose client was killed
    while waiting is billed all the same, as a real provider does."""

    def billed_usd(self, price: Any) -> float:
        """What the billed answers cost at ``price`` (a :class:`~emocurate.generators.pricing.Price`)."""
        from emocurate.generators.backends.base import Completion

        return sum(
            price.cost(
                Completion(
                    input_tokens=b["input"],
                    output_tokens=b["output"],
                    cache_read_tokens=b["read"],
                    cache_write_tokens=b["write"],
                )
            )
            for b in self.billed
        )


def request_key(body: dict[str, Any]) -> str:
    """The identity of a request body (sha256 of canonical JSON)."""
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def _schema_of(body: dict[str, Any]) -> dict[str, Any] | None:
    tools = body.get("tools") or []
    if tools:
        return dict(tools[0].get("input_schema") or {})
    rf = body.get("response_format") or {}
    if rf.get("type") == "json_schema":
        return dict((rf.get("json_schema") or {}).get("schema") or {})
    return None


def default_responder(body: dict[str, Any]) -> Any:
    """Schema-shaped deterministic content (or prose when no schema was given)."""
    rng = random.Random(int(request_key(body)[:12], 16))
    schema = _schema_of(body)
    if schema:
        return sample_from_schema(schema, rng, words=60)
    return sample_text(rng, 80)


def _last_user(body: dict[str, Any]) -> str:
    for m in reversed(body.get("messages") or []):
        if m.get("role") == "user":
            c = m.get("content")
            return c if isinstance(c, str) else json.dumps(c)
    return ""


def _system_text(body: dict[str, Any]) -> tuple[str, bool]:
    sys = body.get("system")
    if isinstance(sys, list):
        text = "".join(b.get("text", "") for b in sys if isinstance(b, dict))
        return text, any(isinstance(b, dict) and b.get("cache_control") for b in sys)
    if isinstance(sys, str):
        return sys, False
    for m in body.get("messages") or []:
        if m.get("role") == "system":
            return str(m.get("content", "")), True  # OpenAI: automatic caching
    return "", False


class FakeLLMServer:
    """One fake API server (``flavor`` is ``"anthropic"`` or ``"openai"``)."""

    def __init__(
        self,
        flavor: str,
        *,
        latency_s: float = 0.0,
        faults: Faults | None = None,
        responder: Responder | None = None,
        limits: dict[str, float] | None = None,
        min_cache_tokens: int = 1024,
        output_words: int | None = None,
        batch_faults: BatchFaults | None = None,
        port: int = 0,
    ) -> None:
        """``port``: 0 picks a free one; a test that restarts "the same server" (same base URL,
        so the same response-cache endpoint) passes the port of the one it replaces."""
        self.flavor = flavor
        self.latency_s = latency_s
        self.faults = faults or Faults()
        self.responder = responder or default_responder
        self.limits = limits or {}
        self.min_cache_tokens = min_cache_tokens
        self.stats = Stats()
        self._lock = threading.Lock()
        self._rng = random.Random(self.faults.seed)
        self._drawn = 0
        self._prompt_cache: set[str] = set()
        self.batch_faults = batch_faults or BatchFaults()
        self.batches: dict[str, FakeBatch] = {}
        self.files: dict[str, bytes] = {}
        self._content_seen: Counter[str] = Counter()
        self._submitted_before: Counter[str] = Counter()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", port), self._handler_class())
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    # -- lifecycle ----------------------------------------------------------------------------
    @property
    def port(self) -> int:
        """The bound port."""
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        """What to pass as the SDK's ``base_url``."""
        root = f"http://127.0.0.1:{self.port}"
        return root if self.flavor == "anthropic" else f"{root}/v1"

    def start(self) -> FakeLLMServer:
        """Start serving in a daemon thread."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._httpd.shutdown()
        self._httpd.server_close()

    def reset_stats(self) -> None:
        """Start counting afresh (e.g. between a killed run and its resume)."""
        with self._lock:
            self._submitted_before.update(self.stats.batch_submissions)
            self.stats = Stats()

    # -- behaviour ----------------------------------------------------------------------------
    def _draw_fault(self) -> str | None:
        f = self.faults
        with self._lock:
            r = self._rng.random()
            self._drawn += 1
            if self._drawn <= f.reset_first:
                return "reset"
        acc = 0.0
        for name in FAULT_KINDS:
            acc += getattr(f, name)
            if r < acc:
                return name
        return None

    def _limit_headers(self) -> dict[str, str]:
        h: dict[str, str] = {}
        if self.flavor == "anthropic":
            names = {
                "rpm": "anthropic-ratelimit-requests-limit",
                "input_tpm": "anthropic-ratelimit-input-tokens-limit",
                "output_tpm": "anthropic-ratelimit-output-tokens-limit",
            }
        else:
            names = {"rpm": "x-ratelimit-limit-requests", "input_tpm": "x-ratelimit-limit-tokens"}
        for k, v in self.limits.items():
            if k in names:
                h[names[k]] = str(int(v))
        return h

    def _usage(self, body: dict[str, Any], out_text: str) -> dict[str, int]:
        system, cacheable = _system_text(body)
        sys_tokens = count_tokens(system) if system else 0
        msgs = [m for m in body.get("messages") or [] if m.get("role") != "system"]
        rest = json.dumps(msgs) + json.dumps(body.get("tools") or body.get("response_format") or "")
        rest_tokens = count_tokens(rest)
        read = write = 0
        if cacheable and sys_tokens >= self.min_cache_tokens:
            h = hashlib.sha256(system.encode()).hexdigest()
            with self._lock:
                seen = h in self._prompt_cache
                self._prompt_cache.add(h)
            if seen:
                read = sys_tokens
            elif self.flavor == "anthropic":
                write = sys_tokens
        plain = sys_tokens - read - write + rest_tokens
        out = count_tokens(out_text)
        with self._lock:
            s = self.stats
            s.billed.append(
                {
                    "key": request_key(body),
                    "input": plain,
                    "output": out,
                    "read": read,
                    "write": write,
                }
            )
            s.input_tokens += plain
            s.output_tokens += out
            s.cache_read_tokens += read
            s.cache_write_tokens += write
        return {"input": plain, "output": out, "read": read, "write": write}

    def respond(self, body: dict[str, Any], fault: str | None) -> dict[str, Any]:
        """The JSON body of a 200 answer (possibly malformed/truncated)."""
        content = self.responder(body)
        schema = _schema_of(body)
        if fault == "malformed":
            content = {"unexpected": "shape"} if schema else "=== ITEM 1 ===\nnonsense"
        as_text = json.dumps(content) if isinstance(content, dict | list) else str(content)
        truncated = fault == "truncated"
        if truncated:
            as_text = as_text[: max(1, len(as_text) // 2)]
        u = self._usage(body, as_text)
        if self.flavor == "anthropic":
            if isinstance(content, dict | list) and schema and not truncated:
                tool = (body.get("tools") or [{}])[0].get("name", "output")
                blocks: list[dict[str, Any]] = [
                    {"type": "tool_use", "id": "toolu_fake", "name": tool, "input": content}
                ]
                stop = "tool_use"
            elif truncated and schema:
                # A tool call cut off at max_tokens arrives with partial (empty) input.
                tool = (body.get("tools") or [{}])[0].get("name", "output")
                blocks = [{"type": "tool_use", "id": "toolu_fake", "name": tool, "input": {}}]
                stop = "max_tokens"
            else:
                blocks = [{"type": "text", "text": as_text}]
                stop = "max_tokens" if truncated else "end_turn"
            return {
                "id": f"msg_fake_{self.stats.calls}",
                "type": "message",
                "role": "assistant",
                "model": body.get("model", ""),
                "content": blocks,
                "stop_reason": stop,
                "stop_sequence": None,
                "usage": {
                    "input_tokens": u["input"],
                    "output_tokens": u["output"],
                    "cache_creation_input_tokens": u["write"],
                    "cache_read_input_tokens": u["read"],
                },
            }
        return {
            "id": f"chatcmpl-fake{self.stats.calls}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", ""),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": as_text},
                    "finish_reason": "length" if truncated else "stop",
                }
            ],
            "usage": {
                "prompt_tokens": u["input"] + u["read"],
                "completion_tokens": u["output"],
                "total_tokens": u["input"] + u["read"] + u["output"],
                "prompt_tokens_details": {"cached_tokens": u["read"]},
            },
        }

    # -- batch APIs ---------------------------------------------------------------------------
    def _new_id(self, prefix: str, content: bytes) -> str:
        """A deterministic id: the same content submitted the same n-th time gets the same id."""
        h = hashlib.sha256(content).hexdigest()
        with self._lock:
            self._content_seen[h] += 1
            n = self._content_seen[h]
        return f"{prefix}{hashlib.sha256(f'{h}:{n}'.encode()).hexdigest()[:24]}"

    def create_batch(
        self, items: list[tuple[str, dict[str, Any]]], *, input_file_id: str = ""
    ) -> FakeBatch:
        """Register a batch; each item's outcome is drawn now (see :class:`BatchFaults`)."""
        f = self.batch_faults
        content = json.dumps([[c, b] for c, b in items], sort_keys=True).encode()
        bid = self._new_id("msgbatch_" if self.flavor == "anthropic" else "batch_", content)
        drawn: list[tuple[str, dict[str, Any], str]] = []
        with self._lock:
            self.stats.batches_created += 1
            for cid, body in items:
                n = self.stats.batch_submissions[cid] + self._submitted_before.get(cid, 0)
                self.stats.batch_submissions[cid] += 1
                seed = hashlib.sha256(f"{f.seed}:{cid}:{n}".encode()).digest()
                r = random.Random(int.from_bytes(seed[:8], "little")).random()
                outcome = (
                    "errored"
                    if r < f.errored
                    else "expired"
                    if r < f.errored + f.expired
                    else "malformed"
                    if r < f.errored + f.expired + f.malformed
                    else "succeeded"
                )
                drawn.append((cid, body, outcome))
            batch = FakeBatch(
                id=bid, items=drawn, created_at=time.time(), input_file_id=input_file_id
            )
            self.batches[bid] = batch
        return batch

    def poll_batch(self, bid: str) -> FakeBatch | None:
        """One status request: the batch ends after ``BatchFaults.polls`` of them."""
        with self._lock:
            batch = self.batches.get(bid)
            if batch is None:
                return None
            self.stats.batch_polls += 1
            batch.polls += 1
            finish = not batch.ended and batch.polls > self.batch_faults.polls
        if finish:
            self._finish(batch)
        return batch

    def _finish(self, batch: FakeBatch) -> None:
        results: list[dict[str, Any]] = []
        for cid, body, outcome in batch.items:
            with self._lock:
                self.stats.batch_outcomes[outcome] += 1
            if outcome in ("succeeded", "malformed"):
                fault = "malformed" if outcome == "malformed" else None
                results.append({"custom_id": cid, "ok": True, "body": self.respond(body, fault)})
            else:
                results.append({"custom_id": cid, "ok": False, "outcome": outcome})
        if self.flavor == "openai":
            ok = [self._openai_line(batch, r) for r in results if r["ok"]]
            bad = [self._openai_line(batch, r) for r in results if not r["ok"]]
            if ok:
                batch.output_file_id = self._store_file("\n".join(ok).encode() + b"\n")
            if bad:
                batch.error_file_id = self._store_file("\n".join(bad).encode() + b"\n")
        batch.results = results
        batch.ended = True

    def _store_file(self, data: bytes) -> str:
        fid = self._new_id("file-", data)
        with self._lock:
            self.files[fid] = data
        return fid

    @staticmethod
    def _openai_line(batch: FakeBatch, r: dict[str, Any]) -> str:
        rid = f"batch_req_{hashlib.sha256((batch.id + r['custom_id']).encode()).hexdigest()[:16]}"
        if r["ok"]:
            line = {
                "id": rid,
                "custom_id": r["custom_id"],
                "error": None,
                "response": {"status_code": 200, "request_id": rid, "body": r["body"]},
            }
        elif r["outcome"] == "expired":
            line = {
                "id": rid,
                "custom_id": r["custom_id"],
                "response": None,
                "error": {
                    "code": "batch_expired",
                    "message": "This request could not be "
                    "executed before the completion window expired.",
                },
            }
        else:
            line = {
                "id": rid,
                "custom_id": r["custom_id"],
                "error": None,
                "response": {
                    "status_code": 500,
                    "request_id": rid,
                    "body": {"error": {"message": "internal error", "type": "server_error"}},
                },
            }
        return json.dumps(line)

    def anthropic_batch_json(self, batch: FakeBatch) -> dict[str, Any]:
        """A MessageBatch object."""
        counts = (
            Counter(o.replace("malformed", "succeeded") for _, _, o in batch.items)
            if batch.ended
            else Counter()
        )
        iso = lambda t: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))  # noqa: E731
        return {
            "id": batch.id,
            "type": "message_batch",
            "processing_status": "ended" if batch.ended else "in_progress",
            "request_counts": {
                "processing": 0 if batch.ended else len(batch.items),
                "succeeded": counts["succeeded"],
                "errored": counts["errored"],
                "canceled": 0,
                "expired": counts["expired"],
            },
            "created_at": iso(batch.created_at),
            "expires_at": iso(batch.created_at + 86400),
            "ended_at": iso(time.time()) if batch.ended else None,
            "archived_at": None,
            "cancel_initiated_at": None,
            "results_url": (
                f"http://127.0.0.1:{self.port}/v1/messages/batches/{batch.id}/results"
                if batch.ended
                else None
            ),
        }

    def anthropic_results(self, batch: FakeBatch) -> bytes:
        """The results JSONL of an ended batch (in reverse order: clients must map by custom_id)."""
        lines = []
        for r in reversed(batch.results):
            if r["ok"]:
                res: dict[str, Any] = {"type": "succeeded", "message": r["body"]}
            elif r["outcome"] == "expired":
                res = {"type": "expired"}
            else:
                res = {
                    "type": "errored",
                    "error": {
                        "type": "error",
                        "request_id": None,
                        "error": {"type": "api_error", "message": "internal error"},
                    },
                }
            lines.append(json.dumps({"custom_id": r["custom_id"], "result": res}))
        return ("\n".join(lines) + "\n").encode()

    def openai_batch_json(self, batch: FakeBatch) -> dict[str, Any]:
        """A Batch object (status ``expired`` when any item expired, as the real API does)."""
        counts = (
            Counter(o.replace("malformed", "succeeded") for _, _, o in batch.items)
            if batch.ended
            else Counter()
        )
        status = ("expired" if counts["expired"] else "completed") if batch.ended else "in_progress"
        return {
            "id": batch.id,
            "object": "batch",
            "endpoint": "/v1/chat/completions",
            "input_file_id": batch.input_file_id,
            "completion_window": "24h",
            "status": status,
            "created_at": int(batch.created_at),
            "output_file_id": batch.output_file_id,
            "error_file_id": batch.error_file_id,
            "errors": None,
            "request_counts": {
                "total": len(batch.items),
                "completed": counts["succeeded"],
                "failed": counts["errored"] + counts["expired"],
            },
        }

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def _send(
                self, status: int, payload: Any, headers: dict[str, str] | None = None
            ) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                for k, v in {**server._limit_headers(), **(headers or {})}.items():
                    self.send_header(k, v)
                try:
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:  # the client is gone (killed while waiting): billed anyway
                    self.close_connection = True
                with server._lock:
                    server.stats.by_status[status] += 1

            def _error(
                self, status: int, etype: str, msg: str, headers: dict[str, str] | None = None
            ) -> None:
                if server.flavor == "anthropic":
                    payload = {"type": "error", "error": {"type": etype, "message": msg}}
                else:
                    payload = {"error": {"message": msg, "type": etype, "code": None}}
                self._send(status, payload, headers)

            def _send_bytes(self, data: bytes, ctype: str = "application/octet-stream") -> None:
                self.send_response(200)
                self.send_header("content-type", ctype)
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                with server._lock:
                    server.stats.by_status[200] += 1

            def _batch_post(self, path: str, raw: bytes) -> bool:
                """Batch-API POST routes; False when ``path`` is not one of them."""
                if server.flavor == "anthropic" and path == "/v1/messages/batches":
                    body = json.loads(raw)
                    items = [(r["custom_id"], r["params"]) for r in body["requests"]]
                    self._send(200, server.anthropic_batch_json(server.create_batch(items)))
                    return True
                if server.flavor == "openai" and path == "/v1/files":
                    msg = BytesParser(policy=email_policy.HTTP).parsebytes(
                        b"Content-Type: "
                        + self.headers.get("content-type", "").encode()
                        + b"\r\n\r\n"
                        + raw
                    )
                    data = b""
                    for part in msg.iter_parts():
                        if part.get_param("name", header="content-disposition") == "file":
                            data = part.get_payload(decode=True) or b""
                    fid = server._store_file(data)
                    self._send(
                        200,
                        {
                            "id": fid,
                            "object": "file",
                            "bytes": len(data),
                            "created_at": int(time.time()),
                            "filename": "batch.jsonl",
                            "purpose": "batch",
                            "status": "processed",
                        },
                    )
                    return True
                if server.flavor == "openai" and path == "/v1/batches":
                    body = json.loads(raw)
                    content = server.files.get(body.get("input_file_id", ""))
                    if content is None:
                        self._error(404, "invalid_request_error", "no such file")
                        return True
                    items = []
                    for line in content.decode().splitlines():
                        if line.strip():
                            row = json.loads(line)
                            items.append((row["custom_id"], row["body"]))
                    batch = server.create_batch(items, input_file_id=body["input_file_id"])
                    self._send(200, server.openai_batch_json(batch))
                    return True
                return False

            def do_GET(self) -> None:  # noqa: N802 - http.server API
                path = self.path.split("?")[0].rstrip("/")
                parts = path.split("/")
                if server.flavor == "anthropic" and path.startswith("/v1/messages/batches/"):
                    batch = server.batches.get(parts[4])
                    if batch is None:
                        self._error(404, "not_found_error", f"no batch {parts[4]}")
                    elif len(parts) == 6 and parts[5] == "results":
                        if not batch.ended:
                            self._error(400, "invalid_request_error", "batch still processing")
                        else:
                            self._send_bytes(server.anthropic_results(batch), "application/binary")
                    else:
                        server.poll_batch(batch.id)
                        self._send(200, server.anthropic_batch_json(batch))
                    return
                if server.flavor == "openai" and path.startswith("/v1/batches/"):
                    b = server.poll_batch(parts[3])
                    if b is None:
                        self._error(404, "not_found_error", f"no batch {parts[3]}")
                    else:
                        self._send(200, server.openai_batch_json(b))
                    return
                if (
                    server.flavor == "openai"
                    and path.startswith("/v1/files/")
                    and path.endswith("/content")
                ):
                    data = server.files.get(parts[3])
                    if data is None:
                        self._error(404, "not_found_error", f"no file {parts[3]}")
                    else:
                        self._send_bytes(data)
                    return
                self._error(404, "not_found_error", f"no route {self.path}")

            def do_POST(self) -> None:  # noqa: N802 - http.server API
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length)
                if self._batch_post(self.path.split("?")[0].rstrip("/"), raw):
                    return
                want = "/v1/messages" if server.flavor == "anthropic" else "/v1/chat/completions"
                if self.path.split("?")[0] != want:
                    self._error(404, "not_found_error", f"no route {self.path}")
                    return
                try:
                    body = json.loads(raw)
                except json.JSONDecodeError:
                    self._error(400, "invalid_request_error", "body is not JSON")
                    return
                key = request_key(body)
                with server._lock:
                    s = server.stats
                    s.calls += 1
                    s.calls_by_key[key] += 1
                    s.user_texts.append(_last_user(body))
                    now = time.monotonic()
                    s.first_call = s.first_call or now
                    s.last_call = now
                fault = server._draw_fault()
                if fault:
                    with server._lock:
                        server.stats.faults[fault] += 1
                if server.latency_s:
                    time.sleep(server.latency_s)
                if fault == "rate_limit":
                    self._error(
                        429,
                        "rate_limit_error",
                        "slow down",
                        {"retry-after": f"{server.faults.retry_after_s:g}"},
                    )
                elif fault == "overloaded":
                    if server.flavor == "anthropic":
                        self._error(529, "overloaded_error", "overloaded")
                    else:
                        self._error(503, "service_unavailable", "overloaded")
                elif fault == "unavailable":
                    self._error(503, "api_error", "service unavailable")
                elif fault == "server_error":
                    self._error(500, "api_error", "internal error")
                elif fault == "reset":
                    # TCP RST: linger 0 then close.
                    self.connection.setsockopt(
                        socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                    )
                    self.connection.close()
                    self.close_connection = True
                elif fault == "timeout":
                    time.sleep(server.faults.hang_s)
                    self.close_connection = True
                    with suppress(OSError):
                        self._error(500, "api_error", "too late")
                else:
                    payload = server.respond(body, fault)
                    self._send(
                        200,
                        payload,
                        {
                            "request-id": f"req_fake_{key[:8]}",
                            "x-request-id": f"req_fake_{key[:8]}",
                        },
                    )
                    if fault is None:
                        with server._lock:
                            server.stats.ok += 1
                            server.stats.ok_by_key[key] += 1

        return Handler


@contextmanager
def _serve(flavor: str, **kw: Any) -> Iterator[FakeLLMServer]:
    srv = FakeLLMServer(flavor, **kw).start()
    try:
        yield srv
    finally:
        srv.stop()


def fake_anthropic_server(**kw: Any) -> Any:
    """Context manager: a fake Messages API; yields the :class:`FakeLLMServer` (``.base_url``)."""
    return _serve("anthropic", **kw)


def fake_openai_server(**kw: Any) -> Any:
    """Context manager: a fake Chat Completions API; yields the :class:`FakeLLMServer`."""
    return _serve("openai", **kw)


def main() -> None:  # pragma: no cover - manual use: python -m tests.fakes.llm_servers anthropic
    import sys

    flavor = sys.argv[1] if len(sys.argv) > 1 else "anthropic"
    srv = FakeLLMServer(flavor).start()
    print(srv.base_url, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        srv.stop()


if __name__ == "__main__":  # pragma: no cover
    main()
