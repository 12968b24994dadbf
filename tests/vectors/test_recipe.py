"""The study's recipe by default, and an evaluation that says how far to trust it.

Pooling starts exactly at token ``skip`` and never before the generated part of a story;
records too short for that window are left out and counted; the default layer is the one
nearest two thirds of the depth and a sweep moves away from it only on a significant gain;
held-out accuracy comes from several split seeds beside chance, majority and a lexical
baseline; ``vectors evaluate`` warns when its rows were used to fit the set.
"""

from __future__ import annotations

import json
import random

import pytest
import torch
from synth import make_stories

from emocurate.configs import FitConfig
from emocurate.io import write_records
from emocurate.records import Story
from emocurate.vectors.capture import encode, pool_start
from emocurate.vectors.evaluate import Evaluation, lexical_baseline, mcnemar_one_sided
from emocurate.vectors.fit import (
    MIN_SELECTION_ROWS,
    choose_layer,
    encode_with_offsets,
    fit_vectors,
    pool_windows,
)
from emocurate.vectors.models import default_layer
from emocurate.vectors.vectorset import VectorSet

PREFIX = "Once upon a time, Lily felt sad."
FILLER = ["the", "and", "was", "day", "with", "said", "play", "mom", "big", "time", "had"]


def test_pool_window_starts_exactly_at_skip():
    # a 20-token text with skip 50 has no token in the window (was: clipped to token 10)
    assert pool_start(20, 50, True) >= 20
    assert pool_start(120, 50, True) == 50
    assert pool_start(120, 0, True) == 1  # the BOS position is never pooled
    # nor the first token without BOS: an attention sink (SmolLM2: norm ~22,000 vs ~200)
    assert pool_start(120, 0, False) == 1
    # the named opt-in rule clips to half of a short text
    assert pool_start(20, 50, True, clip=True) == 10


def test_prefix_is_not_pooled(tokenizer260k):
    story = Story(
        id="s",
        text=PREFIX + " She went to the park and saw a big dog.",
        emotion="sad",
        topic="x",
        prompt_prefix=PREFIX,
    )
    ids, offsets = encode_with_offsets(tokenizer260k, [story.text], None)
    first = next(i for i, (a, b) in enumerate(offsets[0]) if b > a and a >= len(PREFIX))
    assert first > 3
    windows = pool_windows(tokenizer260k, [story], ids, offsets, skip=0)
    assert windows.starts[0] == first
    assert windows.texts[0].strip().startswith("She went")
    assert windows.starts == pool_windows(tokenizer260k, [story], ids, offsets, skip=2).starts
    assert pool_windows(tokenizer260k, [story], ids, offsets, skip=first + 3).starts[0] == first + 3


def test_short_records_are_left_out_and_counted(tmp_path, lm260k):
    stories = make_stories(8)
    short = [
        Story(id=f"short{i}", text="Tom was happy.", emotion="happy", topic="x") for i in range(3)
    ]
    write_records(tmp_path / "rec", stories + short)
    vs = fit_vectors(
        tmp_path / "rec", FitConfig(layers="4", holdout=0.0), tmp_path / "out", lm=lm260k
    )
    assert vs.meta.n_skipped_short == 3 and vs.meta.n_train_records == len(stories)
    assert vs.meta.short == "skip" and vs.meta.skip == 50
    ids = json.loads((tmp_path / "out" / "train_ids.json").read_text())["ids"]
    assert not any(i.startswith("short") for i in ids) and len(ids) == len(stories)
    clipped = fit_vectors(
        tmp_path / "rec",
        FitConfig(layers="4", holdout=0.0, short="clip"),
        tmp_path / "clip",
        lm=lm260k,
    )
    assert clipped.meta.n_skipped_short == 0 and clipped.meta.n_train_records == len(stories) + 3


