"""Prompt templates stored as files in ``generators/prompts/``, versioned by content hash.

A prompt's id is its file stem (``stories_system``); its hash is the first 12 hex digits of the
sha256 of the file's bytes, recorded in every request and record's provenance, so any edit to
a prompt is visible in the data it produced. Templates use ``$name`` placeholders
(:class:`string.Template`) so JSON braces in prompts need no escaping.
"""

from __future__ import annotations

import hashlib
from functools import cache
from importlib import resources
from string import Template

from emocurate.records import Model


class PromptFile(Model):
    """One template file."""

    id: str
    text: str
    hash: str

    def render(self, **values: object) -> str:
        """Fill ``$placeholders`` (every placeholder must be given)."""
        return Template(self.text).substitute({k: str(v) for k, v in values.items()}).strip()


@cache
def load_prompt(name: str) -> PromptFile:
    """Load ``prompts/<name>.md`` from the installed package."""
    data = resources.files("emocurate.generators").joinpath(f"prompts/{name}.md").read_bytes()
    return PromptFile(
        id=name, text=data.decode("utf-8"), hash=hashlib.sha256(data).hexdigest()[:12]
    )


def prompt_pair(kind: str) -> tuple[PromptFile, PromptFile, str, str]:
    """System and user templates of a generator, plus the combined id and hash for provenance."""
    system, user = load_prompt(f"{kind}_system"), load_prompt(f"{kind}_user")
    combined = hashlib.sha256((system.hash + user.hash).encode()).hexdigest()[:12]
    return system, user, f"{kind}/v1", combined
