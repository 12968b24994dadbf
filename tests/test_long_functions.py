"""Issue 20 item 5: no function over ~80 lines without a reason in its docstring.

The measure is ``scripts/long_functions.py`` (a nested function counts inside its container
too). Functions still long in files other work owns are listed here by name: a new long
function anywhere, or one of these growing a sibling, fails the test; shortening one of them
never does.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Long and unexplained, in modules other slices of issue 20 are changing (money: engine and
# batch).
NOT_YET = {
    ("emocurate/generators/engine.py", "Engine._one"),
    ("emocurate/generators/engine.py", "Engine.run"),
    ("emocurate/generators/batch.py", "BatchRunner.run"),
}


def _script() -> object:
    spec = importlib.util.spec_from_file_location(
        "long_functions", ROOT / "scripts" / "long_functions.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while building
    spec.loader.exec_module(module)
    return module


def test_every_long_function_states_why() -> None:
    script = _script()
    found = script.long_functions(ROOT / "emocurate", 80)  # type: ignore[attr-defined]
    unexplained = {(str(f.path.relative_to(ROOT)), f.name) for f in found if not f.has_reason}
    assert unexplained <= NOT_YET, sorted(unexplained - NOT_YET)


def test_the_measure_counts_nested_functions_and_reads_the_reason(tmp_path: Path) -> None:
    body = "\n".join(f"        x{i} = {i}" for i in range(90))
    (tmp_path / "m.py").write_text(
        "def outer():\n"
        '    """Short doc."""\n'
        "    def inner():\n"
        f"{body}\n"
        "    return inner\n\n\n"
        "def explained():\n"
        '    """Does a lot.\n\n    Long because it is a test.\n    """\n'
        + "\n".join(f"    y{i} = {i}" for i in range(90))
        + "\n"
    )
    found = {f.name: f for f in _script().long_functions(tmp_path, 80)}  # type: ignore[attr-defined]
    assert set(found) == {"outer", "outer.inner", "explained"}
    assert not found["outer"].has_reason and found["explained"].has_reason
    assert found["outer"].length > found["outer.inner"].length > 80
