"""Does corpus scoring track anything real? (a benchmark, not a test)

1. EmoBank (human valence/arousal ratings, 1-5): Pearson and Spearman correlation of each
   sentence's scored ``valence_mean`` / ``arousal_mean`` with the human ratings.
2. Pride and Prejudice chapters vs WikiText-2 articles: per-document regulation summaries
   (valence, distress, episodes, recovery, escalation, volatility, flag rates) side by side.

Vectors: ``--vectors DIR`` (a fitted VectorSet for the embedded model), or, by default, a quick
mean-difference fit inside the bench from short TinyStories-style sentences written here for 8
emotions (the embedded 260K-parameter model knows only simple story language), with a neutral
reference from neutral sentences. Expect weak correlations from such a small model; the point
is to measure, not to assume.

Usage: python bench/corpus_eval.py [--vectors DIR] [--emobank-n 1500] [--docs 15]
Prints JSON and writes bench/results/corpus_eval.json.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import re
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
EVAL = Path("/work/shared/eval")

NAMES = ["Lily", "Tom", "Ben", "Mia", "Sam", "Anna", "Max", "Sue"]
SITUATIONS: dict[str, list[str]] = {
    "happy": [
        "{n} got a new puppy for her birthday. {n} laughed and hugged it all day.",
        "{n} and her friends played in the sun. They smiled and sang a happy song.",
        "Mom made a big cake for {n}. {n} clapped and smiled. It was the best day.",
        "{n} found a pretty shell at the beach. {n} jumped up and down with joy.",
        "Grandma came to visit {n}. {n} was so glad. They played and laughed.",
        "{n} won a prize at school. Everyone cheered and {n} felt great.",
    ],
    "sad": [
        "{n} lost her favorite toy. She looked everywhere but could not find it. She cried.",
        "{n}'s best friend moved away. {n} sat alone by the window and cried.",
        "The little bird {n} loved did not wake up. {n} was very sad and cried.",
        "{n} could not go to the party because she was sick. She felt sad and alone.",
        "{n} broke the vase that Mom liked. {n} felt bad and tears ran down her face.",
        "Nobody wanted to play with {n}. {n} walked home slowly and felt very sad.",
    ],
    "afraid": [
        "{n} heard a loud noise in the dark. {n} was very scared and hid under the bed.",
        "A big dog barked at {n}. {n} was so scared that she ran away and cried.",
        "The storm was loud and the lights went out. {n} shook with fear.",
        "{n} was lost in the big forest. It was dark and {n} was very afraid.",
        "{n} saw a big spider on the wall. {n} screamed and was too scared to move.",
        "Something moved in the closet. {n} was frightened and called for Mom.",
    ],
    "angry": [
        "{n}'s brother broke her toy on purpose. {n} was so angry that she yelled.",
        "Someone took {n}'s ball and would not give it back. {n} stomped her feet in anger.",
        "{n} was mad because she had to go to bed early. She shouted and slammed the door.",
        "The boy pushed {n} in the line. {n} was angry and pushed him back.",
        "{n}'s friend told a lie about her. {n} was very angry and did not talk to him.",
        "The dog ate {n}'s cake. {n} was furious and yelled at the dog.",
    ],
    "calm": [
        "{n} sat by the quiet lake. The water was still and {n} felt calm and peaceful.",
        "{n} lay in the soft grass and watched the clouds. She felt calm and relaxed.",
        "Mom read {n} a slow story. {n} felt calm and sleepy in her warm bed.",
        "The rain fell softly on the roof. {n} sat by the fire and felt peaceful.",
        "{n} took a deep breath and smiled. Everything was quiet and calm.",
        "{n} and Grandpa sat on the bench and watched the sun go down. It was peaceful.",
    ],
    "excited": [
        "Tomorrow {n} would go to the zoo! {n} could not wait and jumped on her bed.",
        "{n} saw the big box with her name on it. She ran to open it, so excited.",
        "The circus was in town! {n} ran and shouted with excitement.",
        "{n} was going on a big trip on a plane. She was so excited she could not sleep.",
        "It was snowing! {n} ran outside, shouting and laughing with excitement.",
        "{n} heard the ice cream truck. She ran fast, excited and happy.",
    ],
    "surprised": [
        "{n} opened the door and all her friends shouted surprise! {n} was so surprised.",
        "A frog jumped out of {n}'s shoe. {n} was very surprised.",
        "{n} looked up and saw a rainbow in the sky. She was surprised and amazed.",
        "Dad came home early with a gift. {n} did not expect it and was surprised.",
        "The box began to move. {n} was surprised to see a kitten inside.",
        "{n} found a coin in her pocket. She did not know it was there. What a surprise!",
    ],
    "proud": [
        "{n} built a tall tower all by herself. She smiled and felt proud.",
        "{n} learned to ride her bike. Mom clapped and {n} felt very proud.",
        "{n} helped her little brother tie his shoes. She felt proud of herself.",
        "{n} drew a beautiful picture and the teacher put it on the wall. {n} was proud.",
        "{n} read a whole book alone. She showed Dad and felt proud.",
        "{n} cleaned her room without being asked. Mom said good job and {n} was proud.",
    ],
}
NEUTRAL = [
    "{n} walked to the shop. The shop had bread, milk and eggs.",
    "There was a table in the kitchen. On the table there was a cup and a plate.",
    "{n} put on her shoes and her coat. Then she went outside to the car.",
    "The tree was tall and green. A bird sat on a branch of the tree.",
    "{n} counted the blocks. There were five red blocks and three blue blocks.",
    "The bus stopped at the corner. {n} got on the bus and sat down.",
]


TRAIN_NAMES, HELDOUT_NAMES = NAMES[:6], NAMES[6:]


def quick_vectors(lm: Any) -> Any:
    """Mean-difference vectors for 8 emotions and a neutral reference (a few seconds on CPU).

    Fitted on stories with six of the eight character names; the other two are held out.
    """
    from emocurate.vectors.capture import pooled_activations, token_activations
    from emocurate.vectors.models import default_layer
    from emocurate.vectors.vectorset import VectorSet, VectorSetMeta

    layer = default_layer(lm.n_layers)
    emotions = list(SITUATIONS)
    texts, labels = [], []
    for e in emotions:
        for s in SITUATIONS[e]:
            for n in TRAIN_NAMES:
                texts.append(s.format(n=n))
                labels.append(e)
    acts = pooled_activations(lm, texts, [layer], skip=1)[layer]
    lab = np.array(labels)
    means = torch.stack([acts[torch.from_numpy(lab == e)].mean(0) for e in emotions])
    vecs = means - means.mean(0, keepdim=True)
    meta = VectorSetMeta(
        names=emotions,
        layers=[layer],
        default_layer=layer,
        model_id=lm.model_id,
        model_revision=lm.revision,
        hidden_size=lm.hidden_size,
        n_model_layers=lm.n_layers,
        method="mean_diff(bench)",
        n_train_records=len(texts),
    )
    vs = VectorSet({layer: vecs}, meta)
    neutral = [s.format(n=n) for s in NEUTRAL for n in NAMES]
    nacts = torch.cat([a[1:] for _, _, a in token_activations(lm, neutral, layer)])
    vs.set_reference(layer, nacts)
    return vs


def heldout(scorer: Any) -> dict[str, Any]:
    """In-distribution sanity check on held-out names: top-1 emotion and valence by label."""
    from emocurate.corpus.regulation import FALLBACK_VA, taxonomy_va

    va = dict(FALLBACK_VA)
    va.update(taxonomy_va())
    docs, labels = [], []
    for e, sits in SITUATIONS.items():
        for i, s in enumerate(sits):
            for n in HELDOUT_NAMES:
                docs.append((f"{e}-{i}-{n}", s.format(n=n)))
                labels.append(e)
    rows = scorer.score(docs)
    top1 = sum(r.dominant[0] == lab for r, lab in zip(rows, labels, strict=True)) / len(rows)
    vals = [r.metrics["valence_mean"] for r in rows]
    return {
        "n": len(rows),
        "top1_accuracy": round(top1, 3),
        "chance": round(1 / len(SITUATIONS), 3),
        "valence_vs_label_valence": corr(vals, [va[lab][0] for lab in labels]),
    }


def corr(x: list[float], y: list[float]) -> dict[str, float]:
    from scipy.stats import pearsonr, spearmanr

    return {
        "pearson": round(float(pearsonr(x, y)[0]), 4),
        "spearman": round(float(spearmanr(x, y)[0]), 4),
        "n": len(x),
    }


def emobank(scorer: Any, n: int, seed: int) -> dict[str, Any]:
    rows = list(csv.DictReader((EVAL / "emobank" / "emobank_train_dev.csv").open(encoding="utf-8")))
    rows = [r for r in rows if len(r["text"].split()) >= 4]
    random.Random(seed).shuffle(rows)
    rows = rows[:n]
    scored = scorer.score([(r["id"], r["text"]) for r in rows])
    val, aro, hv, ha = [], [], [], []
    for r, s in zip(rows, scored, strict=True):
        if s.metrics.get("valence_mean") is None:
            continue
        val.append(s.metrics["valence_mean"])
        aro.append(s.metrics["arousal_mean"])
        hv.append(float(r["V"]))
        ha.append(float(r["A"]))
    out = {"valence_vs_human_V": corr(val, hv), "arousal_vs_human_A": corr(aro, ha)}
    # per-emotion means against human valence: which single directions carry the signal?
    per = {}
    for e in scorer.names:
        xs = [s.emotion_mean[e] for s in scored]
        per[e] = round(float(np.corrcoef(xs, [float(r["V"]) for r in rows])[0, 1]), 4)
    out["emotion_mean_vs_human_V_pearson"] = per
    return out


def pp_chapters(k: int, chars: int) -> list[tuple[str, str]]:
    text = (EVAL / "corpus" / "gutenberg_pg1342_pride_and_prejudice.txt").read_text("utf-8-sig")
    parts = re.split(r"\n\s*Chapter \d+\s*\n", text)
    return [(f"pp-ch{i}", p.strip()[:chars]) for i, p in enumerate(parts) if len(p.strip()) > 1000][
        :k
    ]


def wiki_articles(k: int, chars: int) -> list[tuple[str, str]]:
    text = (EVAL / "corpus" / "wikitext2_valid.txt").read_text("utf-8-sig")
    parts = re.split(r"\n \= [^=\n]+ \= \n", "\n" + text)
    docs = [p.strip() for p in parts if len(p.strip()) > 1000]
    return [(f"wiki-{i}", p[:chars]) for i, p in enumerate(docs)][:k]


def summarize(rows: list[Any]) -> dict[str, Any]:
    def stat(key: str) -> dict[str, float | None]:
        xs = [r.metrics[key] for r in rows if r.metrics.get(key) is not None]
        if not xs:
            return {"mean": None, "sd": None, "n": 0}
        return {
            "mean": round(statistics.fmean(xs), 4),
            "sd": round(statistics.pstdev(xs), 4) if len(xs) > 1 else 0.0,
            "n": len(xs),
        }

    keys = [
        "valence_mean",
        "arousal_mean",
        "distress_mean",
        "distress_max",
        "calm_mean",
        "n_episodes",
        "distress_frac",
        "recovery_rate",
        "time_to_recover",
        "unresolved_end",
        "escalation",
        "volatility",
    ]
    kinds: dict[str, int] = {}
    for r in rows:
        for k in {f.kind for f in r.flags}:
            kinds[k] = kinds.get(k, 0) + 1
    dom: dict[str, int] = {}
    for r in rows:
        if r.dominant:
            dom[r.dominant[0]] = dom.get(r.dominant[0], 0) + 1
    return {
        "docs": len(rows),
        "tokens": sum(r.n_tokens for r in rows),
        "metrics": {k: stat(k) for k in keys},
        "flag_doc_rate": {k: round(v / len(rows), 3) for k, v in sorted(kinds.items())},
        "first_dominant": dict(sorted(dom.items(), key=lambda kv: -kv[1])),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vectors", default=None, help="a VectorSet folder for the embedded model")
    ap.add_argument("--emobank-n", type=int, default=1500)
    ap.add_argument("--docs", type=int, default=15, help="documents per corpus")
    ap.add_argument("--doc-chars", type=int, default=6000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "corpus_eval.json"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from emocurate.configs import ScoreConfig
    from emocurate.corpus.score import Scorer
    from emocurate.vectors.models import load_model
    from emocurate.vectors.vectorset import VectorSet

    t0 = time.perf_counter()
    lm = load_model("stories260K")
    vs = VectorSet.load(args.vectors) if args.vectors else quick_vectors(lm)
    result: dict[str, Any] = {
        "bench": "corpus_eval",
        "model": lm.model_id,
        "vectors": args.vectors or "quick mean-difference fit (8 emotions, bench sentences)",
        "layer": vs.meta.default_layer,
        "emotions": vs.names,
    }
    sent = Scorer(vs, lm, ScoreConfig(smooth=3, progress=False))
    if not args.vectors:
        result["heldout_stories"] = heldout(sent)
    result["emobank"] = emobank(sent, args.emobank_n, args.seed)
    docs = Scorer(vs, lm, ScoreConfig(progress=False))
    pp = docs.score(pp_chapters(args.docs, args.doc_chars))
    wk = docs.score(wiki_articles(args.docs, args.doc_chars))
    result["pride_and_prejudice"] = summarize(pp)
    result["wikitext"] = summarize(wk)
    result["seconds"] = round(time.perf_counter() - t0, 1)
    text = json.dumps(result, indent=2)
    print(text)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
