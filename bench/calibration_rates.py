"""Do calibrated flags keep their promise? Flag rates on the reference and on other neutral text.

Calibrates a vector set (a copy; the original folder is not touched) on neutral reference
documents and scores (a) the reference documents, (b) held-out documents of the same kind and
(c) WikiText-2 validation paragraphs, a different neutral corpus. Reports the share of documents
flagged per kind and by any kind, against the target rate.

Reference: XED's English neutral subtitle lines (``/work/shared/eval/xed/neu_en.txt``) in
blocks of ``--block`` lines (short lines would make documents far shorter than the calibration
chunk). Run::

    emocurate demo --tiny --out /tmp/demo                  # vectors to calibrate
    python bench/calibration_rates.py --vectors /tmp/demo/vectors
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from emocurate.configs import ScoreConfig  # noqa: E402
from emocurate.corpus.calibrate import calibrate  # noqa: E402
from emocurate.corpus.engines import score_corpus  # noqa: E402
from emocurate.io import read_table  # noqa: E402

EVAL = Path("/work/shared/eval")


def xed_blocks(path: Path, block: int, seed: int) -> list[str]:
    lines = [x.strip() for x in path.read_text("utf-8").splitlines() if x.strip()]
    blocks = [" ".join(lines[i : i + block]) for i in range(0, len(lines) - block + 1, block)]
    random.Random(seed).shuffle(blocks)
    return blocks


def wikitext_paragraphs(path: Path, min_words: int) -> list[str]:
    out = []
    for line in path.read_text("utf-8").splitlines():
        s = line.strip()
        if not s or s.startswith("="):
            continue
        if len(s.split()) >= min_words:
            out.append(s)
    return out


def rates(scores_dir: Path) -> dict[str, Any]:
    rows = read_table(scores_dir).to_pylist()
    n = len(rows)
    per: dict[str, int] = {}
    for r in rows:
        for k in set(r["flag_kinds"] or []):
            per[k] = per.get(k, 0) + 1
    return {
        "n_docs": n,
        "mean_tokens": round(sum(r["n_tokens"] for r in rows) / max(1, n), 1),
        "any": round(sum(bool(r["flag_kinds"]) for r in rows) / max(1, n), 4),
        "per_kind": {k: round(v / max(1, n), 4) for k, v in sorted(per.items())},
        # the run's own verdict on whether the corpus is like the reference (manifest)
        "reference_shift": json.loads((scores_dir / "manifest.json").read_text()).get(
            "reference_shift"
        ),
    }


def write_jsonl(path: Path, texts: list[str]) -> Path:
    with path.open("w") as fh:
        for t in texts:
            fh.write(json.dumps({"text": t}) + "\n")
    return path


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vectors", required=True, help="vector-set folder (copied, not changed)")
    ap.add_argument("--rate", type=float, default=0.01)
    ap.add_argument("--block", type=int, default=16, help="XED lines per reference document")
    ap.add_argument("--n-ref", type=int, default=500, help="reference documents")
    ap.add_argument("--n-heldout", type=int, default=500, help="held-out XED documents")
    ap.add_argument("--n-wiki", type=int, default=1000, help="WikiText-2 paragraphs")
    ap.add_argument("--min-words", type=int, default=20, help="shortest WikiText paragraph")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--reference",
        choices=["xed", "vectors"],
        default="xed",
        help="xed: XED neutral subtitle blocks; vectors: the set's own neutral texts "
        "(VECTORS/neutral, what `emocurate calibrate VECTORS` and the demo use), half to "
        "calibrate on and half held out",
    )
    ap.add_argument("--no-save", action="store_true")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    if args.reference == "vectors":
        own = [
            json.loads(line)["text"]
            for line in (Path(args.vectors) / "neutral" / "neutral.jsonl").read_text().splitlines()
            if line.strip()
        ]
        # the acceptance reads the rate on the calibration reference itself (all of it); the
        # held-out figure calibrates a copy on one half and scores the other half
        random.Random(args.seed).shuffle(own)
        ref, held = own, own[len(own) // 2 :]
    else:
        blocks = xed_blocks(EVAL / "xed" / "neu_en.txt", args.block, args.seed)
        ref, held = blocks[: args.n_ref], blocks[args.n_ref : args.n_ref + args.n_heldout]
    wiki = wikitext_paragraphs(EVAL / "corpus" / "wikitext2_valid.txt", args.min_words)
    wiki = wiki[: args.n_wiki]
    cfg = ScoreConfig(fpr=args.rate, progress=False)
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        vdir = t / "vectors"
        shutil.copytree(args.vectors, vdir)
        (vdir / "calibration.json").unlink(missing_ok=True)
        cal = calibrate(vdir, [write_jsonl(t / "ref.jsonl", ref)], cfg, rate=args.rate)
        out: dict[str, Any] = {}
        for name, texts in (("reference", ref), ("wikitext2", wiki)):
            score_corpus([write_jsonl(t / f"{name}.jsonl", texts)], vdir, t / name, cfg)
            out[name] = rates(t / name)
        hdir = vdir
        if args.reference == "vectors":
            hdir = t / "vectors_half"
            shutil.copytree(vdir, hdir)
            (hdir / "calibration.json").unlink()
            calibrate(hdir, [write_jsonl(t / "half.jsonl", ref[: len(ref) // 2])], cfg)
        score_corpus([write_jsonl(t / "heldout.jsonl", held)], hdir, t / "heldout", cfg)
        out["heldout"] = rates(t / "heldout")
    result = {
        "bench": "calibration_rates",
        "command": " ".join(["python", "bench/calibration_rates.py", *sys.argv[1:]]),
        "vectors": str(args.vectors),
        "rate": args.rate,
        "reference_source": args.reference,
        "calibration": {
            "n_docs": cal.n_docs,
            "n_tokens": cal.n_tokens,
            "ladder_lengths": [q.n for q in cal.ladders["distress"].by_length],
            "thresholds_at_mean_length": {
                k: round(v, 4) for k, v in cal.thresholds(args.rate).items()
            },
            "check": cal.check.model_dump(),
        },
        **out,
        "acceptance": {
            "reference_distress_within_50pct": abs(
                out["reference"]["per_kind"].get("distress_episode", 0) - args.rate
            )
            <= 0.5 * args.rate,
            "wikitext_any_at_most_3x": out["wikitext2"]["any"] <= 3 * args.rate,
        },
        "seconds": round(time.perf_counter() - t0, 1),
    }
    print(json.dumps(result, indent=2))
    if not args.no_save:
        name = "calibration_rates" + ("" if args.reference == "xed" else f"_{args.reference}")
        (ROOT / "bench" / "results" / f"{name}.json").write_text(
            json.dumps(result, indent=2) + "\n"
        )
    return result


if __name__ == "__main__":
    main()
