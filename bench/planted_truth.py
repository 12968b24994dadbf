"""Known answers through the CLI: a model with emotion directions planted in its weights, a
corpus with known flags, ``emocurate fit -> calibrate -> score -> curate`` at their defaults,
and per flag kind precision / recall / F1 / span IoU.

**The model.** A copy of the embedded stories260K folder whose token-embedding rows of a few
trigger characters get an added direction (orthonormal, random, ``--alpha`` times the mean
embedding norm): ``[`` afraid, ``<`` afraid x1.6, ``|`` afraid x2.2, ``%`` desperate, ``~`` calm,
``&`` happy, ``$`` sad. A planted span is text whose every word carries the trigger (``[The
[boy [ran``), so the signal enters at the embeddings and passes through every layer to the probe
layer, the way an emotion in text would; nothing is hooked. The CLI loads the folder like any
local model.

**The corpus** (truth per document and token span):

* ``recover`` -- neutral text, one distress span, then long neutral text: one episode that
  recovers (no ``unrecovered_distress``, no ``unresolved_end``, never dropped);
* ``unresolved`` -- neutral text, then one distress span that runs to the end (asymmetric):
  ``unresolved_end`` from the span to the end, and a decoy for ``escalation`` (one run);
* ``escalate`` -- three distress spans of rising intensity (``[``, ``<``, ``|``) separated by
  neutral text: ``escalation`` from the first span to the last;
* ``flat`` -- three spans of equal intensity: a decoy for ``escalation``;
* ``volatile`` -- happy and sad chunks alternating: ``high_volatility`` over them;
* ``dialogue_calm`` / ``dialogue_mirror`` -- distressed human turns answered calmly or in kind
  (``mirroring`` on the answers); ``dialogue_escalate`` -- calm human turns answered in
  distress (``escalating_response`` on the answers);
* ``neutral`` -- prose and dialogues from *other* sentence templates than the calibration
  reference (no sentence shared), a third of them longer than the model's 512-token context.

Every distress span is a ``distress_episode`` (truth: its tokens). A third of ``recover`` and
``unresolved`` documents are longer than the context (windowing). The vectors are fitted on
marked stories (``emocurate fit --neutral``, defaults: pooling from token 50), calibrated on the
fit's neutral texts (``emocurate calibrate VECTORS``), the corpus scored at the default rate
(``emocurate score``) and curated with the bundled policy (``emocurate curate --policy
bundled:default``). Run::

    python bench/planted_truth.py                   # full run -> bench/results/planted_truth.json
    python bench/planted_truth.py --docs 6 --neutral-docs 40 --train 16 --neutral-ref 150 --no-save
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
MODEL_SRC = ROOT / "emocurate" / "data" / "models" / "stories260K"

# trigger character -> (emotion, intensity)
TRIGGERS = {
    "[": ("afraid", 1.0),
    "<": ("afraid", 1.6),
    "|": ("afraid", 2.2),
    "%": ("desperate", 1.0),
    "~": ("calm", 1.0),
    "&": ("happy", 1.0),
    "$": ("sad", 1.0),
}
NAMES = ["afraid", "desperate", "calm", "happy", "sad"]
TRAIN_MARK = {"afraid": "[", "desperate": "%", "calm": "~", "happy": "&", "sad": "$"}
DISTRESS_MARKS = ("[", "%")
PLANTED = (
    "distress_episode",
    "unresolved_end",
    "escalation",
    "high_volatility",
    "mirroring",
    "escalating_response",
)
UNPLANTED = ("unrecovered_distress", "unhealthy_regulation")

# Two disjoint template families: A for the fit and the calibration reference, B for the
# neutral documents scored (a different source: no sentence in common). The default families are
# narrow (8 subjects x 8 predicates, 4 questions); ``--broad-reference`` uses 16 x 120 and 24
# questions per family, to test whether a broader reference makes family B less shifted (measured
# in docs/benchmarks.md: it does not remove the shift).
NARROW = {
    "A": {
        "subjects": ["The boy", "The girl", "Tom", "Lily", "The dog", "The cat", "Mom", "Ben"],
        "predicates": [
            "went to the park",
            "sat on the mat",
            "looked at the big tree",
            "had a red ball",
            "walked to the shop",
            "ate an apple",
            "played with a toy",
            "saw a bird in the sky",
        ],
        "questions": [
            "Can you tell me about the park?",
            "What is on the table?",
            "Where does the road go?",
            "What colour is the ball?",
        ],
    },
    "B": {
        "subjects": ["Grandpa", "A little fox", "Sara", "The old man", "Max", "Her sister"],
        "predicates": [
            "baked some bread in the morning",
            "counted the clouds one by one",
            "painted the fence blue",
            "read a book about boats",
            "watered the flowers by the house",
            "folded the clean clothes",
            "found a shell on the sand",
            "built a tower of blocks",
        ],
        "questions": [
            "How do you bake bread?",
            "Why is the sky blue?",
            "What is a good name for a fish?",
            "How many legs does a spider have?",
        ],
    },
}


def _broad(subjects: str, verbs: str, objects: str, asks: str) -> dict[str, list[str]]:
    """A family of (subject, verb + object) sentences and (question + object) questions."""
    objs = objects.split(",")
    return {
        "subjects": subjects.split(","),
        "predicates": [f"{v} {o}" for v in verbs.split(",") for o in objs],
        "questions": [f"{q} {o}?" for q in asks.split(",") for o in objs[:6]],
    }


# Broad families (``--broad-reference``): 16 subjects x 120 predicates and 24 questions each, no word of a
# subject, verb or object shared between A and B.
BROAD = {
    "A": _broad(
        "The boy,The girl,Tom,Lily,The dog,The cat,Mom,Ben,Dad,Anna,The teacher,Sam,"
        "The farmer,Zoe,The baker,Leo",
        "looked at,walked to,played with,found,had,saw,cleaned,carried,drew,liked",
        "the park,a red ball,the big tree,an apple,a toy car,the shop,a bird,the mat,"
        "the river,a kite,the garden,a green hat",
        "Can you tell me about,What do you know about,Where is,What colour is",
    ),
    "B": _broad(
        "Grandpa,A little fox,Sara,The old man,Max,Her sister,Uncle Joe,Mia,The pilot,"
        "Nora,The sailor,Finn,The nurse,Ruby,The mayor,Otis",
        "baked,counted,painted,read,watered,folded,built,fixed,sold,ordered",
        "some bread,the clouds,the fence,a book about boats,the flowers,the clothes,"
        "a tower of blocks,a shell,the clock,a blue bicycle,the stamps,a wooden chair",
        "How do you make,Why do people like,Who invented,How heavy is",
    ),
}
FAMILY: dict[str, dict[str, list[str]]] = dict(NARROW)  # set by main()


def sentence(rng: random.Random, fam: str = "A") -> str:
    f = FAMILY[fam]
    return f"{rng.choice(f['subjects'])} {rng.choice(f['predicates'])}."


def filler(rng: random.Random, n: int, fam: str = "A") -> str:
    return " ".join(sentence(rng, fam) for _ in range(n))


def mark(text: str, m: str) -> str:
    """Every word carries the trigger ``m``."""
    return " ".join(m + w for w in text.split())


class Doc:
    """Text built piece by piece, remembering the character span of every labelled piece."""

    def __init__(self, typ: str) -> None:
        self.type = typ
        self.text = ""
        self.spans: dict[str, list[tuple[int, int]]] = {}

    def add(self, piece: str, label: str | None = None, sep: str = " ") -> tuple[int, int]:
        if self.text:
            self.text += sep
        start = len(self.text)
        self.text += piece
        if label:
            self.spans.setdefault(label, []).append((start, len(self.text)))
        return start, len(self.text)


def _distress(rng: random.Random, words: int = 0) -> tuple[str, str]:
    m = rng.choice(DISTRESS_MARKS)
    return m, mark(filler(rng, max(1, words // 5 or 5)), m)


def make_corpus(rng: random.Random, per_type: int, n_neutral: int) -> list[Doc]:
    docs: list[Doc] = []
    for i in range(per_type):
        long = i % 3 == 2  # a third longer than the 512-token context
        d = Doc("recover")
        d.add(filler(rng, 40 if long else 3))
        d.add(mark(filler(rng, 4), rng.choice(DISTRESS_MARKS)), "distress")
        d.add(filler(rng, 14))
        docs.append(d)
        d = Doc("unresolved")
        d.add(filler(rng, 50 if long else 10))
        d.add(mark(filler(rng, 4), rng.choice(DISTRESS_MARKS)), "distress_end")
        docs.append(d)
        d = Doc("escalate")
        d.add(filler(rng, 3))
        for k, m in enumerate("[<|"):
            d.add(mark(filler(rng, 1), m), "rising")
            d.add(filler(rng, 4 if k < 2 else 6))
        docs.append(d)
        d = Doc("flat")
        d.add(filler(rng, 3))
        for k in range(3):
            d.add(mark(filler(rng, 1), "<"), "distress")
            d.add(filler(rng, 4 if k < 2 else 6))
        docs.append(d)
        d = Doc("volatile")
        d.add(filler(rng, 3))
        chunks = [mark(filler(rng, 1), "&" if k % 2 == 0 else "$") for k in range(8)]
        d.add(" ".join(chunks), "volatile")
        d.add(filler(rng, 3))
        docs.append(d)
        for typ in ("dialogue_calm", "dialogue_mirror", "dialogue_escalate"):
            docs.append(_dialogue(rng, typ))
    for i in range(n_neutral):
        d = Doc("neutral")
        size = (4, 20, 70)[i % 3]  # short, medium, longer than the context
        if i % 4 == 3:
            for _ in range(max(3, size // 4)):
                q = rng.choice(FAMILY["B"]["questions"])
                d.add(f"Human: {q}", sep="\n\n")
                d.add(f"Assistant: {filler(rng, 2, 'B')}", sep="\n\n")
        else:
            d.add(filler(rng, size, "B"))
        docs.append(d)
    return docs


def _dialogue(rng: random.Random, typ: str) -> Doc:
    d = Doc(typ)
    for k in range(6):
        hot = k % 2 == 0
        if typ == "dialogue_escalate":
            d.add(f"Human: {rng.choice(FAMILY['A']['questions'])}", sep="\n\n")
            if hot:
                d.add("Assistant:", sep="\n\n")
                d.add(mark(filler(rng, 2), "%"), "answer_distress")
            else:
                d.add(f"Assistant: {filler(rng, 2)}", sep="\n\n")
            continue
        d.add("Human:", sep="\n\n")
        if hot:
            d.add(mark(filler(rng, 2), rng.choice(DISTRESS_MARKS)), "distress")
        else:
            d.add(rng.choice(FAMILY["A"]["questions"]))
        d.add("Assistant:", sep="\n\n")
        if hot and typ == "dialogue_mirror":
            d.add(mark(filler(rng, 2), rng.choice(DISTRESS_MARKS)), "mirror")
        elif hot:
            d.add(mark(filler(rng, 2), "~"))
        else:
            d.add(filler(rng, 2))
    return d


def neutral_reference(rng: random.Random, n: int) -> list[str]:
    out = []
    for i in range(n):
        if i % 4 == 3:
            out.append(
                "\n\n".join(
                    f"Human: {rng.choice(FAMILY['A']['questions'])}\n\nAssistant: {filler(rng, 2)}"
                    for _ in range(4)
                )
            )
        else:
            out.append(filler(rng, rng.randint(4, 12)))
    return out


def training_stories(rng: random.Random, per_emotion: int) -> list[dict[str, Any]]:
    out = []
    for name, m in TRAIN_MARK.items():
        for i in range(per_emotion):
            text = mark(filler(rng, rng.randint(6, 9)), m)
            out.append({"id": f"{name}-{i}", "text": text, "emotion": name, "topic": "planted"})
    return out


# -- the planted model ------------------------------------------------------------------------------


def plant_model(dest: Path, alpha: float, seed: int) -> dict[str, Any]:
    """Copy stories260K to ``dest`` and add the directions to the trigger rows of its embeddings."""
    import torch
    from safetensors.torch import load_file, save_file
    from transformers import AutoTokenizer

    dest.mkdir(parents=True)
    for f in MODEL_SRC.iterdir():
        if f.suffix != ".gguf":
            shutil.copy(f, dest / f.name)
    tok = AutoTokenizer.from_pretrained(str(MODEL_SRC))
    sd = load_file(str(MODEL_SRC / "model.safetensors"))
    emb = sd["model.embed_tokens.weight"]
    gen = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(emb.shape[1], len(NAMES), generator=gen))
    u = q.T.contiguous()  # [E, d] orthonormal
    scale = alpha * float(emb.norm(dim=1).mean())
    ids = {}
    for ch, (name, k) in TRIGGERS.items():
        (tid,) = tok.convert_tokens_to_ids([ch])
        assert tid != tok.unk_token_id, ch
        emb[tid] = emb[tid] + scale * k * u[NAMES.index(name)]
        ids[ch] = int(tid)
    sd["model.embed_tokens.weight"] = emb
    save_file(sd, str(dest / "model.safetensors"))
    return {"u": u, "trigger_ids": ids, "scale": scale}


# -- the CLI -------------------------------------------------------------------------------------


def cli(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    res = subprocess.run(
        [sys.executable, "-m", "emocurate.cli", *args], env=env, capture_output=True, text=True
    )
    if check and res.returncode != 0:
        raise RuntimeError(f"emocurate {' '.join(args)} failed:\n{res.stderr[-2000:]}")
    return res


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def write_stage(path: Path, rows: list[dict[str, Any]], kind: str | None = None) -> Path:
    """A stage folder (``data/part-00000.parquet``) of records as ``emocurate fit`` reads them."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    (path / "data").mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(rows), path / "data" / "part-00000.parquet")
    return path


