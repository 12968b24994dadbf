"""Scoring engines: local (streaming, resumable shards) and Ray Data (tokenise on CPU, score in actors).

Both engines cut the input stream into shards of ``shard_size`` input rows (quarantined rows
count, so shard boundaries depend only on the inputs), and write each shard as
``data/shard-XXXXX.parquet`` + ``tokens/shard-XXXXX.parquet`` + ``quarantine/shard-XXXXX.jsonl``
followed by a completion marker ``_done/shard-XXXXX.json``. Files are written atomically, so a
killed run leaves finished shards intact and a rerun skips them; an unfinished shard is redone
from scratch. A fingerprint of the inputs, config and vectors in every marker stops a rerun
from mixing shards of a different configuration.
"""

from __future__ import annotations

import hashlib
import json
import queue
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from itertools import islice
from pathlib import Path
from typing import Any

import pyarrow as pa
from pydantic import ValidationError

from emocurate.artifacts import (
    AttributeFiles,
    ReferenceShift,
    RegulationVectorsRef,
    ScoreManifest,
    ScoreSummary,
    ShardMarker,
    SkippedEntry,
    TraceRow,
    VectorsRef,
)
from emocurate.configs import ScoreConfig
from emocurate.corpus.prepared import Prepared
from emocurate.corpus.readers import Bad, CorpusPlan, Doc, Item, ReadOptions, plan_corpus
from emocurate.corpus.rows import TRACE_SCHEMA, CorpusScore, rows_table
from emocurate.corpus.score import (
    Preparer,
    ScoredDoc,
    Scorer,
    flags_note,
    load_scoring_model,
    load_vectors,
    with_calibration,
)
from emocurate.corpus.summary import reference_shift
from emocurate.errors import ConfigError, InputError
from emocurate.io import (
    atomic_write_bytes,
    ensure_dir,
    write_configs_readme,
    write_table,
)
from emocurate.records import canonical_json
from emocurate.vectors.capture import config_context_length, context_length
from emocurate.vectors.models import LoadedModel
from emocurate.vectors.vectorset import VectorSet

DONE = "_done"
MAX_SKIPPED = 1000  # skipped folder entries listed in the manifest (the total is always given)
# Options that do not change the output (only speed or placement) stay out of the fingerprint.
NON_OUTPUT_FIELDS = {
    "engine",
    "address",
    "ray_actors",
    "batch_tokens",
    "device",
    "progress",
    "overlap",
    "metrics_device",  # where the dense metrics run; the same results (to float64 rounding)
    "attributes",  # a side output: shards without its staging file are redone (see _is_done)
}


def shard_name(k: int) -> str:
    """File stem of shard ``k``."""
    return f"shard-{k:05d}"


def fingerprint(
    inputs: list[str],
    cfg: ScoreConfig,
    vs: VectorSet,
    reg: VectorSet | None,
    content: str = "",
) -> str:
    """Hash of everything that determines the output rows.

    ``content`` is :meth:`CorpusPlan.content_fingerprint` (what the inputs hold); the paths stay
    in too because they are written into every row's ``source``.
    """
    h = hashlib.sha256()
    h.update(canonical_json([str(i) for i in inputs]).encode())
    h.update(content.encode())
    h.update(canonical_json(cfg.model_dump(exclude=NON_OUTPUT_FIELDS)).encode())
    for v in (vs, reg):
        if v is None:
            continue
        h.update(
            canonical_json(
                v.meta.model_dump(exclude={"created", "versions", "evaluation"})
            ).encode()
        )
        for layer in sorted(v.vectors):
            h.update(v.vectors[layer].float().contiguous().numpy().tobytes())
            if layer in v.ref_mean:
                h.update(v.ref_mean[layer].float().numpy().tobytes())
                h.update(v.ref_std[layer].float().numpy().tobytes())
    return h.hexdigest()[:16]


def iter_shards(items: Iterator[Item], size: int) -> Iterator[tuple[int, list[Item]]]:
    """Consecutive shards of ``size`` input rows."""
    k = 0
    while True:
        chunk = list(islice(items, size))
        if not chunk:
            return
        yield k, chunk
        k += 1


