"""Corpus scoring end to end: the `emocurate score` command beside the bare forward (a benchmark).

A random-init 0.5B-class model (Qwen2.5-0.5B shapes as a Llama config: hidden 896, 24 layers,
vocab 151,936, tied embeddings; the stories260K tokenizer) is saved once to a folder, with an
emotion VectorSet at layer 15 of 24 whose neutral reference comes from the model's own
activations (so z-scores, flags and the per-document work look like a real run). Then, each in
its own subprocess (so start-up, imports and peak RSS are its own):

* ``score``     -- ``emocurate score CORPUS --vectors VS --out OUT --z-threshold 1`` (the CLI a
                   user runs: read, tokenise, window, forward, metrics, write Parquet);
* ``truncated`` -- a bare forward through blocks 0..15 only (``load_model(upto_layer=15)``, no
                   head, no hooks, no metrics) over the same documents, tokenised and
                   length-batched with the same token budget, then the projection;
* ``naive``     -- the full model (24 blocks + LM head) with ``output_hidden_states=True``.

For each of two corpora (short documents of ~400 characters; 6,000-character documents) of at
least ``--tokens`` tokens it reports: wall clock, the manifest's ``seconds``, start-up (the
subprocess launch to its first forward batch), the forward-loop seconds of the baselines, tokens/s
and peak RSS (VmHWM). Ratios: truncated-loop seconds / score manifest seconds ("by manifest
time"), truncated-loop seconds / score wall seconds ("by wall clock"), naive-loop / score
manifest seconds. Start-up (launch to the first forward batch, timed at
``ActivationCapture.run`` so any checkout is timed alike) is measured on ONE short document, for
this checkout and, with ``--compare-pythonpath``, another one (e.g. main).

Memory: ``emocurate score`` with a small model on a corpus of heavy rows (each row carries a
``--pad-kb`` field that is read and discarded) and on one 10x larger; a design that held the
rows would grow by ~ the corpus size (reported beside the growth).

The speed runs use ``--speed-preset`` (default ``qwen-small``: hidden 512, 12 layers, probe at 7,
the full 151,936 vocabulary); start-up always uses the 0.5B shape at layer 15 of 24.

On a GPU (``--device cuda``) the same runs are made on the device (bf16, SDPA) and each corpus
also reports MFU: (2 N + 4 L d T) FLOPs per forwarded token over the GPU's bf16 dense peak.

Usage: python bench/corpus_throughput.py [--tokens 100000] [--threads 2] [--skip-rss]
       python bench/corpus_throughput.py --device cuda --tokens 2000000 --batch-tokens 65536
Prints JSON and writes bench/results/corpus_throughput.json (or --out).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PP = Path(
    os.environ.get(
        "EMOCURATE_BENCH_TEXT", "/work/shared/eval/corpus/gutenberg_pg1342_pride_and_prejudice.txt"
    )
)
PRESETS: dict[str, dict[str, Any]] = {
    # Qwen2.5-0.5B shapes, as a Llama config (same block structure; random init).
    "qwen0.5b": dict(
        hidden_size=896,
        num_hidden_layers=24,
        intermediate_size=4864,
        num_attention_heads=14,
        num_key_value_heads=2,
        vocab_size=151936,
        # Qwen2.5-0.5B's own context (it was 2048 here, which cut the stories260K tokenizer's
        # ~2,000-token "6,000-character" documents into overlapping windows no real run of this
        # model would make: the scorer then forwarded 12% more tokens than the baseline)
        max_position_embeddings=32768,
        tie_word_embeddings=True,
    ),
    # A smaller Qwen2-style shape for the throughput ratios at >= 100k tokens (the 0.5B shape runs
    # ~100 tokens/s on 2 CPU cores): hidden 512, 12 layers, probe at layer 7, the full Qwen
    # vocabulary (151,936) and context.
    "qwen-small": dict(
        hidden_size=512,
        num_hidden_layers=12,
        intermediate_size=2816,
        num_attention_heads=8,
        num_key_value_heads=2,
        vocab_size=151936,
        max_position_embeddings=32768,
        tie_word_embeddings=True,
    ),
    "tiny": dict(
        hidden_size=128,
        num_hidden_layers=6,
        intermediate_size=344,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=4096,
        max_position_embeddings=512,
        tie_word_embeddings=True,
    ),
}
PROBE = {"qwen0.5b": 15, "qwen-small": 7, "tiny": 3}
NAMES = [f"e{i}" for i in range(24)] + [
    "afraid",
    "desperate",
    "calm",
    "relieved",
    "happy",
    "sad",
    "angry",
    "surprised",
]


def texts(n: int, chars: int, seed: int = 0) -> list[str]:
    """``n`` passages of about ``chars`` characters (0.5x-1.5x) from Pride and Prejudice."""
    if PP.exists():
        body = PP.read_text("utf-8-sig")
    else:  # pragma: no cover
        body = "It was a bright cold day and the clocks were striking thirteen. " * 5000
    out = []
    step = max(1, (len(body) - chars) // max(1, n))
    for i in range(n):
        start = (seed * 7919 + i * step) % max(1, len(body) - 2 * chars)
        length = int(chars * (0.5 + (i % 5) / 4))  # varied, so batches are length-bucketed
        out.append(body[start : start + length])
    return out


def peak_rss_mib() -> float:
    """Peak resident set of this process (VmHWM), MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")  # pragma: no cover - not Linux


