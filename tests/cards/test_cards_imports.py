"""cards/ reads stage artifacts (``emocurate.artifacts``), not the torch-side vector code.

Importing any cards module must not import torch, and a vector card and the report for a set
with a stored evaluation (geometry included) render without it: they need the set's metadata,
its evaluation and its steering report, all JSON.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import emocurate


def _modules() -> list[str]:
    cards = Path(emocurate.__file__).parent / "cards"
    names = sorted(p.stem for p in cards.glob("*.py") if p.stem != "__init__")
    assert {"vector_card", "report", "dataset_card", "hub", "geometry"} <= set(names), names
    return [f"emocurate.cards.{n}" for n in names]


def _run(code: str) -> str:
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout.strip()


def test_importing_every_cards_module_imports_no_torch() -> None:
    mods = _modules()
    code = "import sys\n" + "".join(f"import {m}\n" for m in mods)
    code += "print('torch' in sys.modules)"
    assert _run(code) == "False"


def test_vector_card_and_report_with_an_evaluation_render_without_torch(
    stages: dict[str, Path], tmp_path: Path
) -> None:
    code = (
        "import sys\n"
        "from emocurate.cards.vector_card import write_vector_card\n"
        "from emocurate.cards.report import write_report\n"
        f"write_vector_card({str(stages['vec'])!r}, out_dir={str(tmp_path / 'card')!r})\n"
        f"write_report({str(tmp_path / 'r.html')!r}, vectors_dir={str(stages['vec'])!r})\n"
        "print('torch' in sys.modules)\n"
    )
    assert _run(code) == "False"
    assert "Emotion vectors for stories260K" in (tmp_path / "card" / "README.md").read_text()
