"""``--batch``: provider batch APIs (Anthropic Message Batches, OpenAI Batch API) at half price.

A batch run does what :class:`~emocurate.generators.engine.Engine` does for single calls, but
through a provider's asynchronous batch endpoint:

1. Requests already in the response cache are answered from it (no call, no cost).
2. The rest are submitted as one or more batches, after the worst-case cost of each batch at
   the batch price has been checked against ``--budget-usd`` (a first batch that does not fit
   is refused with one line; a resubmission that does not fit is skipped, with a reason).
3. Each batch id and the ``custom_id -> cache key`` of its items are written atomically to a
   state file (``OUT/cache/batches.json``) *before* waiting on it, so a process killed by
   ``kill -9`` loses nothing: the rerun finds the batch in the state file and resumes polling
   it instead of submitting (and paying for) those items again. No API key is ever written.
4. Batches are polled every ``poll_s`` seconds; the progress bar shows their status counts.
5. When a batch ends its results are mapped back by ``custom_id`` (results arrive in any
   order). Good answers go into the same :class:`ResponseCache` as normal calls, so a rerun
   repeats nothing; errored, expired, canceled, missing and malformed items are resubmitted
   in a new batch (only those), up to ``max_retries`` times; a request rejected as invalid is
   not resubmitted. Every planned request ends as a completion or a failure with a reason.

Cache keys, prices (the batch price included), the budget (a total per output folder), the
reservations of submitted batches and the counts are the
:class:`~emocurate.generators.ledger.Ledger`'s, the same one the engine uses; retries follow
the engine's :class:`~emocurate.generators.retry.RetryPolicy`. The runner reaches the engine
only through these public parts (:meth:`BatchRunner.for_engine`).

Providers implement a three-method interface (:class:`BatchProvider`): ``submit``, ``poll``
and ``results``; the runner owns the state file and the order of submissions and retries.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, cast

from pydantic import Field

from emocurate.errors import BackendError, BudgetExceeded, ConfigError
from emocurate.generators.backends.anthropic_backend import AnthropicBackend
from emocurate.generators.backends.base import Backend, CallError, ChatRequest, Completion
from emocurate.generators.backends.hosted import HostedBackend
from emocurate.generators.backends.openai_backend import OpenAIBackend
from emocurate.generators.engine import Check, Engine, check_unique_ids, run_blocking
from emocurate.generators.ledger import Ledger, RequestResult
from emocurate.generators.parse import ParseError
from emocurate.generators.progress import ProgressBar, ProgressFactory
from emocurate.generators.retry import RetryPolicy
from emocurate.io import atomic_write_bytes
from emocurate.records import Model, utc_now

__all__ = [
    "AnthropicBatches",
    "BatchPoll",
    "BatchProvider",
    "BatchRecord",
    "BatchRunner",
    "BatchState",
    "ItemOutcome",
    "OpenAIBatches",
    "make_batch_provider",
]

STATE_VERSION = 1


# -- persisted state --------------------------------------------------------------------------
class BatchRecord(Model):
    """One submitted batch, as persisted (ids and cache keys only: no keys, no prompts)."""

    id: str
    provider: str
    model: str
    items: dict[str, str] = Field(description="custom_id -> response-cache key of the request sent")
    structured: bool = True
    estimate_usd: float = 0.0
    submitted_at: str = ""
    collected: bool = False
    input_file_id: str = ""


class BatchState(Model):
    """The state file: every batch this output folder has submitted."""

    version: int = STATE_VERSION
    batches: list[BatchRecord] = Field(default_factory=list)

    @classmethod
    def load(cls, path: Path) -> BatchState:
        """Read the state file (an absent file is an empty state)."""
        if not path.exists():
            return cls()
        try:
            return cls.model_validate_json(path.read_bytes())
        except ValueError as exc:
            first = str(exc).splitlines()[0]
            raise ConfigError(
                f"batch state file {path} is unreadable ({first}); "
                "move it aside to start the batches afresh"
            ) from None

    def save(self, path: Path) -> None:
        """Write atomically (temporary file + rename): a crash leaves the old or the new state."""
        atomic_write_bytes(path, self.model_dump_json(indent=1).encode("utf-8"))


# -- provider interface -----------------------------------------------------------------------
@dataclass
class ItemOutcome:
    """What a batch did with one item."""

    custom_id: str
    status: str
    """``succeeded``, ``errored``, ``expired``, ``canceled`` or ``missing``."""
    completion: Completion | None = None
    error: str = ""
    retryable: bool = True


@dataclass
class BatchPoll:
    """One status check."""

    ended: bool
    status: str
    counts: dict[str, int] = field(default_factory=dict)


class BatchProvider(Protocol):
    """What a provider's batch API must offer the runner."""

    name: str
    max_items: int

    async def submit(self, requests: list[ChatRequest]) -> tuple[str, str]:
        """Create a batch; returns ``(batch_id, input_file_id or "")``."""
        ...

    async def poll(self, batch_id: str) -> BatchPoll:
        """The batch's processing status and counts."""
        ...

    async def results(self, batch_id: str, structured: dict[str, bool]) -> dict[str, ItemOutcome]:
        """Outcomes of an ended batch by custom_id (``structured``: which items used a schema)."""
        ...


