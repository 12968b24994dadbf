"""YAML reading through libyaml when it is there.

PyYAML's pure-Python safe loader takes ~75 ms for the bundled 171-emotion taxonomy, which sits on
the path from a command's launch to its first forward batch; the C loader (``CSafeLoader``, the
same safe constructor over libyaml) takes ~9 ms and builds the same objects. Errors are
``yaml.YAMLError`` either way.
"""

from __future__ import annotations

from typing import Any

import yaml

_SAFE: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def safe_load(text: str) -> Any:
    """``yaml.safe_load`` with libyaml's parser when PyYAML was built with it."""
    return yaml.load(text, Loader=_SAFE)  # noqa: S506 - a safe loader (CSafeLoader or SafeLoader)
