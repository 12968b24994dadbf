"""Manifests are written and read only through the typed models of ``emocurate.artifacts``."""

from __future__ import annotations

import re
from pathlib import Path

import emocurate.io

PACKAGE = Path(emocurate.io.__file__).parent


def test_io_has_no_untyped_manifest_writer_or_reader():
    assert not hasattr(emocurate.io, "write_manifest")
    assert not hasattr(emocurate.io, "read_manifest")


def test_no_module_builds_a_manifest_file_by_hand():
    """Only ``artifacts.py`` names the manifest file when writing: every writer calls
    ``Manifest.save``."""
    offenders = [
        str(p.relative_to(PACKAGE))
        for p in sorted(PACKAGE.rglob("*.py"))
        if p.name != "artifacts.py"
        and re.search(r"write_manifest|read_manifest|/ MANIFEST\b", p.read_text("utf-8"))
    ]
    assert offenders == []


def test_every_manifest_is_written_without_url_credentials(tmp_path):
    """``Manifest.save`` redacts for every stage (a judge's ``--base-url`` in a validate
    manifest's config was written as given before)."""
    from emocurate.artifacts import ValidateManifest

    url = "https://user:hunter2@judge.example/v1?api-key=hunter2&x=1"
    ValidateManifest(total=0, kept=0, rejected=0, config={"base_url": url}).save(tmp_path)
    back = ValidateManifest.read(tmp_path)
    assert back is not None
    assert back.config.base_url == "https://***@judge.example/v1?api-key=***&x=1"
    assert "hunter2" not in (tmp_path / "manifest.json").read_text()
