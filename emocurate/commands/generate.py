"""``emocurate generate {stories,dialogues,neutral,regulation}``: run one generator.

The command only parses options into a :class:`GenerateConfig` and calls
:func:`emocurate.generators.run.run_generation`; everything else lives in the library.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from emocurate.commands.defaults import generate_default
from emocurate.errors import BudgetExceeded, ConfigError, EmocurateError

KINDS = {
    "stories": "Short stories in which a character feels one emotion, shown not named.",
    "dialogues": "Human/assistant conversations: the human feels emotion A, the assistant expresses B.",
    "neutral": "Emotionally neutral human/assistant conversations (baseline for denoising vectors).",
    "regulation": "Setup under pressure + healthy and unhealthy continuations (people and AI assistants), for emotions where regulation is at stake (valence <= -0.3; positive ones in a subset are left out).",
}
EXAMPLES = {
    "stories": "emocurate generate stories --backend transformers --model stories260K "
    "--emotions tinystories6 --topics 2 --per-topic 2 --out runs/stories",
    "dialogues": "emocurate generate dialogues --backend openai --model gpt-4.1-mini "
    "--topics presets --per-topic 1 --budget-usd 1 --dry-run --out runs/dialogues",
    "neutral": "emocurate generate neutral --backend transformers --model stories260K "
    "--topics all --per-topic 2 --out runs/neutral",
    "regulation": "emocurate generate regulation --topics 5 --per-topic 3 --budget-usd 5 "
    "--dry-run --out runs/regulation",
}
DEFAULT_EMOTIONS = generate_default("emotions")


EXIT_CODES = (
    "Exit status: 0 every planned request was answered (items missing from partial answers are "
    "counted in manifest.json and asked for again by a rerun); 1 internal error (a bug: one "
    "line, traceback with --debug); 2 bad input, configuration or backend error, or --out in "
    "use by another run (nothing or part written, one line says why); 3 the --budget-usd (a "
    "total for the output folder) was reached, finished work kept; 4 some planned requests "
    "failed (including a --batch the provider rejected), finished work kept, reasons in "
    "manifest.json; 130 / 143 interrupted by Ctrl-C / SIGTERM: answers in flight booked, "
    "finished work and manifest.json written, rerun to resume."
)


class RequestsFailed(EmocurateError):
    """Some planned requests ended failed; finished work was written (exit status 4)."""

    exit_code = 4


def _run(kind: str, opts: dict[str, Any]) -> None:
    """Validate the options into a config, run (or plan) the generation and report it."""
    from emocurate.generators.run import run_generation

    out = opts.pop("out")
    cfg = _generate_config(kind, opts)
    manifest = run_generation(cfg, out)
    if cfg.dry_run:
        _print_plan(manifest, cfg)
        return
    _print_run(kind, manifest, out)
    _raise_unfinished(manifest, cfg, out)


def _generate_config(kind: str, opts: dict[str, Any]) -> Any:
    """The run's :class:`GenerateConfig`; a bad value is one line naming its option."""
    from emocurate.configs import GenerateConfig

    try:
        return GenerateConfig(kind=kind, progress=True, **opts)  # type: ignore[arg-type]
    except Exception as exc:  # pydantic: one line naming the field
        errors = getattr(exc, "errors", None)
        if callable(errors):
            err = errors()[0]
            field = ".".join(str(x) for x in err["loc"])
            raise ConfigError(f"invalid option --{field.replace('_', '-')}: {err['msg']}") from None
        raise