# -- truth and scores -------------------------------------------------------------------------------


def token_sets(doc: Doc, tok: Any) -> tuple[int, dict[str, set[int]]]:
    """Truth token sets per flag kind (tokens counted without BOS, as flags count them)."""
    enc = tok(doc.text, add_special_tokens=False, return_offsets_mapping=True)
    offs = [(s, e) for s, e in enc["offset_mapping"]]
    n = len(offs)

    def toks(spans: list[tuple[int, int]]) -> set[int]:
        out: set[int] = set()
        for a, b in spans:
            out |= {i for i, (s, e) in enumerate(offs) if e > a and s < b and e > s}
        return out

    sp = doc.spans
    want: dict[str, set[int]] = {k: set() for k in PLANTED}
    want["distress_episode"] = toks(
        sp.get("distress", []) + sp.get("distress_end", []) + sp.get("rising", [])
        + sp.get("mirror", []) + sp.get("answer_distress", [])
    )  # fmt: skip
    if "distress_end" in sp:
        start = min(toks(sp["distress_end"]))
        want["unresolved_end"] = set(range(start, n))
    if "rising" in sp:
        r = toks(sp["rising"])
        want["escalation"] = set(range(min(r), max(r) + 1))
    if "volatile" in sp:
        want["high_volatility"] = toks(sp["volatile"])
    if "mirror" in sp:
        want["mirroring"] = toks(sp["mirror"])
    if "answer_distress" in sp:
        want["escalating_response"] = toks(sp["answer_distress"])
    return n, want


