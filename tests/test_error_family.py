"""One error family (issue 20, item 4): every exception class the package defines descends
from :class:`~emocurate.errors.EmocurateError`, so a caller catches the package's errors with
one ``except`` and the CLI prints each as one line.

Found by importing every module and walking its namespace, not by a list of names, so a new
exception class is covered the day it is written.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import emocurate
from emocurate.errors import EmocurateError

CONTROL_FLOW = {
    "emocurate.errors.Stop": "a BaseException like KeyboardInterrupt: no `except Exception` "
    "may swallow a signal",
    "emocurate.vectors.capture._StopForward": "raised and caught inside one function's hooks "
    "to end a forward pass early; never reaches a caller",
}
"""Exception classes that are signals, not errors (each with why)."""


def defined_exceptions() -> dict[str, type[BaseException]]:
    """Every exception class defined (not merely imported) in a module of the package."""
    found: dict[str, type[BaseException]] = {}
    for info in pkgutil.walk_packages(emocurate.__path__, "emocurate."):
        if info.name.endswith("__main__"):
            continue
        mod = importlib.import_module(info.name)
        for name, obj in vars(mod).items():
            if (
                inspect.isclass(obj)
                and issubclass(obj, BaseException)
                and obj.__module__ == mod.__name__
            ):
                found[f"{mod.__name__}.{name}"] = obj
    return found


def test_every_exception_class_is_an_emocurate_error() -> None:
    found = defined_exceptions()
    assert "emocurate.generators.backends.base.CallError" in found  # the walk reaches them
    assert set(CONTROL_FLOW) <= set(found)
    strays = sorted(
        name
        for name, cls in found.items()
        if name not in CONTROL_FLOW and not issubclass(cls, EmocurateError)
    )
    assert strays == []


def test_parse_errors_stay_value_errors() -> None:
    """Callers (the validators' tests, code catching ValueError) still catch a ParseError."""
    from emocurate.generators.engine import MalformedOutput
    from emocurate.generators.parse import ParseError

    assert issubclass(ParseError, ValueError) and issubclass(MalformedOutput, ParseError)
    assert str(ParseError("no items")) == "no items"
