"""Local generation with a transformers causal LM, batched behind the one-request API.

The engine calls :meth:`TransformersBackend.complete` concurrently, one request per call. A
micro-batching queue gathers whatever calls are pending into one left-padded batch, so 150
short stories from the embedded 260K model take a few seconds instead of a minute.

Sampling is seeded per request (each row has its own ``torch.Generator``), so a request's
output does not depend on which other requests happened to share its batch: the same plan and
seed give the same text on every run.

Models with a chat template get their messages rendered with it; base models (no template)
get a plain continuation prompt, and :attr:`chat` is False so generators write openings for
the model to continue instead of instructions it cannot follow.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import time
from dataclasses import dataclass, field
from typing import Any

import torch

from emocurate.generators.backends.base import Backend, CallError, ChatRequest, Completion


def _cache_argument(model: Any) -> str:
    """The name of the KV-cache argument and output field: ``cache`` in current transformers 5
    (``past_key_values`` is deprecated there and removed in 5.40), ``past_key_values`` before."""
    params = inspect.signature(model.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


@dataclass
class _Job:
    request: ChatRequest
    future: asyncio.Future[Completion]
    prompt_ids: list[int] = field(default_factory=list)
    prompt_text: str = ""


def _eos_ids(tokenizer: Any, model: Any) -> set[int]:
    """Every id that ends an answer: the tokenizer's EOS and the generation config's (a chat
    model may end its turn with a token, e.g. ``<|im_end|>``, listed only there)."""
    ids: set[int] = set()
    for value in (
        tokenizer.eos_token_id,
        getattr(getattr(model, "generation_config", None), "eos_token_id", None),
    ):
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, (list, tuple)):
            ids.update(int(v) for v in value)
    return ids


def _logits_to_keep(model: Any) -> dict[str, int]:
    """``logits_to_keep=1`` where the model takes it: only the last position's logits are
    needed, and the vocabulary projection of every prompt token is ~20% of a small model's
    prefill."""
    params = inspect.signature(model.forward).parameters
    return {"logits_to_keep": 1} if "logits_to_keep" in params else {}


def _select_rows(cache: Any, idx: torch.Tensor) -> None:
    """Keep only batch rows ``idx`` of a KV cache (in place)."""
    select = getattr(cache, "batch_select_indices", None)
    if select is not None:
        select(idx)
        return
    for layer in getattr(cache, "layers", []):  # pragma: no cover - older cache classes
        layer.keys, layer.values = layer.keys[idx], layer.values[idx]


def _left_padded(prompts: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids left-padded to the longest prompt, and the attention mask (1 on real tokens)."""
    n, width = len(prompts), max(len(p) for p in prompts)
    ids = torch.full((n, width), pad_id, dtype=torch.long)
    mask = torch.zeros((n, width), dtype=torch.long)
    for i, prompt in enumerate(prompts):
        ids[i, width - len(prompt) :] = torch.tensor(prompt)
        mask[i, width - len(prompt) :] = 1
    return ids, mask


def _request_seed(request: ChatRequest) -> int:
    if request.seed is not None:
        return int(request.seed) & 0x7FFF_FFFF_FFFF_FFFF
    digest = hashlib.sha256(request.cache_key("transformers").encode()).digest()
    return int.from_bytes(digest[:8], "little") & 0x7FFF_FFFF_FFFF_FFFF


