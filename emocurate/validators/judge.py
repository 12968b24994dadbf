"""Judge: blind relabelling by one or more LLMs, through the generation engine.

The judge never learns which label a text was written for. For every labelled text it is
shown the text alone and a shuffled list of candidate emotions: the intended one, confusable
distractors from the same family (``taxonomy.family_members``), and random others. Nothing in
the prompt marks the intended label; candidates are shuffled with a seed derived from the run
seed and the record id, so the same record gets the same prompt on every run (and hits the
response cache). The judge answers with up to ``max_choices`` ranked emotions, each with a
confidence, as structured output (JSON schema) or, for backends without it, as a JSON object
in text.

A judge *agrees* with a label when the intended emotion is among its first ``accept_rank``
choices; a record is kept when at least ``min_agreement`` of the judges agree for every
labelled text in it. Requests go through :class:`~emocurate.generators.engine.Engine`, so the
judge shares the generators' response cache format, rate limits, retries, cost accounting
and budget, and a killed run resumes request by request.

With several judges the run-level statistics include each judge's agreement with the
intended labels, pairwise agreement between judges, and cleanlab's multi-annotator analysis
(``get_label_quality_multiannotator``, CROWDLAB): a consensus label and quality per text and
a quality score per judge. CROWDLAB needs a model's class probabilities; here the average of
the judges' own confidence distributions stands in for them, which makes the consensus a
confidence-weighted vote rather than an independent check (documented, not hidden).
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from emocurate.configs import JudgeConfig, JudgeSpec
from emocurate.errors import ConfigError
from emocurate.generators.parse import ParseError
from emocurate.records import AnyRecord, Verdict, stable_id
from emocurate.taxonomy import Taxonomy, load_taxonomy
from emocurate.validators.base import LabelItem, keep, label_items, reject

SYSTEM = (
    "You are a careful annotator of emotions in short texts. Read the text and decide which "
    "emotions the person it is about (or the speaker, when the text is what one person says) "
    "most plausibly feels. Judge only from the text. Choose only from the options given."
)
ROLE_INTRO = {
    "story": "Here is a short story.",
    "setup": "Here is a short situation.",
    "human": "Here is what the human says in a conversation with an AI assistant.",
    "assistant": "Here is what the AI assistant says in a conversation with a human.",
}


def candidates(item: LabelItem, taxonomy: Taxonomy, cfg: JudgeConfig, seed: int) -> list[str]:
    """The shuffled options for one text: target, same-family distractors, random others."""
    rng = random.Random(stable_id(str(seed), item.record_id, item.role))
    target = taxonomy.get(item.emotion)
    family = [e for e in taxonomy.family_members(target.family) if e != target.name]
    confusable = rng.sample(family, min(cfg.n_confusable, len(family)))
    others = [e for e in taxonomy.names() if e != target.name and e not in family]
    randoms = rng.sample(others, min(cfg.n_random, len(others)))
    options = [target.name, *confusable, *randoms]
    rng.shuffle(options)
    return options


def judge_schema(options: list[str], max_choices: int) -> dict[str, Any]:
    """JSON schema of the answer: ranked choices from ``options`` with confidences."""
    return {
        "type": "object",
        "properties": {
            "choices": {
                "type": "array",
                "minItems": 1,
                "maxItems": max_choices,
                "items": {
                    "type": "object",
                    "properties": {
                        "emotion": {"type": "string", "enum": list(options)},
                        "confidence": {"type": "number", "minimum": 0, "maximum": 1},
                    },
                    "required": ["emotion", "confidence"],
                    "additionalProperties": False,
                },
            },
        },
        "required": ["choices"],
        "additionalProperties": False,
    }


def judge_prompt(item: LabelItem, options: list[str], cfg: JudgeConfig) -> str:
    """The user message: the text and the options, nothing else about the record."""
    text = item.text.strip()
    if len(text) > cfg.max_chars:
        text = text[: cfg.max_chars] + " …"
    return (
        f"{ROLE_INTRO.get(item.role, ROLE_INTRO['story'])}\n\n<text>\n{text}\n</text>\n\n"
        f"Options (in no particular order): {', '.join(options)}.\n\n"
        f"Pick the 1 to {cfg.max_choices} options that best describe the emotion felt, best "
        "first, each with your confidence from 0 to 1. Answer with a JSON object only, e.g. "
        '{"choices": [{"emotion": "<option>", "confidence": 0.7}]}'
    )


def answer_json(data: Any, text: str, who: str) -> Any:
    """Structured output when the backend gave it, else the JSON object inside the text.

    Raises:
        ParseError: no JSON object could be read (the engine retries the request).
    """
    if data is not None:
        return data
    m = re.search(r"\{.*\}", text or "", re.DOTALL)
    if m is None:
        raise ParseError(f"no JSON object in the {who} answer")
    try:
        return json.loads(m.group(0))
    except json.JSONDecodeError as exc:
        raise ParseError(f"{who} answer is not valid JSON: {exc.msg}") from None


def grader_engine(
    spec: JudgeSpec,
    cache_dir: Path | None,
    *,
    backend: Any = None,
    concurrency: int,
    budget_usd: float | None,
    max_retries: int,
    progress: bool,
    rpm: float | None = None,
) -> tuple[Any, Any]:
    """An engine (and its response cache, one file per backend and model) for an LLM grader."""
    from emocurate.generators.backends import make_backend
    from emocurate.generators.cache import ResponseCache
    from emocurate.generators.engine import Engine, EngineConfig

    backend = backend or make_backend(spec.backend, spec.model, base_url=spec.base_url)
    cache = None
    if cache_dir is not None:
        safe = re.sub(r"[^A-Za-z0-9._-]+", "_", f"{spec.backend}-{spec.model}")
        cache = ResponseCache(cache_dir / f"{safe}.jsonl")
    ecfg = EngineConfig(
        concurrency=concurrency,
        rpm=rpm,
        budget_usd=budget_usd,
        max_retries=max_retries,
        warm_prompt_cache=False,
    )
    return Engine(backend, ecfg, cache, progress=progress), cache


def parse_choices(data: Any, text: str, options: Sequence[str]) -> list[tuple[str, float]]:
    """Ranked ``(emotion, confidence)`` from structured data or a JSON object in the text.

    Raises:
        ParseError: no valid option could be read (the engine retries the request).
    """
    data = answer_json(data, text, "judge's")
    raw = data.get("choices") if isinstance(data, dict) else None
    if not isinstance(raw, list):
        raise ParseError("judge answer has no 'choices' list")
    lookup = {o.lower(): o for o in options}
    out: list[tuple[str, float]] = []
    for ch in raw:
        if not isinstance(ch, dict):
            continue
        name = lookup.get(str(ch.get("emotion", "")).strip().lower())
        if name is None or any(name == e for e, _ in out):
            continue
        try:
            conf = min(1.0, max(0.0, float(ch.get("confidence", 0.0))))
        except (TypeError, ValueError):
            conf = 0.0
        out.append((name, conf))
    if not out:
        raise ParseError("judge picked none of the options")
    return out


class JudgeValidator:
    """Blind LLM relabelling with one or more judges; rejects texts the judges read otherwise."""

    name = "judge"

    def __init__(
        self,
        judges: Sequence[JudgeSpec],
        config: JudgeConfig | None = None,
        taxonomy: Taxonomy | None = None,
        *,
        seed: int = 0,
        cache_dir: str | Path | None = None,
    ) -> None:
        if not judges:
            raise ConfigError("the judge validator needs at least one judge (backend and model)")
        self.judges = list(judges)
        self.config = config or JudgeConfig()
        self.taxonomy = taxonomy or load_taxonomy()
        self.seed = seed
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.stats: dict[str, Any] = {}
        self.backends: dict[int, Any] = {}
        """Pre-built backends by judge index (tests inject fakes here)."""

    def fingerprint(self) -> dict[str, Any]:
        """Judges, settings and seed (no API keys: those live only in the environment)."""
        cfg = self.config.model_dump(
            mode="json", exclude={"progress", "concurrency", "rpm", "max_retries"}
        )
        return {
            "judges": [j.model_dump(mode="json") for j in self.judges],
            "config": cfg,
            "seed": self.seed,
            "version": 1,
            "prompt": stable_id(SYSTEM, *ROLE_INTRO.values()),
        }

    def requests(self, items: Sequence[LabelItem], model: str) -> tuple[list[Any], list[list[str]]]:
        """The chat requests for ``items`` (and each one's options), for one judge model."""
        from emocurate.generators.backends.base import ChatRequest, Message

        reqs, opts = [], []
        for it in items:
            options = candidates(it, self.taxonomy, self.config, self.seed)
            opts.append(options)
            reqs.append(
                ChatRequest(
                    custom_id=f"judge-{it.record_id}-{it.role}",
                    model=model,
                    system=SYSTEM,
                    messages=[Message(role="user", content=judge_prompt(it, options, self.config))],
                    max_tokens=self.config.max_tokens,
                    temperature=self.config.temperature,
                    seed=self.seed,
                    schema_name="emotion_judgement",
                    schema=judge_schema(options, self.config.max_choices),
                    prompt_id="judge",
                    prompt_hash=stable_id(SYSTEM),
                )
            )
        return reqs, opts

    def _run_judge(
        self, k: int, spec: JudgeSpec, items: Sequence[LabelItem]
    ) -> list[list[tuple[str, float]] | None]:
        reqs, opts = self.requests(items, spec.model)
        by_id = {r.custom_id: o for r, o in zip(reqs, opts, strict=True)}
        cfg = self.config
        engine, _ = grader_engine(
            spec,
            self.cache_dir,
            backend=self.backends.get(k),
            concurrency=cfg.concurrency,
            rpm=cfg.rpm,
            budget_usd=cfg.budget_usd,
            max_retries=cfg.max_retries,
            progress=cfg.progress,
        )

        def check(req: Any, comp: Any) -> None:
            parse_choices(comp.data, comp.text, by_id[req.custom_id])

        results = engine.run_sync(reqs, check=check)
        self.stats.setdefault("engine", {})[f"{spec.backend}:{spec.model}"] = (
            engine.stats.model_dump(
                mode="json",
                include={
                    "done",
                    "cached",
                    "failed",
                    "calls",
                    "retries",
                    "usd_spent",
                    "input_tokens",
                    "output_tokens",
                },
            )
        )
        out: list[list[tuple[str, float]] | None] = []
        for res, options in zip(results, opts, strict=True):
            if res.ok and res.completion is not None:
                out.append(parse_choices(res.completion.data, res.completion.text, options))
            else:
                out.append(None)
        return out

    def check(self, records: Sequence[AnyRecord]) -> list[Verdict]:
        """One verdict per record, from every judge's picks for each of its labelled texts."""
        cfg = self.config
        self.stats = {}
        items = label_items(records)
        targets = [self.taxonomy.get(it.emotion).name for it in items]
        picks = [self._run_judge(k, spec, items) for k, spec in enumerate(self.judges)]
        names = [f"{s.backend}:{s.model}" for s in self.judges]
        item_info: list[dict[str, Any]] = []
        for n, (it, target) in enumerate(zip(items, targets, strict=True)):
            votes: dict[str, Any] = {}
            agree, answered, conf = 0, 0, []
            for name, jp in zip(names, picks, strict=True):
                ch = jp[n]
                if ch is None:
                    votes[name] = None
                    continue
                answered += 1
                ranked = [e for e, _ in ch]
                rank = ranked.index(target) + 1 if target in ranked else None
                ok = rank is not None and rank <= cfg.accept_rank
                agree += ok
                conf.append(dict(ch).get(target, 0.0))
                votes[name] = {
                    "picks": [[e, round(c, 3)] for e, c in ch],
                    "rank": rank,
                    "agrees": ok,
                }
            item_info.append(
                {
                    "role": it.role,
                    "intended": target,
                    "judges": votes,
                    "answered": answered,
                    "agreement": (agree / answered) if answered else None,
                    "confidence": float(np.mean(conf)) if conf else None,
                }
            )
        self._agreement_stats(items, targets, picks, names, item_info)
        return self._verdicts(records, items, item_info)

    def _verdicts(
        self, records: Sequence[AnyRecord], items: Sequence[LabelItem], info: list[dict[str, Any]]
    ) -> list[Verdict]:
        cfg = self.config
        by_record: dict[int, list[dict[str, Any]]] = {}
        for it, inf in zip(items, info, strict=True):
            by_record.setdefault(it.index, []).append(inf)
        out: list[Verdict] = []
        failed = 0
        for i, r in enumerate(records):
            infos = by_record.get(i, [])
            if not infos:
                out.append(keep(r, self.name, note="no label to judge"))
                continue
            if any(inf["agreement"] is None for inf in infos):
                failed += 1
                out.append(keep(r, self.name, note="no judge answered", items=infos))
                continue
            score = float(min(inf["confidence"] for inf in infos))
            bad = [inf for inf in infos if inf["agreement"] < cfg.min_agreement]
            if not bad:
                out.append(keep(r, self.name, score=score, items=infos))
                continue
            inf = bad[0]
            tops = [v["picks"][0][0] for v in inf["judges"].values() if v]
            who = f" ({inf['role']})" if inf["role"] in ("human", "assistant") else ""
            reason = (
                f"judge_disagrees: labelled {inf['intended']}{who}, judges read "
                f"{', '.join(dict.fromkeys(tops))} (agreement {inf['agreement']:.0%})"
            )
            details = {"items": infos, "suggested": tops[0] if tops else ""}
            if "consensus" in inf:
                details["suggested"] = inf["consensus"]
            if cfg.reject:
                out.append(reject(r, self.name, reason, score=score, **details))
            else:
                out.append(keep(r, self.name, score=score, flag=reason, **details))
        self.stats["unanswered_records"] = failed
        self.stats["incomplete"] = failed > 0
        return out

    def _agreement_stats(
        self,
        items: Sequence[LabelItem],
        targets: list[str],
        picks: list[list[list[tuple[str, float]] | None]],
        names: list[str],
        info: list[dict[str, Any]],
    ) -> None:
        per_judge: dict[str, Any] = {}
        for name, jp in zip(names, picks, strict=True):
            answered = [(t, p) for t, p in zip(targets, jp, strict=True) if p is not None]
            top1 = sum(1 for t, p in answered if p[0][0] == t)
            within = sum(
                1 for t, p in answered if t in [e for e, _ in p][: self.config.accept_rank]
            )
            per_judge[name] = {
                "answered": len(answered),
                "failed": len(jp) - len(answered),
                "top1_agreement": round(top1 / len(answered), 4) if answered else None,
                "accept_agreement": round(within / len(answered), 4) if answered else None,
            }
        self.stats.update({"texts": len(items), "judges": per_judge})
        if len(names) < 2:
            return
        pair: dict[str, float | None] = {}
        for a in range(len(names)):
            for b in range(a + 1, len(names)):
                both = [(x, y) for x, y in zip(picks[a], picks[b], strict=True) if x and y]
                pair[f"{names[a]} | {names[b]}"] = (
                    round(sum(x[0][0] == y[0][0] for x, y in both) / len(both), 4) if both else None
                )
        self.stats["pairwise_top1_agreement"] = pair
        self.stats["multiannotator"] = _crowdlab(targets, picks, names, info)


def _crowdlab(
    targets: list[str],
    picks: list[list[list[tuple[str, float]] | None]],
    names: list[str],
    info: list[dict[str, Any]],
) -> dict[str, Any]:
    """cleanlab multi-annotator statistics over the judges' top picks (see module docstring)."""
    classes = sorted({*targets, *(e for jp in picks for p in jp if p for e, _ in p)})
    idx = {c: i for i, c in enumerate(classes)}
    n, m, k = len(targets), len(names), len(classes)
    labels = np.full((n, m), np.nan)
    soft = np.full((n, k), 1e-3)
    for j, jp in enumerate(picks):
        for i, p in enumerate(jp):
            if p is None:
                continue
            labels[i, j] = idx[p[0][0]]
            total = sum(c for _, c in p) or 1.0
            for e, c in p:
                soft[i, idx[e]] += (c or 1e-3) / total
    keep_rows = ~np.all(np.isnan(labels), axis=1)
    if keep_rows.sum() == 0 or k < 2:
        return {"skipped": "not enough answers"}
    soft = soft / soft.sum(axis=1, keepdims=True)
    try:
        import pandas as pd
        from cleanlab.multiannotator import get_label_quality_multiannotator

        frame = pd.DataFrame(labels[keep_rows], columns=names)
        res = get_label_quality_multiannotator(frame, soft[keep_rows], verbose=False)
    except Exception as exc:  # cleanlab refuses degenerate inputs (e.g. one judge answered)
        return {
            "skipped": f"cleanlab: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
        }
    lq = res["label_quality"]
    rows = np.flatnonzero(keep_rows)
    n_diff = 0
    for r_i, row in zip(rows, lq.itertuples(index=False), strict=True):
        cons = classes[int(row.consensus_label)]
        info[r_i]["consensus"] = cons
        info[r_i]["consensus_quality"] = round(float(row.consensus_quality_score), 4)
        n_diff += cons != targets[r_i]
    ann = res.get("annotator_stats")
    annotators = {}
    if ann is not None:
        for name, row in ann.iterrows():
            annotators[str(name)] = {
                "quality": round(float(row["annotator_quality"]), 4),
                "agreement_with_consensus": round(float(row["agreement_with_consensus"]), 4),
            }
    return {
        "method": "cleanlab get_label_quality_multiannotator (crowdlab); pred_probs = mean of judges' confidences",
        "consensus_differs_from_intended": int(n_diff),
        "mean_annotator_agreement": round(float(lq["annotator_agreement"].mean()), 4),
        "mean_consensus_quality": round(float(lq["consensus_quality_score"].mean()), 4),
        "annotators": annotators,
    }
