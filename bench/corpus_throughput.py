"""Corpus scoring throughput and memory (a benchmark, not a test).

Side by side, on the same documents and the same length-bucketed batches of a random-init
0.5B-class model (Qwen2.5-0.5B shapes: hidden 896, 24 layers, vocab 151,936), probe layer at two
thirds of the depth:

* ``ours``       -- ``Scorer.score`` end to end (tokenise, windows, forward stopped at the probe
                    layer, z-scored projections on every vector, all regulation metrics);
* ``naive``      -- a full forward with ``output_hidden_states=True`` (all layers + LM head),
                    then the same projection of the probe layer (forward + projection only);
* ``truncated``  -- a bare forward through only the first L+1 decoder blocks (no LM head, no
                    hooks, no metrics), then the projection.

Goals: ours >= 2.0x naive and >= 0.9x truncated tokens/s. Then peak RSS of ``score_corpus``
(local streaming engine, each size in its own subprocess) on a corpus and on one 10x larger
(goal: within +10%). On a GPU it also reports tokens/s and MFU (bf16).

Usage: python bench/corpus_throughput.py [--device cuda] [--docs 8] [--doc-chars 600]
Prints JSON and writes bench/results/corpus_throughput.json (or --out).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

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
        max_position_embeddings=2048,
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
PEAK_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0}


def texts(n: int, chars: int, seed: int = 0) -> list[str]:
    """``n`` passages of about ``chars`` characters from Pride and Prejudice (or filler text)."""
    if PP.exists():
        body = PP.read_text("utf-8-sig")
    else:  # pragma: no cover
        body = "It was a bright cold day and the clocks were striking thirteen. " * 5000
    out = []
    step = max(1, (len(body) - chars) // max(1, n))
    for i in range(n):
        start = (seed * 7919 + i * step) % max(1, len(body) - chars)
        # vary lengths so batches are length-bucketed as in a real corpus
        length = int(chars * (0.5 + (i % 5) / 4))
        out.append(body[start : start + length])
    return out


def build(preset: str, device: str) -> tuple[Any, Any]:
    """A random-init model with the stories260K tokenizer, as a LoadedModel, plus a VectorSet."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from emocurate.vectors.models import LoadedModel, default_layer, find_layers, load_model
    from emocurate.vectors.vectorset import VectorSet, VectorSetMeta

    tok = load_model("stories260K").tokenizer
    cfg = LlamaConfig(
        **PRESETS[preset], bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id
    )
    torch.manual_seed(0)
    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    with torch.device(device):
        model = LlamaForCausalLM(cfg).to(dtype)
    model.eval()
    path, layers = find_layers(model)
    lm = LoadedModel(
        model=model,
        tokenizer=tok,
        model_id=f"random-{preset}",
        revision="",
        layers=layers,
        layer_path=path,
    )
    layer = default_layer(lm.n_layers)
    names = [f"e{i}" for i in range(24)] + [
        "afraid",
        "desperate",
        "calm",
        "relieved",
        "happy",
        "sad",
        "angry",
        "surprised",
    ]
    meta = VectorSetMeta(
        names=names,
        layers=[layer],
        default_layer=layer,
        model_id=lm.model_id,
        hidden_size=lm.hidden_size,
        n_model_layers=lm.n_layers,
    )
    vs = VectorSet({layer: torch.randn(len(names), lm.hidden_size)}, meta)
    vs.set_reference(layer, torch.randn(256, lm.hidden_size))
    return lm, vs


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def bench_speed(args: argparse.Namespace) -> dict[str, Any]:
    from emocurate.corpus.score import ScoreConfig, Scorer
    from emocurate.vectors.capture import make_batches

    lm, vs = build(args.preset, args.device)
    layer = vs.meta.default_layer
    scorer = Scorer(
        vs, lm, ScoreConfig(batch_tokens=args.batch_tokens, window=args.window, progress=False)
    )
    docs = [(f"d{i}", t) for i, t in enumerate(texts(args.docs, args.doc_chars))]
    prepared = scorer.prepare(docs)
    bos = [scorer.bos] if scorer.bos is not None else []
    seqs = [bos + p.ids[s : s + n] for p in prepared for s, n, _ in p.windows]
    n_tokens = sum(len(p.ids) for p in prepared)
    # A realistic neutral reference: activations of the first documents (so z-scores and flag
    # rates, hence the per-document work, look like a real run rather than random numbers).
    from emocurate.vectors.capture import capture

    with capture(lm, [layer]) as cap:
        b0 = next(
            iter(make_batches(seqs[:16], pad_id=scorer.pad_id, batch_tokens=args.batch_tokens))
        )
        acts = cap.run(**b0.model_inputs(lm.device))[layer]
        vs.set_reference(layer, acts[b0.attention_mask.to(acts.device).bool()].float().cpu())
    scorer = Scorer(
        vs, lm, ScoreConfig(batch_tokens=args.batch_tokens, window=args.window, progress=False)
    )
    unit = vs.unit(layer).to(lm.device)
    base = lm.model.model  # type: ignore[union-attr]
    all_layers = base.layers
    window = scorer.window

    def baseline_batches() -> list[Any]:
        """Baselines tokenise and batch too (same tokenizer, same token budget)."""
        ids = lm.tokenizer([t for _, t in docs], truncation=True, max_length=window)["input_ids"]
        return list(make_batches(ids, pad_id=scorer.pad_id, batch_tokens=args.batch_tokens))

    def ours() -> None:
        scorer.score(docs)

    def naive() -> None:
        with torch.inference_mode():
            for b in baseline_batches():
                out = lm.model(
                    **b.model_inputs(lm.device), output_hidden_states=True, use_cache=False
                )
                (out.hidden_states[layer + 1].float() @ unit.T).cpu()

    def truncated() -> None:
        base.layers = all_layers[: layer + 1]
        try:
            with torch.inference_mode():
                for b in baseline_batches():
                    h = base(**b.model_inputs(lm.device), use_cache=False).last_hidden_state
                    (h.float() @ unit.T).cpu()
        finally:
            base.layers = all_layers

    fns = {"ours": ours, "naive": naive, "truncated": truncated}
    for fn in fns.values():  # warm-up
        fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(args.repeats):
        for name, fn in fns.items():  # interleaved so drift hits all three alike
            sync(args.device)
            t0 = time.perf_counter()
            fn()
            sync(args.device)
            times[name].append(time.perf_counter() - t0)
    best = {k: min(v) for k, v in times.items()}
    tps = {k: n_tokens / v for k, v in best.items()}
    flagged = sum(bool(r.flags) for r in scorer.score(docs[:64]))
    out: dict[str, Any] = {
        "flagged_share_first64": round(flagged / min(64, len(docs)), 3),
        "preset": args.preset,
        "device": args.device,
        "n_docs": len(docs),
        "n_tokens": n_tokens,
        "n_forward_tokens": sum(len(s) for s in seqs),
        "probe_layer": layer,
        "n_layers": lm.n_layers,
        "batch_tokens": args.batch_tokens,
        "repeats": args.repeats,
        "seconds_best": {k: round(v, 4) for k, v in best.items()},
        "tokens_per_s": {k: round(v, 1) for k, v in tps.items()},
        "ratio_vs_naive": round(tps["ours"] / tps["naive"], 3),
        "ratio_vs_truncated": round(tps["ours"] / tps["truncated"], 3),
    }
    out["goal_vs_naive_2x"] = out["ratio_vs_naive"] >= 2.0
    out["goal_vs_truncated_0.9x"] = out["ratio_vs_truncated"] >= 0.9
    if args.device.startswith("cuda"):
        name = torch.cuda.get_device_name()
        peak = next((v for k, v in PEAK_BF16_TFLOPS.items() if k in name), None)
        d = lm.hidden_size
        per_layer = sum(p.numel() for p in all_layers[0].parameters())
        mean_len = sum(len(s) for s in seqs) / len(seqs)
        # 2 FLOPs per weight per token through L+1 blocks, plus attention scores/values (4*len*d per layer).
        flops_tok = 2 * per_layer * (layer + 1) + 4 * mean_len * d * (layer + 1)
        out["gpu"] = name
        out["mfu_ours"] = round(flops_tok * tps["ours"] / (peak * 1e12), 4) if peak else None
        out["model_tflops_per_s_ours"] = round(flops_tok * tps["ours"] / 1e12, 2)
    return out


