"""One generation run end to end: plan, send (or estimate), parse, write records and manifest.

This is what ``emocurate generate`` and the pipeline call. Output folder layout::

    OUT/data/<kind>.parquet       the records, each with Provenance
    OUT/manifest.json             planned/completed/cached/failed (with reasons), tokens, USD, time
    OUT/cache/responses.jsonl     the response cache (unless --cache points elsewhere)
    OUT/cache/batches.json        --batch: submitted batch ids and their custom_ids (resume state)
    OUT/cache/spend.ledger          USD this folder has spent over all runs (--budget-usd is a total)

Rerunning the same command reuses the cache, so an interrupted run resumes without repeating
any finished call and yields the same records. An answer that holds only some of the items it
was asked for is kept, and its missing items are counted in the manifest (``missing_records``,
``partial``); a rerun plans one more request for exactly those items (``<id>-fill<k>``).
Credentials in ``--base-url`` are never written (manifests show it redacted). Records are written once, atomically, after the
engine finishes (or stops at the budget, or is interrupted), so there is never a half-written
data file.

Money and safety (docs/guarantees.md): one process writes a folder at a time
(:func:`emocurate.io.folder_lock`); every request is booked in ``cache/spend.ledger`` before it
is sent; Ctrl-C/SIGTERM stop sending, book the answers in flight, write the records and the
manifest (``interrupted``) and raise :class:`~emocurate.errors.Interrupted`. A rerun never
shrinks the data: records the folder holds that the new plan does not include are refused
before any request unless ``replace``, and records of the plan that this run did not get back
(a failure, a lost cache) are kept.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from emocurate.artifacts import (
    BatchRun,
    GenerateManifest,
    PartialAnswer,
    RequestFailure,
    Spend,
    TokenCounts,
)
from emocurate.configs import GenerateConfig, Kind
from emocurate.errors import ConfigError, Interrupted
from emocurate.generators.backends import make_backend
from emocurate.generators.backends.base import Backend, ChatRequest
from emocurate.generators.cache import ResponseCache
from emocurate.generators.common import BackendInfo, Generator, make_custom_id
from emocurate.generators.engine import Engine, EngineConfig, RequestResult
from emocurate.generators.ledger import SPEND_FILE, FolderSpend
from emocurate.generators.parse import ParseError
from emocurate.generators.pricing import Price, estimate_cost, find_price
from emocurate.io import folder_lock, read_records, write_records
from emocurate.records import Model, Provenance
from emocurate.redact import redact_obj
from emocurate.taxonomy import load_taxonomy

__all__ = ["GenerateConfig", "run_generation", "make_generator", "plan_requests"]

HOSTED = {"anthropic", "openai"}


def generator_class(kind: Kind) -> type[Generator]:
    """The generator class for a kind."""
    if kind == "stories":
        from emocurate.generators.stories import StoriesGenerator

        return StoriesGenerator
    if kind == "dialogues":
        from emocurate.generators.dialogues import DialoguesGenerator

        return DialoguesGenerator
    if kind == "neutral":
        from emocurate.generators.neutral import NeutralGenerator

        return NeutralGenerator
    if kind == "regulation":
        from emocurate.generators.regulation import RegulationGenerator

        return RegulationGenerator
    raise ConfigError(f"unknown generator kind '{kind}'")


def backend_info(cfg: GenerateConfig, backend: Backend | None) -> BackendInfo:
    """Capabilities used for planning (hosted backends are known without building a client)."""
    if backend is not None:
        return BackendInfo(
            name=backend.name,
            model=backend.model or cfg.model,
            chat=backend.chat,
            supports_schema=backend.supports_schema,
            n_params=backend.n_params,
        )
    return BackendInfo(name=cfg.backend, model=cfg.model, chat=True, supports_schema=True)


def make_generator(cfg: GenerateConfig, backend: Backend | None = None) -> Generator:
    """A generator planned for ``backend`` (or for a hosted backend's capabilities)."""
    return generator_class(cfg.kind)(cfg, backend_info(cfg, backend), load_taxonomy())


def plan_requests(cfg: GenerateConfig, backend: Backend | None = None) -> list[ChatRequest]:
    """The requests a run would send (deterministic for a config and seed)."""
    return make_generator(cfg, backend).plan()


def engine_config(cfg: GenerateConfig, backend: Backend | None) -> EngineConfig:
    """Engine settings from a generate config (price overrides apply to the run's model)."""
    prices: dict[str, Price] = {}
    if cfg.price_input is not None or cfg.price_output is not None:
        prices[cfg.model] = Price(input=cfg.price_input or 0.0, output=cfg.price_output or 0.0)
    concurrency = cfg.concurrency
    if backend is not None and backend.name == "transformers":
        concurrency = max(concurrency, int(getattr(backend, "max_batch", concurrency)))
    return EngineConfig(
        concurrency=concurrency,
        rpm=cfg.rpm,
        input_tpm=cfg.input_tpm,
        output_tpm=cfg.output_tpm,
        max_retries=cfg.max_retries,
        timeout_s=cfg.timeout_s,
        budget_usd=cfg.budget_usd,
        prices=prices,
        batch_pricing=cfg.batch,
        backoff_base_s=cfg.backoff_base_s,
        backoff_max_s=cfg.backoff_max_s,
    )


def _build_backend(cfg: GenerateConfig) -> Backend:
    kw: dict[str, Any] = {}
    if cfg.backend == "transformers":
        kw["device"] = cfg.device
    if cfg.backend in HOSTED:
        kw["timeout_s"] = cfg.timeout_s
    return make_backend(cfg.backend, cfg.model, base_url=cfg.base_url, **kw)


def run_generation(
    cfg: GenerateConfig, out_dir: str | Path, *, backend: Backend | None = None
) -> GenerateManifest:
    """Run one generation and write ``out_dir/data/<kind>.parquet`` and ``manifest.json``.

    Args:
        cfg: what to generate and how.
        out_dir: the stage folder.
        backend: an already-built backend (tests, or reuse of a loaded local model).

    Returns:
        The manifest (also written to ``out_dir/manifest.json``; with ``dry_run`` nothing is
        written and the manifest describes the plan and its estimated cost).
    """
    t0 = time.monotonic()
    if cfg.batch and cfg.backend not in HOSTED and backend is None:
        raise ConfigError(f"--batch needs --backend anthropic or openai (not '{cfg.backend}')")
    if (cfg.price_input is None) != (cfg.price_output is None):
        raise ConfigError(
            "--price-input and --price-output go together (USD per 1M tokens): give both or "
            "neither (one alone would price the other side at $0)"
        )
    if cfg.base_url is not None and cfg.backend in HOSTED:
        from emocurate.generators.backends.hosted import check_base_url

        check_base_url(cfg.base_url)
    tax = load_taxonomy()
    if cfg.dry_run and backend is None and cfg.backend in HOSTED:
        backend_obj: Backend | None = None  # planning needs no key
    else:
        backend_obj = backend or _build_backend(cfg)
    gen = generator_class(cfg.kind)(cfg, backend_info(cfg, backend_obj), tax)
    requests = gen.plan()
    if not requests:
        raise ConfigError("the plan is empty (no emotions x topics x per-topic)")
    planned_records = sum(int(r.meta.get("n", 1)) for r in requests)
    ecfg = engine_config(cfg, backend_obj)
    common: dict[str, Any] = {
        "kind": cfg.kind,
        "backend": cfg.backend,
        "model": cfg.model,
        "seed": cfg.seed,
        "prompt_id": gen.prompt_id,
        "prompt_hash": gen.prompt_hash,
        "prompts": {p.id: p.hash for p in gen.prompt_files()},
        "prompt_style": gen.style,
        "prompt_style_reason": gen.style_reason,
        "config": redact_obj(cfg.model_dump(mode="json")),
        "planned_requests": len(requests),
        "planned_records": planned_records,
    }
    if cfg.dry_run:
        price, known = find_price(cfg.backend, cfg.model, ecfg.prices)
        cached = cfg.backend == "anthropic" and cfg.prompt_cache
        usd = sum(
            estimate_cost(r, price, cached_system=cached and i > 0, batch=cfg.batch)
            for i, r in enumerate(requests)
        )
        return GenerateManifest(
            **common,
            dry_run=True,
            estimated_usd_max=round(usd, 6),
            price_known=known,
            example_request=requests[0].model_dump(mode="json", by_alias=True),
        )
    assert backend_obj is not None
    with folder_lock(out_dir) as out:
        return _send_and_write(cfg, out, gen, requests, ecfg, backend_obj, common, t0)


@dataclass
class _Sent:
    """What sending a plan left: the engine (its stats and ledger), the results in plan order
    (refills after the plan), the refills planned, and the batch runner (``--batch``)."""

    engine: Engine
    requests: list[ChatRequest]
    results: list[RequestResult]
    refills: list[ChatRequest]
    runner: Any
    cache_path: Path


def _send(
    cfg: GenerateConfig,
    out: Path,
    gen: Generator,
    requests: list[ChatRequest],
    ecfg: EngineConfig,
    backend_obj: Backend,
) -> _Sent:
    """Send the plan and its refills (each booked in the folder's ledger before it is sent).

    The cache and the ledger are closed on every exit; an interrupt returns (the engine's
    ``interrupted`` says which signal) so that the caller writes what came back.
    """
    cache_path = Path(cfg.cache) if cfg.cache else out / "cache" / "responses.jsonl"
    runner: Any = None
    if cfg.batch:
        from emocurate.generators.batch import BatchRunner, make_batch_provider

        provider = make_batch_provider(backend_obj)  # one line for a backend without a batch API
    cache = ResponseCache(cache_path)

    def check(req: ChatRequest, completion: Any) -> None:
        gen.parse(req, completion, None)

    engine: Engine | None = None
    try:
        engine = Engine(
            backend_obj, ecfg, cache, progress=cfg.progress, spend_path=out / "cache" / SPEND_FILE
        )
        engine.return_on_interrupt = True  # records and manifest are written, then raised
        refills = plan_refills(gen, requests, engine)
        requests = requests + refills
        if cfg.batch:
            runner = BatchRunner.for_engine(
                engine, provider, out / "cache" / "batches.json", poll_s=cfg.batch_poll_s
            )
            results = runner.run_sync(requests, check=check)
        else:
            results = engine.run_sync(requests, check=check)
    finally:
        cache.close()
        if engine is not None:
            engine.ledger.close()
    return _Sent(engine, requests, results, refills, runner, cache_path)


def _usd(sent: _Sent, spend: FolderSpend, batch: bool) -> Spend:
    """The manifest's money: this run, the folder's total, what was in flight, what was cached."""
    s, results = sent.engine.stats, sent.results
    return Spend(
        spent_this_run=round(s.usd_spent + sent.engine.ledger.lost_usd, 6),
        spent_total_for_folder=round(spend.usd_total, 6),
        settled=round(spend.settled_usd, 6),
        in_flight_at_kill=round(spend.in_flight_usd, 6),
        in_flight_at_kill_requests=spend.in_flight,
        cached=round(sum(r.cost_usd for r in results if r.ok and r.cached), 6),
        total_including_cached=round(sum(r.cost_usd for r in results if r.ok), 6),
        price_known=s.price_known,
        batch_pricing=batch,
    )


def _send_and_write(
    cfg: GenerateConfig,
    out: Path,
    gen: Generator,
    requests: list[ChatRequest],
    ecfg: EngineConfig,
    backend_obj: Backend,
    common: dict[str, Any],
    t0: float,
) -> GenerateManifest:
    """The part of a run that holds the folder: send, write records and manifest."""
    rtype = _record_type(cfg.kind)
    earlier = _earlier_records(out, cfg, rtype, requests)
    sent = _send(cfg, out, gen, requests, ecfg, backend_obj)
    engine, requests, results, runner = sent.engine, sent.requests, sent.results, sent.runner
    records, failures, partial = _collect(gen, cfg, requests, results)
    have = {r.id for r in records}
    kept = [r for r in earlier if r.id not in have]
    write_records(out, records + kept, model=rtype, name=cfg.kind)
    s = engine.stats
    spend = engine.ledger.folder_spend()
    completed = sum(1 for r in results if r.ok)
    manifest = GenerateManifest(
        **common,
        completed_requests=completed,
        cached_requests=sum(1 for r in results if r.cached),
        failed_requests=sum(1 for r in results if r.error and not r.skipped),
        skipped_requests=sum(1 for r in results if r.skipped),
        failures=failures,
        refill_requests=len(sent.refills),
        partial_requests=len(partial),
        missing_records=sum(p.missing for p in partial),
        partial=partial,
        records=len(records) + len(kept),
        kept_records=len(kept),
        calls=s.calls,
        retries=s.retries,
        malformed_answers=s.malformed,
        error_counts=s.errors,
        tokens=TokenCounts(
            input=s.input_tokens,
            output=s.output_tokens,
            cache_read=s.cache_read_tokens,
            cache_write=s.cache_write_tokens,
            billed=s.billed_tokens,
        ),
        usd=_usd(sent, spend, cfg.batch),
        budget_usd=cfg.budget_usd,
        budget_is_total=True,
        budget_reached=s.budget_reached,
        interrupted=engine.interrupted,
        rate_limits=s.rate_limits,
        time_s=round(time.monotonic() - t0, 3),
        cache_file=str(sent.cache_path),
        batches=None
        if runner is None
        else BatchRun(
            submitted=runner.submitted,
            resumed=runner.resumed,
            state_file=str(runner.state_path),
        ),
    )
    manifest.save(out)
    if engine.interrupted is not None:
        import signal

        signum = int(getattr(signal, engine.interrupted))
        raise Interrupted(
            f"interrupted ({engine.interrupted}): {completed} of {len(requests)} requests done, "
            f"{len(records) + len(kept)} records and manifest.json written to {out}, "
            f"${spend.usd_total:.4f} booked for the folder; rerun the same command to resume "
            "(answered requests are not paid again)",
            signum=signum,
        )
    return manifest


def _plan_ids(requests: list[ChatRequest]) -> set[str]:
    """The custom ids a plan can write records under: its requests and their refills."""
    ids = {r.custom_id for r in requests}
    frontier = set(ids)
    for round_ in range(1, MAX_REFILL_ROUNDS + 1):
        frontier = {make_custom_id(cid, f"fill{round_}") for cid in frontier}
        ids |= frontier
    return ids


def _earlier_records(
    out: Path, cfg: GenerateConfig, rtype: type[Model], requests: list[ChatRequest]
) -> list[Any]:
    """Records the folder already holds for this plan (kept if this run does not get them back).

    Raises:
        ConfigError: the folder holds records the plan leaves out, and ``replace`` is not set
            (nothing is sent: rows are never dropped without an explicit flag).
    """
    path = out / "data" / f"{cfg.kind}.parquet"
    if not path.exists():
        return []
    if cfg.replace:
        return []
    held: list[Any] = read_records(out, rtype)
    ids = _plan_ids(requests)

    def cid(rec: Any) -> str:
        return str(rec.provenance.params.get("custom_id", "")) if rec.provenance else ""

    outside = [r for r in held if cid(r) not in ids]
    if outside:
        raise ConfigError(
            f"{path} holds {len(held)} records, {len(outside)} of them outside this plan "
            f"(first: {cid(outside[0]) or outside[0].id}); rerun with --replace to drop them, "
            "or choose another --out"
        )
    return held


def _record_type(kind: str) -> type[Model]:
    from emocurate.records import Dialogue, NeutralDialogue, RegulationPair, Story

    types: dict[str, type[Model]] = {
        "stories": Story,
        "dialogues": Dialogue,
        "neutral": NeutralDialogue,
        "regulation": RegulationPair,
    }
    return types[kind]


MAX_REFILL_ROUNDS = 3
"""How many times a rerun asks again for items that partial answers left out."""


def plan_refills(gen: Generator, requests: list[ChatRequest], engine: Engine) -> list[ChatRequest]:
    """Requests for the items that cached partial answers are missing (see the module doc).

    A refill whose own cached answer is partial gets a refill of its own, up to
    :data:`MAX_REFILL_ROUNDS` deep; refills not yet answered are sent by this run.
    """
    led = engine.ledger
    out: list[ChatRequest] = []
    frontier = requests
    for round_ in range(1, MAX_REFILL_ROUNDS + 1):
        nxt: list[ChatRequest] = []
        for req in frontier:
            hit = led.lookup(led.key(req))
            if hit is None:
                continue
            missing = gen.missing_items(req, hit)
            extra = gen.refill(req, missing, round_) if missing else None
            if extra is not None:
                nxt.append(extra)
        out.extend(nxt)
        frontier = nxt
        if not nxt:
            break
    return out


def _collect(
    gen: Generator, cfg: GenerateConfig, requests: list[ChatRequest], results: list[RequestResult]
) -> tuple[list[Any], list[RequestFailure], list[PartialAnswer]]:
    """Records, failures (custom id + reason) and partial answers (custom id + missing)."""
    records: list[Any] = []
    seen: set[str] = set()
    failures: list[RequestFailure] = []
    want = {
        r.custom_id: max(1, int(r.meta.get("n", 1))) for r in requests if "refill_of" not in r.meta
    }
    got: dict[str, int] = {}
    for req, res in zip(requests, results, strict=True):
        if not res.ok or res.completion is None:
            failures.append(RequestFailure(custom_id=req.custom_id, reason=res.error or "unknown"))
            continue
        c = res.completion
        n = max(1, int(req.meta.get("n", 1)))
        prov = Provenance(
            backend=cfg.backend,
            model=c.model or req.model,
            prompt_id=req.prompt_id,
            prompt_hash=req.prompt_hash,
            params={
                "temperature": req.temperature,
                "top_p": req.top_p,
                "max_tokens": req.max_tokens,
                "per_request": n,
                "custom_id": req.custom_id,
                "stop_reason": c.stop_reason,
            },
            seed=req.seed,
            request_id=c.request_id,
            cache_hit=res.cached,
            input_tokens=(c.input_tokens + c.cache_read_tokens + c.cache_write_tokens) // n,
            output_tokens=c.output_tokens // n,
            cost_usd=round(res.cost_usd / n, 8),
            **({"created": c.created} if c.created else {}),
        )
        try:
            recs = gen.parse(req, c, prov)
        except ParseError as exc:  # passed the check once; a parser change can still reject it
            failures.append(RequestFailure(custom_id=req.custom_id, reason=f"malformed: {exc}"))
            continue
        root = str(req.meta.get("refill_of") or req.custom_id)
        got[root] = got.get(root, 0) + len(recs)
        for r in recs:
            if r.id not in seen:
                seen.add(r.id)
                records.append(r)
    partial = [
        PartialAnswer(custom_id=cid, missing=n - got[cid])
        for cid, n in want.items()
        if cid in got and got[cid] < n
    ]
    return records, failures, partial
