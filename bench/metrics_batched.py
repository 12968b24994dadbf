"""Regulation metrics: per-document NumPy ``analyse`` vs ``dense_batch`` + the sequential part.

Side by side in one run, on the same synthetic z-scores (AR(1) token series, so smoothed
distress crosses the thresholds and episodes exist): for each number of emotions E and
document length T, N documents are scored

* ``host``: :func:`emocurate.corpus.regulation.analyse` per document (what the scorer's host
  path runs: NumPy on one thread, whole smoothed matrix kept);
* ``batched``: :func:`emocurate.corpus.batched.dense_batch` over all N (padded float64 tensors
  on ``--device``, with the trace's top columns as the scorer asks) then
  :func:`~emocurate.corpus.regulation.analyse_dense` per document; its dense and sequential
  parts are also timed apart.

Median of ``--repeats`` runs each; tokens/s and the ratio host/batched (> 1: batched faster).
The z-scores start on the device (as the scorer's stitched projections do); the host path's
copy of them to the host is NOT counted, which favours the host path on a GPU. Also reports
the largest difference between the two paths' metrics (they must agree). Run::

    PYTHONPATH=$PWD python bench/metrics_batched.py                # CPU
    PYTHONPATH=$PWD python bench/metrics_batched.py --device cuda  # a GPU, when there is one

Writes ``bench/results/metrics_batched.json`` (``metrics_batched_cuda.json`` on a GPU).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from emocurate.configs import MetricConfig  # noqa: E402
from emocurate.corpus.batched import DeviceAxes, dense_batch  # noqa: E402
from emocurate.corpus.regulation import Axes, analyse, analyse_dense, taxonomy_va  # noqa: E402


def emotion_names(n: int) -> list[str]:
    """The first ``n`` taxonomy emotions (distress and calm members first), padded if fewer."""
    from emocurate.corpus.regulation import CALM_NAMES, DISTRESS_NAMES

    tax = list(taxonomy_va())
    first = [x for x in (*DISTRESS_NAMES[:4], *CALM_NAMES[:3]) if x in tax]
    rest = [x for x in tax if x not in first]
    names = (first + rest)[:n]
    return names + [f"e{i}" for i in range(n - len(names))]


def synthetic_z(n_docs: int, n_tok: int, n_emo: int, seed: int) -> list[np.ndarray]:
    """AR(1) z-scores per emotion (phi 0.97, unit stationary variance), float32 as the scorer's."""
    rng = np.random.default_rng(seed)
    phi = 0.97
    out = []
    for _ in range(n_docs):
        eps = rng.normal(0.0, np.sqrt(1 - phi**2), size=(n_tok, n_emo))
        z = np.empty_like(eps)
        z[0] = rng.normal(size=n_emo)
        for t in range(1, n_tok):
            z[t] = phi * z[t - 1] + eps[t]
        out.append(z.astype(np.float32))
    return out


def timed(fn: Callable[[], Any], sync: Callable[[], None], repeats: int) -> tuple[float, Any]:
    """Median seconds of ``repeats`` runs (after one warm-up) and the last result."""
    res = fn()
    sync()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        res = fn()
        sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), res


def run_case(
    n_emo: int, n_tok: int, n_docs: int, device: torch.device, repeats: int, seed: int
) -> dict[str, Any]:
    names = emotion_names(n_emo)
    axes = Axes.for_names(names)
    cfg = MetricConfig(threshold=0.8, recover_level=0.3)
    zs = synthetic_z(n_docs, n_tok, n_emo, seed)
    zt = [torch.from_numpy(z).to(device) for z in zs]
    dax = DeviceAxes.of(axes, device)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    def host() -> list[Any]:
        return [analyse(z, axes, cfg) for z in zs]

    def dense() -> list[Any]:
        return dense_batch(zt, axes, cfg.smooth, top_k=8, top_tokens=4096, device_axes=dax)

    def batched() -> list[Any]:
        return [analyse_dense(d, axes, cfg) for d in dense()]

    t_host, an_host = timed(host, sync, repeats)
    t_batched, an_batched = timed(batched, sync, repeats)
    t_dense, dense_out = timed(dense, sync, repeats)
    t_seq, _ = timed(lambda: [analyse_dense(d, axes, cfg) for d in dense_out], sync, repeats)
    diff = 0.0
    flags_equal = True
    for a, b in zip(an_host, an_batched, strict=True):
        for k, v in a.metrics.items():
            w = b.metrics[k]
            if v is not None and w is not None:
                diff = max(diff, abs(v - w))
        flags_equal &= [(f.kind, f.start, f.end) for f in a.flags] == [
            (f.kind, f.start, f.end) for f in b.flags
        ]
    tokens = n_docs * n_tok
    return {
        "emotions": n_emo,
        "tokens_per_doc": n_tok,
        "docs": n_docs,
        "host_s": round(t_host, 4),
        "batched_s": round(t_batched, 4),
        "batched_dense_s": round(t_dense, 4),
        "batched_sequential_s": round(t_seq, 4),
        "host_tokens_per_s": round(tokens / t_host),
        "batched_tokens_per_s": round(tokens / t_batched),
        "speedup": round(t_host / t_batched, 2),
        "flags_per_doc": round(sum(len(a.flags) for a in an_host) / n_docs, 2),
        "max_metric_diff": diff,
        "flags_equal": flags_equal,
    }


def main() -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--docs", type=int, default=64, help="documents per case")
    ap.add_argument("--emotions", default="32,171", help="comma-separated E values")
    ap.add_argument("--lengths", default="400,2000", help="comma-separated tokens per document")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-save", action="store_true")
    args = ap.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device here")
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    cases = [
        run_case(e, t, args.docs, device, args.repeats, args.seed)
        for e in (int(x) for x in args.emotions.split(","))
        for t in (int(x) for x in args.lengths.split(","))
    ]
    result = {
        "device": str(device),
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "torch_threads": args.threads,
        "repeats": args.repeats,
        "note": "host = analyse per document (NumPy); batched = dense_batch + analyse_dense; "
        "speedup = host_s / batched_s; the host path's device-to-host copy is not counted",
        "cases": cases,
        "seconds": round(time.perf_counter() - t0, 1),
    }
    print(json.dumps(result, indent=2))
    if not args.no_save:
        name = "metrics_batched" + ("" if device.type == "cpu" else f"_{device.type}")
        (ROOT / "bench" / "results" / f"{name}.json").write_text(
            json.dumps(result, indent=2) + "\n"
        )
    return result


if __name__ == "__main__":
    main()
