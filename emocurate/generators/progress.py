"""The progress bar of a generation run: done/failed/cached, tokens, USD and rate.

Shared by the engine and the batch runner (which shows its batches' status counts in it);
quiet when disabled or when stderr is not a terminal.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from emocurate.generators.ledger import EngineStats

__all__ = ["ProgressBar", "ProgressFactory"]


class ProgressBar:
    """A rich progress bar showing done/failed/cached, tokens, USD and rate (quiet off a TTY)."""

    def __init__(self, total: int, *, enabled: bool, label: str) -> None:
        self.total = total
        self.enabled = enabled
        self.label = label
        self._p: Any = None
        self._task: Any = None

    def __enter__(self) -> ProgressBar:
        if not self.enabled:
            return self
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        console = Console(stderr=True)
        if not console.is_terminal:
            self.enabled = False
            return self
        self._p = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[stats]}"),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        )
        self._p.__enter__()
        self._task = self._p.add_task(self.label, total=self.total, stats="")
        return self

    def advance(self, n: int) -> None:
        if self._p is not None and n:
            self._p.advance(self._task, n)

    def refresh_stats(self, s: EngineStats) -> None:
        if self._p is None:
            return
        rate = s.calls / s.elapsed_s * 60 if s.elapsed_s else 0.0
        task = self._p.tasks[0]
        el = task.elapsed or 0.0
        rate = (s.calls / el * 60) if el else rate
        self._p.update(
            self._task,
            stats=(
                f"failed {s.failed} cached {s.cached} tok {s.billed_tokens:,} "
                f"${s.usd_spent:.4f} {rate:.0f} req/min"
            ),
        )

    def note(self, text: str) -> None:
        """Replace the stats text (``--batch`` shows batch status counts here)."""
        if self._p is not None:
            self._p.update(self._task, stats=text)

    def __exit__(self, *exc: object) -> None:
        if self._p is not None:
            self._p.__exit__(None, None, None)


ProgressFactory = Callable[[int], ProgressBar]
"""Makes the bar for a run of ``total`` requests (the engine's :meth:`progress_bar`)."""
