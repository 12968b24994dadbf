"""Prompt templates stored as files in ``generators/prompts/``, versioned by content hash.

A prompt's id is its file stem (``stories_system``); its hash is the first 12 hex digits of the
sha256 of the file's bytes, recorded in every request and record's provenance, so any edit to
a prompt is visible in the data it produced. Templates use ``$name`` placeholders
(:class:`string.Template`) so JSON braces in prompts need no escaping.

A prompt file that is empty, is not UTF-8, holds an invalid ``$`` placeholder, or asks for a
value the generator does not give is a one-line :class:`~emocurate.errors.ConfigError` naming the
file, at load or render time, never a bare ``KeyError`` and never a silently empty prompt.
"""

from __future__ import annotations

import hashlib
from functools import cache
from importlib import resources
from string import Template

from emocurate.errors import ConfigError
from emocurate.records import Model

PROMPTS_DIR = "emocurate/generators/prompts"


class PromptFile(Model):
    """One template file."""

    id: str
    text: str
    hash: str
    where: str = ""  # the file it came from, named in errors

    def render(self, **values: object) -> str:
        """Fill ``$placeholders`` (every placeholder must be given)."""
        try:
            return Template(self.text).substitute({k: str(v) for k, v in values.items()}).strip()
        except KeyError as exc:
            given = ", ".join(sorted(values)) or "none"
            raise ConfigError(
                f"{self.where or self.id}: placeholder ${exc.args[0]} has no value "
                f"(values given: {given})"
            ) from None
        except ValueError:
            raise ConfigError(f"{self.where or self.id}: invalid placeholder") from None


def parse_prompt(name: str, data: bytes, where: str) -> PromptFile:
    """A prompt from a file's bytes, checked: UTF-8, not empty, valid ``$`` placeholders."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{where}: prompt file is not UTF-8 (byte {exc.start})") from None
    if not text.strip():
        raise ConfigError(f"{where}: empty prompt file")
    if not Template(text).is_valid():
        raise ConfigError(
            f"{where}: invalid placeholder ('$' must start a $name; write $$ for a dollar sign)"
        )
    return PromptFile(id=name, text=text, hash=hashlib.sha256(data).hexdigest()[:12], where=where)


@cache
def load_prompt(name: str) -> PromptFile:
    """Load ``prompts/<name>.md`` from the installed package."""
    where = f"{PROMPTS_DIR}/{name}.md"
    try:
        data = resources.files("emocurate.generators").joinpath(f"prompts/{name}.md").read_bytes()
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read prompt file ({exc.strerror or exc})") from None
    return parse_prompt(name, data, where)


def prompt_pair(kind: str) -> tuple[PromptFile, PromptFile, str, str]:
    """System and user templates of a generator, plus the combined id and hash for provenance."""
    system, user = load_prompt(f"{kind}_system"), load_prompt(f"{kind}_user")
    combined = hashlib.sha256((system.hash + user.hash).encode()).hexdigest()[:12]
    return system, user, f"{kind}/v1", combined