class TransformersBackend(Backend):
    """A local causal LM behind the backend API (no structured output: text fallback)."""

    name = "transformers"
    supports_schema = False

    def __init__(
        self,
        model: str = "stories260K",
        *,
        device: str = "cpu",
        dtype: str = "auto",
        max_batch: int = 64,
        batch_window_s: float = 0.005,
        loaded: Any = None,
    ) -> None:
        from emocurate.vectors.models import load_model

        self.lm = loaded if loaded is not None else load_model(model, device=device, dtype=dtype)
        self.model = self.lm.model_id
        self.revision = self.lm.revision
        self.tokenizer = self.lm.tokenizer
        self.chat = bool(getattr(self.tokenizer, "chat_template", None))
        self.max_batch = max(1, max_batch)
        self.batch_window_s = batch_window_s
        cfg = self.lm.model.config
        text_cfg = getattr(cfg, "text_config", None) or cfg
        self.context = int(getattr(text_cfg, "max_position_embeddings", 2048) or 2048)
        self.n_params = sum(p.numel() for p in self.lm.model.parameters())
        self.eos_ids = _eos_ids(self.tokenizer, self.lm.model)
        self._step_s: float | None = None  # measured seconds per decode step (EMA)
        self._running = 0  # rows in the batch being generated now
        self._queue: list[_Job] = []
        self._worker: asyncio.Task[None] | None = None

    # -- prompt rendering ---------------------------------------------------------------------
    def render(self, request: ChatRequest) -> tuple[str, list[int]]:
        """The prompt text and token ids the model sees for ``request``."""
        tok = self.tokenizer
        if self.chat and not request.raw:
            msgs: list[dict[str, str]] = []
            if request.system:
                msgs.append({"role": "system", "content": request.system})
            msgs.extend({"role": m.role, "content": m.content} for m in request.messages)
            text = tok.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False)
            ids = tok(text, add_special_tokens=False)["input_ids"]
        else:
            parts = [request.system] if request.system else []
            parts.extend(m.content for m in request.messages)
            text = "\n\n".join(p for p in parts if p)
            ids = tok(text)["input_ids"]
        return text, list(ids)

    # -- the async API ------------------------------------------------------------------------
    async def complete(self, request: ChatRequest) -> Completion:
        """Queue one request; it is generated together with whatever else is pending."""
        loop = asyncio.get_running_loop()
        text, ids = self.render(request)
        budget = self.context - len(ids)
        if budget < 1:
            raise CallError(
                f"prompt of {len(ids)} tokens does not fit the model's {self.context}-token context",
                kind="prompt_too_long",
            )
        job = _Job(request=request, future=loop.create_future(), prompt_ids=ids, prompt_text=text)
        self._queue.append(job)
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._run_worker())
        return await job.future

    async def _run_worker(self) -> None:
        while self._queue:
            # Let concurrent callers enqueue before the batch is cut.
            await asyncio.sleep(self.batch_window_s)
            batch, self._queue = self._queue[: self.max_batch], self._queue[self.max_batch :]
            try:
                results = await asyncio.to_thread(self._generate, batch)
            except Exception as exc:  # one failure fails the batch's requests, not the worker
                for job in batch:
                    if not job.future.done():
                        job.future.set_exception(CallError(f"local generation failed: {exc}"))
                continue
            for job, res in zip(batch, results, strict=True):
                if not job.future.done():
                    job.future.set_result(res)

    async def aclose(self) -> None:
        """Wait for the worker to drain."""
        worker, self._worker = self._worker, None
        if worker is not None and not worker.done():
            await asyncio.gather(worker, return_exceptions=True)

    # -- generation ---------------------------------------------------------------------------
    def _generate(self, jobs: list[_Job]) -> list[Completion]:
        """One left-padded batch: a prefill, then one decode step per token with the KV cache.

        A row that ends (EOS, its token limit or a stop string) leaves the batch: its cache
        rows are dropped, so the steps that remain cost only what the unfinished rows need
        (answers of a chat model end at very different lengths).
        """
        tok = self.tokenizer
        model = self.lm.model
        device = self.lm.device
        pad_id = tok.pad_token_id if tok.pad_token_id is not None else 0
        eos_ids = self.eos_ids
        n = len(jobs)
        lengths = [len(j.prompt_ids) for j in jobs]
        ids, mask = _left_padded([j.prompt_ids for j in jobs], pad_id)
        ids, mask = ids.to(device), mask.to(device)
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        max_new = [min(j.request.max_tokens, self.context - lengths[i]) for i, j in enumerate(jobs)]
        gens = [torch.Generator(device="cpu").manual_seed(_request_seed(j.request)) for j in jobs]
        out_tokens: list[list[int]] = [[] for _ in jobs]
        stop_reason = ["" for _ in jobs]
        cache_arg = _cache_argument(model)
        extra = _logits_to_keep(model)
        self._running = n
        try:
            with torch.inference_mode():
                out = model(
                    input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=True, **extra
                )
                past = out.get(cache_arg)  # the model's own cache object (a DynamicCache)
                logits = out.logits[:, -1, :].float().cpu()
                last_pos = pos[:, -1]
                active = list(range(n))  # batch row -> job index
                while active:
                    next_ids: list[int] = []
                    keep: list[int] = []  # batch rows still generating
                    for row, i in enumerate(active):
                        tid = self._sample(logits[row], jobs[i].request, gens[i])
                        if tid in eos_ids:
                            stop_reason[i] = "end_turn"
                            continue
                        out_tokens[i].append(tid)
                        if len(out_tokens[i]) >= max_new[i]:
                            stop_reason[i] = "max_tokens"
                        elif jobs[i].request.stop and self._hit_stop(
                            out_tokens[i], jobs[i].request.stop
                        ):
                            stop_reason[i] = "stop_sequence"
                        else:
                            keep.append(row)
                            next_ids.append(tid)
                    if not keep:
                        break
                    if len(keep) < len(active):
                        idx = torch.tensor(keep, device=device)
                        _select_rows(past, idx)
                        mask, last_pos = mask[idx], last_pos[idx]
                        active = [active[r] for r in keep]
                    self._running = len(active)
                    mask = torch.cat(
                        [mask, torch.ones((len(active), 1), dtype=mask.dtype, device=device)], dim=1
                    )
                    last_pos = last_pos + 1
                    t0 = time.perf_counter()
                    out = model(
                        input_ids=torch.tensor(next_ids, device=device).unsqueeze(1),
                        attention_mask=mask,
                        position_ids=last_pos.unsqueeze(1),
                        use_cache=True,
                        **{cache_arg: past},
                    )
                    past = out.get(cache_arg)
                    logits = out.logits[:, -1, :].float().cpu()
                    self._observe_step(time.perf_counter() - t0)
        finally:
            self._running = 0
        return [self._completion(j, out_tokens[i], stop_reason[i]) for i, j in enumerate(jobs)]

    def _completion(self, job: _Job, tokens: list[int], stop_reason: str) -> Completion:
        """A finished row as the answer to its request (cut at the stop string that ended it)."""
        text = self._continuation(job.prompt_ids, tokens)
        if stop_reason == "stop_sequence":
            text = self._cut_at_stop(text, job.request.stop)
        return Completion(
            text=text,
            stop_reason=stop_reason,
            input_tokens=len(job.prompt_ids),
            output_tokens=len(tokens),
            model=self.model,
            request_id=f"local-{_request_seed(job.request):x}",
        )

    # -- timing -------------------------------------------------------------------------------
    def _observe_step(self, seconds: float) -> None:
        old = self._step_s
        self._step_s = seconds if old is None else 0.9 * old + 0.1 * seconds

    def _probe_step(self) -> float:
        """Seconds of one decode step of a full batch, timed once (before any batch ran)."""
        model = self.lm.model
        ids = torch.zeros((self.max_batch, 1), dtype=torch.long, device=self.lm.device)
        with torch.inference_mode():
            t0 = time.perf_counter()
            model(input_ids=ids, use_cache=False, **_logits_to_keep(model))
            self._step_s = time.perf_counter() - t0
        return self._step_s

    def expected_seconds(self, request: ChatRequest) -> float | None:
        """The batches before this request's (the running one and the queue) and its own,
        each up to ``max_tokens`` decode steps at the measured step time, plus its prefill."""
        step = self._step_s if self._step_s is not None else self._probe_step()
        queued = len(self._queue) + 1
        batches = -(-queued // self.max_batch) + (1 if self._running else 0)
        prefill = step * max(1.0, len(self.render(request)[1]) / 8)
        return batches * (request.max_tokens + 1) * step + prefill

    @staticmethod
    def _sample(logits: torch.Tensor, request: ChatRequest, gen: torch.Generator) -> int:
        if request.temperature <= 0:
            return int(torch.argmax(logits))
        probs = torch.softmax(logits / request.temperature, dim=-1)
        if request.top_p is not None and 0 < request.top_p < 1:
            sorted_p, order = torch.sort(probs, descending=True)
            keep = sorted_p.cumsum(-1) - sorted_p < request.top_p
            sorted_p = sorted_p * keep
            probs = torch.zeros_like(probs).scatter(0, order, sorted_p)
        return int(torch.multinomial(probs, 1, generator=gen))

    def _continuation(self, prompt_ids: list[int], new_ids: list[int]) -> str:
        tok = self.tokenizer
        full = tok.decode(prompt_ids + new_ids, skip_special_tokens=True)
        head = tok.decode(prompt_ids, skip_special_tokens=True)
        if full.startswith(head):
            return str(full[len(head) :])
        return str(tok.decode(new_ids, skip_special_tokens=True))

    def _hit_stop(self, new_ids: list[int], stops: list[str]) -> bool:
        tail = self.tokenizer.decode(new_ids[-32:], skip_special_tokens=True)
        return any(s and s in tail for s in stops)

    @staticmethod
    def _cut_at_stop(text: str, stops: list[str]) -> str:
        cut = min((text.find(s) for s in stops if s and s in text), default=-1)
        return text[:cut] if cut >= 0 else text