def _print_plan(manifest: Any, cfg: Any) -> None:
    """``--dry-run``: the plan as JSON, with warnings for an unknown price or a plan whose
    worst case exceeds the budget."""
    summary = manifest.model_dump(
        mode="json",
        include={
            "kind",
            "backend",
            "model",
            "planned_requests",
            "planned_records",
            "estimated_usd_max",
            "price_known",
            "prompt_id",
            "prompt_hash",
        },
    )
    typer.echo(json.dumps(summary, indent=2))
    est = summary["estimated_usd_max"]
    if not summary["price_known"]:
        typer.echo(
            f"warning: no price is known for model '{cfg.model}': the estimate "
            f"${est or 0:.2f} is not a cost; pass --price-input and --price-output "
            "(USD per 1M tokens) to price it and to enforce a --budget-usd",
            err=True,
        )
    if cfg.budget_usd is not None and est is not None and est > cfg.budget_usd:
        typer.echo(
            f"warning: the plan's worst case ${est:.2f} exceeds --budget-usd "
            f"${cfg.budget_usd:.2f}: a real run stops when the budget is spent "
            "(finished work is kept; rerun with a higher budget to resume)",
            err=True,
        )


def _print_run(kind: str, manifest: Any, out: Path) -> None:
    """What the run did: requests, records, tokens and cost, then notes on what is left."""
    usd = manifest.usd.spent_this_run
    typer.echo(
        f"{kind}: {manifest.records} records from {manifest.completed_requests}/"
        f"{manifest.planned_requests} requests ({manifest.cached_requests} cached, "
        f"{manifest.failed_requests} failed, {manifest.skipped_requests} not run); "
        f"{manifest.tokens.billed:,} tokens, ${usd:.4f}, {manifest.time_s:.1f}s -> {out}"
    )
    if manifest.usd.in_flight_at_kill_requests:
        typer.echo(
            f"note: {manifest.usd.in_flight_at_kill_requests} requests of this folder were in "
            "flight when a run was killed; they are counted at their worst case "
            f"(${manifest.usd.in_flight_at_kill:.4f}) because the provider may have billed them"
        )
    if manifest.kept_records:
        typer.echo(
            f"kept {manifest.kept_records} records of this plan from earlier runs that this run "
            "did not get back (see manifest.json failures)"
        )
    if manifest.missing_records:
        typer.echo(
            f"{manifest.missing_records} records missing from {manifest.partial_requests} "
            "partial answers: rerun the same command to ask for them again"
        )


def _raise_unfinished(manifest: Any, cfg: Any, out: Path) -> None:
    """A run that stopped at the budget (exit 3) or with failed requests (exit 4) is an error
    after its finished work was written."""
    if manifest.budget_reached:
        raise BudgetExceeded(
            f"budget ${cfg.budget_usd} reached (a total for {out}, earlier runs included); "
            "finished work is kept: rerun with a higher --budget-usd to resume without "
            "repeating calls"
        )
    failed = manifest.failed_requests
    if failed:
        first = manifest.failures[0].reason if manifest.failures else "unknown"
        raise RequestsFailed(
            f"{failed} of {manifest.planned_requests + manifest.refill_requests} "
            f"requests failed (first: {first}); finished work is in {out}, reasons in "
            "manifest.json; rerun the same command to retry only those"
        )


def _add_kind_options(
    kind: str,
    opts: dict[str, Any],
    emotions: str | None,
    person_emotions: str | None,
    assistant_emotions: str | None,
    pairing: str,
) -> None:
    """The options of one kind only: the dialogue pairing options go into ``opts`` for
    dialogues and are refused elsewhere; --emotions is refused for neutral."""
    if kind == "dialogues":
        opts.update(
            person_emotions=person_emotions,
            assistant_emotions=assistant_emotions,
            pairing=pairing,
        )
    elif person_emotions or assistant_emotions or pairing != "cycle":
        raise ConfigError(
            "--person-emotions/--assistant-emotions/--pairing apply to dialogues only"
        )
    if kind == "neutral" and emotions is not None:
        raise ConfigError(
            "--emotions does not apply to neutral (neutral texts are about practical topic areas)"
        )


