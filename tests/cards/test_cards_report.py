"""The HTML report: self-contained, all figures present, renders in headless Chromium."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import cards_png
import pytest

from emocurate.cards.report import write_report

CHROMIUM = next(
    (shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)),
    None,
)
CHROME_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
]


def _full(stages: dict[str, Path], out: Path) -> Path:
    return write_report(
        out,
        vectors_dir=stages["vec"],
        scores_dir=stages["scores"],
        validation_dir=stages["val"],
        generation_dir=stages["gen"],
        curated_dir=stages["cur"],
        title="Test report",
    )


def test_report_is_self_contained_with_all_figures(stages: dict[str, Path], tmp_path: Path) -> None:
    html = _full(stages, tmp_path / "r" / "report.html").read_text()
    assert "<script" not in html.lower()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html), (
        "external resource referenced"
    )
    assert "@import" not in html and "url(" not in html
    assert html.count("class='point'") == 6  # one labelled point per emotion
    assert html.count("class='figure histogram'") == 6  # one per regulation metric; no mean__/p95__
    assert "mean__" not in html
    assert html.count('<tr class="flag-row">') == 6  # docs 0,3,6,9 unresolved + 1,5,9 escalation
    assert html.count('class="doc heatmap-doc"') == 4  # the four traced documents
    assert "class='flag-span'" in html and "class='tok flagged'" in html
    assert "unresolved_end" in html and "24 / 30" in html and "Not in this report" not in html
    assert "rows quarantined" in html


def test_report_scores_only_and_missing_inputs(stages: dict[str, Path], tmp_path: Path) -> None:
    html = write_report(tmp_path / "r.html", scores_dir=stages["scores"]).read_text()
    assert html.count("class='figure histogram'") == 6
    assert html.count('class="doc heatmap-doc"') == 4
    assert "Not in this report" in html and "emotion vectors (--vectors)" in html
    html2 = write_report(tmp_path / "r2.html", vectors_dir=stages["vec_bare"]).read_text()
    assert html2.count("class='point'") == 6 and "computed from the vectors" in html2


def test_report_escapes_document_text(stages: dict[str, Path], tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    scores = tmp_path / "scores"
    shutil.copytree(stages["scores"], scores)
    t = pq.read_table(scores / "tokens" / "shard-00000.parquet").to_pylist()
    t[0]["tokens"] = ["<img src=x onerror=alert(1)>"] * len(t[0]["tokens"])
    pq.write_table(pa.Table.from_pylist(t), scores / "tokens" / "shard-00000.parquet")
    html = write_report(tmp_path / "r.html", scores_dir=scores).read_text()
    assert "<img src=x" not in html and "&lt;img src=x" in html


def test_report_stays_small_for_long_documents(tmp_path: Path) -> None:
    """50 documents of 2,000 tokens, each with a heatmap: at most 2 MB, still with the flagged
    spans boxed on the strip and per-token values (on hover) in the evidence excerpts."""
    from cards_fixtures import make_scores

    scores = make_scores(tmp_path / "scores", n_docs=50, n_traced=50, n_tokens=2000)
    html = write_report(tmp_path / "r.html", scores_dir=scores, max_heatmaps=50).read_text()
    size = len(html.encode())
    assert size <= 2_000_000, f"report is {size / 1e6:.1f} MB"
    assert html.count('class="doc heatmap-doc"') == 50
    assert html.count("class='cells'") == 50  # one image per strip, not one element per cell
    assert html.count("class='flag-span'") >= 25
    assert "class='tok flagged'" in html and re.search(r"title='#1990 [a-z]+ [+-]\d", html)


def _chromium(args: list[str], timeout: int = 90) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run(
            [CHROMIUM, *CHROME_FLAGS, f"--user-data-dir={profile}", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
        )


@pytest.mark.browser
@pytest.mark.skipif(
    CHROMIUM is None and not os.environ.get("CI"),
    reason="headless Chromium not installed (apt-get install -y chromium chromium-driver)",
)
def test_report_renders_in_headless_chromium(stages: dict[str, Path], tmp_path: Path) -> None:
    report = _full(stages, tmp_path / "report.html")
    shot = tmp_path / "shot.png"
    r = _chromium([f"--screenshot={shot}", "--window-size=1280,2000", report.as_uri()])
    assert shot.exists(), r.stderr[-2000:]
    width, height, rows = cards_png.decode(shot)
    assert (width, height) == (1280, 2000)
    palette = cards_png.colors(rows)
    assert len(palette) > 200, f"screenshot looks blank ({len(palette)} colours)"
    # the dark header band and the light page background are both there
    assert rows[10][:3] != rows[1990][:3]
    dom = _chromium(["--dump-dom", report.as_uri()]).stdout
    assert dom.count('class="point"') == 6
    assert dom.count('class="figure histogram"') == 6
    assert 'class="figure heatmap"' in dom and dom.count('class="cells"') >= 1
    assert dom.count('class="flag-span"') >= 1 and 'class="tok flagged"' in dom
    assert 'id="flagged"' in dom and dom.count('class="flag-row"') == 6


def test_report_decision_sections(stages: dict[str, Path], tmp_path: Path) -> None:
    """Evaluation beside its baselines, thresholds on the histograms, what curation did, and
    when nothing is flagged, which threshold was not reached."""
    import json

    import pyarrow.parquet as pq

    from emocurate.artifacts import CurateManifest, ScoreManifest, VectorsRef

    scores = tmp_path / "scores"
    shutil.copytree(stages["scores"], scores)
    table = pq.read_table(scores / "data" / "shard-00000.parquet").to_pylist()
    for r in table:
        r["flags"], r["flag_kinds"], r["n_flags"] = [], [], 0
    import pyarrow as pa

    pq.write_table(pa.Table.from_pylist(table), scores / "data" / "shard-00000.parquet")
    traces = pq.read_table(scores / "tokens" / "shard-00000.parquet").to_pylist()
    for t in traces:
        t["flags"] = []
    pq.write_table(pa.Table.from_pylist(traces), scores / "tokens" / "shard-00000.parquet")
    metrics = {"threshold": 9.0, "volatility_high": 0.75}  # MetricConfig fields (typed config)
    ScoreManifest(
        inputs=["sample.jsonl"],
        rows_in=len(table),
        scored=len(table),
        vectors=VectorsRef(dir=str(tmp_path / "vec")),
        config={"z_thresholds": True, "metrics": metrics},
    ).save(scores)
    cur = tmp_path / "cur"
    CurateManifest.model_validate(
        dict(
            scores_dir=str(scores),
            rows_in=12,
            kept=12,
            flagged=0,
            dropped=0,
            rules=[
                {"rule": "too_short", "action": "flag", "matched": 0, "decided": 0, "share": 0.0}
            ],
            guardrail={
                "decision": "flag-only",
                "reason": "the vectors' held-out accuracy overlaps chance 0.17",
                "risky_actions": ["drop (rule too_short)"],
                "trusted": False,
            },
            with_text=True,
        )
    ).save(cur)
    html = write_report(
        tmp_path / "r.html", vectors_dir=stages["vec"], scores_dir=scores, curated_dir=cur
    ).read_text()
    ev = json.loads((stages["vec"] / "evaluation.json").read_text())
    assert 'id="evaluation"' in html and "chance (1 / " in html
    assert f"{ev['accuracy']:.3f}" in html
    assert "Flag thresholds: fixed z-unit thresholds" in html
    assert "distress max (threshold 9.00)" in html and "stroke-dasharray" in html
    assert "No threshold was reached" in html
    assert re.search(
        r"distress_max \(decides distress_episode.*\): highest [\d.]+ in doc-\d+, below its threshold 9.00",
        html,
    )
    assert 'id="curation"' in html and html.count('class="rule-row"') == 1
    assert "Guardrail: <b>flag-only</b>" in html and "Every drop was turned into a flag" in html
    # axes are named after valence/arousal only with their correlation
    assert "r with valence" in html and "→ valence" not in html
