"""Vector cards: model, layer, method, evaluation, geometry figure; merging updates."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from huggingface_hub import ModelCard

from emocurate.cards.dataset_card import write_dataset_card
from emocurate.cards.metadata import check_card
from emocurate.cards.vector_card import write_vector_card


def test_vector_card_content(stages: dict[str, Path], tmp_path: Path) -> None:
    vec = tmp_path / "vec"
    shutil.copytree(stages["vec"], vec)
    val = tmp_path / "val"
    shutil.copytree(stages["val"], val)
    write_dataset_card(val / "kept", repo_id="org/stories")
    text = write_vector_card(vec, training_dir=val / "kept").read_text()
    assert check_card(text, "model") == []
    meta = ModelCard(text).data.to_dict()
    assert "emotion-vectors" in meta["tags"] and meta["datasets"] == ["org/stories"]
    assert "| model | `stories260K` |" in text and "| revision | `abc123` |" in text
    assert "3 (default 3 of 5)" in text and "`mean_diff`, mean pooling from token 50" in text
    assert "| held-out accuracy (top-1) | 0.83 |" in text and "| mean AUROC | 0.925 |" in text
    assert "| **3** | 0.83 | 0.97 | 0.925 |" in text  # layer sweep from evaluation.json
    assert "PC1 vs valence r = +0.91" in text and "PC2 vs arousal r = +0.74" in text
    assert "`sad` → `afraid` (2)" in text
    assert "| happy | `happyly` `joy` | `the` `of` |" in text
    # the training data is linked on the Hub (the default endpoint; no request is made)
    assert re.search(r"\]\(https://[a-z.]+/datasets/org/stories\)", text)
    svg = (vec / "figures" / "geometry.svg").read_text()
    assert svg.count("class='point'") == 6 and "happy" in svg
    assert (
        "![Emotion vectors on their first two principal components](figures/geometry.svg)" in text
    )


def test_vector_card_without_evaluation_computes_geometry_and_keeps_edits(
    stages: dict[str, Path], tmp_path: Path
) -> None:
    vec = tmp_path / "vec"
    shutil.copytree(stages["vec_bare"], vec)
    path = write_vector_card(vec)
    text = path.read_text()
    assert (
        "computed from the vectors" in text and "Not available when this card was written" in text
    )
    m = re.search(r"explain ([\d.]+)% and ([\d.]+)%", text)
    assert m and 0 < float(m.group(2)) <= float(m.group(1)) <= 100
    path.write_text(
        text.replace(
            "_Add your own notes here: emocurate never rewrites this section._", "Lab notes: OK."
        )
        + "\n## Our evaluation\n\nWorks on our data.\n"
    )
    again = write_vector_card(vec).read_text()
    assert "Lab notes: OK." in again and "Works on our data." in again
    assert again.count("<!-- emocurate:begin geometry -->") == 1