def _make_command(kind: str) -> Any:
    """The ``generate <kind>`` command: a closure because each kind words and hides its options
    differently.

    Long because typer declares every option in the signature; the body is short.
    """
    dialogues = kind == "dialogues"
    neutral = kind == "neutral"  # practical topic areas, no emotions: those options are not listed

    def command(
        backend: str = typer.Option(
            generate_default("backend"),
            "--backend",
            help="anthropic, openai, transformers or fake.",
        ),
        model: str = typer.Option(
            generate_default("model"),
            "--model",
            help="Model name (hosted) or local model (transformers: stories260K, Hub id, folder, .gguf).",
        ),
        base_url: str | None = typer.Option(
            generate_default("base_url"),
            "--base-url",
            help="API base URL (OpenAI-compatible servers: vLLM, llama.cpp, Ollama); default from the SDK's environment variable.",
        ),
        emotions: str | None = typer.Option(
            None,
            "--emotions",
            help=f"Emotion SPEC: subset name (focal12, tinystories, all) or comma list (default {DEFAULT_EMOTIONS}).",
            hidden=neutral,
        ),
        topics: str = typer.Option(
            generate_default("topics"),
            "--topics",
            help=(
                "Topic areas: N (the first N practical areas), 'all', or a file (one area per line)."
                if neutral
                else "Topic SPEC: N (first N bundled), 'all', or a file (one premise per line or YAML)."
            )
            + (" 'presets' = high-stakes scenarios." if dialogues else ""),
        ),
        per_topic: int = typer.Option(
            generate_default("per_topic"),
            "--per-topic",
            help="Records per topic area."
            if neutral
            else "Records per emotion (or pair) and topic.",
        ),
        per_request: int | None = typer.Option(
            generate_default("per_request"),
            "--per-request",
            help="Records asked for in one request (default: stories 12, dialogues 4, neutral 5, regulation 3; 1 for a base model).",
        ),
        out: Path = typer.Option(
            ..., "--out", help="Output folder: data/*.parquet, manifest.json, cache/."
        ),
        concurrency: int = typer.Option(
            generate_default("concurrency"), "--concurrency", help="Requests in flight at once."
        ),
        rpm: float | None = typer.Option(
            generate_default("rpm"),
            "--rpm",
            help="Requests per minute limit (default: from the provider's rate-limit headers).",
        ),
        input_tpm: float | None = typer.Option(
            generate_default("input_tpm"), "--input-tpm", help="Input tokens per minute limit."
        ),
        output_tpm: float | None = typer.Option(
            generate_default("output_tpm"), "--output-tpm", help="Output tokens per minute limit."
        ),
        batch: bool = typer.Option(
            generate_default("batch"),
            "--batch",
            help="Use the provider's batch API (half price, slower; resumable).",
        ),
        batch_poll: float = typer.Option(
            generate_default("batch_poll_s"),
            "--batch-poll",
            help="--batch: seconds between batch status checks.",
        ),
        budget_usd: float | None = typer.Option(
            generate_default("budget_usd"),
            "--budget-usd",
            help="Total USD this output folder may spend, reruns included; stop cleanly before "
            "exceeding it (needs a known price or --price-input/--price-output).",
        ),
        dry_run: bool = typer.Option(
            generate_default("dry_run"),
            "--dry-run",
            help="Print the plan, request count and estimated cost; send nothing.",
        ),
        cache: str | None = typer.Option(
            generate_default("cache"),
            "--cache",
            help="Response cache file (default: OUT/cache/responses.jsonl).",
        ),
        seed: int = typer.Option(
            generate_default("seed"),
            "--seed",
            help="Seed: the same command and seed plan the same requests.",
        ),
        temperature: float | None = typer.Option(
            generate_default("temperature"),
            "--temperature",
            help="Sampling temperature (default 1.0; 0.8 for a base model).",
        ),
        max_tokens: int | None = typer.Option(
            generate_default("max_tokens"),
            "--max-tokens",
            help="Max output tokens per request (default scales with --per-request).",
        ),
        max_retries: int = typer.Option(
            generate_default("max_retries"),
            "--max-retries",
            help="Retries per request on 429/529/5xx/timeouts/malformed output.",
        ),
        timeout_s: float = typer.Option(
            generate_default("timeout_s"),
            "--timeout",
            help="Per-call timeout in seconds; the engine raises it for a call whose expected "
            "time (its max tokens at the measured speed, or a local model's step time) is longer.",
        ),
        price_input: float | None = typer.Option(
            generate_default("price_input"),
            "--price-input",
            help="Override: USD per 1M input tokens.",
        ),
        price_output: float | None = typer.Option(
            generate_default("price_output"),
            "--price-output",
            help="Override: USD per 1M output tokens.",
        ),
        no_prompt_cache: bool = typer.Option(
            False,
            "--no-prompt-cache",
            help="Do not mark the shared system prompt for provider-side caching.",
        ),
        replace: bool = typer.Option(
            generate_default("replace"),
            "--replace",
            help="Allow a rerun whose plan leaves out records --out holds (they are dropped); "
            "without it such a rerun is refused before any request.",
        ),
        device: str = typer.Option(
            generate_default("device"),
            "--device",
            help="transformers backend: torch device (cpu, cuda, mps).",
        ),
        prompt_style: str = typer.Option(
            generate_default("prompt_style"),
            "--prompt-style",
            help="structured (several items per request, long instructions), simple (one item "
            "per plain request; the whole answer is the item), opening (a base model continues "
            "a story opening) or auto: opening without a chat template, simple for a local "
            "model under 3B parameters, else structured.",
            hidden=kind not in ("stories", "neutral"),
        ),
        person_emotions: str | None = typer.Option(
            generate_default("person_emotions"),
            "--person-emotions",
            help="dialogues: the human's emotion SPEC (default: --emotions).",
            hidden=not dialogues,
        ),
        assistant_emotions: str | None = typer.Option(
            generate_default("assistant_emotions"),
            "--assistant-emotions",
            help="dialogues: the assistant's emotion SPEC (default: --emotions).",
            hidden=not dialogues,
        ),
        pairing: str = typer.Option(
            generate_default("pairing"),
            "--pairing",
            help="dialogues: 'cycle' (one assistant emotion per human emotion and topic) or 'product' (all pairs).",
            hidden=not dialogues,
        ),
    ) -> None:
        """(Replaced below by the kind's help text.)

        Long because typer declares every option in the signature; the body is short.
        """
        opts: dict[str, Any] = dict(
            backend=backend,
            model=model,
            base_url=base_url,
            emotions=DEFAULT_EMOTIONS if emotions is None else emotions,
            topics=topics,
            per_topic=per_topic,
            per_request=per_request,
            out=out,
            concurrency=concurrency,
            rpm=rpm,
            input_tpm=input_tpm,
            output_tpm=output_tpm,
            batch=batch,
            batch_poll_s=batch_poll,
            budget_usd=budget_usd,
            dry_run=dry_run,
            cache=cache,
            seed=seed,
            temperature=temperature,
            max_tokens=max_tokens,
            max_retries=max_retries,
            timeout_s=timeout_s,
            price_input=price_input,
            price_output=price_output,
            prompt_cache=not no_prompt_cache,
            device=device,
            prompt_style=prompt_style,
            replace=replace,
        )
        _add_kind_options(kind, opts, emotions, person_emotions, assistant_emotions, pairing)
        _run(kind, opts)

    command.__doc__ = f"{KINDS[kind]}\n\n\b\nExample:\n  {EXAMPLES[kind]}"
    return command


def register(app: typer.Typer) -> None:
    """Add ``emocurate generate <kind>`` commands."""
    gen = typer.Typer(
        help="Generate emotion data with an LLM (stories, dialogues, neutral, regulation).\n\n"
        f"\b\nExample:\n  {EXAMPLES['stories']}",
        no_args_is_help=True,
        rich_markup_mode=None,
    )
    for kind in KINDS:
        gen.command(kind, epilog=EXIT_CODES)(_make_command(kind))
    app.add_typer(gen, name="generate")