def build(preset: str, folder: Path) -> Path:
    """Save a random-init model + tokenizer to ``folder/model`` and a VectorSet to ``folder/vs``."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from emocurate.vectors.capture import iter_hidden
    from emocurate.vectors.models import load_model
    from emocurate.vectors.vectorset import VectorSet, VectorSetMeta

    mdir, vdir = folder / "model", folder / "vs"
    if (vdir / "vectorset.json").exists():
        cfg_now = json.loads((mdir / "config.json").read_text())
        if all(cfg_now.get(k) == v for k, v in PRESETS[preset].items()):
            return folder
        import shutil

        shutil.rmtree(folder)  # a cached model of an older preset definition
    tok = load_model("stories260K").tokenizer
    cfg = LlamaConfig(
        **PRESETS[preset], bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(cfg).eval()
    model.save_pretrained(mdir)
    tok.save_pretrained(mdir)
    del model
    lm = load_model(str(mdir), upto_layer=PROBE[preset])
    layer = PROBE[preset]
    meta = VectorSetMeta(
        names=NAMES,
        layers=[layer],
        default_layer=layer,
        model_id=str(mdir),
        hidden_size=lm.hidden_size,
        n_model_layers=PRESETS[preset]["num_hidden_layers"],
    )
    vs = VectorSet({layer: torch.randn(len(NAMES), lm.hidden_size)}, meta)
    ids = [tok(t)["input_ids"][:256] for t in texts(16, 600, seed=3)]
    acts = []
    for batch, hidden in iter_hidden(lm, ids, [layer], batch_tokens=4096):
        for r in range(len(batch.indices)):
            acts.append(hidden[layer][r, 1 : batch.lengths[r]].float())
    vs.set_reference(layer, torch.cat(acts))
    vs.save(vdir)
    return folder


def write_corpus(path: Path, docs: list[str], pad_kb: int = 0) -> None:
    pad = "x" * (pad_kb * 1024)
    with path.open("w") as fh:
        for i, t in enumerate(docs):
            row: dict[str, Any] = {"id": f"d{i}", "text": t}
            if pad:
                row["pad"] = pad
            fh.write(json.dumps(row) + "\n")


def corpus_for(tokens: int, chars: int, tok: Any) -> list[str]:
    """Documents of about ``chars`` characters until they hold ``tokens`` tokens."""
    probe = texts(20, chars)
    per_doc = sum(len(tok(t, add_special_tokens=False)["input_ids"]) for t in probe) / len(probe)
    return texts(max(1, int(tokens / per_doc) + 1), chars)


def scorer_forward_tokens(corpus: Path, tok: Any, window: int = 2048) -> int:
    """Tokens the scorer forwards for ``corpus`` (its windows, each with a BOS)."""
    from emocurate.corpus.readers import Doc
    from emocurate.corpus.score import Preparer

    prep = Preparer(tok, window)
    docs = [Doc("d", json.loads(x)["text"]) for x in corpus.read_text().splitlines()]
    bos = 1 if prep.bos is not None else 0
    return sum(n + bos for p in prep.prepare(docs) for _, n, _ in p.windows if n)


# -- children (each in its own process) ----------------------------------------------------------


def child_cli(args: argparse.Namespace) -> None:
    """Run the emocurate CLI in this process, then print its peak RSS (VmHWM)."""
    import emocurate.vectors.capture as capture
    from emocurate.cli import main

    # The first forward pass, timed the same way for any checkout (main and this one both run
    # their forwards through ActivationCapture.run): start-up = launch -> this moment.
    orig = capture.ActivationCapture.run
    first: dict[str, float] = {}

    def timed_run(self: Any, **inputs: Any) -> Any:
        first.setdefault("t", time.time())
        return orig(self, **inputs)

    capture.ActivationCapture.run = timed_run  # type: ignore[method-assign]
    code = 0
    try:
        main(args.rest)
    except SystemExit as exc:
        code = int(exc.code or 0)
    print(
        json.dumps(
            {
                "peak_rss_mib": round(peak_rss_mib(), 1),
                "code": code,
                "first_forward": first.get("t"),
            }
        )
    )


def child_forward(args: argparse.Namespace) -> None:
    """The bare baselines: tokenise, length-batch, forward (truncated or full), project."""
    import torch

    from emocurate.vectors.capture import batch_cost, make_batches
    from emocurate.vectors.models import load_model
    from emocurate.vectors.vectorset import VectorSet

    t_start = time.time()
    folder = Path(args.folder)
    vs = VectorSet.load(folder / "vs")
    layer = vs.meta.default_layer
    truncated = args.mode == "truncated"
    lm = load_model(
        str(folder / "model"), upto_layer=layer if truncated else None, device=args.device
    )
    docs = [json.loads(x)["text"] for x in Path(args.corpus).read_text().splitlines()]
    unit = vs.unit(layer).to(lm.device)
    window = lm.model.config.max_position_embeddings
    first = None
    t0 = time.perf_counter()
    n_tokens = 0
    with torch.inference_mode():
        # same token budget and windowing as the scorer: documents longer than the window are
        # cut into windows (here without overlap: the baseline does strictly less work)
        ids = lm.tokenizer(docs, add_special_tokens=True)["input_ids"]
        seqs = [s[i : i + window] for s in ids for i in range(0, len(s), window)]
        n_tokens = sum(len(s) for s in seqs)
        cost = batch_cost(args.batch_tokens, lm.device)  # the scorer's split, corpus-wide
        for b in make_batches(seqs, pad_id=0, batch_tokens=args.batch_tokens, cost=cost):
            if first is None:
                first = time.time() - t_start
            inputs = b.model_inputs(lm.device)
            if truncated:
                h = lm.model(**inputs, use_cache=False).last_hidden_state
            else:
                # the naive way: the whole model, LM head included, keeping every hidden state
                res = lm.model(**inputs, output_hidden_states=True, use_cache=False)
                assert len(res.hidden_states) == lm.n_layers + 1 and res.logits.shape[:2] == (
                    inputs["input_ids"].shape
                )
                h = res.hidden_states[layer + 1]
            (h.float() @ unit.T).cpu()
        if lm.device.type == "cuda":
            torch.cuda.synchronize()
    loop = time.perf_counter() - t0
    print(
        json.dumps(
            {
                "loop_s": round(loop, 3),
                "tokens": n_tokens,
                "first_batch_after_start_s": round(first or 0.0, 3),
                "peak_rss_mib": round(peak_rss_mib(), 1),
                "gpu": torch.cuda.get_device_name() if lm.device.type == "cuda" else None,
            }
        )
    )


def child_floor(args: argparse.Namespace) -> None:
    """The library floor of start-up: torch + transformers imports, the truncated load, a forward.

    No emocurate code: what any scorer built on transformers pays before its first batch (the
    launch time comes from the parent in ``--launch``).
    """
    import torch
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    folder = Path(args.folder)
    layer = json.loads((folder / "vs" / "vectorset.json").read_text())["default_layer"]
    src = str(folder / "model")
    tok = AutoTokenizer.from_pretrained(src)
    cfg = AutoConfig.from_pretrained(src)
    cfg.num_hidden_layers = layer + 1
    model = AutoModel.from_pretrained(src, config=cfg).eval().to(args.device)
    doc = json.loads(Path(args.corpus).read_text().splitlines()[0])["text"]
    ids = tok(doc, return_tensors="pt").to(args.device)
    first = time.time()
    with torch.inference_mode():
        model(**ids, use_cache=False)
    print(json.dumps({"first_forward": first, "peak_rss_mib": round(peak_rss_mib(), 1)}))


# -- parent ----------------------------------------------------------------------------------------


def run_child(argv: list[str], threads: int, pythonpath: str | None = None) -> tuple[dict, float]:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    env["PYTHONPATH"] = pythonpath or str(ROOT)
    t0 = time.time()
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), *argv],
        capture_output=True,
        text=True,
        env=env,
    )
    wall = time.time() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"child failed: {argv}\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1]), wall


def score_cmd(corpus: Path, folder: Path, out: Path, batch_tokens: int, *extra: str) -> list[str]:
    return [
        "--child",
        "cli",
        "--",
        "score",
        str(corpus),
        "--vectors",
        str(folder / "vs"),
        "--out",
        str(out),
        "--z-threshold",
        "1",
        "--batch-tokens",
        str(batch_tokens),
        *extra,
    ]


def run_score(
    corpus: Path, folder: Path, tmp: Path, args: argparse.Namespace, pythonpath: str | None = None
) -> dict[str, Any]:
    out = Path(tempfile.mkdtemp(dir=tmp))
    t_launch = time.time()
    extra = ("--device", args.device) if args.device != "cpu" else ()
    res, wall = run_child(
        score_cmd(corpus, folder, out, args.batch_tokens, *extra), args.threads, pythonpath
    )
    m = json.loads((out / "manifest.json").read_text())
    timing = m.get("timing") or {}
    first = res["first_forward"] - t_launch if res.get("first_forward") else None
    return {
        "wall_s": round(wall, 3),
        "manifest_s": m["seconds"],
        "tokens": m["tokens"],
        "startup_to_first_batch_s": round(first, 3) if first is not None else None,
        "imports_s": round(timing["started_at"] - t_launch, 3) if timing else None,
        "peak_rss_mib": res["peak_rss_mib"],
        "flagged": m["summary"].get("docs_flagged"),
        "scored": m["scored"],
    }


def bench_speed(args: argparse.Namespace, folder: Path, tmp: Path) -> dict[str, Any]:
    from emocurate.vectors.models import load_model

    tok = load_model("stories260K").tokenizer
    out: dict[str, Any] = {}
    lengths = (("short", args.short_chars), ("long", args.long_chars))
    for label, chars in [(n, c) for n, c in lengths if n in args.lengths.split(",")]:
        corpus = tmp / f"{label}.jsonl"
        write_corpus(corpus, corpus_for(args.tokens, chars, tok))
        args.corpus_path = str(corpus)

        def forward(mode: str, corpus: Path = corpus) -> dict[str, Any]:
            argv = ["--child", "forward", "--mode", mode, "--folder", str(folder)]
            argv += ["--corpus", str(corpus), "--batch-tokens", str(args.batch_tokens)]
            argv += ["--device", args.device]
            res, wall = run_child(argv, args.threads)
            return {**res, "wall_s": round(wall, 3)}

        # score and the truncated forward alternate, best of --speed-repeats each: a burst of
        # other load on the machine slows one run, not the comparison
        scores, truncs = [], []
        for _ in range(args.speed_repeats):
            scores.append(run_score(corpus, folder, tmp, args))
            truncs.append(forward("truncated"))
        score = min(scores, key=lambda r: r["manifest_s"])
        base = {"truncated": min(truncs, key=lambda r: r["loop_s"]), "naive": forward("naive")}
        base["truncated"]["all_loop_s"] = [r["loop_s"] for r in truncs]
        score["all_manifest_s"] = [r["manifest_s"] for r in scores]
        score["all_wall_s"] = [r["wall_s"] for r in scores]
        tr, nv = base["truncated"]["loop_s"], base["naive"]["loop_s"]
        window = json.loads((folder / "model" / "config.json").read_text())[
            "max_position_embeddings"
        ]
        fwd = scorer_forward_tokens(corpus, tok, window)  # the scorer's window: the context
        out[label] = {
            "doc_chars": chars,
            "score": score,
            "truncated": base["truncated"],
            "naive": base["naive"],
            "tokens_per_s": {
                "score_manifest": round(score["tokens"] / score["manifest_s"], 1),
                "score_wall": round(score["tokens"] / score["wall_s"], 1),
                "truncated_forward": round(score["tokens"] / tr, 1),
                "naive_forward": round(score["tokens"] / nv, 1),
            },
            "ratio_vs_truncated_manifest": round(tr / score["manifest_s"], 3),
            "ratio_vs_truncated_wall": round(tr / score["wall_s"], 3),
            "ratio_vs_naive_manifest": round(nv / score["manifest_s"], 3),
            # the scorer's overlapping windows (stride 3/4) forward more tokens than the
            # baseline's cut-at-the-window sequences on documents longer than the window
            "forward_tokens": {"score": fwd, "baseline": base["truncated"]["tokens"]},
            "ratio_vs_truncated_per_forward_token": round(
                (fwd / score["manifest_s"]) / (base["truncated"]["tokens"] / tr), 3
            ),
            "rss_vs_truncated_forward": round(
                score["peak_rss_mib"] / base["truncated"]["peak_rss_mib"], 3
            ),
        }
        if args.device != "cpu":
            out[label]["mfu"] = mfu(folder, fwd, score["manifest_s"], tr, base, args)
    return out


# bf16 dense peak of the GPUs this project has been lent (TFLOP/s, no sparsity)
PEAK_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L4": 121.0}


def mfu(
    folder: Path, fwd_tokens: int, score_s: float, trunc_s: float, base: dict, args: Any
) -> dict[str, Any]:
    """Model FLOPs utilisation of the truncated forward: (2 N + 4 L d T) per token / peak.

    N = parameters of the kept blocks (embeddings excluded), L = kept layers, d = hidden size,
    T = mean forwarded sequence length (the attention term).
    """
    cfg = json.loads((folder / "model" / "config.json").read_text())
    layers = json.loads((folder / "vs" / "vectorset.json").read_text())["default_layer"] + 1
    d, inter = cfg["hidden_size"], cfg["intermediate_size"]
    kv = d * cfg["num_key_value_heads"] // cfg["num_attention_heads"]
    n_block = layers * (2 * d * d + 2 * d * kv + 3 * d * inter)
    docs = [json.loads(x)["text"] for x in Path(args.corpus_path).read_text().splitlines()]
    mean_len = fwd_tokens / max(1, len(docs))
    per_token = 2 * n_block + 4 * layers * d * mean_len
    name = base["truncated"].get("gpu") or ""
    peak = args.peak_tflops or next((v for k, v in PEAK_TFLOPS.items() if k in name), None)
    res: dict[str, Any] = {"gpu": name, "peak_tflops": peak, "flops_per_token": per_token}
    if peak:
        for key, secs in (("score_manifest", score_s), ("truncated_forward", trunc_s)):
            res[key] = round(per_token * fwd_tokens / secs / (peak * 1e12), 4)
    return res


def bench_startup(args: argparse.Namespace, folder: Path, tmp: Path) -> dict[str, Any]:
    """Launch to first forward batch when scoring one short document, best of ``--repeats``."""
    corpus = tmp / "one.jsonl"
    write_corpus(corpus, texts(1, args.short_chars))
    res: dict[str, Any] = {}
    paths = {"this": None}
    if args.compare_pythonpath:
        paths["compare"] = args.compare_pythonpath
    for name, pp in paths.items():
        walls, firsts = [], []
        for _ in range(args.repeats):
            r = run_score(corpus, folder, tmp, args, pythonpath=pp)
            walls.append(r["wall_s"])
            if r["startup_to_first_batch_s"] is not None:
                firsts.append(r["startup_to_first_batch_s"])
        res[name] = {
            "pythonpath": pp or str(ROOT),
            "one_doc_wall_s": sorted(walls),
            "startup_to_first_batch_s": sorted(firsts) or None,
        }
    floors = []
    for _ in range(args.repeats):
        t_launch = time.time()
        r, _wall = run_child(
            ["--child", "floor", "--folder", str(folder), "--corpus", str(corpus)]
            + ["--device", args.device],
            args.threads,
        )
        floors.append(round(r["first_forward"] - t_launch, 3))
    res["library_floor_s"] = sorted(floors)
    if "compare" in res and res["compare"]["startup_to_first_batch_s"]:
        before = min(res["compare"]["startup_to_first_batch_s"])
        # the most any change to emocurate could reach: start-up down to the library floor
        res["floor_reduction"] = round(1 - min(floors) / before, 3)
        res["startup_reduction"] = round(
            1
            - min(res["this"]["startup_to_first_batch_s"])
            / min(res["compare"]["startup_to_first_batch_s"]),
            3,
        )
    return res


def bench_rss(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    folder = build("tiny", tmp / "tiny")
    runs = []
    for n in (args.rss_docs, args.rss_docs * 10):
        corpus = tmp / f"rss{n}.jsonl"
        write_corpus(corpus, texts(n, 400, seed=1), pad_kb=args.pad_kb)
        r = run_score(corpus, folder, tmp, args)
        runs.append(
            {
                "docs": n,
                "corpus_mib": round(corpus.stat().st_size / 2**20, 1),
                **{k: r[k] for k in ("tokens", "wall_s", "peak_rss_mib")},
            }
        )
    growth = runs[1]["peak_rss_mib"] / runs[0]["peak_rss_mib"] - 1
    return {
        "preset": "tiny",
        "pad_kb": args.pad_kb,
        "runs": runs,
        "rss_growth": round(growth, 4),
        "growth_if_rows_were_held": round(
            (runs[1]["corpus_mib"] - runs[0]["corpus_mib"]) / runs[0]["peak_rss_mib"], 3
        ),
        "goal_within_10pct": growth <= 0.10,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--tokens", type=int, default=100_000, help="tokens per corpus (each length)")
    ap.add_argument("--short-chars", type=int, default=400)
    ap.add_argument("--long-chars", type=int, default=6000)
    ap.add_argument("--batch-tokens", type=int, default=8192)
    ap.add_argument("--lengths", default="short,long", help="which corpora: short,long")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu", help="cpu or cuda (speed and start-up runs)")
    ap.add_argument("--peak-tflops", type=float, default=None, help="for MFU (default: by GPU)")
    ap.add_argument(
        "--speed-preset",
        choices=sorted(PRESETS),
        default="qwen-small",
        help="model of the speed runs",
    )
    ap.add_argument("--repeats", type=int, default=3, help="start-up runs (best of)")
    ap.add_argument(
        "--speed-repeats", type=int, default=2, help="score / truncated runs per corpus (best of)"
    )
    ap.add_argument("--model-cache", default=str(Path(tempfile.gettempdir()) / "emocurate-bench"))
    ap.add_argument("--compare-pythonpath", default=None, help="another checkout (start-up)")
    # 1,000 rows = 4 shards: the smaller corpus must already fill the pipeline (prefetch 2 shards
    # ahead, one scoring, one writing), or its warm-up is read as growth (500 rows = 2 shards)
    ap.add_argument("--rss-docs", type=int, default=1000)
    ap.add_argument("--pad-kb", type=int, default=100)
    ap.add_argument("--skip-speed", action="store_true")
    ap.add_argument("--skip-startup", action="store_true")
    ap.add_argument("--skip-rss", action="store_true")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "corpus_throughput.json"))
    # children
    ap.add_argument("--child", choices=["cli", "forward", "floor"], default=None)
    ap.add_argument("--mode", choices=["truncated", "naive"], default="truncated")
    ap.add_argument("--folder", default="")
    ap.add_argument("--corpus", default="")
    ap.add_argument("rest", nargs="*")
    args = ap.parse_args()
    if args.child:
        import torch

        torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
        {"cli": child_cli, "forward": child_forward, "floor": child_floor}[args.child](args)
        return
    import torch

    result: dict[str, Any] = {
        "bench": "corpus_throughput",
        "python": platform.python_version(),
        "torch": torch.__version__,
        "threads": args.threads,
        "cpus": os.cpu_count(),
        "load_avg_start": os.getloadavg(),
        "startup_preset": "qwen0.5b",
        "startup_probe_layer": f"{PROBE['qwen0.5b']} of {PRESETS['qwen0.5b']['num_hidden_layers']}",
        "speed_preset": args.speed_preset,
        "speed_shape": PRESETS[args.speed_preset],
        "speed_probe_layer": f"{PROBE[args.speed_preset]} of "
        f"{PRESETS[args.speed_preset]['num_hidden_layers']}",
        "tokens_target": args.tokens,
        "batch_tokens": args.batch_tokens,
    }
    folder = build("qwen0.5b", Path(args.model_cache) / "qwen0.5b")
    speed_folder = build(args.speed_preset, Path(args.model_cache) / args.speed_preset)
    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        if not args.skip_startup:
            result["startup"] = bench_startup(args, folder, tmp)
        if not args.skip_speed:
            result["speed"] = bench_speed(args, speed_folder, tmp)
        if not args.skip_rss:
            result["rss"] = bench_rss(args, tmp)
    result["load_avg_end"] = os.getloadavg()
    text = json.dumps(result, indent=2)
    print(text)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
