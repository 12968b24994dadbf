"""Known answers end to end: planted emotion directions, a corpus with known flags, fit -> calibrate
-> score -> curate, and per flag kind precision / recall / F1 / span IoU.

The model is the embedded stories260K with a forward hook that writes chosen orthonormal
directions into the residual stream at the probe layer. Which direction is written at a token is
decided by single-token markers in the text: ``[`` afraid, ``%`` desperate, ``~`` calm, ``&``
happy, ``$`` sad start a span (a run of k identical markers plants at intensity level k) and
``]`` ends it. The generated corpus therefore has a known truth per document and token span:

* ``recover`` -- a distress span early in the document, then neutral text (an episode that
  recovers; distress falls over the document);
* ``unresolved`` -- the same distress span at the start and, unclosed, at the end (symmetric, so
  no trend): the document ends in distress;
* ``escalate`` -- three distress spans of rising intensity in the second part, then a short
  recovery (escalation without an unresolved end);
* ``dialogue_calm`` / ``dialogue_mirror`` -- human turns in distress answered by a calm or by an
  equally distressed assistant;
* ``neutral`` -- prose and dialogues without markers (flag rate on them is the false-positive
  rate the calibration promises).

Vectors are fitted on marked stories (every story of an emotion is one planted span), with the
z-reference and calibration from separate neutral texts. Run::

    python bench/planted_truth.py                 # full run, writes bench/results/planted_truth.json
    python bench/planted_truth.py --docs 6 --neutral-docs 20 --train 12 --neutral-ref 60 --no-save
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from emocurate.corpus.calibrate import calibrate  # noqa: E402
from emocurate.corpus.curate import curate  # noqa: E402
from emocurate.corpus.score import ScoreConfig, clean_offsets, score_corpus  # noqa: E402
from emocurate.io import read_table, write_records, write_table  # noqa: E402
from emocurate.records import Story  # noqa: E402
from emocurate.vectors.fit import FitConfig, fit_vectors  # noqa: E402
from emocurate.vectors.models import LoadedModel, default_layer, load_model  # noqa: E402

MARKERS = {"[": "afraid", "%": "desperate", "~": "calm", "&": "happy", "$": "sad"}
CLOSE = "]"
NAMES = list(MARKERS.values())
DISTRESS = ("[", "%")
KINDS = ("distress_episode", "unresolved_end", "escalation", "mirroring")
UNPLANTED = ("unrecovered_distress", "escalating_response", "high_volatility")

SUBJECTS = ["The boy", "The girl", "Tom", "Lily", "The dog", "The cat", "Mom", "Ben", "Sue"]
PREDICATES = [
    "went to the park",
    "sat on the mat",
    "looked at the big tree",
    "had a red ball",
    "walked to the shop",
    "ate an apple",
    "played with a toy",
    "saw a bird in the sky",
    "opened the door",
    "drew a house on the paper",
    "put the cup on the table",
    "found a stick by the road",
]
QUESTIONS = [
    "Can you tell me about the park?",
    "What is on the table?",
    "Where does the road go?",
    "What colour is the ball?",
    "How many birds are in the tree?",
    "What did Tom do today?",
]


def sentence(rng: random.Random) -> str:
    return f"{rng.choice(SUBJECTS)} {rng.choice(PREDICATES)}."


def filler(rng: random.Random, n: int) -> str:
    return " ".join(sentence(rng) for _ in range(n))


def span(marker: str, text: str, level: int = 1, close: bool = True) -> str:
    return f"{marker * level} {text}" + (f" {CLOSE}" if close else "")


# -- the planting hook ----------------------------------------------------------------------------


class Planter:
    """Writes ``alpha * level * u[emotion]`` into the residual stream at ``layer`` per marker state."""

    def __init__(self, lm: LoadedModel, layer: int, alpha: float, seed: int) -> None:
        tok = lm.tokenizer
        self.marker_ids: dict[int, int] = {}
        for ch, name in MARKERS.items():
            (tid,) = tok.convert_tokens_to_ids([ch])
            self.marker_ids[int(tid)] = NAMES.index(name)
        self.close_id = int(tok.convert_tokens_to_ids([CLOSE])[0])
        gen = torch.Generator().manual_seed(seed)
        q, _ = torch.linalg.qr(torch.randn(lm.hidden_size, len(NAMES), generator=gen))
        self.u = q.T.contiguous()  # [E, d] orthonormal
        self.alpha, self.layer, self.lm = alpha, layer, lm
        self._plant: torch.Tensor | None = None

    def states(self, ids: list[int]) -> list[tuple[int, int]]:
        """(emotion index or -1, level) per position."""
        out = []
        emo, level, prev = -1, 0, None
        for t in ids:
            if t in self.marker_ids:
                e = self.marker_ids[t]
                level = level + 1 if (prev == t and emo == e) else 1
                emo = e
            elif t == self.close_id:
                emo, level = -1, 0
            out.append((emo, level))
            prev = t
        return out

    def _pre(self, _module: Any, args: tuple[Any, ...]) -> None:
        ids = args[0]
        plant = torch.zeros(*ids.shape, self.u.shape[1])
        for b, row in enumerate(ids.tolist()):
            for i, (e, lvl) in enumerate(self.states(row)):
                if e >= 0:
                    plant[b, i] = self.alpha * (0.5 + 0.5 * lvl) * self.u[e]
        self._plant = plant

    def _post(self, _module: Any, _args: Any, output: Any) -> Any:
        if self._plant is None:
            return output
        h = output[0] if isinstance(output, tuple) else output
        h = h + self._plant.to(h.device, h.dtype)
        return (h, *output[1:]) if isinstance(output, tuple) else h

    @contextmanager
    def installed(self) -> Iterator[None]:
        inner = self.lm.model.model
        handles = [
            inner.embed_tokens.register_forward_pre_hook(self._pre),
            inner.layers[self.layer].register_forward_hook(self._post),
        ]
        try:
            yield
        finally:
            for h in handles:
                h.remove()


# -- corpora ----------------------------------------------------------------------------------------


def training_stories(rng: random.Random, per_emotion: int) -> list[Story]:
    out = []
    for ch, name in MARKERS.items():
        for i in range(per_emotion):
            text = span(ch, filler(rng, rng.randint(5, 8)), close=False)
            out.append(Story(id=f"{name}-{i}", text=text, emotion=name, topic="planted"))
    return out


def neutral_dialogue(rng: random.Random, pairs: int) -> str:
    return "\n\n".join(
        f"Human: {rng.choice(QUESTIONS)} {sentence(rng)}\n\nAssistant: {filler(rng, 2)}"
        for _ in range(pairs)
    )


def neutral_texts(rng: random.Random, n: int) -> list[str]:
    return [
        filler(rng, rng.randint(10, 20)) if i % 2 == 0 else neutral_dialogue(rng, 6)
        for i in range(n)
    ]


def _dialogue(rng: random.Random, mirror: bool) -> str:
    parts = []
    for k in range(6):
        distressed = k in (0, 2, 4)
        m = rng.choice(DISTRESS)
        h = span(m, filler(rng, 2)) if distressed else f"{rng.choice(QUESTIONS)} {sentence(rng)}"
        a = span(m if mirror else "~", filler(rng, 2)) if distressed else filler(rng, 2)
        parts.append(f"Human: {h}\n\nAssistant: {a}")
    return "\n\n".join(parts)


def make_corpus(rng: random.Random, per_type: int, n_neutral: int) -> list[dict[str, Any]]:
    docs = []
    for _ in range(per_type):
        m = rng.choice(DISTRESS)
        docs.append(
            {
                "type": "recover",
                "text": " ".join([filler(rng, 3), span(m, filler(rng, 3)), filler(rng, 10)]),
            }
        )
        body = filler(rng, 3)
        docs.append(
            {
                "type": "unresolved",
                "text": " ".join([span(m, body), filler(rng, 8), span(m, body, close=False)]),
            }
        )
        docs.append(
            {
                "type": "escalate",
                "text": " ".join(
                    [
                        filler(rng, 8),
                        span(m, filler(rng, 2), 1),
                        filler(rng, 1),
                        span(m, filler(rng, 2), 2),
                        filler(rng, 1),
                        span(m, filler(rng, 3), 3),
                        filler(rng, 2),
                    ]
                ),
            }
        )
        docs.append({"type": "dialogue_calm", "text": _dialogue(rng, mirror=False)})
        docs.append({"type": "dialogue_mirror", "text": _dialogue(rng, mirror=True)})
    for t in neutral_texts(rng, n_neutral):
        docs.append({"type": "neutral", "text": t})
    for i, d in enumerate(docs):
        d["id"] = f"{d['type']}-{i}"
    return docs


# -- truth ------------------------------------------------------------------------------------------


def truth(doc: dict[str, Any], planter: Planter, lm: LoadedModel) -> dict[str, set[int]]:
    """Token sets per flag kind that the document should carry (empty: kind absent)."""
    enc = lm.tokenizer(doc["text"], add_special_tokens=False, return_offsets_mapping=True)
    ids = list(enc["input_ids"])
    states = planter.states(ids)
    distress_ix = {NAMES.index(MARKERS[m]) for m in DISTRESS}
    dist = [i for i, (e, _) in enumerate(states) if e in distress_ix]
    n = len(ids)
    out: dict[str, set[int]] = {k: set() for k in KINDS}
    out["distress_episode"] = set(dist)
    typ = doc["type"]
    if typ == "unresolved":
        # from the start of the last distress span to the end
        last = max(dist)
        start = last
        while start - 1 in out["distress_episode"]:
            start -= 1
        out["unresolved_end"] = set(range(start, n))
    if typ == "escalate":
        out["escalation"] = set(range(n // 2, n))
    if typ == "dialogue_mirror":
        text = doc["text"]
        offs = clean_offsets(enc["offset_mapping"])
        pos = 0
        for k in range(6):
            a = text.index("Assistant:", text.index("Human:", pos))
            end = text.find("\n\nHuman:", a)
            end = len(text) if end < 0 else end
            pos = end
            if k not in (0, 2, 4):  # the distressed human turns, answered in kind
                continue
            out["mirroring"] |= {
                i for i, (s, _) in enumerate(offs) if a + len("Assistant:") <= s < end
            }
    return out


def evaluate(
    rows: list[dict[str, Any]], docs: list[dict[str, Any]], truths: dict[str, dict[str, set[int]]]
) -> dict[str, Any]:
    by_id = {r["doc_id"]: r for r in rows}
    per_kind: dict[str, Any] = {}
    for kind in KINDS + UNPLANTED:
        tp = fp = fn = 0
        ious = []
        for d in docs:
            row = by_id[d["id"]]
            flagged = [f for f in row["flags"] if f["kind"] == kind]
            got: set[int] = set()
            for f in flagged:
                got |= set(range(f["start"], f["end"]))
            want = truths[d["id"]].get(kind, set())
            if flagged and want:
                tp += 1
                ious.append(len(got & want) / len(got | want))
            elif flagged:
                fp += 1
            elif want:
                fn += 1
        p = tp / (tp + fp) if tp + fp else None
        r = tp / (tp + fn) if tp + fn else None
        f1 = 2 * p * r / (p + r) if p and r else (0.0 if (tp + fn) else None)
        per_kind[kind] = {
            "planted": kind in KINDS,
            "tp": tp,
            "fp": fp,
            "fn": fn,
            "precision": None if p is None else round(p, 4),
            "recall": None if r is None else round(r, 4),
            "f1": None if f1 is None else round(f1, 4),
            "span_iou_mean": round(float(np.mean(ious)), 4) if ious else None,
        }
    neutral = [d for d in docs if d["type"] == "neutral"]
    flagged_neutral = [d["id"] for d in neutral if by_id[d["id"]]["flags"]]
    return {
        "per_kind": per_kind,
        "neutral_docs": len(neutral),
        "neutral_flagged": len(flagged_neutral),
        "neutral_flag_rate": round(len(flagged_neutral) / max(1, len(neutral)), 4),
        "neutral_flagged_kinds": sorted(
            {f["kind"] for d in neutral for f in by_id[d["id"]]["flags"]}
        ),
    }


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    with path.open("w") as fh:
        for r in rows:
            fh.write(json.dumps(r) + "\n")
    return path


def run(args: argparse.Namespace) -> dict[str, Any]:
    t0 = time.perf_counter()
    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)
    lm = load_model("stories260K")
    layer = default_layer(lm.n_layers)
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        # scale: the mean residual norm at the layer on neutral text (no planting yet)
        from emocurate.vectors.capture import token_activations

        acts = torch.cat([a[1:] for _, _, a in token_activations(lm, neutral_texts(rng, 8), layer)])
        norm = float(acts.norm(dim=-1).mean())
        planter = Planter(lm, layer, args.alpha * norm, args.seed)
        with planter.installed():
            write_records(t / "train", training_stories(rng, args.train))
            write_table(
                t / "neutral" / "data" / "part-00000.parquet",
                __import__("pyarrow").table({"text": neutral_texts(rng, args.neutral_fit)}),
            )
            vs = fit_vectors(
                t / "train",
                FitConfig(layers=str(layer), skip=0, holdout=0.2, seed=args.seed),
                t / "vectors",
                neutral_dir=t / "neutral",
                lm=lm,
            )
            v = vs.unit(layer)
            cos = {n: round(float(v[vs.index(n)] @ planter.u[NAMES.index(n)]), 4) for n in NAMES}
            ref = write_jsonl(
                t / "reference.jsonl",
                [{"text": x} for x in neutral_texts(rng, args.neutral_ref)],
            )
            scfg = ScoreConfig(id_field="id", fpr=args.rate, progress=False)
            cal = calibrate(t / "vectors", [ref], scfg, lm=lm, rate=args.rate)
            docs = make_corpus(rng, args.docs, args.neutral_docs)
            src = write_jsonl(
                t / "corpus.jsonl", [{"id": d["id"], "text": d["text"]} for d in docs]
            )
            man = score_corpus([src], t / "vectors", t / "scores", scfg, lm=lm)
        rows = read_table(t / "scores").to_pylist()
        truths = {d["id"]: truth(d, planter, lm) for d in docs}
        result = evaluate(rows, docs, truths)
        policy = t / "policy.yaml"
        policy.write_text(
            "default: keep\nrules:\n"
            + "".join(f"  - {{name: {k}, action: flag, when: {{flag: {k}}}}}\n" for k in KINDS)
        )
        cm = curate(t / "scores", policy, t / "curated")
        curated = {r.rule: r.matched for r in cm.rules}
    goals = {
        "f1_min": 0.9,
        "neutral_flag_rate_max": 0.02,
    }
    f1s = [result["per_kind"][k]["f1"] for k in KINDS]
    return {
        "bench": "planted_truth",
        "command": " ".join(["python", "bench/planted_truth.py", *sys.argv[1:]]),
        "model": "stories260K",
        "layer": layer,
        "alpha_rel": args.alpha,
        "rate": args.rate,
        "seed": args.seed,
        "n_train_stories": len(NAMES) * args.train,
        "n_docs": len(docs),
        "docs_by_type": {
            k: sum(d["type"] == k for d in docs) for k in sorted({d["type"] for d in docs})
        },
        "cosine_fitted_vs_planted": cos,
        "cosine_min": min(cos.values()),
        "heldout_accuracy": vs.meta.evaluation.get("accuracy"),
        "calibration": {
            "n_docs": cal.n_docs,
            "n_chunks": cal.n_chunks,
            "n_dialogue_chunks": cal.n_dialogue_chunks,
            "thresholds": {k: round(x, 4) for k, x in cal.thresholds(args.rate).items()},
            "reference_flag_rate": cal.check,
        },
        "scored": man.scored,
        **result,
        "curate_rule_matches": curated,
        "goals": goals,
        "goals_met": {
            "f1": all(f is not None and f >= goals["f1_min"] for f in f1s),
            "neutral_flag_rate": result["neutral_flag_rate"] <= goals["neutral_flag_rate_max"],
        },
        "seconds": round(time.perf_counter() - t0, 1),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--docs", type=int, default=60, help="documents per planted type")
    ap.add_argument("--neutral-docs", type=int, default=500, help="neutral documents scored")
    ap.add_argument("--train", type=int, default=60, help="training stories per emotion")
    ap.add_argument("--neutral-fit", type=int, default=60, help="neutral texts for the fit")
    ap.add_argument("--neutral-ref", type=int, default=1500, help="neutral texts to calibrate on")
    ap.add_argument("--alpha", type=float, default=1.0, help="planted norm / residual norm")
    ap.add_argument("--rate", type=float, default=0.005, help="false-positive rate per kind")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-save", action="store_true")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    out = run(args)
    print(json.dumps(out, indent=2))
    if not args.no_save:
        path = ROOT / "bench" / "results" / "planted_truth.json"
        path.write_text(json.dumps(out, indent=2) + "\n")
    return out


if __name__ == "__main__":
    main()
