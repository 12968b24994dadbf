"""Is the promised flag rate true at every document length? The demo's neutral reference at
half, 1x, 2x, 4x and 8x its document length, through the CLI at its defaults.

Calibrates a copy of a vector folder on its own neutral reference (``emocurate calibrate``, no
options), then scores (``emocurate score``) the reference documents cut in half, as they are,
and joined 2, 4 and 8 at a time, at several promised rates, and reports per flag kind the
share of documents flagged, its ratio to the promise and a 95% interval (Wilson). The corpus
is the reference itself, so this isolates the length question (the rate on other neutral text
is ``bench/calibration_rates.py``). Run::

    emocurate demo --tiny --out /tmp/demo
    python bench/calibration_lengths.py --vectors /tmp/demo/vectors
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
FAMILY = {  # flag kinds whose rate is promised (one calibrated statistic each)
    "distress_episode": "distress",
    "unhealthy_regulation": "regulation",
    "mirroring": "mirroring",
}
# Kinds promised *at most* the rate: high_volatility needs both sides of valence past a level
# each reaches on RATE of neutral documents; the others need a distress episode.
AT_MOST = ("high_volatility", "unrecovered_distress", "unresolved_end", "escalation",
           "escalating_response")  # fmt: skip
DERIVED = AT_MOST


def cli(*args: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run(
        [sys.executable, "-m", "emocurate.cli", *args], check=True, env=env, capture_output=True
    )


def wilson(k: int, n: int) -> tuple[float, float]:
    if n == 0:
        return (0.0, 1.0)
    z, p = 1.96, k / n
    den = 1 + z * z / n
    mid = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return (max(0.0, mid - half), min(1.0, mid + half))


def halves(text: str) -> list[str]:
    words = text.split(" ")
    k = len(words) // 2
    return [" ".join(words[:k]), " ".join(words[k:])]


def corpora(texts: list[str]) -> dict[str, list[str]]:
    out = {"x1/2": [h for t in texts for h in halves(t) if h.strip()], "x1": list(texts)}
    for k in (2, 4, 8):
        out[f"x{k}"] = ["\n".join(texts[i : i + k]) for i in range(0, len(texts) - k + 1, k)]
    return out


def read_rows(scores: Path) -> list[dict[str, Any]]:
    import pyarrow.parquet as pq

    rows: list[dict[str, Any]] = []
    for f in sorted((scores / "data").glob("*.parquet")):
        rows += pq.read_table(f, columns=["n_tokens", "flag_kinds"]).to_pylist()
    return rows


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--vectors", required=True, help="a vector folder with neutral/ (the demo's)")
    ap.add_argument("--rates", default="0.01,0.05,0.1")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "calibration_lengths.json"))
    ap.add_argument("--no-save", action="store_true")
    a = ap.parse_args(argv)
    rates = [float(r) for r in a.rates.split(",")]
    t0 = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        vec = work / "vectors"
        shutil.copytree(a.vectors, vec)
        (vec / "calibration.json").unlink(missing_ok=True)
        cli("calibrate", str(vec))
        cal = json.loads((vec / "calibration.json").read_text())
        texts = [
            json.loads(line)["text"]
            for f in sorted((vec / "neutral").glob("*.jsonl"))
            for line in f.read_text().splitlines()
            if line.strip()
        ]
        table: dict[str, Any] = {}
        for name, docs in corpora(texts).items():
            src = work / f"{name.replace('/', '_')}.jsonl"
            src.write_text("".join(json.dumps({"text": t}) + "\n" for t in docs))
            entry: dict[str, Any] = {"docs": len(docs)}
            for rate in rates:
                out = work / f"s_{name.replace('/', '_')}_{rate}"
                cli("score", str(src), "--vectors", str(vec), "--out", str(out),
                    "--threshold", str(rate))  # fmt: skip
                rows = read_rows(out)
                n = len(rows)
                entry["mean_tokens"] = round(sum(r["n_tokens"] for r in rows) / max(1, n), 1)
                per: dict[str, Any] = {}
                for kind in (*FAMILY, *DERIVED):
                    k = sum(kind in (r["flag_kinds"] or []) for r in rows)
                    lo, hi = wilson(k, n)
                    per[kind] = {
                        "flagged": k,
                        "rate": round(k / max(1, n), 4),
                        "ratio": round(k / max(1, n) / rate, 2),
                        "ci95": [round(lo, 4), round(hi, 4)],
                    }
                entry[str(rate)] = per
            table[name] = entry
    families = [k for k in FAMILY if any(k2 in cal.get("ladders", {}) for k2 in [FAMILY[k]])]
    checks = {}
    for rate in rates:
        for name, entry in table.items():
            for kind in families:
                r = entry[str(rate)][kind]
                # within [0.5x, 1.5x], or the 95% interval overlaps it (too few documents)
                ok_point = 0.5 <= r["ratio"] <= 1.5
                ok_ci = r["ci95"][0] <= 1.5 * rate and r["ci95"][1] >= 0.5 * rate
                checks[f"{rate} {name} {kind}"] = (
                    "ok" if ok_point else ("ok (CI)" if ok_ci else "FAIL")
                )
            for kind in AT_MOST:
                r = entry[str(rate)][kind]
                ok_point, ok_ci = r["ratio"] <= 1.5, r["ci95"][0] <= 1.5 * rate
                checks[f"{rate} {name} {kind} (at most)"] = (
                    "ok" if ok_point else ("ok (CI)" if ok_ci else "FAIL")
                )
    res = {
        "vectors": a.vectors,
        "reference_docs": cal["n_docs"],
        "reference_tokens": cal["n_tokens"],
        "ladder_lengths": [q["n"] for q in cal["ladders"]["distress"]["by_length"]],
        "promised_families": families,
        "at_most": list(AT_MOST),
        "table": table,
        "checks": checks,
        "all_ok": all(v != "FAIL" for v in checks.values()),
        "seconds": round(time.time() - t0, 1),
    }
    if not a.no_save:
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(json.dumps(res, indent=1) + "\n")
    print(json.dumps(res, indent=1))
    return res


if __name__ == "__main__":
    main()