def peak_rss_kib() -> int:
    """Peak resident set of this process (VmHWM; ru_maxrss would include the parent's pre-exec peak)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:  # pragma: no cover - not Linux
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def rss_child(args: argparse.Namespace) -> None:
    """Score a generated corpus of ``--rss-docs`` documents and print peak RSS (MiB)."""
    from emocurate.corpus.score import ScoreConfig, score_corpus

    lm, vs = build(args.rss_preset, args.device)
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        vs.save(t / "vs")
        src = t / "corpus.jsonl"
        with src.open("w") as fh:
            for i, text in enumerate(texts(args.rss_docs, args.rss_chars, seed=1)):
                fh.write(json.dumps({"text": text, "i": i}) + "\n")
        t0 = time.perf_counter()
        m = score_corpus(
            [src],
            t / "vs",
            t / "out",
            ScoreConfig(
                shard_size=64, progress=False, batch_tokens=args.batch_tokens, z_thresholds=True
            ),
            lm=lm,
        )
        dt = time.perf_counter() - t0
    peak_kib = peak_rss_kib()
    print(
        json.dumps(
            {
                "docs": args.rss_docs,
                "tokens": m.tokens,
                "seconds": round(dt, 2),
                "peak_rss_mib": round(peak_kib / 1024, 1),
            }
        )
    )


def bench_rss(args: argparse.Namespace) -> dict[str, Any]:
    res = []
    for n in (args.rss_base, args.rss_base * 10):
        cmd = [
            sys.executable,
            __file__,
            "--rss-child",
            "--rss-docs",
            str(n),
            "--rss-preset",
            args.rss_preset,
            "--rss-chars",
            str(args.rss_chars),
            "--device",
            args.device,
            "--batch-tokens",
            str(args.batch_tokens),
        ]
        env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
        res.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    growth = res[1]["peak_rss_mib"] / res[0]["peak_rss_mib"] - 1
    return {
        "preset": args.rss_preset,
        "runs": res,
        "rss_growth": round(growth, 4),
        "goal_within_10pct": growth <= 0.10,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--preset", default="qwen0.5b", choices=sorted(PRESETS))
    ap.add_argument("--docs", type=int, default=8)
    ap.add_argument("--doc-chars", type=int, default=400)
    ap.add_argument("--window", type=int, default=None)
    ap.add_argument("--batch-tokens", type=int, default=4096)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rss-preset", default="tiny", choices=sorted(PRESETS))
    ap.add_argument("--rss-base", type=int, default=60)
    ap.add_argument("--rss-chars", type=int, default=800)
    ap.add_argument("--rss-docs", type=int, default=0)
    ap.add_argument("--rss-child", action="store_true")
    ap.add_argument("--skip-rss", action="store_true")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "corpus_throughput.json"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.rss_child:
        rss_child(args)
        return
    result: dict[str, Any] = {
        "bench": "corpus_throughput",
        "python": platform.python_version(),
        "torch": torch.__version__,
        "threads": args.threads,
    }
    result["speed"] = bench_speed(args)
    if not args.skip_rss:
        result["rss"] = bench_rss(args)
    text = json.dumps(result, indent=2)
    print(text)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