def prefixed_stories(n_per: int, seed: int, label_in: str) -> list[Story]:
    """Stories whose label word sits only in the prompt's opening (or only in the generation)."""
    rng = random.Random(seed)
    out = []
    for emotion in ("happy", "sad", "angry", "scared"):
        for i in range(n_per):
            prefix = f"Once upon a time, Tom felt {emotion}."
            body = " ".join(rng.choice(FILLER) for _ in range(30))
            if label_in == "generated":
                body += f" Tom was {emotion}."
            out.append(
                Story(
                    id=f"{emotion}{i}",
                    text=f"{prefix} {body}",
                    emotion=emotion,
                    topic="x",
                    prompt_prefix=prefix,
                )
            )
    return out


def test_label_leak_share_and_lexical_baseline_read_the_pooled_text(tmp_path, lm260k):
    write_records(tmp_path / "clean", prefixed_stories(10, 0, "prefix"))
    clean = fit_vectors(
        tmp_path / "clean", FitConfig(layers="4", skip=0), tmp_path / "o1", lm=lm260k
    )
    assert clean.meta.label_leak_share == 0.0 and clean.meta.n_leak_checked == 40
    ev = Evaluation.model_validate_json((tmp_path / "o1" / "evaluation.json").read_text())
    assert ev.lexical is not None and ev.lexical.mean < 0.6  # the opening is not pooled
    write_records(tmp_path / "leaky", prefixed_stories(10, 0, "generated"))
    leaky = fit_vectors(
        tmp_path / "leaky", FitConfig(layers="4", skip=0), tmp_path / "o2", lm=lm260k
    )
    assert leaky.meta.label_leak_share == 1.0 and leaky.meta.n_label_leak == 40
    ev = Evaluation.model_validate_json((tmp_path / "o2" / "evaluation.json").read_text())
    assert ev.lexical is not None and ev.lexical.mean >= 0.95
    assert len(ev.lexical.per_seed) == len(ev.seeds) == 5


def test_lexical_baseline_uses_the_given_splits():
    texts = ["alpha"] * 6 + ["beta"] * 6
    labels = [0] * 6 + [1] * 6
    splits = [([0, 1, 2, 6, 7, 8], [3, 4, 5, 9, 10, 11])]
    assert lexical_baseline(texts, labels, splits) == [1.0]
    # training rows that teach the opposite mapping: the held-out rows are then all wrong
    swapped = ["beta"] * 3 + ["alpha"] * 3 + ["alpha"] * 3 + ["beta"] * 3
    assert lexical_baseline(swapped, labels, [([0, 1, 2, 6, 7, 8], [3, 4, 5, 9, 10, 11])]) == [0.0]


def test_mcnemar_one_sided_exact():
    assert mcnemar_one_sided(0, 0) == 1.0
    assert mcnemar_one_sided(10, 0) == pytest.approx(0.5**10)
    assert mcnemar_one_sided(3, 3) == pytest.approx(21 / 32)  # P(X >= 3), X ~ Bin(6, 1/2)


def _correct(n: int, good: int) -> torch.Tensor:
    return torch.tensor([True] * good + [False] * (n - good))


def test_default_layer_unless_the_gain_is_significant():
    n_layers = 5
    default = default_layer(n_layers)
    assert default == 2
    cands = [0, 1, 2, 3, 4]
    # 33 rows, a big gain: enough rows, significant after Bonferroni over 4 alternatives
    per_row = {c: _correct(40, 10) for c in cands}
    per_row[4] = _correct(40, 30)
    sel = choose_layer(per_row, cands, n_layers)
    assert sel.layer == 4 and sel.moved and sel.p_value is not None and sel.p_value < 0.05 / 4
    # a small gain is not significant: the default stays
    per_row[4] = _correct(40, 14)
    sel = choose_layer(per_row, cands, n_layers)
    assert sel.layer == default and not sel.moved and "McNemar" in sel.rule
    # fewer held-out rows than the stated minimum: never moves, however large the gain
    n = MIN_SELECTION_ROWS - 1
    per_row = {c: _correct(n, 0) for c in cands}
    per_row[4] = _correct(n, n)
    sel = choose_layer(per_row, cands, n_layers)
    assert sel.layer == default and not sel.moved and str(MIN_SELECTION_ROWS) in sel.rule