def _as_dict(obj: Any) -> dict[str, Any]:
    if isinstance(obj, dict):
        return obj
    to_dict = getattr(obj, "to_dict", None)
    if callable(to_dict):
        return dict(to_dict())
    return dict(obj.model_dump())


class _HostedBatches:
    """What both batch APIs share: the backend they build requests with, and its errors."""

    name: str

    def __init__(self, backend: HostedBackend, *, max_items: int = 10_000) -> None:
        self.backend = backend
        self.max_items = max_items

    async def _do(self, coro: Any) -> Any:
        """Await one SDK call; SDK errors become the backend's :class:`CallError`."""
        with self.backend.sdk_errors():
            return await coro


class AnthropicBatches(_HostedBatches):
    """Message Batches: each item is ``{"custom_id", "params"}`` with the Messages API params
    (structured output as one tool + ``tool_choice``, system prompt with ``cache_control``)."""

    name = "anthropic"
    backend: AnthropicBackend

    async def submit(self, requests: list[ChatRequest]) -> tuple[str, str]:
        items = [
            {"custom_id": r.custom_id, "params": self.backend.build_params(r)} for r in requests
        ]
        batch = await self._do(self.backend.client().messages.batches.create(requests=items))
        return str(batch.id), ""

    async def poll(self, batch_id: str) -> BatchPoll:
        b = await self._do(self.backend.client().messages.batches.retrieve(batch_id))
        counts = {k: int(v) for k, v in _as_dict(b.request_counts).items()}
        return BatchPoll(
            ended=b.processing_status == "ended", status=str(b.processing_status), counts=counts
        )

    async def results(self, batch_id: str, structured: dict[str, bool]) -> dict[str, ItemOutcome]:
        out: dict[str, ItemOutcome] = {}
        decoder = await self._do(self.backend.client().messages.batches.results(batch_id))
        with self.backend.sdk_errors({}):
            async for item in decoder:
                d = _as_dict(item)
                cid = str(d.get("custom_id", ""))
                res = d.get("result") or {}
                rtype = str(res.get("type", ""))
                if rtype == "succeeded":
                    try:
                        c = self.backend.to_completion(
                            res.get("message") or {}, request_id=f"{batch_id}:{cid}"
                        )
                        out[cid] = ItemOutcome(cid, "succeeded", completion=c)
                    except CallError as exc:
                        out[cid] = ItemOutcome(cid, "errored", error=f"bad_response: {exc.message}")
                elif rtype == "errored":
                    err = ((res.get("error") or {}).get("error")) or {}
                    etype = str(err.get("type", "error"))
                    out[cid] = ItemOutcome(
                        cid,
                        "errored",
                        error=f"errored: {etype}: {err.get('message', '')}".strip(),
                        retryable=etype not in ("invalid_request_error", "not_found_error"),
                    )
                else:
                    out[cid] = ItemOutcome(cid, rtype or "unknown", error=rtype or "unknown result")
        return out