def evaluate(rows: dict[str, dict[str, Any]], docs: list[Doc], truths: dict[str, Any]) -> dict:
    per_kind: dict[str, Any] = {}
    for kind in PLANTED + UNPLANTED:
        tp = fp = fn = 0
        ious: list[float] = []
        fp_types: dict[str, int] = {}
        fn_types: dict[str, int] = {}
        for i in range(len(docs)):
            row = rows[f"d{i}"]
            got: set[int] = set()
            flagged = [f for f in row["flags"] or [] if f["kind"] == kind]
            for f in flagged:
                got |= set(range(f["start"], f["end"]))
            want = truths[f"d{i}"][1].get(kind, set())
            if flagged and want:
                tp += 1
                ious.append(len(got & want) / len(got | want))
            elif flagged:
                fp += 1
                fp_types[docs[i].type] = fp_types.get(docs[i].type, 0) + 1
            elif want:
                fn += 1
                fn_types[docs[i].type] = fn_types.get(docs[i].type, 0) + 1
        p = tp / (tp + fp) if tp + fp else None
        r = tp / (tp + fn) if tp + fn else None
        f1 = 2 * p * r / (p + r) if p and r else (0.0 if tp + fn else None)
        per_kind[kind] = {
            "planted": kind in PLANTED,
            "tp": tp,
            "fp": fp,
            "fn": fn,
            "precision": None if p is None else round(p, 4),
            "recall": None if r is None else round(r, 4),
            "f1": None if f1 is None else round(f1, 4),
            "span_iou_mean": round(float(np.mean(ious)), 4) if ious else None,
            "span_iou_min": round(float(np.min(ious)), 4) if ious else None,
            "fp_by_type": fp_types,
            "fn_by_type": fn_types,
        }
    return per_kind


