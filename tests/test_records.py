"""Records round-trip through Arrow/Parquet and reject unknown fields."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from emocurate.artifacts import CardsManifest
from emocurate.io import read_records, write_records
from emocurate.records import (
    FLAG_KINDS,
    Dialogue,
    DocScore,
    Flag,
    NeutralDialogue,
    Provenance,
    RegulationPair,
    Story,
    Turn,
    Verdict,
    from_table,
    record_text,
    stable_id,
    to_table,
)

PROV = Provenance(
    backend="fake",
    model="m",
    prompt_id="stories",
    prompt_hash="abc",
    params={"temperature": 0.7, "top_p": None, "stop": ["\n\n"]},
    seed=3,
)

SAMPLES = [
    [
        Story(
            id="s1", text="Lily ran.", emotion="happy", topic="park", pov="first", provenance=PROV
        ),
        Story(id="s2", text="Once. Tom sat.", emotion="sad", topic="rain", prompt_prefix="Once. "),
    ],
    [
        Dialogue(
            id="d1",
            turns=[Turn(speaker="human", text="hi"), Turn(speaker="assistant", text="hello")],
            human_emotion="nervous",
            assistant_emotion="calm",
            provenance=PROV,
        )
    ],
    [NeutralDialogue(id="n1", turns=[Turn(speaker="human", text="sort a list?")])],
    [
        RegulationPair(
            id="r1",
            setup="tests fail",
            healthy="ask for help",
            unhealthy="cheat",
            emotion="desperate",
            protagonist="ai_assistant",
        )
    ],
    [
        Verdict(
            record_id="s1",
            validator="leakage",
            keep=False,
            reason="names 'happy'",
            details={"span": [3, 8]},
        )
    ],
    [
        DocScore(
            doc_id="x",
            n_tokens=10,
            dominant=["calm"],
            emotion_mean={"calm": 0.5, "at ease": 0.1},
            metrics={"volatility": 0.2},
            flags=[Flag(kind="distress_episode", start=1, end=4, severity=2.0)],
        )
    ],
]


@pytest.mark.parametrize("records", SAMPLES, ids=lambda r: type(r[0]).__name__)
def test_parquet_round_trip(tmp_path, records):
    cls = type(records[0])
    write_records(tmp_path, records)
    back = read_records(tmp_path, cls)
    assert back == records


def test_datasets_reads_stage_folder(tmp_path):
    from datasets import load_dataset

    write_records(tmp_path, SAMPLES[0])
    CardsManifest(report="report.html").save(tmp_path)
    ds = load_dataset("parquet", data_dir=str(tmp_path / "data"), split="train")
    assert sorted(ds["id"]) == ["s1", "s2"]
    back = CardsManifest.read(tmp_path)
    assert back is not None and back.report == "report.html"


def test_extra_fields_are_errors():
    with pytest.raises(ValidationError):
        Story(id="s", text="t", emotion="happy", topic="x", mood="odd")  # type: ignore[call-arg]


def test_flag_kind_is_one_of_the_declared_kinds():
    # Flag kinds are a Literal declared beside the Flag record: a typo is a validation error,
    # not a flag no policy can ever match.
    for kind in FLAG_KINDS:
        assert Flag(kind=kind, start=0, end=1).kind == kind
    with pytest.raises(ValidationError, match="kind"):
        Flag(kind="distress_episod", start=0, end=1)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="kind"):
        DocScore(doc_id="d", n_tokens=3, flags=[{"kind": "bogus", "start": 0, "end": 1}])


def test_params_survive_as_json_with_uniform_schema():
    a = Story(id="a", text="t", emotion="sad", topic="x", provenance=PROV)
    b = Story(
        id="b",
        text="t",
        emotion="sad",
        topic="x",
        provenance=PROV.model_copy(update={"params": {"max_tokens": 5}}),
    )
    table = to_table([a, b])
    assert table.schema.field("provenance").type.get_field_index("params") >= 0
    back = from_table(table, Story)
    assert back[0].provenance and back[0].provenance.params["stop"] == ["\n\n"]
    assert back[1].provenance and back[1].provenance.params == {"max_tokens": 5}


def test_generated_text_and_record_text():
    s = SAMPLES[0][1]
    assert s.generated_text == "Tom sat."
    assert record_text(SAMPLES[1][0]) == "Human: hi\n\nAssistant: hello"
    assert stable_id("a", "b") == stable_id("a", "b") != stable_id("a", "c")


def test_bad_row_names_file_and_field(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from emocurate.errors import InputError

    (tmp_path / "data").mkdir()
    pq.write_table(
        pa.table(
            {"id": ["a"], "text": ["t"], "emotion": ["sad"], "topic": ["x"], "pov": ["second"]}
        ),
        tmp_path / "data" / "p.parquet",
    )
    with pytest.raises(InputError, match=r"p\.parquet.*field 'pov'"):
        read_records(tmp_path, Story)
    pq.write_table(pa.table({"id": ["a"]}), tmp_path / "data" / "p.parquet")
    with pytest.raises(InputError, match="missing column"):
        read_records(tmp_path, Story)


def test_score_manifest_attributes_are_typed() -> None:
    """Issue 20: ``ScoreManifest.attributes`` was ``Any``: a reader indexed ``['files']`` and
    a malformed value passed unnoticed. It is a typed record (folder, lines per file)."""
    import pytest
    from pydantic import ValidationError

    from emocurate.artifacts import AttributeFiles, ScoreManifest

    fields = ScoreManifest.model_fields["attributes"]
    assert fields.annotation == AttributeFiles | None
    ok = AttributeFiles.model_validate({"dir": "attrs", "files": {"a.jsonl": 3}})
    assert ok.files == {"a.jsonl": 3}
    with pytest.raises(ValidationError):
        AttributeFiles.model_validate({"dir": "attrs", "files": ["a.jsonl"]})
