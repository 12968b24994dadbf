"""User-facing errors.

Every error a user can cause (a missing file, an unknown emotion, an invalid config, a bad
row) is raised as an :class:`EmocurateError` subclass with a message meant to be printed as
one line. The CLI catches this family and prints it without a traceback (unless ``--debug``);
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

from pydantic import ValidationError


class EmocurateError(Exception):
    """Base class of every error meant for a user; its ``str`` is one actionable line."""

    exit_code: int = 2

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        self.message = message
        self.hint = hint
        super().__init__(message if hint is None else f"{message} ({hint})")


class ConfigError(EmocurateError):
    """A configuration value, option or pipeline file is invalid."""


class InputError(EmocurateError):
    """An input file, folder or row is missing, unreadable or malformed."""


class UnknownEmotionError(ConfigError):
    """An emotion or subset name is not in the taxonomy."""


class ModelLoadError(EmocurateError):
    """A model could not be located or loaded."""


class BackendError(EmocurateError):
    """An LLM backend is misconfigured or unreachable (missing key, bad base URL)."""


class BudgetExceeded(EmocurateError):
    """A run stopped because it reached its USD budget; finished work is kept."""

    exit_code = 3


class OutputError(EmocurateError):
    """An output location cannot be created or written (or another run holds it)."""


class Interrupted(EmocurateError):
    """Ctrl-C or SIGTERM stopped a run after it booked what was in flight and wrote what was
    done; exits 130 (SIGINT) or 143 (SIGTERM), as a shell reports a process killed by them."""

    def __init__(self, message: str, *, signum: int) -> None:
        super().__init__(message)
        self.signum = signum
        self.exit_code = 128 + signum


class Stop(BaseException):
    """Raised by the CLI's signal handlers where no graceful stop is in place (a
    ``BaseException``, like ``KeyboardInterrupt``, so no ``except Exception`` swallows it)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def first_problem(exc: ValidationError) -> tuple[str, str]:
    """The dotted location and message of a pydantic error's first problem.

    Pydantic's own message spans many lines and ends with a documentation URL; users get the
    first problem, named by its field, in one line.
    """
    err = exc.errors()[0]
    loc = ".".join(str(x) for x in err["loc"])
    return loc, str(err["msg"]).removeprefix("Value error, ")