class OpenAIBatches(_HostedBatches):
    """OpenAI Batch API: a JSONL file of ``{"custom_id", "method", "url", "body"}`` lines
    (``body`` = Chat Completions params, structured output as ``response_format`` json_schema)
    uploaded with ``purpose="batch"``; results come back in an output and an error file."""

    name = "openai"
    endpoint = "/v1/chat/completions"
    terminal = frozenset({"completed", "expired", "failed", "cancelled"})

    backend: OpenAIBackend

    async def submit(self, requests: list[ChatRequest]) -> tuple[str, str]:
        lines = [
            json.dumps(
                {
                    "custom_id": r.custom_id,
                    "method": "POST",
                    "url": self.endpoint,
                    "body": self.backend.build_params(r),
                },
                ensure_ascii=False,
            )
            for r in requests
        ]
        data = ("\n".join(lines) + "\n").encode("utf-8")
        client = self.backend.client()
        f = await self._do(
            client.files.create(
                file=("emocurate-batch.jsonl", data, "application/jsonl"), purpose="batch"
            )
        )
        b = await self._do(
            client.batches.create(
                input_file_id=f.id,
                endpoint=self.endpoint,
                completion_window="24h",
                metadata={"source": "emocurate"},
            )
        )
        return str(b.id), str(f.id)

    async def poll(self, batch_id: str) -> BatchPoll:
        b = await self._do(self.backend.client().batches.retrieve(batch_id))
        rc = _as_dict(b.request_counts) if b.request_counts is not None else {}
        counts = {k: int(v or 0) for k, v in rc.items()}
        return BatchPoll(ended=b.status in self.terminal, status=str(b.status), counts=counts)

    async def _file(self, file_id: str) -> str:
        content = await self._do(self.backend.client().files.content(file_id))
        return str(content.text)

    async def results(self, batch_id: str, structured: dict[str, bool]) -> dict[str, ItemOutcome]:
        b = await self._do(self.backend.client().batches.retrieve(batch_id))
        out: dict[str, ItemOutcome] = {}
        if b.status == "failed":
            errs = [getattr(e, "message", "") for e in (getattr(b.errors, "data", None) or [])]
            why = "; ".join(e for e in errs if e) or "the batch failed validation"
            for cid in structured:
                out[cid] = ItemOutcome(
                    cid, "errored", error=f"batch failed: {why}", retryable=False
                )
            return out
        for fid in (b.output_file_id, b.error_file_id):
            if not fid:
                continue
            for line in (await self._file(fid)).splitlines():
                if not line.strip():
                    continue
                row = json.loads(line)
                cid = str(row.get("custom_id", ""))
                out[cid] = self._outcome(batch_id, cid, row, structured.get(cid, True))
        return out

    def _outcome(
        self, batch_id: str, cid: str, row: dict[str, Any], structured: bool
    ) -> ItemOutcome:
        err = row.get("error")
        resp = row.get("response") or {}
        if err:
            code = str(err.get("code") or "error")
            status = "expired" if code == "batch_expired" else "errored"
            return ItemOutcome(cid, status, error=f"{code}: {err.get('message', '')}")
        status_code = int(resp.get("status_code") or 0)
        body = resp.get("body") or {}
        if status_code == 200:
            c = self.backend.to_completion(
                body, structured=structured, request_id=f"{batch_id}:{cid}"
            )
            return ItemOutcome(cid, "succeeded", completion=c)
        msg = ((body.get("error") or {}).get("message")) or "error"
        retryable = status_code >= 500 or status_code in (408, 409, 429)
        return ItemOutcome(
            cid, "errored", error=f"errored: {status_code} {msg}", retryable=retryable
        )


