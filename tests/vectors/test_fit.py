"""Fitting: known-answer recovery, the anchor recipe end to end, methods, layers, speakers."""

from __future__ import annotations

import json
import random

import pytest
import torch
from synth import make_stories
from tiny import tiny_lm

from emocurate.configs import FitConfig
from emocurate.errors import ConfigError, InputError
from emocurate.io import write_records
from emocurate.records import Dialogue, NeutralDialogue, Story, Turn
from emocurate.vectors.capture import token_activations
from emocurate.vectors.fit import (
    Moments,
    fit_vectors,
    neutral_projection,
    resolve_layers,
    split_holdout,
)
from emocurate.vectors.vectorset import VectorSet

PLANTED = {
    "joy": 393,
    "grief": 374,
    "fear": 376,
    "rage": 395,
}  # single-token words: happy, friend, little, named
FILLER = [
    "the",
    "and",
    "was",
    "The",
    "her",
    "day",
    "with",
    "said",
    "play",
    "They",
    "his",
    "that",
    "mom",
    "she",
    "you",
    "big",
    "time",
    "had",
    "there",
    "for",
    "saw",
    "but",
    "very",
]


def planted_records(tokenizer, n_per: int = 10, seed: int = 0) -> list[Story]:
    rng = random.Random(seed)
    out = []
    for emotion, tok_id in PLANTED.items():
        word = tokenizer.convert_ids_to_tokens(tok_id).lstrip("\u2581")
        for i in range(n_per):
            words = [rng.choice(FILLER) for _ in range(40)]
            for pos in rng.sample(range(40), 8):
                words[pos] = word
            out.append(Story(id=f"{emotion}{i}", text=" ".join(words), emotion=emotion, topic="x"))
    return out


def test_known_answer_planted_directions(tmp_path, tokenizer260k):
    lm = tiny_lm("llama", tokenizer260k, hidden_size=64, intermediate_size=128, num_hidden_layers=3)
    g = torch.Generator().manual_seed(3)
    dirs, _ = torch.linalg.qr(torch.randn(64, len(PLANTED), generator=g))
    dirs = dirs.T  # [E, d], orthonormal
    emb = lm.model.get_input_embeddings().weight
    with torch.no_grad():
        for k, tok_id in enumerate(PLANTED.values()):
            emb[tok_id] += 2.0 * dirs[k]
    records = planted_records(tokenizer260k)
    write_records(tmp_path / "rec", records)
    # the raw mean-difference estimator (the default reads in standardised coordinates, whose
    # raw-space direction is md / sd**2: not the planted displacement itself)
    cfg = FitConfig(layers="all", skip=0, holdout=0.25, standardize="none")
    vs = fit_vectors(tmp_path / "rec", cfg, tmp_path / "out", lm=lm)
    expected = dirs - dirs.mean(0, keepdim=True)  # mean-difference target: centred over emotions
    order = [list(PLANTED).index(n) for n in vs.names]
    for layer in vs.vectors:
        cos = torch.nn.functional.cosine_similarity(vs.vectors[layer], expected[order], dim=-1)
        assert cos.min() >= 0.95, (layer, cos)
    assert vs.meta.evaluation.accuracy == 1.0


def test_fit_embedded_model_end_to_end(tmp_path, lm260k):
    write_records(tmp_path / "rec", make_stories(10))
    vs = fit_vectors(tmp_path / "rec", FitConfig(), tmp_path / "out", lm=lm260k)
    meta = vs.meta
    assert meta.kind == "emotion" and sorted(meta.names) == ["angry", "happy", "sad", "scared"]
    assert meta.layer_selection.startswith("default layer 2") and meta.layers == [2]
    assert set(meta.sweep) == {"0", "1", "2", "3", "4"}
    assert meta.reference_source == "train_tokens" and meta.has_reference
    assert (
        meta.model_id == "stories260K"
        and len(meta.model_revision) == 16
        and meta.model_type == "llama"
    )
    # the saved vectors are refitted on every record; the evaluation uses 5 splits of 32/8
    assert meta.n_train_records == 40 and sum(meta.emotion_counts.values()) == 40
    assert len(meta.train_data_hash) == 16 and meta.versions["torch"]
    assert meta.evaluation.accuracy >= 0.75
    report = json.loads((tmp_path / "out" / "evaluation.json").read_text())
    assert {"accuracy", "top3", "confusion", "auroc", "geometry", "logit_lens", "sweep"} <= set(
        report
    )
    assert report["n"] == 8 and report["n_train"] == 32
    assert sum(map(sum, report["confusion"])) == 5 * 8  # summed over the split seeds
    loaded = VectorSet.load(tmp_path / "out")
    layer = meta.default_layer
    assert torch.equal(loaded.vectors[layer], vs.vectors[layer])
    assert torch.equal(loaded.ref_std[layer], vs.ref_std[layer])