def _marker(out: Path, k: int) -> Path:
    return out / DONE / f"{shard_name(k)}.json"


def read_marker(out: Path, k: int, fp: str) -> ShardMarker | None:
    """The completion marker of shard ``k`` if it exists and matches ``fp``.

    An unreadable marker (or one without the marker's fields) means an unfinished shard: None,
    and the shard is redone.
    """
    path = _marker(out, k)
    if not path.exists():
        return None
    try:
        m = json.loads(path.read_text("utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    if not isinstance(m, dict):
        return None
    if m.get("fingerprint") != fp:
        raise ConfigError(
            f"{out} holds shards from a different run (inputs, their content, config or vectors changed); "
            "use a new --out folder or delete it"
        )
    try:
        return ShardMarker.model_validate(m)
    except ValidationError:
        return None


def select_traces(scored: list[ScoredDoc], cfg: ScoreConfig) -> list[TraceRow]:
    """Traces kept for a shard: the first ``trace_flagged`` flagged docs and first unflagged ones."""
    out: list[TraceRow] = []
    flagged = 0
    for i, s in enumerate(scored):
        if s.trace is None:
            continue
        if s.row.flags:
            if flagged < cfg.trace_flagged:
                flagged += 1
                out.append(s.trace)
        elif i < cfg.trace_others:
            out.append(s.trace)
    return out


def write_shard(
    out: Path,
    k: int,
    items: list[Item],
    scored: list[ScoredDoc],
    names: list[str],
    cfg: ScoreConfig,
    fp: str,
) -> ShardMarker:
    """Write one shard's files, then its completion marker; returns the marker."""
    name = shard_name(k)
    rows = [s.row for s in scored]
    traces = select_traces(scored, cfg)
    write_table(out / "data" / f"{name}.parquet", rows_table(rows, names))
    tpath = out / "tokens" / f"{name}.parquet"
    if traces:
        write_table(
            tpath, pa.Table.from_pylist([t.model_dump() for t in traces], schema=TRACE_SCHEMA)
        )
    else:
        tpath.unlink(missing_ok=True)
    bad = [b for b in items if isinstance(b, Bad)]
    lines = "".join(json.dumps(b.record(), ensure_ascii=False) + "\n" for b in bad)
    atomic_write_bytes(out / "quarantine" / f"{name}.jsonl", lines.encode("utf-8"))
    if cfg.attributes:
        from emocurate.corpus.attributes import STAGING, shard_lines

        atomic_write_bytes(out / STAGING / f"{name}.jsonl", shard_lines(items, scored))
    marker = ShardMarker(
        shard=k,
        rows_in=len(items),
        scored=len(rows),
        quarantined=len(bad),
        tokens=sum(r.n_tokens for r in rows),
        traces=len(traces),
        fingerprint=fp,
    )
    atomic_write_bytes(_marker(out, k), marker.to_bytes())
    return marker


class _Progress:
    """Documents done, tokens/s, elapsed and ETA while scoring (on a TTY; silent otherwise).

    Fed per forward batch (``Scorer.on_batch``), not per shard, so the first numbers appear
    after the first batch; the ETA needs a known total (``--limit``).
    """

    def __init__(self, enabled: bool, total: int | None, console: Any = None) -> None:
        self.bar: Any = None
        self.tokens = 0
        self.t0 = time.perf_counter()
        if enabled and (console is not None or sys.stderr.isatty()):
            from rich.progress import (
                BarColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self.bar = Progress(
                TextColumn("scoring"),
                BarColumn(),
                TextColumn("{task.completed:,.0f}{task.fields[of]} docs"),
                TextColumn("{task.fields[rate]}"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=console,
                transient=console is None,
            )
            self.bar.start()
            of = f"/{total:,}" if total else ""
            self.task = self.bar.add_task("score", total=total, of=of, rate="")

    def batch(self, docs: int, tokens: int) -> None:
        """One forward batch: ``docs`` documents completed, ``tokens`` tokens run."""
        self.tokens += tokens
        if self.bar is not None:
            dt = max(time.perf_counter() - self.t0, 1e-9)
            self.bar.update(self.task, advance=docs, rate=f"{self.tokens / dt:,.0f} tok/s")

    def advance(self, n: int) -> None:
        """Rows done without a forward pass (resumed shards, quarantined rows)."""
        if self.bar is not None:
            self.bar.advance(self.task, n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


def score_corpus(
    inputs: list[str | Path],
    vectors_dir: str | Path,
    out_dir: str | Path,
    cfg: ScoreConfig,
    *,
    lm: LoadedModel | None = None,
) -> ScoreManifest:
    """Score every document of ``inputs`` into ``out_dir`` and return its typed manifest.

    The one entry point of scoring (the CLI, the pipeline, the datatrove step and the benches
    call it). Writes ``data/shard-XXXXX.parquet`` (one flat row per document),
    ``tokens/shard-XXXXX.parquet`` (token traces for flagged and a few other documents),
    ``quarantine.jsonl`` and ``manifest.json``. Finished shards carry completion markers, so a
    rerun skips them. The vector folder's calibration (if any) sets the flag thresholds.
    """
    cfg = with_calibration(vectors_dir, cfg)
    t0 = time.perf_counter()
    # When the run started (epoch s) and how long until its first forward batch (start-up).
    timing: dict[str, Any] = {"started_at": time.time(), "first_batch_s": None}
    vs, reg = load_vectors(vectors_dir, cfg)
    if vs.meta.kind != "regulation" and not vs.meta.has_reference:
        # Raw projections still rank documents but are not comparable across corpora.
        print(
            f"warning: {vectors_dir} has no neutral reference; scores are raw projections",
            file=sys.stderr,
        )
    # Start-up: the model load (mostly imports, then the weights up to the probe layer) runs on
    # a thread from here on, beside planning the inputs, hashing their content (which reads
    # every byte) and reading the first shard.
    if cfg.engine == "local":
        stream_malloc()
    loader = _Loader(vs, reg, cfg) if cfg.engine == "local" and lm is None else None
    try:
        return _score_with(inputs, vs, reg, vectors_dir, out_dir, cfg, lm, loader, timing, t0)
    finally:
        if loader is not None:
            loader.join()


def _score_with(
    inputs: list[str | Path],
    vs: VectorSet,
    reg: VectorSet | None,
    vectors_dir: str | Path,
    out_dir: str | Path,
    cfg: ScoreConfig,
    lm: LoadedModel | None,
    loader: _Loader | None,
    timing: dict[str, Any],
    t0: float,
) -> ScoreManifest:
    """The body of :func:`score_corpus` once the model load has started."""
    in_list = [str(i) for i in inputs]
    out = ensure_dir(out_dir)
    opts = ReadOptions(cfg.text_field, cfg.id_field, cfg.max_chars)
    plan = plan_corpus(in_list, opts)  # input errors (missing path, empty folder) before any work
    if cfg.attributes:
        from emocurate.corpus.attributes import relative_names

        relative_names(plan)  # two inputs writing one attribute file: refused before any work
    items: Iterator[Item] = plan.items()
    first = next(items, None)
    if first is None:
        raise InputError(f"nothing to score: {', '.join(in_list)} holds no rows (empty input)")
    items = _chain(first, items)
    if cfg.limit:
        items = islice(items, cfg.limit)
    fp = fingerprint(in_list, cfg, vs, reg, plan.content_fingerprint())
    markers: list[ShardMarker] = []
    resumed = 0
    if cfg.engine == "ray":
        markers, resumed = _run_ray(items, vs, reg, vectors_dir, out, cfg, fp, lm)
    else:
        markers, resumed = _run_local(items, vs, reg, out, cfg, fp, lm or loader, timing)
    return _finish(
        out,
        markers,
        resumed,
        vs,
        reg,
        vectors_dir,
        in_list,
        cfg,
        fp,
        time.perf_counter() - t0,
        plan,
        timing,
    )


class _Loader:
    """Loads the scoring model on a thread; :meth:`result` waits for it (or re-raises).

    :func:`score_corpus` joins the thread on every exit, errors included: transformers builds a
    model under process-wide meta-device initialisation, so a load left running in the
    background would corrupt whatever module the process builds next.
    """

    def __init__(self, vs: VectorSet, reg: VectorSet | None, cfg: ScoreConfig) -> None:
        self._done = threading.Event()
        self._lm: LoadedModel | None = None
        self._exc: BaseException | None = None
        args = (vs, reg, cfg)
        self._thread = threading.Thread(
            target=self._run, args=args, name="emocurate-load", daemon=True
        )
        self._thread.start()

    def join(self) -> None:
        """Wait for the thread to end (an error path must not leave a model half-built in the
        background while the process goes on to build other modules)."""
        self._thread.join()

    def _run(self, vs: VectorSet, reg: VectorSet | None, cfg: ScoreConfig) -> None:
        try:
            self._lm = load_scoring_model(vs, reg, cfg)
        except BaseException as exc:  # re-raised in the thread that needs the model
            self._exc = exc
        finally:
            self._done.set()

    def result(self) -> LoadedModel:
        """The loaded model (waits for the load; its error, if it failed)."""
        self._done.wait()
        if self._exc is not None:
            raise self._exc
        assert self._lm is not None
        return self._lm


def _chain(first: Item | None, rest: Iterator[Item]) -> Iterator[Item]:
    if first is not None:
        yield first
    yield from rest


def _model_name(vs: VectorSet, cfg: ScoreConfig) -> str:
    return cfg.model or vs.meta.model_id


def _is_done(out: Path, k: int, fp: str, cfg: ScoreConfig) -> ShardMarker | None:
    """Shard ``k``'s marker when its files are all there (attribute lines too, when asked)."""
    done = read_marker(out, k, fp)
    if done is None or not (out / "data" / f"{shard_name(k)}.parquet").exists():
        return None
    if cfg.attributes:
        from emocurate.corpus.attributes import STAGING

        if not (out / STAGING / f"{shard_name(k)}.jsonl").exists():
            return None
    return done


_END = object()


# Streaming memory (glibc). Reading rows allocates and frees a few transient objects per row (a
# 100 KB JSON line is read, decoded, parsed, and all but its text dropped) on the prefetch
# thread. glibc gives each thread its own heap ("arena"); the reader's arena fills with freed
# holes between the long-lived objects allocated beside them, so the resident set crept up with
# the number of rows READ, not with what is held (+13% peak RSS from 500 to 2,000 rows of
# 100 KB, +12.6% to 5,000 even with a trim per shard). With one arena for the process the
# reader reuses the holes the forward pass leaves, and a trim per shard returns the rest:
# +3.7% (bench/corpus_throughput.py, section rss). A fixed 64 KiB mmap threshold did as well
# for memory but cost 18% of the forward's speed (every activation mapped and faulted anew).
M_ARENA_MAX = -8  # mallopt parameter number (malloc.h)


def _libc() -> Any:
    """glibc through ctypes, or None (another OS or C library)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
        libc.malloc_trim.argtypes = [ctypes.c_size_t]
        return libc
    except (OSError, AttributeError):
        return None


_LIBC = _libc()


def stream_malloc() -> bool:
    """One malloc arena for the process (glibc ``mallopt``); False where unavailable.

    Process-wide and lasting; it applies to threads that allocate for the first time after it
    (so :func:`score_corpus` calls it before starting its own threads). It changes where memory
    comes from, never a result.
    """
    return bool(_LIBC is not None and _LIBC.mallopt(M_ARENA_MAX, 1))


def release_memory() -> None:
    """Return freed heap pages to the OS (glibc ``malloc_trim``); a no-op elsewhere."""
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


class Prefetch:
    """Run an iterator on a background thread, ``depth`` items ahead, behind a bounded queue.

    The scoring stage's CPU work that does not need the model (reading and decompressing rows,
    tokenising, planning windows) runs here while the main thread
    runs forward passes; the queue bound keeps memory at ``depth`` shards. An exception in the
    producer is re-raised in the consumer; closing the consumer early stops the producer.
    """

    def __init__(self, it: Iterator[Any], depth: int = 2) -> None:
        self._q: queue.Queue[Any] = queue.Queue(maxsize=max(1, depth))
        self._stop = threading.Event()
        self._it = it
        self._thread = threading.Thread(target=self._run, name="emocurate-prefetch", daemon=True)
        self._thread.start()

    def _put(self, x: Any) -> bool:
        while not self._stop.is_set():
            try:
                self._q.put(x, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        try:
            for x in self._it:
                if not self._put((None, x)):
                    return
        except BaseException as exc:  # handed to the consumer, which re-raises it
            self._put((exc, None))
            return
        self._put((None, _END))

    def __iter__(self) -> Iterator[Any]:
        try:
            while True:
                exc, x = self._q.get()
                if exc is not None:
                    raise exc
                if x is _END:
                    return
                yield x
        finally:
            self.close()

    def close(self) -> None:
        """Stop the producer (it exits at its next item) and wait for it."""
        self._stop.set()
        self._thread.join(timeout=30)


def _run_local(
    items: Iterator[Item],
    vs: VectorSet,
    reg: VectorSet | None,
    out: Path,
    cfg: ScoreConfig,
    fp: str,
    lm: LoadedModel | _Loader | None,
    timing: dict[str, Any] | None = None,
) -> tuple[list[ShardMarker], int]:
    """Stream shards: read + tokenise ahead (a prefetch thread), forward here, write behind.

    Three stages overlap: the prefetcher reads the next shards, checks their resume markers,
    and tokenises/windows their documents (the first shard that needs the tokenizer waits for
    the model, truncated at the probe layer, which loads on its own thread from the start of
    :func:`score_corpus`); the calling thread runs the forward passes and metrics
    (:meth:`Scorer.score_prepared`, the same code as :meth:`Scorer.score`); a writer thread
    writes the previous shard's Parquet files and marker. At most two prepared shards and one
    shard being written are alive besides the one being scored.
    """
    state: dict[str, Scorer] = {}
    markers: list[ShardMarker] = []
    resumed = 0
    progress = _Progress(cfg.progress, cfg.limit)

    def model() -> LoadedModel:
        if isinstance(lm, _Loader):
            return lm.result()
        return lm or load_scoring_model(vs, reg, cfg)

    def scorer() -> Scorer:
        if "s" not in state:
            state["s"] = Scorer(vs, model(), cfg, regulation=reg)
            state["s"].on_batch = progress.batch
        return state["s"]

    def produce() -> Iterator[tuple[int, list[Item], Any]]:
        for k, chunk in iter_shards(items, cfg.shard_size):
            done = _is_done(out, k, fp, cfg)
            if done is not None:
                yield k, chunk, done
                continue
            docs = [d for d in chunk if isinstance(d, Doc)]
            yield k, chunk, scorer().prepare_chunks(docs)

    pending: Future[ShardMarker] | None = None
    try:
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="emocurate-write") as writer:
            for k, chunk, payload in Prefetch(produce(), depth=2):
                if isinstance(payload, ShardMarker):  # a finished shard's marker
                    markers.append(payload)
                    resumed += 1
                    progress.advance(len(chunk))
                    continue
                if timing is not None and timing.get("first_batch_s") is None:
                    timing["first_batch_s"] = round(time.time() - timing["started_at"], 3)
                scored = state["s"].score_prepared(payload)
                progress.advance(sum(1 for d in chunk if not isinstance(d, Doc)))  # quarantined
                if pending is not None:
                    markers.append(pending.result())
                pending = writer.submit(_write_and_trim, out, k, chunk, scored, vs.names, cfg, fp)
            if pending is not None:
                markers.append(pending.result())
    finally:
        progress.close()
    markers.sort(key=lambda m: m.shard)
    return markers, resumed


def _write_and_trim(*args: Any) -> ShardMarker:
    """:func:`write_shard`, then hand the shard's freed memory back (see :func:`release_memory`)."""
    marker = write_shard(*args)
    release_memory()
    return marker


# -- Ray ---------------------------------------------------------------------------------------


def load_tokenizer(name: str) -> Any:
    """The tokenizer of a model (embedded name, folder or Hub id) without loading weights."""
    from transformers import AutoTokenizer

    from emocurate.vectors.sources import resolve

    tok = AutoTokenizer.from_pretrained(resolve(name, hash_weights=False).src)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def _model_window(name: str, cfg: ScoreConfig, lm: LoadedModel | None) -> int:
    if cfg.window:
        return cfg.window
    if lm is not None:
        return context_length(lm)
    from transformers import AutoConfig

    from emocurate.vectors.sources import resolve

    return config_context_length(AutoConfig.from_pretrained(resolve(name, hash_weights=False).src))


class _TokenizeStage:
    """Ray CPU stage: reader rows to prepared (tokenised, windowed) documents."""

    def __init__(self, model: str, window: int, stride: int | None) -> None:
        self.preparer = Preparer(load_tokenizer(model), window, stride)

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, list[Any]] = {"shard": [], "prep": []}
        for j, (shard, index) in enumerate(zip(batch["shard"], batch["index"], strict=True)):
            doc = Doc.from_record({k: col[j] for k, col in batch.items()})
            prep = self.preparer.prepare([doc], start_index=int(index))[0]
            out["shard"].append(int(shard))
            out["prep"].append(json.dumps(prep.to_dict()))
        return out


class _ScoreStage:
    """Ray model actor: the same :class:`Scorer` as the local engine."""

    def __init__(self, vectors_dir: str, cfg_json: str, model: str) -> None:
        import torch

        torch.set_num_threads(1)
        cfg = ScoreConfig.model_validate_json(cfg_json)
        vs, reg = load_vectors(vectors_dir, cfg)
        lm = load_scoring_model(vs, reg, cfg.model_copy(update={"model": model}))
        self.scorer = Scorer(vs, lm, cfg, regulation=reg)

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        prepared = [Prepared.from_dict(json.loads(p)) for p in batch["prep"]]
        scored = self.scorer.run(prepared)
        return {
            "shard": [int(s) for s in batch["shard"]],
            "index": [p.index for p in prepared],
            "row": [s.row.model_dump_json() for s in scored],
            "trace": [
                json.dumps(s.trace.model_dump()) if s.trace is not None else "" for s in scored
            ],
            "spans": [json.dumps(s.char_spans) for s in scored],
        }


def _ray_start(cfg: ScoreConfig) -> Any:
    """Import and start Ray (or join ``cfg.address``); returns the ``ray`` module."""
    try:
        import ray
        import ray.data
    except ImportError:
        raise ConfigError(
            "--engine ray needs the ray extra: pip install 'emocurate[ray]'"
        ) from None
    if not ray.is_initialized():
        ray.init(
            address=cfg.address,
            include_dashboard=False,
            ignore_reinit_error=True,
            log_to_driver=False,
        )
    ctx = ray.data.DataContext.get_current()
    ctx.execution_options.preserve_order = True
    ctx.enable_progress_bars = bool(cfg.progress and sys.stderr.isatty())
    return ray


def _ray_score_group(
    ray: Any,
    group: list[tuple[int, list[Item]]],
    model: str,
    window: int,
    vectors_dir: str | Path,
    cfg: ScoreConfig,
) -> dict[int, list[ScoredDoc]]:
    """Score the documents of a group of shards in one Ray Data pipeline (tokenise, then score).

    Returns each shard's scored documents in input order (quarantined rows are not scored).
    """
    rows = [
        {"shard": k, "index": i, **d.record()}
        for k, chunk in group
        for i, d in enumerate(x for x in chunk if isinstance(x, Doc))
    ]
    results: dict[int, dict[int, ScoredDoc]] = {k: {} for k, _ in group}
    if rows:
        use_gpu = cfg.device.startswith("cuda")
        ds: Any = ray.data.from_items(rows)
        ds = ds.map_batches(
            _TokenizeStage,
            fn_constructor_kwargs={"model": model, "window": window, "stride": cfg.stride},
            batch_size=32,
            compute=ray.data.ActorPoolStrategy(size=1),
            num_cpus=1,
        )
        ds = ds.map_batches(
            _ScoreStage,
            fn_constructor_kwargs={
                "vectors_dir": str(Path(vectors_dir).resolve()),
                "cfg_json": cfg.model_copy(update={"window": window}).model_dump_json(),
                "model": model,
            },
            batch_size=32,
            compute=ray.data.ActorPoolStrategy(size=cfg.ray_actors),
            num_cpus=0 if use_gpu else 1,
            num_gpus=1 if use_gpu else 0,
        )
        for r in ds.iter_rows():
            row = CorpusScore.model_validate_json(r["row"])
            trace = TraceRow.model_validate(json.loads(r["trace"])) if r["trace"] else None
            spans = json.loads(r["spans"])
            results[int(r["shard"])][int(r["index"])] = ScoredDoc(
                row, trace, [tuple(x) for x in spans] if spans is not None else None
            )
    return {k: [by_index[i] for i in sorted(by_index)] for k, by_index in results.items()}


def _run_ray(
    items: Iterator[Item],
    vs: VectorSet,
    reg: VectorSet | None,
    vectors_dir: str | Path,
    out: Path,
    cfg: ScoreConfig,
    fp: str,
    lm: LoadedModel | None,
) -> tuple[list[ShardMarker], int]:
    """Shards to Ray Data in groups of ``4 * ray_actors`` (at least 2); finished shards skipped."""
    ray = _ray_start(cfg)
    model = _model_name(vs, cfg)
    window = _model_window(model, cfg, lm)
    markers: list[ShardMarker] = []
    resumed = 0
    group: list[tuple[int, list[Item]]] = []
    group_size = max(2, cfg.ray_actors * 4)

    def flush() -> None:
        if not group:
            return
        scored = _ray_score_group(ray, group, model, window, vectors_dir, cfg)
        for k, chunk in group:
            markers.append(write_shard(out, k, chunk, scored[k], vs.names, cfg, fp))
        group.clear()

    for k, chunk in iter_shards(items, cfg.shard_size):
        done = _is_done(out, k, fp, cfg)
        if done is not None:
            markers.append(done)
            resumed += 1
            continue
        group.append((k, chunk))
        if len(group) >= group_size:
            flush()
    flush()
    markers.sort(key=lambda m: m.shard)
    return markers, resumed


# -- manifest ----------------------------------------------------------------------------------


def _drop_stale_shards(out: Path, n_shards: int) -> None:
    """Delete shards ``>= n_shards`` left by a longer earlier run with the same fingerprint
    (e.g. a changed input file)."""
    for sub, ext in (
        ("data", "parquet"),
        ("tokens", "parquet"),
        ("quarantine", "jsonl"),
        ("attributes", "jsonl"),
        (DONE, "json"),
    ):
        d = out / sub
        if d.is_dir():
            for f in d.glob(f"shard-*.{ext}"):
                if int(f.stem.split("-")[1]) >= n_shards:
                    f.unlink()


def _reference_shift(summary: ScoreSummary | None) -> list[ReferenceShift]:
    """Where the corpus sits in the calibration reference, per calibrated statistic."""
    if summary is None:
        return []
    return [
        reference_shift(col.removesuffix("_pct"), summary.pct_docs[col], median)
        for col, median in summary.pct_medians.items()
    ]


def _attribute_files(
    out: Path, markers: list[ShardMarker], cfg: ScoreConfig, plan: CorpusPlan | None
) -> AttributeFiles | None:
    """Assemble ``--attributes`` files from the shards' staging lines (None when not asked)."""
    if not cfg.attributes or plan is None:
        return None
    from emocurate.corpus.attributes import assemble

    files = assemble(out, [shard_name(m.shard) for m in markers], cfg.attributes, plan)
    return AttributeFiles(dir=str(cfg.attributes), files=files)


def _vectors_refs(
    vs: VectorSet, reg: VectorSet | None, vectors_dir: str | Path, cfg: ScoreConfig
) -> tuple[VectorsRef, RegulationVectorsRef | None]:
    """The manifest's record of the vectors (and regulation vectors) that scored the run."""
    ref = VectorsRef(
        dir=str(vectors_dir),
        model_id=vs.meta.model_id,
        model_revision=vs.meta.model_revision,
        kind=vs.meta.kind,
        layer=vs.layer_or_default(cfg.layer),
        n_vectors=len(vs.names),
        has_reference=vs.meta.has_reference,
    )
    if reg is None:
        return ref, None
    return ref, RegulationVectorsRef(model_id=reg.meta.model_id, n_vectors=len(reg.names))


def _finish(
    out: Path,
    markers: list[ShardMarker],
    resumed: int,
    vs: VectorSet,
    reg: VectorSet | None,
    vectors_dir: str | Path,
    inputs: list[str],
    cfg: ScoreConfig,
    fp: str,
    seconds: float,
    plan: CorpusPlan | None = None,
    timing: dict[str, Any] | None = None,
) -> ScoreManifest:
    """Join the shards (quarantine, totals, summary, attributes) and write the manifest."""
    n_shards = len(markers)
    _drop_stale_shards(out, n_shards)
    quarantine = b"".join(
        (out / "quarantine" / f"{shard_name(m.shard)}.jsonl").read_bytes() for m in markers
    )
    atomic_write_bytes(out / "quarantine.jsonl", quarantine)
    rows_in = sum(m.rows_in for m in markers)
    scored = sum(m.scored for m in markers)
    quarantined = sum(m.quarantined for m in markers)
    if n_shards == 0:
        write_table(out / "data" / f"{shard_name(0)}.parquet", rows_table([], vs.names))
    summary = summarize(out) if scored else None
    new_tokens = sum(m.tokens for m in markers[resumed:]) if resumed < n_shards else 0
    vectors, regulation_vectors = _vectors_refs(vs, reg, vectors_dir, cfg)
    manifest = ScoreManifest(
        inputs=inputs,
        rows_in=rows_in,
        scored=scored,
        quarantined=quarantined,
        tokens=sum(m.tokens for m in markers),
        shards=n_shards,
        resumed_shards=resumed,
        seconds=round(seconds, 3),
        tokens_per_s=round(new_tokens / seconds, 1) if seconds > 0 else None,
        engine=cfg.engine,
        fingerprint=fp,
        vectors=vectors,
        regulation_vectors=regulation_vectors,
        config=cfg,
        flags_note=flags_note(vectors_dir, cfg),
        summary=summary,
        reference_shift=_reference_shift(summary),
        # folder entries that were not read (not data files); see emocurate.corpus.readers
        skipped=[
            SkippedEntry(path=x.path, reason=x.reason)
            for x in (plan.skipped if plan else [])[:MAX_SKIPPED]
        ],
        skipped_total=len(plan.skipped) if plan else 0,
        attributes=_attribute_files(out, markers, cfg, plan),
        timing=timing or {},
    )
    if rows_in != scored + quarantined:  # pragma: no cover - an invariant, not a user error
        raise InputError(
            f"row accounting mismatch: {rows_in} in, {scored} scored, {quarantined} quarantined"
        )
    write_configs_readme(
        out,
        {"default": "data/*.parquet", "tokens": "tokens/*.parquet"},
        title="emocurate corpus scores",
        note="One row per document (metrics, flags with token spans); `tokens` holds token-level traces of some documents.",
    )
    manifest.save(out)
    return manifest


def summarize(out: Path) -> ScoreSummary:
    """Corpus-level summary: flag counts, metric means, pooled dialogue co-regulation.

    Streams the shards (:mod:`emocurate.corpus.summary`): memory does not grow with the corpus.
    """
    from emocurate.corpus.summary import summarize_shards

    return summarize_shards(sorted((out / "data").glob("shard-*.parquet")))
