"""Steering: the hook, its scale, and the dose-response measured on a model with a planted direction.

The planted model is a tiny random Llama whose LM head makes the logit of " happy" rise with the
residual's component along a chosen unit direction ``d`` (and " sad" fall), and whose embeddings
of those tokens point along ``+d`` / ``-d``. Steering along ``d`` at the last block must then make
the model say " happy" more (word log-prob up) and write continuations whose unsteered activations
project higher on ``d`` (read-back up). A direction the LM head cannot see (orthogonal to every
unembedding row) changes nothing greedy decoding can show, so it must not pass.
"""

from __future__ import annotations

import json

import pytest
import torch
from synth import make_stories
from tiny import tiny_lm

from emocurate.cli import main
from emocurate.configs import FitConfig
from emocurate.io import write_records
from emocurate.vectors.capture import capture
from emocurate.vectors.fit import fit_vectors
from emocurate.vectors.steer import (
    NEUTRAL_PROMPTS,
    STEERING_FILE,
    SteeringReport,
    emotion_words,
    generate,
    load_steering,
    measure_steering,
    monotonicity,
    residual_norm,
    save_steering,
    steer,
)
from emocurate.vectors.vectorset import VectorSet, VectorSetMeta

HAPPY, SAD = 393, 296  # " happy" and the first token of " sad" in the stories260K vocabulary
LAST = 3  # the tiny model's last block: its output goes straight to the final norm and LM head
GRID = [-0.5, -0.3, -0.1, 0.0, 0.1, 0.3, 0.5]


@pytest.fixture(scope="module")
def planted(tokenizer260k):
    """(LoadedModel, VectorSet) with a planted "happy" direction and a "calm" null direction."""
    lm = tiny_lm("llama", tokenizer260k, seed=0)
    g = torch.Generator().manual_seed(7)
    d = torch.randn(32, generator=g)
    d /= d.norm()
    r = torch.randn(32, generator=g)
    r -= (r @ d) * d
    r /= r.norm()
    head = lm.model.get_output_embeddings().weight
    emb = lm.model.get_input_embeddings().weight
    assert head.data_ptr() != emb.data_ptr()  # untied, so the two plantings are independent
    with torch.no_grad():
        head -= torch.outer(head @ r, r)  # the LM head cannot see r at all
        head[HAPPY] = 4.0 * d
        head[SAD] = -4.0 * d
        emb[HAPPY] = 1.0 * d
        emb[SAD] = -1.0 * d
    meta = VectorSetMeta(
        names=["happy", "calm"],
        layers=[LAST],
        default_layer=LAST,
        model_id=lm.model_id,
        hidden_size=32,
        n_model_layers=4,
        residual_norm={str(LAST): residual_norm(lm, LAST)},
    )
    return lm, VectorSet(vectors={LAST: torch.stack([3.0 * d, 0.5 * r])}, meta=meta)


@pytest.fixture(scope="module")
def planted_report(planted):
    lm, vs = planted
    return measure_steering(
        lm, vs, ["happy", "calm"], GRID, prompts=NEUTRAL_PROMPTS[:4], max_new_tokens=8
    )


