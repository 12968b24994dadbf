"""The ``emocurate`` command line.

Parses arguments and calls the library. Each command group lives in its own module under
``emocurate/commands/`` and registers itself on :data:`app`. User errors
(:class:`~emocurate.errors.EmocurateError`, bad options, unreadable files) print one line and
exit non-zero; a traceback is shown only with ``--debug``. Ctrl-C and SIGTERM end any command
with one line and status 130 / 143 (a generation run first books what is in flight and writes
its manifest: see ``docs/guarantees.md``).
"""

from __future__ import annotations

import importlib
import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import typer
from rich.console import Console

from emocurate import __version__
from emocurate.errors import EmocurateError, Stop

COMMAND_MODULES = ("info", "generate", "validate", "vectors", "corpus", "cards", "pipeline")

app = typer.Typer(
    name="emocurate",
    help="Build and curate emotion data for language models: generate, validate, fit emotion "
    "vectors, score corpora, publish. Add --debug anywhere for full tracebacks.\n\n"
    "\b\nExample:\n  emocurate demo   # the whole pipeline offline on the embedded model",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,
)

err_console = Console(stderr=True, highlight=False, soft_wrap=True)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"emocurate {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks on errors."),
) -> None:
    """emocurate: emotion data for language models."""


for _name in COMMAND_MODULES:
    importlib.import_module(f"emocurate.commands.{_name}").register(app)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _is_usage_error(exc: BaseException) -> bool:
    """Click's own exceptions (typer vendors click, so match by shape, not by class)."""
    return any(c.__name__ == "ClickException" for c in type(exc).__mro__) and hasattr(exc, "show")


def _usage_line(exc: BaseException) -> str:
    """Click's usage error as one line, in the CLI's one error format, with where to look next."""
    message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
    ctx = getattr(exc, "ctx", None)
    where = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
    return f"{_one_line(Exception(message))}{where}"


INTERRUPTED = "error: interrupted ({name}) before the command finished; rerun the same command"


def _interrupted(signum: int) -> SystemExit:
    err_console.print(INTERRUPTED.format(name=signal.Signals(signum).name), markup=False)
    return SystemExit(128 + signum)


@contextmanager
def _signals_end_the_command() -> Iterator[None]:
    """SIGINT and SIGTERM raise :class:`Stop` (so the command ends with one line, status
    128+signal, and no traceback); a generation run replaces these with a graceful stop while
    it sends. Main thread only (Python delivers signals there); previous handlers restored."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def raise_stop(signum: int, frame: object) -> None:
        raise Stop(signum)

    sigs = (signal.SIGINT, signal.SIGTERM)
    previous = {sig: signal.getsignal(sig) for sig in sigs}
    for sig in sigs:
        signal.signal(sig, raise_stop)
    try:
        yield
    finally:
        for sig in sigs:
            signal.signal(sig, previous[sig])


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: run the app and turn errors into one clear line."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args or os.environ.get("EMOCURATE_DEBUG") == "1"
    if "--debug" in args:
        args.remove("--debug")
    try:
        with _signals_end_the_command():
            status = app(args=args, prog_name="emocurate", standalone_mode=False)
        # Without standalone mode typer *returns* the status of an Exit raised in a command,
        # and turns KeyboardInterrupt into 130: neither may be dropped.
        if isinstance(status, int) and status:
            if status == 130:
                raise _interrupted(signal.SIGINT)
            raise SystemExit(status)
    except Stop as exc:
        raise _interrupted(exc.signum) from None
    except typer.Exit as exc:
        raise SystemExit(exc.exit_code) from None
    except typer.Abort:
        err_console.print("error: aborted")
        raise SystemExit(130) from None
    except EmocurateError as exc:
        if debug:
            raise
        err_console.print(f"error: {_one_line(exc)}", markup=False)
        raise SystemExit(exc.exit_code) from None
    except KeyboardInterrupt:
        raise _interrupted(signal.SIGINT) from None
    except OSError as exc:
        if debug:
            raise
        where = f" {exc.filename}" if getattr(exc, "filename", None) else ""
        err_console.print(
            f"error: {exc.strerror or _one_line(exc)}:{where}".rstrip(":"), markup=False
        )
        raise SystemExit(1) from None
    except Exception as exc:  # a usage error from the parser, or a bug
        if _is_usage_error(exc):
            if type(exc).__name__ == "NoArgsIsHelpError":  # a bare group: its help is the answer
                exc.show()  # type: ignore[attr-defined]
                raise SystemExit(getattr(exc, "exit_code", 2)) from None
            err_console.print(f"error: {_usage_line(exc)}", markup=False)
            raise SystemExit(getattr(exc, "exit_code", 2)) from None
        if debug:
            raise
        err_console.print(
            f"internal error: {type(exc).__name__}: {_one_line(exc)} (rerun with --debug for the traceback)",
            markup=False,
        )
        raise SystemExit(1) from None


if __name__ == "__main__":  # pragma: no cover
    main()
