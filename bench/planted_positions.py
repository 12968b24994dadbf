"""Neutral documents of every length on the planted model: the promised rate at every position.

Takes the vectors of a kept planted run (``python bench/planted_truth.py --seed 1 --keep DIR``,
then ``--vectors DIR/vectors``), writes 80 neutral documents each of 8, 30 and 70 template
sentences from family A (the calibration reference's own source) and family B (another source;
70 sentences are longer than the 512-token context), scores them with ``emocurate score`` at its
defaults (rate 0.01) and prints, per group, the documents flagged ``distress_episode`` and the
median ``distress_pct`` (50 for reference-like text). Issue 18: before the position profile,
family-A documents of ~800 tokens were flagged 11 of 80 on seed 1 (median percentile 96).

    python bench/planted_positions.py --vectors /tmp/planted1/vectors
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
from pathlib import Path
from typing import Any

import planted_truth as pt
import polars as pl


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vectors", required=True, help="VECTORS folder of a kept planted run")
    ap.add_argument("--per-group", type=int, default=80)
    ap.add_argument("--no-save", action="store_true")
    args = ap.parse_args(argv)
    rng = random.Random(11)
    groups: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "corpus.jsonl"
        with src.open("w") as fh:
            for fam in "AB":
                for size in (8, 30, 70):
                    for _ in range(args.per_group):
                        groups.append(f"{fam}{size}")
                        fh.write(json.dumps({"text": pt.filler(rng, size, fam)}) + "\n")
        pt.cli("score", str(src), "--vectors", args.vectors, "--out", f"{tmp}/scores")
        df = pl.read_parquet(f"{tmp}/scores/data/*.parquet")
    pos = [int(p.split()[-1]) for p in df["position"].to_list()]
    df = df.with_columns(pl.Series("group", [groups[p - min(pos)] for p in pos]))
    out: dict[str, Any] = {"bench": "planted_positions", "vectors": args.vectors, "groups": {}}
    for g in sorted(set(groups)):
        part = df.filter(pl.col("group") == g)
        out["groups"][g] = {
            "docs": len(part),
            "mean_tokens": round(float(part["n_tokens"].mean()), 1),  # type: ignore[arg-type]
            "flagged": int(part["flag_kinds"].list.contains("distress_episode").sum()),
            "median_pct": round(float(part["distress_pct"].median()), 2),  # type: ignore[arg-type]
        }
    print(json.dumps(out, indent=1))
    if not args.no_save:
        dest = Path(__file__).resolve().parent / "results" / "planted_positions.json"
        dest.write_text(json.dumps(out, indent=1) + "\n")
    return out


if __name__ == "__main__":
    main()
