"""Small synthetic stage folders in the documented formats (built with the record classes).

Written independently of the generate/validate/fit/score code so the card tests do not depend
on it; the shapes follow emocurate/io.py, records.py and vectors/vectorset.py.
"""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import pyarrow as pa
import torch

from emocurate.artifacts import (
    CurateManifest,
    GenerateManifest,
    ScoreManifest,
    Spend,
    TokenCounts,
    ValidateManifest,
    VectorsRef,
)
from emocurate.io import write_records, write_table
from emocurate.records import Dialogue, Flag, Provenance, Story, Turn, stable_id
from emocurate.vectors.vectorset import VectorSet, VectorSetMeta

EMOTIONS = ["happy", "sad", "afraid", "angry", "calm", "surprised"]
VALENCE = {"happy": 0.8, "sad": -0.7, "afraid": -0.6, "angry": -0.6, "calm": 0.4, "surprised": 0.2}
AROUSAL = {"happy": 0.5, "sad": -0.4, "afraid": 0.7, "angry": 0.8, "calm": -0.7, "surprised": 0.6}
TOPICS = ["t-garden", "t-school", "t-storm", "t-market"]


def _prov(i: int, backend: str = "fake", model: str = "fake-model-1") -> Provenance:
    return Provenance(
        backend=backend,
        model=model,
        prompt_id="story.v1",
        prompt_hash="sha256:abc123def456",
        params={"temperature": 0.9, "top_p": 0.95, "max_tokens": 300},
        seed=i,
        request_id=f"req-{i}",
        cache_hit=i % 5 == 0,
        input_tokens=120,
        output_tokens=80 + i,
        cost_usd=0.0005,
        created=f"2026-01-0{1 + i % 3}T00:00:00+00:00",
    )


def stories(n: int = 24, start: int = 0) -> list[Story]:
    out = []
    for i in range(start, start + n):
        emo = EMOTIONS[i % len(EMOTIONS)]
        topic = TOPICS[i % len(TOPICS)]
        out.append(
            Story(
                id=stable_id(str(i), prefix="s-"),
                text=f"Story {i}: Lily went to the {topic[2:]} and felt it. " * 3,
                emotion=emo,
                topic=topic[2:],
                topic_id=topic,
                provenance=_prov(i),
            )
        )
    return out


def make_generation(root: Path, n: int = 30) -> Path:
    recs = stories(n)
    write_records(root, recs, name="part-00000")
    GenerateManifest(
        kind="story",
        planned_requests=n,
        planned_records=n,
        completed_requests=n,
        records=n,
        backend="fake",
        model="fake-model-1",
        prompts={"story.v1": "sha256:abc123def456"},
        tokens=TokenCounts(input=120 * n, output=sum(r.provenance.output_tokens for r in recs)),
        usd=Spend(total_including_cached=0.0005 * n),
    ).save(root)
    return root


def make_validation(root: Path, gen: list[Story] | None = None) -> Path:
    """A validation folder in validators/pipeline.py's layout: kept/, rejected/ (with keep,
    rejected_by, reasons columns) and a manifest with the funnel, per-validator reason codes
    and per-emotion counts."""
    recs = gen or stories(30)
    kept = [r for i, r in enumerate(recs) if i % 5 != 4]
    rejected = [r for i, r in enumerate(recs) if i % 5 == 4]
    write_records(root / "kept", kept)
    rows = [
        r.model_dump(mode="json")
        | {
            "keep": False,
            "rejected_by": "leakage",
            "reasons": [f"leakage: names_emotion: the text says '{r.emotion}'"],
        }
        for r in rejected
    ]
    write_table(root / "rejected" / "data" / "story.parquet", pa.Table.from_pylist(rows))
    funnel = [
        {"step": "input", "in": len(recs), "rejected": 0, "out": len(recs)},
        {"step": "rules", "in": len(recs), "rejected": 2, "out": len(recs) - 2},
        {
            "step": "leakage",
            "in": len(recs) - 2,
            "rejected": len(recs) - 2 - len(kept),
            "out": len(kept),
        },
    ]
    per_emotion = {
        e: {
            "in": sum(r.emotion == e for r in recs),
            "kept": sum(r.emotion == e for r in kept),
            "rejected_by": {
                "input": 0,
                "rules": 0,
                "leakage": sum(r.emotion == e for r in rejected),
            },
        }
        for e in EMOTIONS
    }
    per_validator = {
        "rules": {"checked": len(recs), "rejected": 2, "reasons": {"too_short": 2}},
        "leakage": {"checked": len(recs) - 2, "rejected": 4, "reasons": {"names_emotion": 4}},
    }
    ValidateManifest.model_validate(
        {
            "total": len(recs),
            "kept": len(kept),
            "rejected": len(rejected),
            "funnel": funnel,
            "per_validator": per_validator,
            "per_emotion": per_emotion,
        }
    ).save(root)
    return root