def test_auto_layers_keep_the_default_on_few_rows(tmp_path, lm260k):
    write_records(tmp_path / "rec", make_stories(10))  # 40 records, 8 held out per split
    vs = fit_vectors(tmp_path / "rec", FitConfig(), tmp_path / "out", lm=lm260k)
    assert vs.meta.default_layer == default_layer(lm260k.n_layers)
    assert "minimum" in vs.meta.layer_selection and set(vs.meta.sweep) == {"0", "1", "2", "3", "4"}


def test_multi_seed_evaluation_on_noisy_labels(tmp_path, lm260k):
    rng = random.Random(0)
    stories = make_stories(12, seed=2)
    names = ["happy", "sad", "scared", "angry"]
    noisy = [
        s.model_copy(update={"emotion": rng.choice(names)}) if rng.random() < 0.35 else s
        for s in stories
    ]
    write_records(tmp_path / "rec", noisy)
    vs = fit_vectors(tmp_path / "rec", FitConfig(layers="3"), tmp_path / "out", lm=lm260k)
    ev = Evaluation.model_validate_json((tmp_path / "out" / "evaluation.json").read_text())
    assert ev.seeds == [0, 1, 2, 3, 4] and len(ev.accuracy_per_seed) == 5
    assert ev.accuracy_sd > 0
    assert ev.accuracy_ci[0] < ev.accuracy < ev.accuracy_ci[1]
    assert ev.chance == 0.25 and 0 < ev.majority < 1
    assert ev.lexical is not None and ev.vs_lexical is not None
    assert ev.vs_lexical.verdict in ("above", "below", "not distinguishable")
    assert set(ev.auroc) == set(names) and ev.n_heldout > 0 and ev.n_train > ev.n_heldout
    assert ev.geometry.n_in_taxonomy == 4
    assert vs.meta.evaluation.accuracy == pytest.approx(ev.accuracy)
    assert vs.meta.eval_seeds == 5


def test_vectors_evaluate_warns_on_training_rows(tmp_path, capsys):
    from .test_cli import run

    write_records(tmp_path / "rec", make_stories(6))
    write_records(tmp_path / "fresh", make_stories(3, seed=9))
    out = tmp_path / "vs"
    assert run(["fit", str(tmp_path / "rec"), "--layers", "4", "--out", str(out)]) == 0
    capsys.readouterr()
    assert run(["vectors", "evaluate", str(out), "--on", str(tmp_path / "rec"), "--json"]) == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert report["n_overlap"] == 24 and "warning" in captured.err.lower()
    assert len(captured.err.strip().splitlines()) == 1
    assert run(["vectors", "evaluate", str(out), "--on", str(tmp_path / "fresh"), "--json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["n_overlap"] == 0 and "warning" not in captured.err.lower()


def test_encode_with_offsets_matches_encode(tokenizer260k):
    texts = ["Tom was happy.", "A longer story about a dog and a cat in the park."]
    ids, offsets = encode_with_offsets(tokenizer260k, texts, 8)
    assert ids == encode(tokenizer260k, texts, 8)
    assert [len(o) for o in offsets] == [len(i) for i in ids]


def test_vectorset_states_the_recipe(tmp_path, lm260k):
    write_records(tmp_path / "rec", make_stories(6))
    fit_vectors(tmp_path / "rec", FitConfig(layers="4"), tmp_path / "out", lm=lm260k)
    meta = VectorSet.load(tmp_path / "out").meta
    assert "from token skip" in meta.pooling and "clip" not in meta.pooling
    assert meta.skip == 50 and meta.short == "skip"
