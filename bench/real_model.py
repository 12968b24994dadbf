"""The science of issue 17, measured on SmolLM2-135M-Instruct on CPU (prints JSON).

6a held-out accuracy on the fitting distribution (the bundled scenarios) vs the lexical
baseline, paired interval: ``emocurate fit --records bundled:scenarios --model smollm2-135m``
run as a subprocess at its defaults (plus ``--neutral bundled:neutral``).
6b transfer to human text not fitted on: ``emocurate vectors evaluate`` of that set on
GoEmotions dev (Ekman) and XED (single-label, six emotions), beside the majority class, a
logistic probe trained on the same (scenario) activations and a TF-IDF model trained on the
scenarios (same transfer), and in-domain ceilings (5-fold probe and TF-IDF on the target data).
6c geometry on the taxonomy's 171 emotions from template sentences (see ``TEMPLATES``):
PC1 vs valence, PC2 vs arousal, r with a 95% Fisher interval, per layer.
6d steering judged by an external classifier (TF-IDF logistic on GoEmotions train, Ekman):
6 emotions x 5 prompts, doses 0..max, the target's probability must rise with the dose
(Spearman rho > 0 over the doses) while perplexity (under the unsteered model) stays <= 2x.
6e per-layer profile over all 30 layers (held-out accuracy and AUROC on the scenarios,
transfer AUROC on GoEmotions, valence r) as ``docs/figures/real_model_layers.svg``.
Also: the recipe variants (plain mean-diff, neutral-PC projection, per-dimension
standardisation, both) that ``docs/vectors.md`` cites for the default.

Activations are cached as ``.npz`` under ``--cache`` (pooled: mean over every token but the
first); the CLI results (``cli.json``) and steering (``steer.json``) are kept there too.
Usage: ``PYTHONPATH=$PWD python bench/real_model.py [--cache DIR] [--go-cap 1000]
[--xed-cap 800] [--part all|cache|cli|steer]`` (parts can run in separate processes; ``all``
assembles ``bench/results/real_model.json`` and ``docs/figures/real_model_layers.svg``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from real_model_data import (  # noqa: E402
    cached,
    goemotions,
    pooled_all_layers,
    token_moments,
    write_jsonl,
    xed,
)

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "real_model.json"
FIGURE = ROOT / "docs" / "figures" / "real_model_layers.svg"
MODEL = "smollm2-135m"
TEMPLATES = [
    "I am feeling {w} right now.",
    "She felt {w} when she opened the letter.",
    "He was {w} for the rest of the day.",
    "They all seemed {w} after the meeting.",
    "Feeling {w}, I walked home slowly.",
    "My friend told me she was {w}.",
    "We were {w} when the news arrived.",
    "Honestly, I have never been so {w}.",
]
"""Template sentences for the geometry (6c): 171 emotions x 8 = 1,368 sentences in seconds on
CPU. They name the emotion word, so 6c reads the model's concept of the word in context, not
an emotion shown without naming it (generated stories would, at ~27 tok/s: hours for 171)."""


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _columns(rows: list[dict[str, Any]]) -> tuple[list[str], list[str]]:
    return [r["text"] for r in rows], [r["label"] for r in rows]


def activations(lm: Any, cache: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Texts, labels and cached pooled activations of every data set, and the token moments."""
    from emocurate.taxonomy import load_taxonomy
    from emocurate.vectors.labelled import read_labelled

    scen = read_labelled("bundled:scenarios").records
    neutral = [
        json.loads(line)["text"]
        for line in (ROOT / "emocurate/data/neutral/neutral_en.jsonl").read_text().splitlines()
    ]
    names = load_taxonomy().names()
    tmpl = [(t.format(w=n), n) for n in names for t in TEMPLATES]
    sets: dict[str, tuple[list[str], list[str]]] = {
        "scenarios": ([r.text for r in scen], [r.emotion for r in scen]),
        "goemotions": _columns(goemotions("dev", args.go_cap)),
        "xed": _columns(xed(args.xed_cap)),
        "templates": ([t for t, _ in tmpl], [n for _, n in tmpl]),
        "neutral": (neutral, ["neutral"] * len(neutral)),
    }
    out: dict[str, Any] = {}
    for name, (texts, labels) in sets.items():
        t0 = time.perf_counter()
        z = cached(
            cache / f"{name}.npz",
            lambda texts=texts: {"x": pooled_all_layers(lm, list(texts)).astype(np.float16)},
        )
        log(f"{name}: {len(texts)} texts pooled ({time.perf_counter() - t0:.0f}s)")
        out[name] = {"texts": list(texts), "labels": list(labels), "x": z["x"].astype(np.float32)}
    for name in ("neutral", "scenarios"):
        t0 = time.perf_counter()
        texts = out[name]["texts"][
            :: max(1, len(out[name]["texts"]) // 400)
        ]  # label-free: a subset will do
        out[f"moments_{name}"] = cached(
            cache / f"moments_{name}.npz", lambda texts=texts: token_moments(lm, texts)
        )
        log(f"token moments of {name} ({time.perf_counter() - t0:.0f}s)")
    return out


def analyses(data: dict[str, Any], n_layers: int) -> dict[str, Any]:
    """Recipe variants, 6a (numpy mirror), 6b, 6c and 6e on the cached activations."""
    import real_model_analysis as A

    from emocurate.taxonomy import load_taxonomy
    from emocurate.vectors.fit import emotion_order
    from emocurate.vectors.models import default_layer

    names = emotion_order(data["scenarios"]["labels"])
    idx = {n: i for i, n in enumerate(names)}
    xs, ys = data["scenarios"]["x"], np.array([idx[x] for x in data["scenarios"]["labels"]])
    targets = {
        k: (data[k]["x"], np.array([idx[x] for x in data[k]["labels"]]), data[k]["texts"])
        for k in ("goemotions", "xed")
    }
    mom_n, mom_s = data["moments_neutral"], data["moments_scenarios"]
    sp = A.splits(ys)
    n_e = len(names)
    layer0 = default_layer(n_layers)

    def recipe(layer: int, rows: np.ndarray, variant: str) -> A.Recipe:
        std, pcs = A.VARIANTS[variant]
        return A.Recipe(
            xs[rows, layer],
            ys[rows],
            n_e,
            standardize=std,
            pcs=pcs,
            neutral={"mean": mom_n["mean"][layer], "cov": mom_n["cov"][layer]},
            train_tokens={"mean": mom_s["mean"][layer], "cov": mom_s["cov"][layer]},
        )

    out: dict[str, Any] = {"names": names, "default_layer": layer0, "n": {}}
    out["n"] = {k: len(data[k]["texts"]) for k in ("scenarios", "goemotions", "xed", "templates")}
    # the massive dimension: spread of the top dimension over the median, per layer
    massive = []
    for layer in range(n_layers):
        sd_doc = xs[:, layer].std(0)
        sd_tok = np.sqrt(np.clip(np.diag(mom_s["cov"][layer]), 0, None))
        massive.append(
            {
                "layer": layer,
                "top_dim": int(sd_tok.argmax()),
                "token_ratio": float(sd_tok.max() / np.median(sd_tok)),
                "doc_ratio": float(sd_doc.max() / np.median(sd_doc)),
            }
        )
    out["massive_dims"] = massive
    log("massive dims measured")
    # variants x layers: scenario held-out accuracy/AUROC, transfer accuracy/AUROC
    variants: dict[str, Any] = {}
    for variant in A.VARIANTS:
        rows = []
        for layer in range(n_layers):
            accs, aucs = [], []
            for tr, te in sp:
                z = recipe(layer, tr, variant).scores(xs[te, layer])
                accs.append(float((z.argmax(1) == ys[te]).mean()))
                aucs.append(A.macro_auroc(z, ys[te]))
            full = recipe(layer, np.arange(len(ys)), variant)
            row: dict[str, Any] = {"layer": layer, "acc": float(np.mean(accs))}
            row["acc_per_seed"], row["auroc"] = accs, float(np.mean(aucs))
            for k, (xt, yt, _) in targets.items():
                z = full.scores(xt[:, layer])
                row[f"{k}_acc"] = float((z.argmax(1) == yt).mean())
                row[f"{k}_auroc"] = A.macro_auroc(z, yt)
            rows.append(row)
        variants[variant] = rows
        log(f"variant {variant}: {n_layers} layers")
    out["variants"] = variants
    chosen = "standardized+neutral_pcs"
    # 6a mirror: held-out accuracy vs lexical on the scenarios, paired over the same splits
    lex = []
    for tr, te in sp:
        prob = A.tfidf(
            [data["scenarios"]["texts"][i] for i in tr],
            ys[tr],
            [data["scenarios"]["texts"][i] for i in te],
        )
        lex.append(float((prob.argmax(1) == ys[te]).mean()))
    vec = variants[chosen][layer0]["acc_per_seed"]
    n_tr, n_te = len(sp[0][0]), len(sp[0][1])
    out["6a_numpy"] = {
        "layer": layer0,
        "accuracy": float(np.mean(vec)),
        "accuracy_ci": A.t_interval(vec, n_tr, n_te),
        "lexical": float(np.mean(lex)),
        "diff": float(np.mean(vec) - np.mean(lex)),
        "diff_ci": A.t_interval([a - b for a, b in zip(vec, lex, strict=True)], n_tr, n_te),
    }
    # 6b: transfer at the default layer, beside probe and TF-IDF trained on the scenarios,
    # and in-domain ceilings on the target data
    t6b: dict[str, Any] = {}
    for k, (xt, yt, texts) in targets.items():
        full = recipe(layer0, np.arange(len(ys)), chosen)
        z = full.scores(xt[:, layer0])
        pv = A.probe(xs[:, layer0], ys, xt[:, layer0])
        pt = A.tfidf(data["scenarios"]["texts"], ys, texts)
        counts = np.bincount(yt, minlength=n_e)
        vc, tc = z.argmax(1) == yt, pt.argmax(1) == yt
        t6b[k] = {
            "n": len(yt),
            "label_counts": {names[e]: int(c) for e, c in enumerate(counts)},
            "vectors": {
                "accuracy": float(vc.mean()),
                "accuracy_ci": A.wilson(int(vc.sum()), len(yt)),
                "macro_auroc": A.macro_auroc(z, yt),
            },
            "majority": {
                "label": names[int(counts.argmax())],
                "accuracy": float(counts.max() / len(yt)),
            },
            "probe_transfer": {
                "accuracy": float((pv.argmax(1) == yt).mean()),
                "macro_auroc": A.macro_auroc(pv, yt),
            },
            "tfidf_transfer": {"accuracy": float(tc.mean()), "macro_auroc": A.macro_auroc(pt, yt)},
            "vectors_minus_tfidf_acc_ci": A.paired_boot(vc, tc),
            "probe_in_domain_cv": A.cv_in_domain(xt[:, layer0], None, yt),
            "tfidf_in_domain_cv": A.cv_in_domain(None, texts, yt),
            "best_layer_by_scenarios": int(np.argmax([r["acc"] for r in variants[chosen]])),
        }
        log(f"6b {k}")
    out["6b"] = t6b
    # 6c + 6e: geometry on the taxonomy's emotions from template sentences, per layer
    tax = load_taxonomy()
    tnames = tax.names()
    tl = np.array([tnames.index(n) for n in data["templates"]["labels"]])
    xt_all = data["templates"]["x"]
    val = np.array([tax.get(n).valence for n in tnames])
    aro = np.array([tax.get(n).arousal for n in tnames])
    geo = []
    for layer in range(n_layers):
        r = A.Recipe(
            xt_all[:, layer],
            tl,
            len(tnames),
            standardize=2,
            pcs=True,
            neutral={"mean": mom_n["mean"][layer], "cov": mom_n["cov"][layer]},
            train_tokens={"mean": mom_s["mean"][layer], "cov": mom_s["cov"][layer]},
        )
        g = A.geometry_r(r.vectors, val, aro)
        g["layer"] = layer
        geo.append(g)
    out["6c"] = {"source": "8 template sentences x 171 taxonomy emotions", "by_layer": geo}
    out["6c"]["default_layer"] = geo[layer0]
    log("6c geometry")
    return out


def cli(args: list[str], timeout: int = 3600) -> tuple[str, float]:
    """Run ``emocurate ARGS`` as a user would (subprocess); stdout and wall seconds."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    t0 = time.perf_counter()
    res = subprocess.run(
        [sys.executable, "-m", "emocurate.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )
    if res.returncode != 0:
        raise SystemExit(f"emocurate {' '.join(args)} failed: {res.stderr[-2000:]}")
    return res.stdout, time.perf_counter() - t0


def cli_results(cache: Path, args: argparse.Namespace) -> dict[str, Any]:
    """6a and 6b through the CLI at its defaults (fit once, kept in the cache)."""
    vs_dir = cache / "vs_smollm2"
    out: dict[str, Any] = {"vectors": str(vs_dir)}
    fit_args = ["fit", "--records", "bundled:scenarios", "--model", MODEL]
    # --standardize dims: the recipe the published table was measured with (docs/vectors.md)
    fit_args += ["--neutral", "bundled:neutral", "--standardize", "dims", "--out", str(vs_dir)]
    out["fit_command"] = "emocurate " + " ".join(fit_args[:-1]) + " VECTORS"
    if not (vs_dir / "evaluation.json").exists():
        _, out["fit_s"] = cli(fit_args)
    ev = json.loads((vs_dir / "evaluation.json").read_text())
    out["6a"] = {
        k: ev.get(k)
        for k in ("chosen_layer", "layer_selection", "accuracy", "accuracy_ci", "majority")
    }
    out["6a"]["lexical"] = (ev.get("lexical") or {}).get("mean")
    out["6a"]["vs_lexical"] = ev.get("vs_lexical")
    out["6a"]["auroc_mean"] = ev.get("auroc_mean")
    for name, rows in (
        ("goemotions", goemotions("dev", args.go_cap)),
        ("xed", xed(args.xed_cap)),
    ):
        path = write_jsonl(cache / f"{name}.jsonl", rows)
        stdout, secs = cli(
            ["vectors", "evaluate", str(vs_dir), "--on", str(path), "--json", "--save"]
        )
        rep = json.loads(stdout)
        out[f"6b_{name}"] = {
            k: rep.get(k)
            for k in (
                "n",
                "n_input",
                "n_skipped_short",
                "accuracy",
                "accuracy_ci",
                "auroc_mean",
                "majority",
                "majority_label",
                "lexical",
                "lexical_kind",
                "vs_lexical",
                "layer",
            )
        }
        out[f"6b_{name}"]["seconds"] = round(secs, 1)
        log(f"CLI evaluate on {name}")
    return out


def figure(result: dict[str, Any]) -> str:
    """6e: per-layer accuracy, AUROC and valence r (the chosen recipe) as an SVG."""
    from emocurate.cards.svg import line_chart

    rows = result["variants"]["standardized+neutral_pcs"]
    geo = result["6c"]["by_layer"]
    layers = [r["layer"] for r in rows]
    return line_chart(
        layers,
        {
            "held-out accuracy (scenarios)": [r["acc"] for r in rows],
            "held-out AUROC (scenarios)": [r["auroc"] for r in rows],
            "transfer AUROC (GoEmotions)": [r["goemotions_auroc"] for r in rows],
            "PC1-valence |r| (171 emotions)": [g["pc1_valence_r"] for g in geo],
        },
        title=f"{MODEL}: emotion vectors by layer",
        x_label="layer",
        references={"chance (6)": 1 / 6, "AUROC 0.5": 0.5, "target 0.65": 0.65},
        width=720,
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cache", type=Path, default=Path.home() / ".cache/emocurate/bench_real")
    ap.add_argument("--go-cap", type=int, default=1000, help="GoEmotions dev rows (seeded sample)")
    ap.add_argument("--xed-cap", type=int, default=800)
    ap.add_argument(
        "--part",
        choices=["all", "cache", "analyse", "cli", "steer"],
        default="all",
        help="run one part only (each keeps its result in the cache; 'all' assembles them, "
        "running what is not cached yet)",
    )
    ap.add_argument("--skip-steer", action="store_true", help="assemble without 6d")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from emocurate.vectors.models import load_model

    cli_json, steer_json = args.cache / "cli.json", args.cache / "steer.json"
    if args.part in ("all", "cli") and not cli_json.exists():
        cli_json.write_text(json.dumps(cli_results(args.cache, args)))
    lm = load_model(MODEL)
    if args.part in ("all", "steer") and not steer_json.exists() and not args.skip_steer:
        from real_model_steer import steering

        from emocurate.vectors.vectorset import VectorSet

        t0 = time.perf_counter()
        steer = steering(lm, VectorSet.load(args.cache / "vs_smollm2"))
        steer["seconds"] = round(time.perf_counter() - t0, 1)
        steer_json.write_text(json.dumps(steer))
        log("6d steering")
    if args.part in ("cli", "steer"):
        return
    data = activations(lm, args.cache, args)
    if args.part == "cache":
        return
    result: dict[str, Any] = {"model": MODEL, "command": " ".join(["python", *sys.argv])}
    analysis_json = args.cache / "analysis.json"
    if args.part == "analyse" or not analysis_json.exists():
        t0 = time.perf_counter()
        part = analyses(data, lm.n_layers)
        part["analysis_s"] = round(time.perf_counter() - t0, 1)
        analysis_json.write_text(json.dumps(part))
    if args.part == "analyse":
        return
    result.update(json.loads(analysis_json.read_text()))
    FIGURE.parent.mkdir(parents=True, exist_ok=True)
    FIGURE.write_text(figure(result) + "\n")
    result["cli"] = json.loads(cli_json.read_text())
    result["6d"] = (
        json.loads(steer_json.read_text())
        if steer_json.exists()
        else {"not_measured": "--skip-steer and no cached steer.json"}
    )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
