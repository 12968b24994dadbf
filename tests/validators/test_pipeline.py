"""The validate stage: every row kept with verdict columns, splits, funnel, resume, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from emocurate.configs import ValidateConfig
from emocurate.errors import InputError
from emocurate.records import Story
from emocurate.validators.pipeline import validate

from .conftest import GOOD, make_dialogue, make_story, write_stage

OTHER = (
    "Ben and his dad built a tall tower of blocks on the kitchen floor after lunch. When the cat "
    "jumped on the table, the tower shook but it did not fall. Ben laughed and clapped his hands, "
    "and Dad lifted him up high so he could put the last red block on the very top."
)
THIRD = (
    "The old man walked to the end of the pier every morning with a paper bag of bread crumbs. "
    "The gulls knew him by now and waited on the posts in a long grey row. Today the bag was "
    "empty, and he stood there a while with his hands in his pockets before he went home."
)


def stories() -> list[Story]:
    return [
        make_story(GOOD, "sad", rid="good-sad"),
        make_story(OTHER, "happy", rid="good-happy"),
        make_story(THIRD, "lonely", rid="good-lonely"),
        make_story(
            GOOD.replace("did not go inside", "felt sad and did not go inside"), "sad", rid="leaky"
        ),
        make_story("Too short.", "sad", rid="short"),
        make_story(OTHER.replace("laughed and", "laughed, and"), "happy", rid="dupe"),
        make_story(THIRD, "blorft", rid="unknown-emotion"),
        make_story("", "sad", rid="empty"),
    ]


@pytest.fixture
def stage(tmp_path: Path) -> Path:
    return write_stage(tmp_path / "in", stories())


def test_funnel_and_splits(stage: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    m = validate(stage, out, ValidateConfig())
    assert (m.total, m.kept, m.rejected) == (8, 3, 5)
    steps = {s["step"]: s for s in m.model_dump(by_alias=True)["funnel"]}
    assert [s.step for s in m.funnel] == ["input", "rules", "leakage", "dedup"]
    assert steps["input"]["rejected"] == 2 and steps["rules"]["rejected"] == 1
    assert steps["leakage"]["rejected"] == 1 and steps["dedup"]["rejected"] == 1
    assert m.per_validator["input"].reasons == {"unknown_emotion": 1, "empty_text": 1}
    assert m.per_emotion["sad"].model_dump(by_alias=True) == {
        "in": 4,
        "kept": 1,
        "rejected_by": {"input": 1, "rules": 1, "leakage": 1, "dedup": 0},
    }
    assert json.loads((out / "manifest.json").read_text())["kept"] == 3

    kept = pq.read_table(out / "kept" / "data" / "story.parquet").to_pylist()
    rejected = pq.read_table(out / "rejected" / "data" / "story.parquet").to_pylist()
    assert sorted(r["id"] for r in kept) == ["good-happy", "good-lonely", "good-sad"]
    by_id = {r["id"]: r for r in rejected}
    assert set(by_id) == {"leaky", "short", "dupe", "unknown-emotion", "empty"}
    assert by_id["leaky"]["rejected_by"] == "leakage" and "'sad'" in by_id["leaky"]["reasons"][0]
    assert by_id["dupe"]["rejected_by"] == "dedup" and "good-happy" in by_id["dupe"]["reasons"][0]
    assert by_id["short"]["reasons"][0].startswith("rules: too_short")
    assert by_id["short"]["score_leakage"] is None  # later validators did not see it
    assert kept[0]["keep"] is True and kept[0]["score_leakage"] == 0.0
    verdicts = json.loads(by_id["leaky"]["verdicts"])
    assert verdicts["rules"]["keep"] and not verdicts["leakage"]["keep"]


def test_splits_load_with_datasets(stage: Path, tmp_path: Path) -> None:
    from datasets import load_dataset

    out = tmp_path / "out"
    validate(stage, out)
    kept = load_dataset("parquet", data_dir=str(out / "kept" / "data"), split="train")
    rej = load_dataset("parquet", data_dir=str(out / "rejected" / "data"), split="train")
    assert len(kept) == 3 and len(rej) == 5
    assert {"keep", "reasons", "rejected_by", "score_rules", "verdicts", "text", "emotion"} <= set(
        kept.column_names
    )


def test_kept_split_reads_back_as_records(stage: Path, tmp_path: Path) -> None:
    from emocurate.io import read_records

    out = tmp_path / "out"
    validate(stage, out)
    recs = read_records(out / "kept", Story)
    assert sorted(r.id for r in recs) == ["good-happy", "good-lonely", "good-sad"]


def test_rerun_is_idempotent_and_resumes(stage: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = validate(stage, out)
    kept1 = pq.read_table(out / "kept" / "data" / "story.parquet")
    second = validate(stage, out)
    assert all(second.per_validator[v].cached for v in ("rules", "leakage", "dedup"))
    assert pq.read_table(out / "kept" / "data" / "story.parquet").equals(kept1)
    assert first.funnel == second.funnel
    # a run killed after rules: only the missing validators' verdicts are recomputed
    for f in (out / ".cache" / "verdicts").glob("dedup-*.json"):
        f.unlink()
    third = validate(stage, out)
    assert third.per_validator["rules"].cached and not third.per_validator["dedup"].cached
    assert third.funnel == first.funnel
    # a changed setting invalidates only that validator and what follows it
    fourth = validate(stage, out, ValidateConfig(dedup_threshold=0.95))
    assert fourth.per_validator["leakage"].cached and not fourth.per_validator["dedup"].cached


def test_dialogues_and_mixed_kinds(tmp_path: Path) -> None:
    d_ok = make_dialogue(
        [
            ("human", "My exam is tomorrow and I keep checking the clock every minute."),
            ("assistant", "Let's make a short plan. What topic feels least ready?"),
            ("human", "Probably the chapter on cells. I skipped two lectures on it."),
            ("assistant", "Then start there for an hour, and sleep by eleven."),
        ],
        rid="d1",
    )
    d_bad = make_dialogue(
        [
            ("assistant", "Hello! I am here to help you with anything today."),
            ("human", "My exam is tomorrow and I keep checking the clock."),
        ],
        rid="d2",
    )
    folder = tmp_path / "in"
    write_stage(folder, [d_ok, d_bad], name="dialogues")
    write_stage(folder, [make_story(rid="s1")], name="stories")
    out = tmp_path / "out"
    m = validate(folder, out)
    assert m.kinds == {"dialogue": 2, "story": 1} and m.kept == 2
    assert (out / "kept" / "data" / "dialogue.parquet").exists()
    rej = pq.read_table(out / "rejected" / "data" / "dialogue.parquet").to_pylist()
    assert [r["id"] for r in rej] == ["d2"] and "structure" in rej[0]["reasons"][0]
    assert m.per_emotion["worried"].n_in == 2


def test_missing_column_names_file_and_column(tmp_path: Path) -> None:
    folder = tmp_path / "in" / "data"
    folder.mkdir(parents=True)
    pq.write_table(
        pa.table({"kind": ["story"], "id": ["a"], "text": ["hi"], "topic": ["t"]}),
        folder / "part.parquet",
    )
    with pytest.raises(InputError, match=r"part\.parquet: missing column\(s\) emotion"):
        validate(tmp_path / "in", tmp_path / "out")


def test_bad_row_names_row_and_field(tmp_path: Path) -> None:
    folder = tmp_path / "in" / "data"
    folder.mkdir(parents=True)
    pq.write_table(
        pa.table(
            {
                "kind": ["story", "story"],
                "id": ["a", "b"],
                "text": ["hi", None],
                "emotion": ["sad", "sad"],
                "topic": ["t", "t"],
            }
        ),
        folder / "p.parquet",
    )
    with pytest.raises(InputError, match=r"row 1: invalid story record, field 'text'"):
        validate(tmp_path / "in", tmp_path / "out")


def test_unknown_kind_and_missing_input(tmp_path: Path) -> None:
    folder = tmp_path / "in" / "data"
    folder.mkdir(parents=True)
    pq.write_table(pa.table({"kind": ["poem"], "id": ["a"], "text": ["x"]}), folder / "p.parquet")
    with pytest.raises(InputError, match="unknown kind 'poem'"):
        validate(tmp_path / "in", tmp_path / "out")
    with pytest.raises(InputError, match="not found"):
        validate(tmp_path / "nope", tmp_path / "out")


def test_duplicate_ids_rejected(tmp_path: Path) -> None:
    folder = write_stage(
        tmp_path / "in", [make_story(rid="x"), make_story(OTHER, "happy", rid="x")]
    )
    m = validate(folder, tmp_path / "out", ValidateConfig(validators=["rules"]))
    assert m.per_validator["input"].reasons == {"duplicate_id": 1}


def test_config_errors() -> None:
    with pytest.raises(ValueError, match="unknown validator"):
        ValidateConfig(validators=["rules", "vibes"])
    with pytest.raises(ValueError, match="min_words"):
        ValidateConfig(min_words=50, max_words=10)


def test_uninformative_probe_is_reported_not_used(tmp_path: Path) -> None:
    """A probe that cannot beat the majority class rejects nothing, and says so in the
    manifest (funnel status) and on the console, instead of a bare "0 rejected"."""
    import random

    from .synth import labelled_stories

    rng = random.Random(4)
    recs = [
        make_story(text, rng.choice(["sad", "happy", "scared"]), rid=f"r{i:03d}")
        for i, (text, _) in enumerate(labelled_stories(20, 4))
    ]
    said: list[str] = []
    m = validate(
        write_stage(tmp_path / "in", recs),
        tmp_path / "out",
        ValidateConfig(validators=["probe"], probe_model="tfidf"),
        log=said.append,
    )
    probe = {s["step"]: s for s in m.model_dump(by_alias=True)["funnel"]}["probe"]
    assert probe["rejected"] == 0
    assert probe["status"].startswith("not used: the probe does not beat the majority class")
    assert m.per_validator["probe"].used is False
    assert any("probe: NOT USED" in line for line in said), said
    assert {s["step"]: s for s in m.model_dump(by_alias=True)["funnel"]}["input"][
        "status"
    ] == "used"
