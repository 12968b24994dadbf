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
    assert "3 (default 3 of 5)" in text and "| method | `mean_diff` |" in text
    assert "skip = 50" in text
    # accuracy ± interval beside chance, majority and the lexical baseline, and the verdict
    assert "**0.830 ± 0.040** (95% interval 0.770 – 0.890) over 5 split seeds" in text
    assert "| emotion vectors (layer 3) | 0.830 | ± 0.040 | 0.770 – 0.890 |" in text
    assert "| lexical baseline (TF-IDF + logistic regression) | 0.900 | ± 0.030 |" in text
    assert "| majority class | 0.200 |" in text and "| chance (1/6) | 0.167 |" in text
    assert "**The vectors do not beat the lexical baseline" in text
    assert "2 left out because they have no token in the pooling window" in text
    assert "0.0% of the fitted texts (0 of 150)" in text
    assert "| **3** | 0.83 | 0 | 0.97 | 0.925 |" in text  # layer sweep from evaluation.json
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


def test_vector_card_from_a_fit_states_the_lexical_verdict(tmp_path: Path) -> None:
    import sys

    sys.path.insert(0, str(Path(__file__).parents[1] / "vectors"))
    from synth import make_stories

    from emocurate.configs import FitConfig
    from emocurate.io import write_records
    from emocurate.vectors.fit import fit_vectors
    from emocurate.vectors.models import load_model

    write_records(tmp_path / "rec", make_stories(8))
    fit_vectors(
        tmp_path / "rec", FitConfig(layers="4"), tmp_path / "vs", lm=load_model("stories260K")
    )
    text = write_vector_card(tmp_path / "vs").read_text()
    # synthetic stories name their emotion: the keyword baseline is hard to beat
    assert re.search(r"\*\*The vectors (beat|do not beat) the lexical baseline", text)
    assert re.search(r"[\d.]+% of the fitted texts \(\d+ of 32\) name their own label", text)
    assert "chance (1/4)" in text and "majority class" in text


def test_vector_card_names_an_outdated_evaluation(stages: dict[str, Path], tmp_path: Path) -> None:
    vec = tmp_path / "vec"
    shutil.copytree(stages["vec"], vec)
    (vec / "evaluation.json").write_text('{"accuracy": 0.5, "n_test": 4}')
    text = write_vector_card(vec).read_text()
    assert "Not available when this card was written" in text and "refit the vectors" in text
