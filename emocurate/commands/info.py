"""Informational commands: list emotions and topics."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

from emocurate.taxonomy import bundled_topics, load_taxonomy


def register(app: typer.Typer) -> None:
    """Add ``emotions`` and ``topics``."""

    @app.command("emotions")
    def emotions(
        subset: str = typer.Option(
            "all", "--subset", "-s", help="Subset name (all, focal12, tinystories) or a comma list."
        ),
    ) -> None:
        """List emotion concepts with family, valence, arousal and leak terms.

        \b
        Example:
          emocurate emotions --subset focal12
        """
        tax = load_taxonomy()
        table = Table("name", "family", "valence", "arousal", "leak terms")
        for name in tax.resolve(subset):
            e = tax.get(name)
            table.add_row(
                e.name,
                e.family,
                f"{e.valence:+.2f}",
                f"{e.arousal:+.2f}",
                ", ".join(e.leak_terms[:8]),
            )
        Console().print(table)

    @app.command("topics")
    def topics(
        limit: int = typer.Option(20, "--limit", "-n", help="How many premises to show."),
    ) -> None:
        """List the bundled story premises.

        \b
        Example:
          emocurate topics --limit 5
        """
        table = Table("id", "setting", "stakes", "premise")
        for t in bundled_topics()[:limit]:
            table.add_row(t.id, t.setting, t.stakes, t.premise)
        Console().print(table)
