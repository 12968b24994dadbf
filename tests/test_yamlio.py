"""YAML through libyaml: the same objects as PyYAML's safe loader, and just as safe."""

from __future__ import annotations

from importlib import resources

import pytest
import yaml

from emocurate import yamlio


def _bundled() -> list[str]:
    root = resources.files("emocurate")
    out = []
    for sub in ("data", "data/policies", "data/pipelines"):
        d = root.joinpath(sub)
        if d.is_dir():
            out += [f.read_text("utf-8") for f in d.iterdir() if f.name.endswith((".yaml", ".yml"))]
    return out


def test_same_objects_as_safe_load_on_every_bundled_file() -> None:
    texts = _bundled()
    assert texts  # the taxonomy at least
    for text in texts:
        assert yamlio.safe_load(text) == yaml.safe_load(text)


def test_uses_libyaml_when_pyyaml_has_it() -> None:
    """The taxonomy load sat on the path to the first forward batch (~75 ms pure Python)."""
    if not hasattr(yaml, "CSafeLoader"):
        pytest.skip("PyYAML built without libyaml")
    assert yamlio._SAFE is yaml.CSafeLoader


def test_python_tags_are_refused() -> None:
    with pytest.raises(yaml.YAMLError):
        yamlio.safe_load("!!python/object/apply:os.system ['echo hi']")
