"""Prompt template files: a broken or empty one is a one-line error naming the file."""

from __future__ import annotations

import pytest

from emocurate.errors import ConfigError
from emocurate.generators.prompts import load_prompt, parse_prompt, prompt_pair


def test_bundled_prompts_load_and_render() -> None:
    for kind in ("stories", "dialogues", "neutral", "regulation"):
        system, user, _, _ = prompt_pair(kind)
        assert system.text.strip() and user.text.strip()
        assert system.where.endswith(f"prompts/{kind}_system.md")


def test_empty_prompt_file_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"prompts/x_user\.md: empty prompt file"):
        parse_prompt("x_user", b" \n", "prompts/x_user.md")


def test_bad_placeholders_name_the_file() -> None:
    with pytest.raises(ConfigError, match=r"x\.md: invalid placeholder"):
        parse_prompt("x", b"Costs $5 per $", "x.md")
    p = parse_prompt("x", b"Write about $emotion and $topik.", "x.md")
    with pytest.raises(ConfigError, match=r"x\.md: placeholder \$topik has no value.*emotion"):
        p.render(emotion="calm", topic="rain")


def test_missing_prompt_file_is_named() -> None:
    with pytest.raises(ConfigError, match=r"no_such_kind_system\.md"):
        load_prompt("no_such_kind_system")