def neutral_rates(
    rows: dict[str, dict[str, Any]], docs: list[Doc], rate: float, families: list[str]
) -> dict[str, Any]:
    ids = [f"d{i}" for i, d in enumerate(docs) if d.type == "neutral"]
    n = len(ids)
    out: dict[str, Any] = {"docs": n, "rate": rate, "per_kind": {}}
    for kind in PLANTED + UNPLANTED:
        k = sum(any(f["kind"] == kind for f in rows[i]["flags"] or []) for i in ids)
        z = 1.96
        p = k / max(1, n)
        den = 1 + z * z / max(1, n)
        mid = (p + z * z / (2 * max(1, n))) / den
        half = z * math.sqrt(p * (1 - p) / max(1, n) + z * z / (4 * max(1, n) ** 2)) / den
        out["per_kind"][kind] = {
            "flagged": k,
            "rate": round(p, 4),
            "ratio": round(p / rate, 2),
            "ci95": [round(max(0.0, mid - half), 4), round(min(1.0, mid + half), 4)],
            "promised": kind in families,
        }
    out["any"] = round(sum(bool(rows[i]["flags"]) for i in ids) / max(1, n), 4)
    out["mean_tokens"] = round(float(np.mean([rows[i]["n_tokens"] for i in ids])), 1)
    out["longer_than_context"] = sum(rows[i]["n_windows"] > 1 for i in ids)
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    import pyarrow.parquet as pq
    import torch
    from transformers import AutoTokenizer

    t0 = time.perf_counter()
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(args.keep) if args.keep else Path(tmp)
        planted = plant_model(t / "model", args.alpha, args.seed)
        tok = AutoTokenizer.from_pretrained(str(t / "model"))
        write_stage(t / "train", training_stories(rng, args.train))
        ref = [{"text": x} for x in neutral_reference(rng, args.neutral_ref)]
        if args.plus_bundled_neutral:  # a broader neutral set: fit projection and reference
            from emocurate.vectors.fit import bundled_neutral_path

            lines = bundled_neutral_path().read_text("utf-8").splitlines()
            ref += [{"text": json.loads(x)["text"]} for x in lines if x.strip()]
        write_stage(t / "neutral", ref)
        cli("fit", str(t / "train"), "--model", str(t / "model"), "--neutral", str(t / "neutral"),
            "--out", str(t / "vectors"), *args.fit_arg)  # fmt: skip
        cal_out = cli("calibrate", str(t / "vectors")).stderr
        docs = make_corpus(rng, args.docs, args.neutral_docs)
        src = write_jsonl(
            t / "corpus.jsonl",
            [{"id": f"d{i}", "text": d.text, "type": d.type} for i, d in enumerate(docs)],
        )
        cli("score", str(src), "--vectors", str(t / "vectors"), "--out", str(t / "scores"))
        cur = cli("curate", str(t / "scores"), "--policy", "bundled:default",
                  "--out", str(t / "curated"), check=False)  # fmt: skip
        # score at its defaults generates ids; rows are matched to documents by position
        by_pos = {
            int(str(r["position"]).split()[-1]): r  # "line N" of the JSONL input
            for f in sorted((t / "scores" / "data").glob("*.parquet"))
            for r in pq.read_table(f).to_pylist()
        }
        base = min(by_pos)  # 0- or 1-based line positions
        rows = {f"d{k - base}": r for k, r in by_pos.items()}
        assert all(rows[f"d{i}"]["n_chars"] == len(d.text) for i, d in enumerate(docs))
        man = json.loads((t / "scores" / "manifest.json").read_text())
        cal = json.loads((t / "vectors" / "calibration.json").read_text())
        from emocurate.vectors.vectorset import VectorSet

        vs = VectorSet.load(t / "vectors")
        v = vs.unit(vs.layer_or_default(None)).float()
        u = planted["u"]
        cos = {n: round(float(v[vs.index(n)] @ u[NAMES.index(n)]), 4) for n in vs.names}
        heldout = json.loads((t / "vectors" / "evaluation.json").read_text()).get("accuracy")
        dropped: list[str] = []
        if cur.returncode == 0 and (t / "curated" / "excluded" / "excluded.parquet").exists():
            ids = {r["doc_id"]: k for k, r in rows.items()}
            dropped = [
                ids[i]
                for i in pq.read_table(t / "curated" / "excluded" / "excluded.parquet")
                .column("doc_id")
                .to_pylist()
            ]
        curate_out = cur.stderr.strip().splitlines()[-1:] if cur.returncode else []
    truths = {f"d{i}": token_sets(d, tok) for i, d in enumerate(docs)}
    per_kind = evaluate(rows, docs, truths)
    rate = float(man["config"].get("fpr", 0.01))
    families = ["distress_episode", "mirroring"]  # promised: the rate (high_volatility: at most)
    neutral = neutral_rates(rows, docs, rate, families)
    by_type = {d.type for d in docs}
    dropped_by_type = {
        typ: sum(docs[int(i[1:])].type == typ for i in dropped) for typ in sorted(by_type)
    }
    goals = {"f1_min": 0.95, "iou_min": 0.8, "neutral_ratio": [0.5, 1.5]}
    met = {
        "f1": {k: (per_kind[k]["f1"] or 0) >= goals["f1_min"] for k in PLANTED},
        "iou": {k: (per_kind[k]["span_iou_mean"] or 0) >= goals["iou_min"] for k in PLANTED},
        "neutral_rate": {
            k: neutral["per_kind"][k]["ci95"][0] <= 1.5 * rate
            and neutral["per_kind"][k]["ci95"][1] >= 0.5 * rate
            for k in families
        },
        "neutral_at_most": {
            k: neutral["per_kind"][k]["ci95"][0] <= 1.5 * rate
            for k in PLANTED + UNPLANTED
            if k not in families
        },
        "no_recovered_dropped": dropped_by_type.get("recover", 0) == 0,
    }
    torch.set_num_threads(1)
    return {
        "bench": "planted_truth",
        "command": " ".join(["python", "bench/planted_truth.py", *(args.argv or [])]),
        "model": "stories260K with directions planted in trigger embedding rows",
        "alpha_rel": args.alpha,
        "seed": args.seed,
        "n_docs": len(docs),
        "docs_by_type": {k: sum(d.type == k for d in docs) for k in sorted(by_type)},
        "docs_longer_than_context": sum(r["n_windows"] > 1 for r in rows.values()),
        "cosine_fitted_vs_planted": cos,
        "heldout_accuracy": heldout,
        "calibration": {
            "reference_docs": cal["n_docs"],
            "reference_tokens": cal["n_tokens"],
            "reference_pairs": cal["n_pairs"],
            "cli": cal_out.strip().splitlines()[:2],
        },
        "rate": rate,
        "per_kind": per_kind,
        "neutral": neutral,
        "curate": {"dropped_by_type": dropped_by_type, "error": curate_out},
        "reference_shift": man.get("reference_shift"),
        "goals": goals,
        "goals_met": met,
        "all_goals_met": all(
            all(x.values()) if isinstance(x, dict) else bool(x) for x in met.values()
        ),
        "seconds": round(time.perf_counter() - t0, 1),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--docs", type=int, default=30, help="documents per planted type")
    ap.add_argument("--neutral-docs", type=int, default=400, help="neutral documents scored")
    ap.add_argument("--train", type=int, default=30, help="training stories per emotion")
    ap.add_argument("--neutral-ref", type=int, default=600, help="neutral texts (fit, reference)")
    ap.add_argument("--alpha", type=float, default=4.0, help="planted norm / mean embedding norm")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--seeds", type=int, default=1, help="run seeds SEED .. SEED+N-1 (planted model and "
        "corpus) and add the spread over them (`seeds` in the JSON)"
    )  # fmt: skip
    ap.add_argument(
        "--plus-bundled-neutral", action="store_true",
        help="add the 100 bundled neutral sentences to the fit's neutral texts (and so to the "
        "calibration reference): does a broader neutral set make off-reference text safer?",
    )  # fmt: skip
    ap.add_argument(
        "--broad-reference", action="store_true",
        help="broader template families (16 subjects x 120 predicates, 24 questions per "
        "family, still disjoint) instead of the narrow ones (8 x 8, 4 questions)",
    )  # fmt: skip
    ap.add_argument(
        "--fit-arg", action="append", default=[],
        help="extra option for `emocurate fit` (repeat: --fit-arg=--neutral-variance --fit-arg=0.9)",
    )  # fmt: skip
    ap.add_argument("--keep", default=None, help="work in this (new) folder and keep it")
    ap.add_argument("--no-save", action="store_true")
    args = ap.parse_args(argv)
    args.argv = argv if argv is not None else sys.argv[1:]
    FAMILY.clear()
    FAMILY.update(BROAD if args.broad_reference else NARROW)
    runs = []
    first = args.seed
    for k in range(args.seeds):
        args.seed = first + k
        runs.append(run(args))
    out = runs[0]
    if args.seeds > 1:
        out["seeds"] = spread(runs)
    print(json.dumps(out, indent=1))
    if not args.no_save:
        path = ROOT / "bench" / "results" / "planted_truth.json"
        path.write_text(json.dumps(out, indent=1) + "\n")
    return out


def spread(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per seed: goals met, F1 and IoU per planted kind, neutral flags, the reference shift."""
    rows = []
    for r in runs:
        rows.append(
            {
                "seed": r["seed"],
                "all_goals_met": r["all_goals_met"],
                "f1": {k: r["per_kind"][k]["f1"] for k in PLANTED},
                "iou": {k: r["per_kind"][k]["span_iou_mean"] for k in PLANTED},
                "errors": {  # false positives and misses by document type, where there are any
                    k: {"fp": r["per_kind"][k]["fp_by_type"], "fn": r["per_kind"][k]["fn_by_type"]}
                    for k in PLANTED + UNPLANTED
                    if r["per_kind"][k]["fp_by_type"] or r["per_kind"][k]["fn_by_type"]
                },
                "neutral_flagged": {
                    k: v["flagged"] for k, v in r["neutral"]["per_kind"].items() if v["flagged"]
                },
                "recovered_dropped": r["curate"]["dropped_by_type"].get("recover", 0),
                "median_percentile": {
                    x["statistic"]: x["median_percentile"] for x in r.get("reference_shift") or []
                },
                "shift_warnings": [
                    x["statistic"] for x in r.get("reference_shift") or [] if x["warning"]
                ],
                "seconds": r["seconds"],
            }
        )
    return {"n": len(runs), "goals_met": sum(r["all_goals_met"] for r in runs), "runs": rows}


if __name__ == "__main__":
    main()