def make_dialogues(root: Path, n: int = 6) -> Path:
    recs = [
        Dialogue(
            id=f"d{i}",
            turns=[
                Turn(speaker="human", text="I lost my keys!"),
                Turn(speaker="assistant", text="Let's look together."),
            ],
            human_emotion="afraid",
            assistant_emotion="calm",
            provenance=_prov(i, "openai", "m2"),
        )
        for i in range(n)
    ]
    write_records(root, recs)
    return root


def make_vectorset(
    root: Path, hidden: int = 16, evaluation: bool = True, split_report: bool = True
) -> Path:
    """A VectorSet folder; with ``split_report`` the full evaluation goes to ``evaluation.json``
    and ``meta.evaluation`` keeps only scalars (what vectors/fit.py writes)."""
    g = torch.Generator().manual_seed(0)
    base_v = torch.randn(2, hidden, generator=g)
    rows = [
        VALENCE[e] * base_v[0] + AROUSAL[e] * base_v[1] + 0.1 * torch.randn(hidden, generator=g)
        for e in EMOTIONS
    ]
    vec = torch.stack(rows)
    ev: dict = {}
    if evaluation:
        ev = {
            "layer": 3,
            "chosen_layer": 3,
            "layer_selection": "default layer 3, nearest two thirds of the 5-layer depth",
            "seeds": [0, 1, 2, 3, 4],
            "n_records": 150,
            "n_train": 120,
            "n_heldout": 30,
            "n_skipped_short": 2,
            "label_leak_share": 0.0,
            "n_leak_checked": 150,
            "accuracy": 0.83,
            "accuracy_sd": 0.04,
            "accuracy_ci": [0.77, 0.89],
            "accuracy_per_seed": [0.8, 0.77, 0.87, 0.83, 0.88],
            "majority": 0.2,
            "lexical": {
                "mean": 0.9,
                "sd": 0.03,
                "ci": [0.85, 0.95],
                "per_seed": [0.9, 0.87, 0.93, 0.9, 0.9],
            },
            "vs_lexical": {
                "diff_mean": -0.07,
                "diff_ci": [-0.12, -0.02],
                "verdict": "below",
                "sentence": "The vectors do not beat the lexical baseline: a keyword classifier "
                "on the same text is more accurate.",
            },
            "top3": 0.97,
            "chance": 1 / len(EMOTIONS),
            "auroc": {e: 0.9 + 0.01 * i for i, e in enumerate(EMOTIONS)},
            "labels": EMOTIONS,
            "confusion": [
                [10 if i == j else (2 if (i, j) == (1, 2) else 0) for j in range(6)]
                for i in range(6)
            ],
            "auroc_mean": 0.925,
            "n": 60,
            "sweep": {
                "1": {"accuracy": 0.5, "top3": 0.8, "auroc_mean": 0.8},
                "3": {"accuracy": 0.83, "top3": 0.97, "auroc_mean": 0.925},
            },
            "geometry": {
                "variance_explained": [0.52, 0.23, 0.1],
                "coords": {e: [VALENCE[e] * 2, AROUSAL[e] * 2] for e in EMOTIONS},
                "pc1_valence_r": 0.91,
                "pc2_arousal_r": 0.74,
            },
            "logit_lens": {
                e: {"top": [f"{e}ly", "joy"], "bottom": ["the", "of"]} for e in EMOTIONS
            },
        }
    meta = VectorSetMeta(
        names=EMOTIONS,
        layers=[3],
        default_layer=3,
        model_id="stories260K",
        model_revision="abc123",
        hidden_size=hidden,
        n_model_layers=5,
        train_data_hash="sha256:feedbeef",
        n_train_records=120,
        neutral_pcs={"3": 4},
        evaluation={k: ev[k] for k in ("accuracy", "top3", "chance", "auroc_mean", "n")}
        if split_report and ev
        else ev,
    )
    vs = VectorSet(vectors={3: vec}, meta=meta)
    vs.set_reference(3, torch.randn(50, hidden, generator=g))
    vs.save(root)
    if split_report and ev:
        (root / "evaluation.json").write_text(json.dumps(ev, indent=2))
    return root


def _trajectory(n: int, peak_at: int, width: int, height: float, seed: int) -> list[float]:
    rnd = random.Random(seed)
    return [
        height * math.exp(-(((t - peak_at) / width) ** 2)) + rnd.gauss(0, 0.3) for t in range(n)
    ]