def test_reference_zscores_training_tokens(tmp_path, lm260k):
    """Fallback reference: z-scored projections of the pooled training tokens have mean 0, std 1."""
    stories = make_stories(6)
    write_records(tmp_path / "rec", stories)
    vs = fit_vectors(
        tmp_path / "rec", FitConfig(layers="3", holdout=0.0, skip=0), tmp_path / "out", lm=lm260k
    )
    toks = torch.cat(
        [acts[1:] for _, _, acts in token_activations(lm260k, [s.text for s in stories], 3)]
    )
    z = vs.project(toks, 3)
    assert torch.allclose(z.mean(0), torch.zeros(4), atol=1e-3)
    assert torch.allclose(z.std(0), torch.ones(4), atol=1e-2)
    assert vs.meta.layer_selection.startswith("fixed")


def test_neutral_reference_and_pc_projection(tmp_path, lm260k):
    write_records(tmp_path / "rec", make_stories(8))
    rng = random.Random(1)
    neutral_texts = [
        " ".join(
            rng.choice(["the", "day", "was", "big", "and", "mom", "said", "play"])
            for _ in range(30)
        )
        for _ in range(20)
    ]
    neutral = [
        NeutralDialogue(
            id=f"n{i}", turns=[Turn(speaker="human", text=t), Turn(speaker="assistant", text=t)]
        )
        for i, t in enumerate(neutral_texts)
    ]
    write_records(tmp_path / "neutral", neutral)
    vs = fit_vectors(
        tmp_path / "rec",
        # raw coordinates, so the removed PCs are those of the raw neutral covariance (with the
        # default --standardize dims they are removed in standardised coordinates: test_massive)
        FitConfig(layers="2,4", standardize="none"),
        tmp_path / "out",
        lm=lm260k,
        neutral_dir=tmp_path / "neutral",
    )
    assert vs.meta.reference_source == "neutral" and vs.meta.layers == [2, 4]
    assert set(vs.meta.neutral_pcs) == {"2", "4"} and all(
        k >= 1 for k in vs.meta.neutral_pcs.values()
    )
    # the reference is exact: neutral token z-scores are standardised
    toks = torch.cat([a[1:] for _, _, a in token_activations(lm260k, [n.text for n in neutral], 4)])
    z = vs.project(toks, 4)
    assert torch.allclose(z.mean(0), torch.zeros(4), atol=1e-3)
    assert torch.allclose(z.std(0), torch.ones(4), atol=1e-2)
    # vectors are orthogonal to the removed neutral PCs
    m = Moments()
    m.add(toks)
    pcs, k = neutral_projection(m.cov(), 0.5)
    assert k == vs.meta.neutral_pcs["4"]
    assert (vs.unit(4) @ pcs).abs().max() < 1e-4


@pytest.mark.parametrize("method", ["pca", "logistic"])
def test_alternative_methods(tmp_path, lm260k, method):
    write_records(tmp_path / "rec", make_stories(10))
    vs = fit_vectors(
        tmp_path / "rec", FitConfig(method=method, layers="3,4"), tmp_path / "out", lm=lm260k
    )
    assert vs.meta.method == method
    assert vs.meta.evaluation.accuracy >= 0.75
    md = fit_vectors(tmp_path / "rec", FitConfig(layers="3,4"), tmp_path / "md", lm=lm260k)
    cos = torch.nn.functional.cosine_similarity(vs.vectors[4], md.vectors[4], dim=-1)
    assert (
        cos.min() > 0.3
    )  # different estimators of the same directions agree in sign and roughly in angle


def dialogue(i: int, human: str, assistant: str, rng: random.Random) -> Dialogue:
    from synth import CUES

    h = f"I saw a red ball and {rng.choice(CUES[human])}. Then I {rng.choice(CUES[human])}."
    a = f"The dog saw it and {rng.choice(CUES[assistant])}. It {rng.choice(CUES[assistant])} too."
    return Dialogue(
        id=f"d{i}",
        turns=[Turn(speaker="human", text=h), Turn(speaker="assistant", text=a)],
        human_emotion=human,
        assistant_emotion=assistant,
    )