def test_planted_direction_passes_with_positive_sign(planted_report):
    happy = planted_report.emotions["happy"]
    proj = [p.projection for p in happy.points]
    words = [p.word_logprob for p in happy.points]
    assert happy.projection.rho > 0.5 and happy.projection.verdict == "pass", happy.projection
    assert happy.projection.p < 0.05 and happy.projection.n == len(GRID) * 4
    assert happy.word_logprob.rho > 0.5 and happy.word_logprob.verdict == "pass"
    assert proj[-1] > proj[len(GRID) // 2] > proj[0]  # +0.5 above 0 above -0.5
    assert words[-1] > words[len(GRID) // 2] > words[0]
    assert happy.verdict == "pass"


def test_direction_the_model_cannot_see_does_not_pass(planted_report):
    calm = planted_report.emotions["calm"]
    assert calm.projection.verdict == "fail"
    assert calm.projection.rho == pytest.approx(0.0) and calm.projection.p == 1.0
    assert calm.verdict == "fail"


def test_mislabelled_vector_reads_back_but_its_words_fall(planted):
    """A "happy" vector that really is the sad direction: steering along it is consistent with
    itself (read-back passes) while the happy words fall, which is why both are reported."""
    lm, vs = planted
    flipped = VectorSet(vectors={LAST: -vs.vectors[LAST]}, meta=vs.meta)
    rep = measure_steering(
        lm, flipped, ["happy"], GRID, prompts=NEUTRAL_PROMPTS[:3], max_new_tokens=6
    )
    happy = rep.emotions["happy"]
    assert happy.word_logprob.rho < -0.5 and happy.word_logprob.verdict == "fail"
    assert happy.projection.rho > 0.5 and happy.projection.verdict == "pass"
    assert happy.verdict == "fail"  # its own read-back rises, but not toward its emotion


def test_delta_is_strength_times_residual_norm_at_every_position(planted):
    lm, vs = planted
    norm = vs.meta.residual_norm[str(LAST)]
    ids = torch.tensor([[1, 403, 407, 378, 290]])
    with capture(lm, [LAST - 1, LAST], stop_early=False) as cap:
        base = cap.run(input_ids=ids)
    # the steering hook is registered first, so the capture hook sees its result
    with steer(lm, vs, "happy", 0.25) as delta, capture(lm, [LAST - 1, LAST]) as cap:
        steered = cap.run(input_ids=ids)
    assert delta.norm().item() == pytest.approx(0.25 * norm, rel=1e-5)
    unit = vs.unit(LAST)[0]
    assert torch.allclose(delta, 0.25 * norm * unit, atol=1e-6)
    assert torch.equal(steered[LAST - 1], base[LAST - 1])  # earlier blocks untouched
    diff = steered[LAST] - base[LAST]
    assert torch.allclose(diff, delta.expand_as(diff), atol=1e-5)  # every position, this block
    assert all(len(b._forward_hooks) == 0 for b in lm.layers)


def test_measured_norm_is_used_when_the_set_has_none(planted):
    lm, vs = planted
    bare = VectorSet(
        vectors=vs.vectors, meta=vs.meta.model_copy(update={"residual_norm": {}}, deep=True)
    )
    with steer(lm, bare, "happy", -0.5) as delta:
        pass
    assert delta.norm().item() == pytest.approx(0.5 * residual_norm(lm, LAST), rel=1e-4)
    assert float(delta @ vs.unit(LAST)[0]) < 0  # negative strength points away


def test_generation_is_steered_at_every_new_position(planted):
    """Cached generation equals a no-cache greedy loop that steers every position."""
    lm, vs = planted
    prompt = NEUTRAL_PROMPTS[0]
    text = generate(lm, vs, "happy", 0.3, prompt, max_new_tokens=6)
    ids = lm.tokenizer(prompt, return_tensors="pt")["input_ids"]
    with steer(lm, vs, "happy", 0.3), torch.inference_mode():
        for _ in range(6):
            nxt = lm.model(input_ids=ids, use_cache=False).logits[0, -1].argmax()
            ids = torch.cat([ids, nxt.view(1, 1)], dim=1)
    assert text == lm.tokenizer.decode(ids[0], skip_special_tokens=True)


def test_monotonicity_statistic():
    s = [-0.5, -0.25, 0.0, 0.25, 0.5]
    up = monotonicity(s, [[1, 2, 3, 4, 5], [0, 1, 2, 5, 9], [3, 4, 5, 6, 7]])
    assert up.rho == pytest.approx(1.0) and up.p < 0.01 and up.verdict == "pass" and up.n == 15
    down = monotonicity(s, [[5, 4, 3, 2, 1]] * 3)
    assert down.rho == pytest.approx(-1.0) and down.verdict == "fail" and down.p > 0.99
    flat = monotonicity(s, [[2, 2, 2, 2, 2]] * 3)
    assert flat.rho == 0.0 and flat.p == 1.0 and flat.verdict == "fail"
    g = torch.Generator().manual_seed(0)
    noise = torch.randn(3, 5, generator=g).tolist()
    assert monotonicity(s, noise).verdict == "fail"
    peaked = monotonicity(s, [[1, 3, 5, 3, 1]] * 3)  # a peak at 0 is not a dose-response
    assert peaked.rho == pytest.approx(0.0) and peaked.verdict == "fail"


def test_emotion_words_are_all_taxonomy_forms():
    assert emotion_words("happy")[:2] == ["happy", "happier"] and "happiness" in emotion_words(
        "happy"
    )
    assert emotion_words("not-an-emotion") == ["not-an-emotion"]


def test_report_round_trip_merges_emotions(planted, planted_report, tmp_path):
    lm, vs = planted
    vs.save(tmp_path)
    only_happy = planted_report.model_copy(
        update={"emotions": {"happy": planted_report.emotions["happy"]}}
    )
    only_calm = planted_report.model_copy(
        update={"emotions": {"calm": planted_report.emotions["calm"]}}
    )
    save_steering(only_happy, tmp_path)
    save_steering(only_calm, tmp_path)
    back = load_steering(tmp_path)
    assert isinstance(back, SteeringReport) and sorted(back.emotions) == ["calm", "happy"]
    (tmp_path / STEERING_FILE).write_text("{not json")
    with pytest.raises(Exception, match=STEERING_FILE):
        load_steering(tmp_path)


# --- the embedded model, with vectors fitted on stories that name their emotion ----------------


@pytest.fixture(scope="module")
def happy_dir(tmp_path_factory, lm260k):
    d = tmp_path_factory.mktemp("steer")
    write_records(d / "rec", make_stories(12))
    fit_vectors(d / "rec", FitConfig(layers="3,4", skip=10), d / "out", lm=lm260k)
    return d / "out"


def test_steer_hook_is_removed_and_scaled(happy_dir, lm260k):
    happy_set = VectorSet.load(happy_dir)
    ids = torch.tensor([[1, 403, 407, 378]])
    with torch.inference_mode():
        base = lm260k.model(input_ids=ids).logits
    with steer(lm260k, happy_set, "happy", 0.5, layer=4) as delta, torch.inference_mode():
        steered = lm260k.model(input_ids=ids).logits
    assert not torch.allclose(base, steered)
    assert delta.norm().item() == pytest.approx(0.5 * happy_set.meta.residual_norm["4"], rel=1e-4)
    with torch.inference_mode():
        assert torch.equal(lm260k.model(input_ids=ids).logits, base)
    assert all(len(b._forward_hooks) == 0 for b in lm260k.layers)


def test_cli_dose_response_saves_and_prints(happy_dir, capsys):
    args = ["steer", str(happy_dir), "-e", "happy", "--dose-response", "--layer", "4"]
    args += ["--steps", "5", "--max-new-tokens", "6", "--json"]
    try:
        main(args)
    except SystemExit as exc:
        assert not exc.code
    out = json.loads(capsys.readouterr().out)
    saved = load_steering(happy_dir)
    assert saved is not None and saved.model_dump(mode="json") == out
    happy = saved.emotions["happy"]
    assert [p.strength for p in happy.points] == [-0.5, -0.25, 0.0, 0.25, 0.5]
    assert happy.layer == 4 and happy.projection.n == 5 * len(saved.prompts)
    assert happy.verdict in ("pass", "fail")
    with pytest.raises(SystemExit) as exc:
        main(["steer", str(happy_dir), "-e", "happy"])
    assert exc.value.code == 2
    assert "--prompt" in capsys.readouterr().err


def test_vector_card_steering_section(planted, planted_report, tmp_path):
    from emocurate.cards.vector_card import write_vector_card

    lm, vs = planted
    vs.save(tmp_path)
    card = write_vector_card(tmp_path).read_text()
    section = card[card.index("## Steering") :]
    assert "Steering was not measured" in section and "does not move" not in section
    save_steering(planted_report, tmp_path)
    section = write_vector_card(tmp_path).read_text().split("## Steering")[1]
    assert "| happy | 3 | -0.50 … +0.50 |" in section and "**pass**" in section
    assert "| calm |" in section and "**fail**" in section
    assert "Steering works for 1 of 2 measured emotions" in section
    assert "fraction of the mean token residual norm" in section
    assert f"n {len(GRID) * 4}" in section
    only_calm = planted_report.model_copy(
        update={"emotions": {"calm": planted_report.emotions["calm"]}}
    )
    (tmp_path / STEERING_FILE).unlink()
    save_steering(only_calm, tmp_path)
    section = write_vector_card(tmp_path).read_text().split("## Steering")[1]
    assert "Steering along these vectors does not move the model" in section
    later = VectorSet(
        vectors=vs.vectors, meta=vs.meta.model_copy(update={"created": "2099-01-01T00:00:00+00:00"})
    )
    later.save(tmp_path)  # a refit in the same folder: the old measurement no longer applies
    section = write_vector_card(tmp_path).read_text().split("## Steering")[1]
    assert "belongs to an earlier fit" in section and "**fail**" not in section


def test_generate_changes_with_strength(happy_dir, lm260k):
    happy_set = VectorSet.load(happy_dir)
    prompt = "Once upon a time, there was a girl named Lily. She felt"
    plain = generate(lm260k, happy_set, "happy", 0.0, prompt, max_new_tokens=15)
    pushed = generate(lm260k, happy_set, "happy", 1.0, prompt, max_new_tokens=15, layer=4)
    assert plain.startswith(prompt) and pushed != plain
    assert "happy" in pushed