METRICS = (
    "valence_mean",
    "distress_max",
    "distress_end",
    "recovery_rate",
    "escalation",
    "volatility",
)


def _flags_for(i: int, n_tok: int) -> list[Flag]:
    flags = []
    if i % 3 == 0:
        flags.append(
            Flag(
                kind="unresolved_end",
                start=n_tok - 12,
                end=n_tok,
                severity=2.5,
                evidence='distress stays high to the end: "and the storm did not stop"',
            )
        )
    if i % 4 == 1:
        flags.append(
            Flag(
                kind="escalation",
                start=5,
                end=25,
                severity=1.2,
                evidence="distress trend +0.08/token",
            )
        )
    return flags


def make_scores(
    root: Path,
    n_docs: int = 12,
    n_traced: int = 4,
    n_tokens: int | None = None,
) -> Path:
    """A scores folder in the corpus stage's flat layout (metric columns, ``mean__<emotion>``
    columns, ``tokens/`` traces with ``series_names``/``series``) with its typed manifest."""
    rows, traces = [], []
    for i in range(n_docs):
        n_tok = n_tokens or 40 + 7 * i
        flags = _flags_for(i, n_tok)
        metrics = {
            "valence_mean": 0.3 - 0.05 * i,
            "distress_max": 0.4 * i,
            "distress_end": 0.2 * i - 0.5,
            "recovery_rate": 1.0 - 0.07 * i,
            "escalation": 0.01 * (i - 6),
            "volatility": 0.2 + 0.03 * i,
        }
        row = {
            "doc_id": f"doc-{i:03d}",
            "source": "sample.jsonl",
            "position": f"line {i + 1}",
            "n_tokens": n_tok,
            "n_chars": 4 * n_tok,
            "n_windows": 1,
            "is_dialogue": False,
            "dominant": [EMOTIONS[i % 6]],
            "flag_kinds": sorted({f.kind for f in flags}),
            "n_flags": len(flags),
            **metrics,
        }
        row.update({f"mean__{e}": 0.1 * k for k, e in enumerate(EMOTIONS)})
        row.update({f"p95__{e}": 0.3 * k for k, e in enumerate(EMOTIONS)})
        row["flags"] = [f.model_dump() for f in flags]
        rows.append(row)
        if i < n_traced:
            toks = [(" The" if t % 9 == 0 else " w") + str(t) for t in range(n_tok)]
            series = {
                e: _trajectory(
                    n_tok,
                    n_tok // 2 + 3 * k,
                    6 + k,
                    3.0 if e in ("afraid", "sad") else 1.0,
                    i * 10 + k,
                )
                for k, e in enumerate(EMOTIONS)
            }
            distress = [max(a, b) for a, b in zip(series["afraid"], series["sad"], strict=True)]
            names = ["valence", "arousal", "distress", *[f"emotion:{e}" for e in EMOTIONS]]
            vals = [
                [-d / 2 for d in distress],
                [d / 3 for d in distress],
                distress,
                *series.values(),
            ]
            traces.append(
                {
                    "doc_id": f"doc-{i:03d}",
                    "n_tokens": n_tok,
                    "truncated": False,
                    "tokens": toks,
                    "series_names": names,
                    "series": vals,
                    "flags": [f.model_dump() for f in flags],
                }
            )
    write_table(root / "data" / "shard-00000.parquet", pa.Table.from_pylist(rows))
    write_table(root / "tokens" / "shard-00000.parquet", pa.Table.from_pylist(traces))
    ScoreManifest(
        inputs=["sample.jsonl"],
        rows_in=n_docs + 1,
        scored=n_docs,
        quarantined=1,
        shards=1,
        vectors=VectorsRef(dir=str(root.parent / "vec")),
    ).save(root)
    return root


def make_curated(root: Path) -> Path:
    """A curate folder's manifest: two rules and the guardrail's decision."""
    CurateManifest.model_validate(
        dict(
            scores_dir=str(root.parent / "scores"),
            rows_in=12,
            kept=9,
            flagged=2,
            dropped=1,
            rules=[
                {
                    "rule": "escalating_unresolved",
                    "action": "drop",
                    "matched": 1,
                    "decided": 1,
                    "share": 1 / 12,
                },
                {
                    "rule": "unresolved_end",
                    "action": "flag",
                    "matched": 4,
                    "decided": 2,
                    "share": 2 / 12,
                },
            ],
            guardrail={
                "decision": "allowed",
                "reason": "the vectors' held-out accuracy 0.61 is above chance 0.17",
                "risky_actions": ["drop (rule escalating_unresolved)"],
                "trusted": True,
            },
            with_text=False,
        )
    ).save(root)
    return root
