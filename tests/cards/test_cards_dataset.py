"""Dataset cards: valid Hub metadata, the run's provenance and funnel numbers, merging updates."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cards_fixtures as fx
import pytest
import yaml
from huggingface_hub import DatasetCard

from emocurate.cards.dataset_card import write_dataset_card
from emocurate.cards.inputs import generation_manifest
from emocurate.cards.metadata import check_card, merge_body
from emocurate.errors import InputError
from emocurate.io import write_records


def _copy(src: Path, tmp: Path) -> Path:
    dst = tmp / src.name
    shutil.copytree(src, dst)
    return dst


def test_card_metadata_valid_and_numbers_present(stages: dict[str, Path], tmp_path: Path) -> None:
    val = _copy(stages["val"], tmp_path)
    path = write_dataset_card(
        val / "kept",
        generation_dir=stages["gen"],
        repo_id="org/emo-stories",
        pretty_name="Emotion stories",
    )
    text = path.read_text()
    assert check_card(text, "dataset") == []
    card = DatasetCard.load(path)
    meta = card.data.to_dict()
    assert meta["license"] == "cc-by-4.0" and meta["language"] == ["en"]
    assert meta["size_categories"] == ["n<1K"] and "text-generation" in meta["task_categories"]
    assert meta["configs"] == [
        {"config_name": "default", "data_files": [{"split": "train", "path": "data/*.parquet"}]}
    ]
    assert "emotion" in meta["tags"] and meta["pretty_name"] == "Emotion stories"
    # provenance summed from the 30 generated rows
    assert "| fake | fake-model-1 | 30 |" in text
    assert "`story.v1` | `sha256:abc123def456`" in text
    assert '"temperature":0.9' in text and '"top_p":0.95' in text
    assert "input tokens | 3,600" in text and "output tokens | 2,835" in text  # 30*120; sum(80+i)
    assert "$0.0150" in text and "cache hits | 6" in text
    # funnel from the validation folder (found from kept/ automatically)
    assert "30 generated records were validated: **24 kept** (80.0%) and 6 rejected" in text
    assert "| step | in | rejected | out |" in text
    assert "| rules | 30 | 2 | 28 |" in text and "| leakage | 28 | 4 | 24 |" in text
    assert "| afraid | 5 | 4 | 0 | 0 | 1 |" in text  # per-emotion funnel, rejections per validator
    assert "| leakage: names_emotion | 4 |" in text and "| rules: too_short | 2 |" in text
    # label distribution of the 24 published rows: 4 per emotion
    for e in fx.EMOTIONS:
        assert f"| {e} | 4 |" in text
    assert 'load_dataset("org/emo-stories"' in text
    assert "Not available" not in text


def test_check_card_rejects_bad_metadata() -> None:
    bad = "---\nlicense: not-a-license\nsize_categories: [huge]\nlanguage: [English]\nconfigs: [{data_files: 3}]\n---\nbody\n"
    errs = check_card(bad, "dataset")
    assert any("license" in e for e in errs) and any("size_categories" in e for e in errs)
    assert any("language" in e for e in errs) and any("configs[0]" in e for e in errs)
    assert check_card("no yaml here", "dataset") == ["card has no YAML metadata block"]
    assert check_card("---\n[1, 2\n---\n", "dataset")[0].startswith("YAML does not parse")


def test_update_keeps_user_sections_and_configs(stages: dict[str, Path], tmp_path: Path) -> None:
    gen = _copy(stages["gen"], tmp_path)
    path = write_dataset_card(gen)
    card = DatasetCard.load(path)
    user_configs = [
        {
            "config_name": "default",
            "data_files": [{"split": "train", "path": "data/part-0000*.parquet"}],
        },
        {
            "config_name": "small",
            "data_files": [{"split": "train", "path": "data/part-00000.parquet"}],
        },
    ]
    card.data.configs = user_configs
    card.data.license = "mit"
    card.data.tags = ["my-tag"]
    text = card.text.replace(
        "_Describe what this dataset is for. This section is yours: emocurate never rewrites it._",
        "Curated by the lab for probe fitting.",
    )
    text += "\n## Citation\n\n@misc{lab2026}\n"
    card.text = text
    card.save(path)
    # more data arrives, the card is rewritten
    write_records(gen, fx.stories(10, start=100), name="part-00001")
    new = write_dataset_card(gen).read_text()
    assert check_card(new, "dataset") == []
    meta = yaml.safe_load(new.split("---")[1])
    assert meta["configs"] == user_configs and meta["license"] == "mit"
    assert meta["tags"][0] == "my-tag" and "emocurate" in meta["tags"]
    assert "Curated by the lab for probe fitting." in new and "@misc{lab2026}" in new
    assert "Summed over the 40 records" in new and "Summed over the 30 records" not in new
    assert new.count("<!-- emocurate:begin provenance -->") == 1


def test_merge_body_appends_new_blocks_and_keeps_foreign_text() -> None:
    old = "intro\n<!-- emocurate:begin a -->\nold a\n<!-- emocurate:end a -->\nmine\n"
    fresh = "<!-- emocurate:begin a -->\nnew a\n<!-- emocurate:end a -->\n<!-- emocurate:begin b -->\nb\n<!-- emocurate:end b -->\n"
    merged = merge_body(old, fresh)
    assert "new a" in merged and "old a" not in merged and "intro" in merged and "mine" in merged
    assert merged.rstrip().endswith("<!-- emocurate:end b -->")


def test_validation_folder_gets_two_configs_and_missing_pieces_named(
    stages: dict[str, Path], tmp_path: Path
) -> None:
    val = _copy(stages["val"], tmp_path)
    text = write_dataset_card(val).read_text()
    meta = DatasetCard(text).data.to_dict()
    assert [c["config_name"] for c in meta["configs"]] == ["default", "rejected"]
    assert meta["configs"][0]["data_files"][0]["path"] == "kept/data/*.parquet"
    bare = tmp_path / "bare"
    write_records(bare, [s.model_copy(update={"provenance": None}) for s in fx.stories(5)])
    text = write_dataset_card(bare).read_text()
    assert "Not available when this card was written" in text
    assert "record provenance" in text and "validation funnel" in text


def test_dialogue_labels(tmp_path: Path) -> None:
    text = write_dataset_card(fx.make_dialogues(tmp_path / "dlg")).read_text()
    assert "| emotion | human_emotion | assistant_emotion |" in text
    assert "| afraid | 6 | 0 |" in text and "| calm | 0 | 6 |" in text
    assert "dialogue" in DatasetCard(text).data.to_dict()["tags"]


def test_generation_manifest_is_read_through_the_typed_model(
    stages: dict[str, Path], tmp_path: Path
) -> None:
    """The card reads the generation folder's manifest as ``GenerateManifest``: another stage's
    manifest or none is ``None``; a key the model does not declare is one line naming it."""
    m = generation_manifest(stages["gen"])
    assert m is not None and m.records == 30 and m.tokens.input == 120 * 30
    assert generation_manifest(stages["val"]) is None
    assert generation_manifest(tmp_path) is None
    gen = _copy(stages["gen"], tmp_path)
    raw = json.loads((gen / "manifest.json").read_text())
    (gen / "manifest.json").write_text(json.dumps({**raw, "surprise": 1}))
    with pytest.raises(InputError, match=r"manifest\.json.*surprise"):
        generation_manifest(gen)
    (gen / "manifest.json").write_text(json.dumps({**raw, "stage": 3}))
    with pytest.raises(InputError, match=r"manifest\.json.*stage"):
        generation_manifest(gen)


def test_provenance_is_read_as_the_typed_record(tmp_path: Path) -> None:
    """Provenance columns are parsed into ``records.Provenance`` (params from their JSON
    string); a malformed one is a one-line error naming the row and field, not a guess."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from emocurate.cards.inputs import summarize_records

    folder = tmp_path / "gen"
    recs = fx.stories(4)
    write_records(folder, recs)
    s = summarize_records(folder)
    assert s.with_provenance == 4
    assert s.output_tokens == sum(r.provenance.output_tokens for r in recs if r.provenance)
    assert s.backends and "?" not in s.backends and sum(s.params.values()) == 4

    (path,) = sorted(folder.rglob("*.parquet"))
    rows = pq.read_table(path).to_pylist()
    rows[2]["provenance"]["params"] = "{not json"
    pq.write_table(pa.Table.from_pylist(rows), path)
    with pytest.raises(InputError, match=r"row 2: provenance field 'params'"):
        summarize_records(folder)
