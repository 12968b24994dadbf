"""vectors evaluate on a records file: --skip, a loud left-out count, majority and lexical
baselines with a paired interval."""

from __future__ import annotations

import json

from synth import make_stories

from emocurate.io import write_records

from .test_cli import run  # the CLI exit-code helper of this folder


def _fit(tmp_path) -> str:
    write_records(tmp_path / "rec", make_stories(8, emotions=["happy", "sad"]))
    out = tmp_path / "vs"
    args = ["fit", str(tmp_path / "rec"), "--layers", "3", "--skip", "10", "--eval-seeds", "2"]
    assert run(args + ["--out", str(out)]) == 0
    return str(out)


def _records_file(tmp_path) -> str:
    rows = [{"id": s.id, "text": s.text, "label": s.emotion} for s in make_stories(6, seed=3)]
    rows = [r for r in rows if r["label"] in ("happy", "sad")]
    rows += [{"id": "short-1", "text": "She smiled.", "label": "happy"}]
    rows += [{"id": "other-1", "text": "Tom saw a dog and frowned hard.", "label": "angry"}]
    path = tmp_path / "eval.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def test_evaluate_file_skip_baselines_and_left_out(tmp_path, capsys):
    vs, data = _fit(tmp_path), _records_file(tmp_path)
    capsys.readouterr()
    out = tmp_path / "ev.json"
    assert run(["vectors", "evaluate", vs, "--on", data, "--out", str(out)]) == 0
    cap = capsys.readouterr()
    report = json.loads(out.read_text())
    # the set's own skip (10): the 3-token text has nothing to pool -> left out, loudly
    assert report["skip"] == 10 and report["n_skipped_short"] == 1 and report["skipped"] == 1
    assert report["n_input"] == 14 and report["n"] == 12
    assert "warning: 1 of 14 records left out: no token from --skip 10 on" in cap.err
    assert "warning: 1 of 14 records left out: their label is not one" in cap.err
    assert "LEFT OUT: 2 of 14 records" in cap.out
    # baselines on the same records: majority share, lexical trained on the set's own texts
    assert report["majority"] == 0.5 and report["majority_label"] in ("happy", "sad")
    assert report["lexical_kind"] == "transfer" and 0.0 <= report["lexical"] <= 1.0
    lo, hi = report["vs_lexical"]["diff_ci"]
    assert lo <= report["vs_lexical"]["diff_mean"] <= hi
    assert "baselines: majority" in cap.out
    # --skip 0 reads whole texts: nothing is left out for length
    assert run(["vectors", "evaluate", vs, "--on", data, "--skip", "0", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["n_skipped_short"] == 0 and report["n"] == 13 and report["skip"] == 0
    # --save keeps the headline in the set, and the vector card lists it
    assert run(["vectors", "evaluate", vs, "--on", data, "--skip", "0", "--save"]) == 0
    from emocurate.artifacts import read_transfers

    (saved,) = read_transfers(vs)
    assert saved.source == data and saved.n == 13 and saved.skipped == 1
    assert run(["card", vs]) == 0
    card = (tmp_path / "vs" / "README.md").read_text()
    assert "On other labelled text" in card and "eval.jsonl" in card


def test_lexical_falls_back_to_cross_validation_without_training_texts(tmp_path, capsys):
    import shutil

    vs, data = _fit(tmp_path), _records_file(tmp_path)
    shutil.rmtree(tmp_path / "rec")  # the fitting data is gone: no transfer baseline
    out = tmp_path / "ev.json"
    assert run(["vectors", "evaluate", vs, "--on", data, "--skip", "0", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["lexical_kind"].startswith("in-domain")
    assert report["lexical"] is not None


def test_a_failed_transfer_keeps_curation_flag_only(tmp_path):
    from emocurate.artifacts import TRANSFER_DIR, TransferEvaluation
    from emocurate.corpus.guard import vector_trust

    vs = _fit(tmp_path)
    ok, why = vector_trust(vs)
    assert ok, why  # held-out accuracy above chance, no transfer saved
    t = TransferEvaluation(
        source="human.jsonl",
        layer=3,
        n=100,
        n_input=100,
        n_skipped_short=0,
        skipped=0,
        skip=0,
        accuracy=0.30,
        accuracy_ci=(0.22, 0.40),
        majority=0.58,
        majority_label="happy",
        lexical_kind="transfer",
    )
    (tmp_path / "vs" / TRANSFER_DIR).mkdir()
    (tmp_path / "vs" / TRANSFER_DIR / "human.json").write_text(t.model_dump_json())
    ok, why = vector_trust(vs)
    assert not ok and "does not beat its majority class (happy, 0.58)" in why