def make_batch_provider(backend: Backend, *, max_items: int = 10_000) -> BatchProvider:
    """The batch API of a hosted backend.

    Raises:
        ConfigError: the backend has no batch API (local and fake backends).
    """
    if backend.name == "anthropic":
        return AnthropicBatches(cast(AnthropicBackend, backend), max_items=max_items)
    if backend.name == "openai":
        return OpenAIBatches(cast(OpenAIBackend, backend), max_items=max_items)
    raise ConfigError(f"--batch needs --backend anthropic or openai (not '{backend.name}')")


# -- the runner -------------------------------------------------------------------------------
class BatchRunner:
    """Runs requests through a provider batch API with the ledger's cache, counts and budget.

    Args:
        backend: the hosted backend the batches are for (its model, its event loop's client).
        ledger: the response cache, prices (at the batch price), budget and counts.
        provider: the batch API (see :func:`make_batch_provider`).
        state_path: the state file (``OUT/cache/batches.json``).
        retry: retries per item and the backoff of provider calls.
        progress: makes the progress bar (None: no bar).
        poll_s: seconds between status checks.
    """

    def __init__(
        self,
        backend: Backend,
        ledger: Ledger,
        provider: BatchProvider,
        state_path: str | Path,
        *,
        retry: RetryPolicy,
        progress: ProgressFactory | None = None,
        poll_s: float = 30.0,
    ) -> None:
        self.backend = backend
        self.ledger = ledger
        self.provider = provider
        self.state_path = Path(state_path)
        self.retry = retry
        self.progress = progress or (lambda total: ProgressBar(total, enabled=False, label=""))
        self.poll_s = poll_s
        self.state = BatchState.load(self.state_path)
        self.submitted: list[str] = []
        """Batch ids submitted by this run (resumed ones are not in it)."""
        self.resumed: list[str] = []
        """Batch ids of earlier runs this run waited on."""

    @classmethod
    def for_engine(
        cls, engine: Engine, provider: BatchProvider, state_path: str | Path, *, poll_s: float
    ) -> BatchRunner:
        """A runner with the engine's backend, ledger, retry policy and progress bar."""
        return cls(
            engine.backend,
            engine.ledger,
            provider,
            state_path,
            retry=engine.retry,
            progress=engine.progress_bar,
            poll_s=poll_s,
        )

    # -- public -------------------------------------------------------------------------------
    def run_sync(
        self, requests: list[ChatRequest], check: Check | None = None
    ) -> list[RequestResult]:
        """:meth:`run` from synchronous code (also from inside a running event loop)."""
        return run_blocking(self.backend, lambda: self.run(requests, check=check))

    async def run(
        self, requests: list[ChatRequest], check: Check | None = None
    ) -> list[RequestResult]:
        """Answer every request (same order) through batches; see the module docstring.

        Raises:
            BudgetExceeded: the first batch's estimate exceeds the remaining budget.
            BackendError: a fatal provider error (bad key, unknown model, no batch API).
        """
        check_unique_ids(requests)
        led = self.ledger
        split = led.split(requests)
        keys, todo = split.keys, split.todo
        final: dict[str, RequestResult] = {}
        for i, res in split.cached.items():
            final.setdefault(keys[i], res)
        self._by_key = {k: requests[v[0]] for k, v in todo.items()}
        self._attempts: Counter[str] = Counter()
        self._last_error: dict[str, str] = {}
        inflight = self._resume(todo)
        t0 = time.monotonic()
        with self.progress(len(requests)) as bar:
            bar.advance(len(split.cached))
            await self._until_answered(inflight, todo, final, check, bar)
        led.end_run(time.monotonic() - t0)
        results: list[RequestResult] = []
        for req, key in zip(requests, keys, strict=True):
            res = final.get(key) or RequestResult(
                custom_id=req.custom_id, error=f"not run: {self._last_error.get(key, 'unknown')}"
            )
            res = res.model_copy(update={"custom_id": req.custom_id})
            if key in todo:
                led.count(res)
            results.append(res)
        return results

    # -- internals ----------------------------------------------------------------------------
    def _resume(self, todo: dict[str, list[int]]) -> list[BatchRecord]:
        """Batches earlier runs submitted for requests of this one: waited on, not resubmitted,
        their estimates held in the ledger until collected (the provider may bill them)."""
        inflight = [
            b
            for b in self.state.batches
            if not b.collected
            and b.provider == self.provider.name
            and set(b.items.values()) & todo.keys()
        ]
        for b in inflight:
            self.resumed.append(b.id)
            self.ledger.hold(b.estimate_usd)
            for k in set(b.items.values()) & todo.keys():
                self._attempts[k] += 1
        return inflight

    async def _until_answered(
        self,
        inflight: list[BatchRecord],
        todo: dict[str, list[int]],
        final: dict[str, RequestResult],
        check: Check | None,
        bar: ProgressBar,
    ) -> None:
        """Submit what no batch covers, poll, collect, resubmit failures, until none is left."""
        covered = {k for b in inflight for k in b.items.values()}
        pending = [k for k in todo if k not in covered]
        first = True
        while True:
            if pending:
                inflight += await self._submit(pending, final, first=first)
                pending = []
            first = False
            if not inflight:
                break
            counts: Counter[str] = Counter()
            await asyncio.sleep(self.poll_s)
            for b in list(inflight):
                poll = await self._poll(b)
                counts.update(poll.counts)
                if poll.ended:
                    before = sum(len(v) for k, v in todo.items() if k in final)
                    pending.extend(await self._collect(b, todo, final, check))
                    inflight.remove(b)
                    bar.advance(sum(len(v) for k, v in todo.items() if k in final) - before)
            self._show(bar, inflight, counts)

    def _show(self, bar: ProgressBar, inflight: list[BatchRecord], counts: Counter[str]) -> None:
        s = self.ledger.stats
        status = " ".join(f"{k} {v}" for k, v in sorted(counts.items()) if v)
        bar.note(
            f"batches in flight {len(inflight)} ({status or 'none'}) | failed {s.failed} "
            f"cached {s.cached} tok {s.billed_tokens:,} ${s.usd_spent:.4f}"
        )

    async def _submit(
        self, keys: list[str], final: dict[str, RequestResult], *, first: bool
    ) -> list[BatchRecord]:
        led = self.ledger
        out: list[BatchRecord] = []
        step = max(1, self.provider.max_items)
        for lo in range(0, len(keys), step):
            chunk = keys[lo : lo + step]
            reqs = [self._by_key[k] for k in chunk]
            est = sum(led.worst_case(r, batch=True) for r in reqs)
            remaining = led.remaining()
            if not led.try_reserve(est):
                budget = led.budget_usd or 0.0
                if first and lo == 0:
                    raise BudgetExceeded(
                        f"batch of {len(reqs)} requests is estimated at up to ${est:.4f} (batch "
                        f"price), above the remaining budget of ${max(remaining or 0.0, 0):.4f} "
                        f"(nothing was submitted); {led.budget_message()}"
                    )
                led.stats.budget_reached = True
                for k, r in zip(chunk, reqs, strict=True):
                    final[k] = RequestResult(
                        custom_id=r.custom_id,
                        skipped=True,
                        attempts=self._attempts[k],
                        error=f"not run: budget of ${budget:.4f} reached",
                    )
                continue
            try:
                bid, file_id = await self._retrying(
                    lambda reqs=reqs: self.provider.submit(reqs), what="submit a batch"
                )
            except CallError as exc:  # the provider rejected the whole batch
                led.release(est)
                for k, r in zip(chunk, reqs, strict=True):
                    final[k] = RequestResult(
                        custom_id=r.custom_id,
                        attempts=self._attempts[k] + 1,
                        error=f"batch rejected: {exc.message}",
                    )
                continue
            out.append(self._record(bid, file_id, chunk, reqs, est))
        return out

    def _record(
        self, bid: str, file_id: str, chunk: list[str], reqs: list[ChatRequest], est: float
    ) -> BatchRecord:
        """Persist a submitted batch before waiting on it: a killed run resumes this batch."""
        rec = BatchRecord(
            id=bid,
            provider=self.provider.name,
            model=self.backend.model,
            items={r.custom_id: k for k, r in zip(chunk, reqs, strict=True)},
            structured=all(bool(r.schema_) for r in reqs),
            estimate_usd=est,
            submitted_at=utc_now(),
            input_file_id=file_id,
        )
        self.state.batches.append(rec)
        self.state.save(self.state_path)
        self.submitted.append(bid)
        for k in chunk:
            self._attempts[k] += 1
        return rec

    async def _retrying(self, make: Any, *, what: str) -> Any:
        """One provider call with the retry policy; fatal errors stop the run."""
        attempt = 0
        while True:
            attempt += 1
            try:
                return await make()
            except CallError as exc:
                self.ledger.note_error(exc.kind)
                if exc.fatal:
                    raise BackendError(f"cannot {what}: {exc.message}") from None
                if not exc.retryable or attempt > self.retry.max_retries:
                    if exc.retryable:
                        raise BackendError(
                            f"cannot {what} after {attempt} attempt(s): {exc.message}; "
                            "rerun the same command to resume"
                        ) from None
                    raise
                self.ledger.stats.retries += 1
                await asyncio.sleep(self.retry.delay(attempt, exc.retry_after))

    async def _poll(self, b: BatchRecord) -> BatchPoll:
        result: BatchPoll = await self._retrying(
            lambda: self.provider.poll(b.id), what=f"poll batch {b.id}"
        )
        return result

    async def _collect(
        self,
        b: BatchRecord,
        todo: dict[str, list[int]],
        final: dict[str, RequestResult],
        check: Check | None,
    ) -> list[str]:
        """Map an ended batch's results back by custom_id; returns the keys to resubmit."""
        led = self.ledger
        structured = {cid: b.structured for cid in b.items}
        outcomes = await self._retrying(
            lambda: self.provider.results(b.id, structured),
            what=f"download results of batch {b.id}",
        )
        retry: list[str] = []
        for cid, key in b.items.items():
            o = outcomes.get(cid) or ItemOutcome(
                cid, "missing", error="missing from the batch results"
            )
            req = self._by_key.get(key)
            mine = key in todo and key not in final
            if o.completion is not None:
                c = o.completion
                if not c.created:
                    c = c.model_copy(update={"created": utc_now()})
                usd = led.charge(c, led.cost(req, c, batch=True))
                ok = True
                if check is not None and req is not None:
                    try:
                        check(req, c)
                    except ParseError as exc:
                        ok = False
                        o = ItemOutcome(cid, "malformed", error=led.malformed(exc))
                if ok:
                    led.store(key, c, cid)
                    if mine and req is not None:
                        final[key] = RequestResult(
                            custom_id=req.custom_id,
                            completion=c,
                            attempts=self._attempts[key],
                            cost_usd=usd,
                        )
                    continue
            else:
                led.note_error(f"batch_{o.status}")
            if not mine or req is None:
                continue
            self._last_error[key] = o.error
            if o.retryable and self._attempts[key] <= self.retry.max_retries:
                led.stats.retries += 1
                retry.append(key)
            else:
                final[key] = RequestResult(
                    custom_id=req.custom_id,
                    attempts=self._attempts[key],
                    error=f"failed after {self._attempts[key]} batch submission(s): {o.error}",
                )
        b.collected = True
        led.release(b.estimate_usd)
        self.state.save(self.state_path)
        return retry
