"""Emotion-vector extraction beside repeng and steering-vectors, on the same model and records.

Each library runs in its own subprocess (peer libraries pin transformers 4.x, so they run from
a separate interpreter: ``--bench-python``, default ``/work/benchenv/bin/python``), on the
same model weights and the same labelled stories, extracting one vector per emotion at the
same decoder-block output. Reported per library: wall time of extraction (model already
loaded), forward tokens per second, texts per second, and peak RSS growth during extraction.

Equivalence: steering-vectors' mean aggregator takes ``mean(pos - neg)`` over pairs. For each
emotion we pair every story of the emotion with every story of the other emotions exactly once
in a balanced round robin, so its vector is ``mean_e - mean_not_e``, which is parallel to our
``mean_e - mean over emotions``; both read the last token here (``--pooling last`` on our side,
``read_token_index=-1`` on theirs). The cosine between the two must be >= 0.999.

repeng (PCA of differences over all layers, per emotion) is timed on the same pairs; its
cosine with our vectors is informative only (a different estimator).

Prints JSON and writes ``bench/results/vectors_extraction.json`` (``..._cuda.json`` with
``--device cuda``). Usage: python bench/vectors_extraction.py [--n-per 40] [--device cuda]
[--bench-python PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "vectors_extraction.json"
EMBEDDED = ROOT / "emocurate" / "data" / "models" / "stories260K"


def _rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


DEVICE = os.environ.get("BENCH_DEVICE", "cpu")


def _sync() -> None:
    import torch

    if DEVICE.startswith("cuda"):
        torch.cuda.synchronize()


def _reset_gpu() -> None:
    import torch

    if DEVICE.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        globals()["_GPU_BASE"] = torch.cuda.memory_allocated()


def _gpu_peak() -> dict[str, float]:
    import torch

    if not DEVICE.startswith("cuda"):
        return {}
    return {
        "peak_gpu_mb_above_model": (
            torch.cuda.max_memory_allocated() - globals().get("_GPU_BASE", 0)
        )
        / 2**20
    }


def _timing(seconds: float, n_tokens: int, n_texts: int, rss0: float, max0: float) -> dict:
    """One timed extraction: wall time, work done and memory growth since ``rss0``/``max0``."""
    return {
        "seconds": seconds,
        "forward_tokens": n_tokens,
        "texts": n_texts,
        "peak_rss_growth_mb": max(0.0, _maxrss_mb() - max(rss0, max0)),
        **_gpu_peak(),
    }


# ------------------------------------------------------------------------------ data + models


def make_texts(n_per: int, seed: int = 0) -> dict[str, list[str]]:
    """Templated stories (same generator as the tests) grouped by emotion."""
    sys.path.insert(0, str(ROOT / "tests" / "vectors"))
    from synth import make_stories

    out: dict[str, list[str]] = {}
    for s in make_stories(n_per, seed=seed, sentences=6):
        out.setdefault(s.emotion, []).append(s.text)
    return out


def balanced_pairs(by_emotion: dict[str, list[str]], emotion: str) -> list[tuple[str, str]]:
    """Every story of ``emotion`` against every other-emotion story once (round robin)."""
    pos = by_emotion[emotion]
    neg = [t for e, ts in by_emotion.items() if e != emotion for t in ts]
    return [(pos[k % len(pos)], neg[k]) for k in range(len(neg))]


def prepare_models(work: Path, sizes: list[str]) -> dict[str, Path]:
    """Model folders readable by transformers 4 and 5 (tokenizer class patched for 4.x)."""
    models: dict[str, Path] = {}
    for size in sizes:
        dst = work / size
        dst.mkdir(parents=True, exist_ok=True)
        for name in (
            "tokenizer.json",
            "tokenizer_config.json",
            "config.json",
            "generation_config.json",
        ):
            shutil.copy(EMBEDDED / name, dst / name)
        if size == "stories260K":
            shutil.copy(EMBEDDED / "model.safetensors", dst / "model.safetensors")
        else:  # a random-init Llama of realistic width for throughput (same tokenizer)
            import torch
            from transformers import LlamaConfig, LlamaForCausalLM

            torch.manual_seed(0)
            hidden, layers = {"llama-h512": (512, 4), "llama-h1024": (1024, 8)}[size]
            cfg = LlamaConfig(
                vocab_size=512,
                hidden_size=hidden,
                intermediate_size=hidden * 8 // 3,
                num_hidden_layers=layers,
                num_attention_heads=hidden // 64,
                num_key_value_heads=hidden // 128,
                max_position_embeddings=512,
                bos_token_id=1,
                eos_token_id=2,
            )
            LlamaForCausalLM(cfg).save_pretrained(dst)
        tc = json.loads((dst / "tokenizer_config.json").read_text())
        tc["tokenizer_class"] = "PreTrainedTokenizerFast"
        tc.pop("backend", None)
        (dst / "tokenizer_config.json").write_text(json.dumps(tc))
        models[size] = dst
    return models


# ------------------------------------------------------------------------------ workers


def worker_ours(model: str, data: Path, out: Path, layer: int) -> dict:
    import torch

    from emocurate.configs import FitConfig
    from emocurate.io import write_records
    from emocurate.records import Story
    from emocurate.vectors.fit import fit_vectors
    from emocurate.vectors.models import load_model

    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "1")))
    by = json.loads(data.read_text())
    recs = [
        Story(id=f"{e}{i}", text=t, emotion=e, topic="x")
        for e, ts in by.items()
        for i, t in enumerate(ts)
    ]
    write_records(out / "records", recs)
    lm = load_model(model, device=DEVICE, dtype="float32")
    n_tokens = sum(len(x) for x in lm.tokenizer([r.text for r in recs])["input_ids"])
    result = {}
    fit_vectors(
        out / "records", FitConfig(model=model, layers=str(layer), holdout=0.0), out / "warm", lm=lm
    )
    for pooling in ("last", "mean"):
        cfg = FitConfig(
            model=model, layers=str(layer), holdout=0.0, pooling=pooling, skip=0, batch_tokens=8192
        )
        rss0, max0 = _rss_mb(), _maxrss_mb()
        _reset_gpu()
        t0 = time.perf_counter()
        vs = fit_vectors(out / "records", cfg, out / f"vs_{pooling}", lm=lm)
        _sync()
        dt = time.perf_counter() - t0
        result[pooling] = _timing(dt, n_tokens, len(recs), rss0, max0)
        if pooling == "last":
            torch.save(
                {n: vs.vectors[layer][i].clone() for i, n in enumerate(vs.names)}, out / "ours.pt"
            )
    return result


def worker_steering_vectors(model: str, data: Path, out: Path, layer: int) -> dict:
    import torch
    from steering_vectors import train_steering_vector
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "1")))
    by = json.loads(data.read_text())
    tok = AutoTokenizer.from_pretrained(model)
    mdl = AutoModelForCausalLM.from_pretrained(model, torch_dtype=torch.float32).to(DEVICE).eval()
    warm = balanced_pairs(by, next(iter(by)))[:2]  # warm-up, not timed
    train_steering_vector(mdl, tok, warm, layers=[layer], read_token_index=-1, show_progress=False)
    rss0, max0 = _rss_mb(), _maxrss_mb()
    _reset_gpu()
    vecs = {}
    n_tokens = 0
    n_texts = 0
    t0 = time.perf_counter()
    for emotion in by:
        pairs = balanced_pairs(by, emotion)
        sv = train_steering_vector(
            mdl,
            tok,
            pairs,
            layers=[layer],
            layer_type="decoder_block",
            read_token_index=-1,
            batch_size=1,
            show_progress=False,
        )
        vecs[emotion] = sv.layer_activations[layer].float().cpu()
        n_texts += 2 * len(pairs)
        n_tokens += sum(len(tok(p)["input_ids"]) + len(tok(n)["input_ids"]) for p, n in pairs)
    _sync()
    dt = time.perf_counter() - t0
    torch.save(vecs, out / "steering_vectors.pt")
    return {"last": _timing(dt, n_tokens, n_texts, rss0, max0)}


def worker_repeng(model: str, data: Path, out: Path, layer: int) -> dict:
    import numpy as np

    np.float_ = np.float64  # type: ignore[attr-defined]  # repeng 0.4 predates NumPy 2
    import torch
    from repeng import ControlModel, ControlVector, DatasetEntry
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "1")))
    by = json.loads(data.read_text())
    tok = AutoTokenizer.from_pretrained(model)
    tok.pad_token_id = 0
    mdl = AutoModelForCausalLM.from_pretrained(model, torch_dtype=torch.float32).to(DEVICE).eval()
    n_layers = mdl.config.num_hidden_layers
    cm = ControlModel(mdl, list(range(1, n_layers)))
    warm = [DatasetEntry(positive=p, negative=n) for p, n in balanced_pairs(by, next(iter(by)))[:4]]
    ControlVector.train(cm, tok, warm, batch_size=32, method="pca_diff")  # warm-up, not timed
    rss0, max0 = _rss_mb(), _maxrss_mb()
    _reset_gpu()
    vecs = {}
    n_tokens = 0
    n_texts = 0
    t0 = time.perf_counter()
    for emotion in by:
        pairs = balanced_pairs(by, emotion)
        ds = [DatasetEntry(positive=p, negative=n) for p, n in pairs]
        cv = ControlVector.train(cm, tok, ds, batch_size=32, method="pca_diff")
        vecs[emotion] = torch.tensor(cv.directions[layer])
        n_texts += 2 * len(pairs)
        n_tokens += sum(len(tok(p)["input_ids"]) + len(tok(n)["input_ids"]) for p, n in pairs)
    _sync()
    dt = time.perf_counter() - t0
    torch.save(vecs, out / "repeng.pt")
    return {"last": _timing(dt, n_tokens, n_texts, rss0, max0)}


WORKERS = {
    "ours": worker_ours,
    "steering_vectors": worker_steering_vectors,
    "repeng": worker_repeng,
}


# ------------------------------------------------------------------------------ driver


def run_worker(python: str, name: str, model: Path, data: Path, out: Path, layer: int) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    cmd = [
        python,
        __file__,
        "--worker",
        name,
        "--model",
        str(model),
        "--data",
        str(data),
        "--out",
        str(out),
        "--layer",
        str(layer),
    ]
    proc = subprocess.run(
        cmd, capture_output=True, text=True, env={**os.environ, "TOKENIZERS_PARALLELISM": "false"}
    )
    if proc.returncode != 0:
        return {"error": (proc.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def cosines(a: dict, b: dict) -> dict[str, float]:
    import torch

    return {
        e: float(torch.nn.functional.cosine_similarity(a[e].float(), b[e].float(), dim=0))
        for e in a
        if e in b
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--worker", choices=sorted(WORKERS))
    ap.add_argument("--model")
    ap.add_argument("--data")
    ap.add_argument("--out")
    ap.add_argument("--layer", type=int, default=3)
    ap.add_argument("--n-per", type=int, default=40, help="stories per emotion (4 emotions)")
    ap.add_argument(
        "--models",
        default="stories260K,llama-h512",
        help="comma list: stories260K, llama-h512, llama-h1024 (random init, same tokenizer)",
    )
    ap.add_argument(
        "--bench-python",
        default="/work/benchenv/bin/python",
        help="interpreter with repeng, steering-vectors and transformers 4.x",
    )
    ap.add_argument("--skip-peers", action="store_true", help="only time our extraction")
    ap.add_argument("--device", default=None, help="cpu or cuda (default: $BENCH_DEVICE or cpu)")
    args = ap.parse_args()
    if args.device:
        os.environ["BENCH_DEVICE"] = args.device
        globals()["DEVICE"] = args.device
    if args.worker:
        res = WORKERS[args.worker](args.model, Path(args.data), Path(args.out), args.layer)
        print(json.dumps(res))
        return
    import torch

    work = Path(tempfile.mkdtemp(prefix="vecbench-"))
    data = work / "texts.json"
    data.write_text(json.dumps(make_texts(args.n_per)))
    models = prepare_models(work, args.models.split(","))
    report: dict = {
        "n_per_emotion": args.n_per,
        "emotions": 4,
        "threads": int(os.environ.get("BENCH_THREADS", "1")),
        "torch": torch.__version__,
        "device": DEVICE,
        "models": {},
        "note": (
            "peers need one training call per emotion on balanced (pos, neg) pairs: 2(E-1) forwards "
            "per story; ours needs one forward per story for all emotions. steering-vectors runs "
            "at its default batch_size=1, repeng at batch_size=32 over all layers."
        ),
    }
    if DEVICE.startswith("cuda"):
        report["gpu"] = torch.cuda.get_device_name(0)
    peers_ok = Path(args.bench_python).exists() and not args.skip_peers
    for size, folder in models.items():
        layer = min(
            args.layer, json.loads((folder / "config.json").read_text())["num_hidden_layers"] - 1
        )
        entry: dict = {"layer": layer}
        entry["ours"] = run_worker(
            sys.executable, "ours", folder, data, work / size / "ours", layer
        )
        if peers_ok:
            entry["steering_vectors"] = run_worker(
                args.bench_python, "steering_vectors", folder, data, work / size / "sv", layer
            )
            entry["repeng"] = run_worker(
                args.bench_python, "repeng", folder, data, work / size / "rp", layer
            )
        ours_v = (
            torch.load(work / size / "ours" / "ours.pt", weights_only=True)
            if (work / size / "ours" / "ours.pt").exists()
            else None
        )
        for peer, fname in (
            ("steering_vectors", "sv/steering_vectors.pt"),
            ("repeng", "rp/repeng.pt"),
        ):
            path = work / size / fname
            if ours_v is not None and path.exists():
                cos = cosines(ours_v, torch.load(path, weights_only=True))
                entry[peer]["cosine_with_ours"] = cos
                entry[peer]["cosine_min"] = (
                    min(cos.values())
                    if peer == "steering_vectors"
                    else min(abs(c) for c in cos.values())
                )
            if peer in entry and "last" in entry[peer] and "last" in entry["ours"]:
                o, p = entry["ours"]["last"], entry[peer]["last"]
                entry[peer]["speedup_ours_wall"] = p["seconds"] / o["seconds"]
                entry[peer]["speedup_ours_tokens_per_s"] = (o["forward_tokens"] / o["seconds"]) / (
                    p["forward_tokens"] / p["seconds"]
                )
        report["models"][size] = entry
    if "stories260K" in report["models"] and "steering_vectors" in report["models"]["stories260K"]:
        report["cosine_vs_steering_vectors_ok"] = all(
            m.get("steering_vectors", {}).get("cosine_min", 0) >= 0.999
            for m in report["models"].values()
        )
    text = json.dumps(report, indent=2)
    print(text)
    results = (
        RESULTS
        if DEVICE == "cpu"
        else RESULTS.with_name(f"vectors_extraction_{DEVICE.split(':')[0]}.json")
    )
    results.parent.mkdir(parents=True, exist_ok=True)
    results.write_text(text + "\n")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
