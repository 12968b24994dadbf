"""Calibrated flags: thresholds measured at the length of the document being scored.

A fixed threshold in z units says little: the smoothed composites live on a narrower scale than
the per-token reference they are z-scored against. And a threshold that is a quantile of a
per-document statistic only holds for documents as long as the reference's: a maximum over more
tokens is larger (the first calibration cut reference documents into 256-token chunks and assumed
every chunk was that long; a reference of 88-token texts promised 1% and fired on 4% of
357-token documents).

So every flag family has a per-document statistic ``s(doc)`` ("flagged at threshold t iff
s(doc) > t") and its distribution is measured **at a ladder of lengths**: the reference
documents' z-scores are joined end to end (as a corpus of longer documents would be) and cut
into pieces of n tokens for n = 16, 23, 32, 45, ... (ratio sqrt 2) as long as the reference
gives :data:`MIN_PIECES` pieces; each piece is smoothed and analysed as a document.

* ``distress`` -- the highest level at which the piece has a distress episode
  (:func:`~emocurate.corpus.regulation.sustained_level`). Drives ``distress_episode`` and what
  derives from an episode (``unrecovered_distress``, ``unresolved_end``, ``escalation``,
  ``escalating_response``).
* ``valence_high`` and ``valence_low`` -- the highest and (negated) lowest smoothed valence of
  the piece: each side of a swing (``high_volatility``) on its own. Calibrating the swing level
  itself (both sides at once) let one real affect beside neutral text fire on ~10-15% of such
  documents: only the other side needed noise (issue 18). Each side now needs a level neutral
  text reaches on a share r of documents, so ``high_volatility`` fires on **at most** r of
  neutral documents (usually far fewer: both sides, three alternating visits).
* ``regulation`` -- the highest level below which the regulation axis has a run (negated).
* ``mirroring`` -- per human->assistant pair, the level below which it is mirrored
  (:func:`pair_levels`; per pair, not per length).

At score time a promised rate ``r`` and a document of ``n`` tokens give ``t = Q_n(1 - r)``,
interpolated in log n between the two nearest ladder lengths; past the longest length L the
document counts as n / L independent pieces, ``t = Q_L((1 - r)^(L / n))``; for a dialogue with P
pairs ``t = Q_pair((1 - r)^(1 / P))``, never under the token-level arousal quantile at ``1 - r``
(a narrow reference put the pair level near neutral; there mirroring fires on at most r). Upper
quantiles beyond the measured pieces are extrapolated
with an exponential tail fitted to the highest pieces (the tail of a maximum of many weakly
dependent values). So **each flag family fires on a share r of reference-like documents of any
length** (``high_volatility``: at most r).
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from emocurate.configs import MetricConfig
from emocurate.corpus.calibration import (  # the artifact; re-exported for callers
    CALIBRATION_FILE,
    DEFAULT_RATE,
    FLOOR,
    KINDS_OF_STAT,
    MAX_PIECES,
    MAX_TOKENS,
    MIN_PAIRS,
    MIN_PIECES,
    NEUTRAL_SUBDIR,
    RECOVER_QUANTILE,
    SHORTEST,
    VERSION,
    Calibration,
    FlagRates,
    Ladder,
    LengthQuantiles,
    PositionProfile,
    Quantiles,
    load_calibration,
    missing_message,
    position_profile,
    vectors_hash,
)
from emocurate.corpus.regulation import (
    Axes,
    TurnSpan,
    analyse,
    arousal_of,
    mirroring_level,
    n_pairs,
    pair_levels,
    smooth,
    sustained_level,
    valence_of,
)
from emocurate.corpus.summary import SHIFT_BAND, SHIFT_MIN_DOCS, reference_shift
from emocurate.errors import InputError

if TYPE_CHECKING:
    from emocurate.configs import ScoreConfig
    from emocurate.corpus.readers import Doc
    from emocurate.corpus.score import Preparer
    from emocurate.vectors.models import LoadedModel

__all__ = [
    "CALIBRATION_FILE",
    "DEFAULT_RATE",
    "FLOOR",
    "KINDS_OF_STAT",
    "MAX_PIECES",
    "MAX_TOKENS",
    "MIN_PAIRS",
    "MIN_PIECES",
    "NEUTRAL_SUBDIR",
    "RECOVER_QUANTILE",
    "SHIFT_BAND",
    "SHIFT_MIN_DOCS",
    "SHORTEST",
    "VERSION",
    "Calibration",
    "Ladder",
    "LengthQuantiles",
    "Quantiles",
    "calibrate",
    "calibration_from_scores",
    "flag_rates",
    "ladder_lengths",
    "load_calibration",
    "mirroring_level",
    "missing_message",
    "n_pairs",
    "pair_levels",
    "piece_statistics",
    "reference_inputs",
    "reference_ladders",
    "reference_shift",
    "vectors_hash",
]


def ladder_lengths(n_tokens: int) -> list[int]:
    """16, 23, 32, 45, ... (ratio sqrt 2) while the reference gives ``MIN_PIECES`` pieces."""
    out: list[int] = []
    k = 0
    while True:
        n = round(SHORTEST * 2 ** (k / 2))
        if n_tokens // n < MIN_PIECES:
            break
        out.append(n)
        k += 1
    return out or [max(1, n_tokens // MIN_PIECES)]


class JoinedValence:
    """Valence of any piece of the reference documents joined end to end, smoothed within the
    piece as a scored document is (valence is not linear in z, so it cannot be joined first);
    the documents stay as they are (no joined copy of every emotion's z-scores)."""

    def __init__(self, parts: list[np.ndarray], weights: np.ndarray, smooth_k: int) -> None:
        self.parts, self.weights, self.k = parts, weights, smooth_k
        self.starts = np.cumsum([0] + [len(p) for p in parts])

    def __call__(self, lo: int, n: int) -> np.ndarray:
        first = int(np.searchsorted(self.starts, lo, side="right")) - 1
        rows, pos, i = [], lo, first
        while pos < lo + n and i < len(self.parts):
            a = pos - int(self.starts[i])
            take = self.parts[i][a : a + (lo + n - pos)]
            rows.append(take)
            pos += len(take)
            i += 1
        return valence_of(smooth(np.concatenate(rows), self.k), self.weights)


def piece_statistics(
    d_raw: np.ndarray,
    v_piece: JoinedValence | None,
    r_raw: np.ndarray | None,
    cfg: MetricConfig,
    rho: float,
    n: int,
) -> dict[str, np.ndarray]:
    """The statistics of the non-overlapping ``n``-token pieces of the joined raw series (at
    most :data:`MAX_PIECES` and :data:`MAX_TOKENS` tokens, at least :data:`MIN_PIECES`, evenly
    spaced)."""
    out: dict[str, list[float]] = {}
    starts = np.arange(0, len(d_raw) - n + 1, n)
    keep = max(MIN_PIECES, min(MAX_PIECES, MAX_TOKENS // n))
    if len(starts) > keep:  # enough for the tail; evenly over the reference
        starts = starts[np.linspace(0, len(starts) - 1, keep).round().astype(int)]
    for lo in starts.tolist():
        raw = d_raw[lo : lo + n]
        out.setdefault("distress", []).append(
            sustained_level(smooth(raw, cfg.smooth), raw, cfg.min_episode, cfg.merge_gap, rho)
        )
        if v_piece is not None:  # each side of a swing on its own (see module docstring)
            piece = v_piece(lo, n)
            out.setdefault("valence_high", []).append(float(piece.max()))
            out.setdefault("valence_low", []).append(float(-piece.min()))
        if r_raw is not None:
            raw = -r_raw[lo : lo + n]
            out.setdefault("regulation", []).append(
                sustained_level(smooth(raw, cfg.smooth), raw, cfg.min_episode, cfg.merge_gap)
            )
    return {k: np.asarray(v) for k, v in out.items()}


# -- the reference at every position ----------------------------------------------------------

JOIN_MAX_TOKENS = 1024  # joined reference documents are at most this long (and one window)
JOIN_MIN_DOCS = 32  # and at least this many (texts are reused): tokens at every position


def window_positions(windows: Sequence[tuple[int, int, int]], n: int, skip: int) -> np.ndarray:
    """Each stitched token's position in the window it was kept from (BOS, when there is one,
    is position 0: ``skip`` = 1), as :func:`~emocurate.corpus.score.plan_windows` keeps them."""
    out = np.zeros(n, dtype=np.int64)
    for start, length, keep in windows:
        out[start + keep : start + length] = np.arange(skip + keep, skip + length)
    return out


def join_reference(
    docs: Sequence[Doc], preparer: Preparer, min_docs: int = JOIN_MIN_DOCS
) -> list[Doc]:
    """The reference texts joined end to end (blank line between) into documents of up to
    ``min(window body, JOIN_MAX_TOKENS)`` tokens, prose with prose and dialogues with dialogues.

    Why: a model's activations drift with a token's position in its context, and a reference of
    short texts shows the calibration only early positions; a long document's tokens sit deep
    in the window (issue 18: 92 of 100 long neutral documents flagged at 1%). Joined, the
    reference has tokens at every position up to the join length, so the position profile
    (:class:`~emocurate.corpus.calibration.PositionProfile`) can be measured and removed. The
    texts go in a seeded shuffled order, each at least once; when they fill fewer than
    ``min_docs`` documents they are reused (reshuffled) until there are that many, so the first
    positions have at least ``min_docs`` tokens each.
    """
    from emocurate.corpus.readers import Doc
    from emocurate.corpus.score import find_turns

    budget = min(preparer.body_len, JOIN_MAX_TOKENS)
    lengths = [len(x) for x in tokenize(preparer.tokenizer, [d.text for d in docs])]
    sep = "\n\n"
    sep_len = len(preparer.tokenizer(sep, add_special_tokens=False)["input_ids"])
    groups: dict[bool, list[int]] = {False: [], True: []}
    for i, d in enumerate(docs):
        groups[bool(find_turns(d.text))].append(i)
    total = max(1, sum(lengths))
    rng = random.Random(0)
    out: list[Doc] = []
    for is_dialogue, idx in groups.items():
        if not idx:
            continue
        tokens = sum(lengths[i] for i in idx)
        want = max(math.ceil(tokens / budget), math.ceil(min_docs * tokens / total), 1)
        order: list[int] = []
        used = 0  # texts taken from the first shuffled pass (all of them go in at least once)
        made: list[list[int]] = []
        while len(made) < want or used < len(idx):
            parts: list[int] = []
            n = 0
            while True:
                if not order:
                    order = idx[:]
                    rng.shuffle(order)
                i = order[-1]
                if parts and n + sep_len + lengths[i] > budget:
                    break
                order.pop()
                used += 1
                parts.append(i)
                n += lengths[i] + (sep_len if len(parts) > 1 else 0)
                if n >= budget:
                    break
            made.append(parts)
        kind = "dialogue" if is_dialogue else "prose"
        for k, parts in enumerate(made):
            text = sep.join(docs[i].text for i in parts)
            out.append(Doc(f"joined-{kind}-{k}", text, "(joined reference)", f"{kind} {k}"))
    return out


# -- the calibration run -------------------------------------------------------------------------


def reference_inputs(vectors_dir: str | Path, reference: Sequence[str | Path] | None) -> list[str]:
    """The reference inputs: as given, else ``VECTORS/neutral``; stage folders read via ``data/``."""
    if not reference:
        default = Path(vectors_dir) / NEUTRAL_SUBDIR
        if not default.exists():
            raise InputError(
                f"{vectors_dir} has no neutral reference ({default} not found): run "
                f"`emocurate calibrate {vectors_dir} --reference CORPUS` with neutral text "
                "(e.g. the fit's neutral dialogues folder)"
            )
        reference = [default]
    out = []
    for r in reference:
        p = Path(str(r))
        if p.is_dir() and (p / "manifest.json").exists() and (p / "data").is_dir():
            out.append(str(p / "data"))  # a stage folder: its records, not its manifest
        else:
            out.append(str(r))
    return out


def tokenize(tokenizer: Any, texts: list[str]) -> list[list[int]]:
    """Token ids of ``texts`` without special tokens (as the scorer's windows hold them)."""
    return list(tokenizer(texts, add_special_tokens=False)["input_ids"])


def read_reference(inputs: list[str], cfg: ScoreConfig, limit: int) -> tuple[list[Doc], list[str]]:
    """Up to ``limit`` readable reference documents, and where the others were skipped (why).

    Reference ids do not matter (ids are generated), so an id field of the scored corpus
    missing from the reference costs nothing; unreadable rows are counted, never hidden."""
    from emocurate.corpus.readers import Doc, ReadOptions, iter_corpus

    docs: list[Doc] = []
    skipped: list[str] = []
    for item in iter_corpus(inputs, ReadOptions(cfg.text_field, None, cfg.max_chars)):
        if isinstance(item, Doc) and item.text.strip():
            docs.append(item)
            if len(docs) >= limit:
                break
        else:
            skipped.append(
                f"{item.source} {item.position}: {item.reason}"
                if not isinstance(item, Doc)
                else f"{item.source} {item.position}: empty text"
            )
    if not docs:
        raise InputError(f"calibration reference {', '.join(inputs)} has no readable documents")
    return docs, skipped


def calibrate(
    vectors_dir: str | Path,
    reference: Sequence[str | Path] | None = None,
    cfg: ScoreConfig | None = None,
    *,
    limit: int = 5000,
    rate: float = DEFAULT_RATE,
    lm: LoadedModel | None = None,
    out_dir: str | Path | None = None,
) -> Calibration:
    """Score ``reference`` with the vectors, store the statistics' distributions, check rates.

    Args:
        vectors_dir: the vector-set folder; ``calibration.json`` is written there unless
            ``out_dir`` is given.
        reference: corpus inputs any reader accepts (default: ``VECTORS/neutral``).
        cfg: scoring options (text field, window, smoothing, layer, device); its metric
            settings fix ``min_episode``, ``merge_gap`` and ``mirror_margin``.
        limit: read at most this many reference documents.
        rate: the false-positive rate whose flag rates are measured in ``check``.
        lm: a loaded model (default: the vector set's).
        out_dir: where ``calibration.json`` goes instead (the pipeline's calibrate stage
            writes into its own folder, never into the fit stage's).
    """
    from emocurate.configs import ScoreConfig
    from emocurate.corpus.score import ScoredDoc, Scorer, load_vectors
    from emocurate.vectors.models import load_model

    cfg = cfg or ScoreConfig()
    cfg = cfg.model_copy(update={"calibration": None, "z_thresholds": True, "trace_others": 0})
    inputs = reference_inputs(vectors_dir, reference)
    vs, reg = load_vectors(vectors_dir, cfg)
    docs, skipped = read_reference(inputs, cfg, limit)
    lm = lm or load_model(cfg.model or vs.meta.model_id, device=cfg.device, dtype=cfg.dtype)
    collected: Scores = []
    where: list[np.ndarray] = []  # each collected token's position in its window
    reg_is_main: list[bool] = []

    class _Collector(Scorer):
        def _finish(self, p: Any, z: np.ndarray, zr: np.ndarray | None) -> ScoredDoc:
            reg_z = z if zr is None and self.vs.meta.kind == "regulation" else zr
            collected.append(
                (z.copy(), None if reg_z is None else reg_z.copy(), [TurnSpan(*t) for t in p.turns])
            )
            where.append(window_positions(p.windows, len(p.ids), 1 if self.bos is not None else 0))
            reg_is_main.append(zr is None and reg_z is not None)
            return super()._finish(p, z, zr)

    # The collector needs each document's [T, E] scores on the host: the host metrics path.
    scorer = _Collector(vs, lm, cfg.model_copy(update={"metrics_device": "host"}), regulation=reg)
    joined = join_reference(docs, scorer.preparer, JOIN_MIN_DOCS)
    scorer.score_full(joined)
    layer = scorer.layer
    columns = [*scorer.names, *(scorer.reg_names if reg is not None else [])]
    profile, detrended = level_by_position(
        collected, where, reg_is_main, columns, len(scorer.names)
    )
    cal = calibration_from_scores(
        detrended,
        scorer.axes,
        scorer.mcfg,
        rate=rate,
        reference=[str(r) for r in (reference or inputs)],
        reference_hash=hashlib.sha256("\x1e".join(d.text for d in docs).encode()).hexdigest()[:16],
        n_docs=len(docs),
        doc_tokens=sum(map(len, tokenize(scorer.preparer.tokenizer, [d.text for d in docs]))),
        n_joined=len(joined),
        n_skipped=len(skipped),
        skipped_examples=skipped[:5],
        layer=layer,
        vectors_hash=vectors_hash(vs, layer),
        positions=profile,
    )
    cal.save(out_dir if out_dir is not None else vectors_dir)
    return cal


Scores = list[tuple[np.ndarray, np.ndarray | None, list[TurnSpan]]]


def level_by_position(
    collected: Scores,
    where: Sequence[np.ndarray],
    reg_is_main: Sequence[bool],
    columns: list[str],
    n_main: int,
) -> tuple[PositionProfile, Scores]:
    """The reference's :class:`PositionProfile` and its z-scores with the profile subtracted
    (as :class:`~emocurate.corpus.score.Scorer` subtracts it when scoring). ``where``: each
    token's position in its window; ``reg_is_main``: the regulation z is a copy of the main z
    (a regulation vector set scored on its own)."""
    profile = position_profile(
        [np.hstack([z, zr]) if zr is not None and not same else z
         for (z, zr, _), same in zip(collected, reg_is_main, strict=True)],
        where,
        columns,
    )  # fmt: skip
    table = profile.table(max(int(p.max()) + 1 for p in where))

    def level(x: np.ndarray, pos: np.ndarray, cols: slice) -> np.ndarray:
        return (x - table[pos, cols]).astype(np.float32)

    main, rest = slice(0, n_main), slice(n_main, None)
    return profile, [
        (level(z, pos, main), None if zr is None else level(zr, pos, main if same else rest), t)
        for (z, zr, t), pos, same in zip(collected, where, reg_is_main, strict=True)
    ]


def reference_ladders(
    scores: Sequence[tuple[np.ndarray, np.ndarray | None, Sequence[TurnSpan]]],
    axes: Axes,
    base: MetricConfig,
) -> tuple[dict[str, Ladder], LengthQuantiles | None, dict[str, Quantiles], int, int]:
    """The statistics' distributions at every ladder length, over the joined reference.

    Returns ``(ladders, pair levels, token quantiles, n_tokens, n_pairs)``.
    """
    d_parts: list[np.ndarray] = []
    v_parts: list[np.ndarray] = []
    r_parts: list[np.ndarray] = []
    pairs: list[float] = []
    d_tok: list[np.ndarray] = []
    aro_tok: list[np.ndarray] = []
    n_tokens = 0
    for z, zr, turns in scores:
        if len(z) == 0:
            continue
        n_tokens += len(z)
        zs = smooth(z, base.smooth)
        if axes.distress:
            d_parts.append(z[:, axes.distress].mean(1))
            d_tok.append(zs[:, axes.distress].mean(1))
        if axes.has_va:
            v_parts.append(z)  # valence is not linear in z: pieces smooth and rectify z
            aro_tok.append(arousal_of(zs, axes.arousal))
            if turns:
                pairs += pair_levels(z, axes, turns, base.mirror_margin)
        if zr is not None and zr.size:
            r_parts.append(zr.mean(1))
    if not d_parts:
        raise InputError("calibration: no distress directions or no reference tokens")
    tokens = {
        "distress_token": Quantiles.of(np.concatenate(d_tok)),
        "arousal_token": Quantiles.of(
            np.concatenate(aro_tok) if aro_tok else np.zeros(1, dtype=np.float64)
        ),
    }
    rho = tokens["distress_token"].at(RECOVER_QUANTILE)
    d_raw = np.concatenate(d_parts)
    v_piece = JoinedValence(v_parts, axes.valence, base.smooth) if v_parts else None
    r_raw = np.concatenate(r_parts) if r_parts and len(r_parts) == len(d_parts) else None
    per: dict[str, list[LengthQuantiles]] = {}
    for n in ladder_lengths(n_tokens):
        for fam, vals in piece_statistics(d_raw, v_piece, r_raw, base, rho, n).items():
            per.setdefault(fam, []).append(LengthQuantiles.of(n, vals))
    ladders = {fam: Ladder(by_length=lq) for fam, lq in per.items()}
    pq = LengthQuantiles.of(1, np.asarray(pairs)) if pairs else None
    return ladders, pq, tokens, n_tokens, len(pairs)


def calibration_from_scores(
    scores: Sequence[tuple[np.ndarray, np.ndarray | None, Sequence[TurnSpan]]],
    axes: Axes,
    base: MetricConfig,
    *,
    rate: float = DEFAULT_RATE,
    **fields: Any,
) -> Calibration:
    """A :class:`Calibration` from reference z-scores (``fields``: provenance, hashes, layer)."""
    ladders, pq, tokens, n_tokens, n_pairs_ = reference_ladders(scores, axes, base)
    defaults: dict[str, Any] = {
        "reference": ["(z-scores)"],
        "reference_hash": "",
        "layer": 0,
        "vectors_hash": "",
        "n_docs": len(scores),
    }
    cal = Calibration(
        **{**defaults, **fields},
        n_tokens=n_tokens,
        n_pairs=n_pairs_,
        smooth=base.smooth,
        min_episode=base.min_episode,
        merge_gap=base.merge_gap,
        mirror_margin=base.mirror_margin,
        swing_gap=base.swing_gap,
        ladders=ladders,
        pairs=pq,
        tokens=tokens,
    )
    cal.check = flag_rates(cal, scores, axes, base, rate)
    return cal


def flag_rates(
    cal: Calibration,
    docs: Sequence[tuple[np.ndarray, np.ndarray | None, Sequence[TurnSpan]]],
    axes: Axes,
    base: MetricConfig,
    rate: float,
) -> FlagRates:
    """Share of documents flagged (any kind, and per kind) when scored at ``rate``."""
    per_kind: dict[str, int] = {}
    any_flag = 0
    for z, zr, turns in docs:
        mcfg = cal.metric_config(base, rate, len(z), n_pairs(turns))
        an = analyse(z, axes, mcfg, regulation=zr, turns=turns)
        kinds = {f.kind for f in an.flags}
        any_flag += int(bool(kinds))
        for k in kinds:
            per_kind[k] = per_kind.get(k, 0) + 1
    n = max(1, len(docs))
    warn = []
    need = -math.log1p(-rate) / cal.mean_tokens * cal.reference_tokens
    if need < 5:
        warn.append(
            f"only {cal.reference_tokens} reference tokens: fewer than 5 reference episodes expected at "
            f"rate {rate} for documents of {cal.mean_tokens} tokens, so thresholds are "
            "extrapolated (exponential tail)"
        )
    return FlagRates(
        rate=rate,
        n_docs=len(docs),
        any=any_flag / n,
        per_kind={k: v / n for k, v in sorted(per_kind.items())},
        warnings=warn,
    )