def test_speaker_aware_vectors(tmp_path, lm260k):
    rng = random.Random(0)
    emos = ["happy", "sad", "scared", "angry"]
    dialogues = [dialogue(i, emos[i % 4], emos[(i // 4) % 4], rng) for i in range(48)]
    write_records(tmp_path / "dlg", dialogues)
    vs = fit_vectors(tmp_path / "dlg", FitConfig(layers="4"), tmp_path / "out", lm=lm260k)
    assert vs.meta.kind == "speaker_assistant"
    human = VectorSet.load(tmp_path / "out", kind="speaker_human")
    assistant = VectorSet.load(tmp_path / "out", kind="assistant")
    assert human.meta.kind == "speaker_human" and assistant.meta.kind == "speaker_assistant"
    # human and assistant emotions are independent here, so each set must read its own speaker
    assert human.meta.evaluation.accuracy >= 0.7
    assert assistant.meta.evaluation.accuracy >= 0.7
    with pytest.raises(InputError, match="speaker-aware"):
        VectorSet.load(tmp_path / "out")


def test_errors(tmp_path, lm260k):
    write_records(tmp_path / "one", [s for s in make_stories(3) if s.emotion == "happy"])
    with pytest.raises(InputError, match="2 distinct emotions"):
        fit_vectors(tmp_path / "one", FitConfig(), tmp_path / "o", lm=lm260k)
    write_records(
        tmp_path / "neutral", [NeutralDialogue(id="n", turns=[Turn(speaker="human", text="hi")])]
    )
    with pytest.raises(InputError, match="story or dialogue"):
        fit_vectors(tmp_path / "neutral", FitConfig(), tmp_path / "o", lm=lm260k)
    with pytest.raises(ConfigError, match="out of range"):
        resolve_layers("7", 5)
    with pytest.raises(ConfigError, match="not auto"):
        resolve_layers("mid", 5)
    assert resolve_layers("-1,0", 5) == ([0, 4], True)
    assert resolve_layers("auto", 5) == ([0, 1, 2, 3, 4], False)
    deep, keep = resolve_layers("auto", 80, max_auto=16)
    assert (
        not keep and len(deep) <= 16 and deep[0] == 0 and deep[-1] == 79 and 52 in deep
    )  # 52: default
    assert len(resolve_layers("all", 80)[0]) == 80


def test_split_is_stratified_and_keeps_training_rows():
    labels = [0] * 10 + [1] * 5 + [2]
    train, held = split_holdout(labels, 0.2, seed=0)
    assert sorted(train + held) == list(range(16))
    assert [labels[i] for i in held].count(0) == 2 and [labels[i] for i in held].count(1) == 1
    assert 15 in train


def test_fit_refuses_a_holdout_it_cannot_evaluate(tmp_path, lm260k):
    """One story per emotion used to fit with no held-out rows and no word about it."""
    from emocurate.configs import FitConfig
    from emocurate.vectors.fit import fit_vectors, min_records_for_holdout

    assert min_records_for_holdout(0.2) == 5 and min_records_for_holdout(0.1) == 6
    write_records(tmp_path / "rec", make_stories(1) + make_stories(4, emotions=["happy"], seed=1))
    with pytest.raises(InputError) as err:
        fit_vectors(tmp_path / "rec", FitConfig(layers="3", skip=0), tmp_path / "out", lm=lm260k)
    msg = str(err.value)
    assert "at least 5 usable records per emotion" in msg and "--holdout 0" in msg
    assert "sad 1" in msg and "happy" not in msg.split("too few:")[1]
    assert not (tmp_path / "out" / "vectors.safetensors").exists()


def test_fit_without_holdout_warns_loudly(tmp_path, capsys):
    from emocurate.cli import main

    write_records(tmp_path / "rec", make_stories(2))
    with pytest.raises(SystemExit) as exc:
        main(
            [
                "fit",
                str(tmp_path / "rec"),
                "--layers",
                "3",
                "--skip",
                "0",
                "--out",
                str(tmp_path / "o"),
            ]
        )
    assert exc.value.code == 2
    assert "--holdout 0" in capsys.readouterr().err
    main(
        [
            "fit",
            str(tmp_path / "rec"),
            "--layers",
            "3",
            "--skip",
            "0",
            "--holdout",
            "0",
            "--out",
            str(tmp_path / "o"),
        ]
    )
    captured = capsys.readouterr()
    assert "warning:" in captured.err and "nothing was evaluated" in captured.err
    assert "NOT EVALUATED" in captured.out


def test_fit_progress_shows_documents_tokens_per_second_and_eta():
    import io

    from rich.console import Console

    from emocurate.vectors.pooling import _progress

    buf = io.StringIO()
    console = Console(file=buf, force_terminal=True, width=160, color_system=None)
    with _progress("fitting", 10, console=console) as advance:
        advance(4, 400)
        advance(6, 600)
    out = buf.getvalue()
    assert "4/10" in out and "10/10" in out and "documents" in out
    assert "tok/s" in out and "ETA" in out
