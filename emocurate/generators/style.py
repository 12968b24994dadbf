"""Which prompt style a generation run uses: structured, simple or opening.

- ``structured``: several items per request, in the provider's structured output (a schema) or a
  delimited text layout, with the long instruction prompt (``prompts/<kind>_*.md``). What hosted
  models and large instruct models follow.
- ``simple``: one item per request, asked for in a few plain words through the chat template;
  the whole answer is the item. Small instruct models (SmolLM2-135M: 0 of 6 structured requests
  parsed) write a usable story this way. The prompt does not list forbidden words (naming them
  primes a small model to use them); the leakage validator enforces them.
- ``opening``: a base model (no chat template) continues a story opening that names the
  emotion; the opening is kept apart so label checks read only the model's words. A chat model
  can be asked for this too: its request then skips the chat template (local models only).

``auto`` decides by a size rule, not by a probe request: the plan stays a pure function of the
config and the model (a probe's answer is sampled and would make the plan vary between runs),
and it costs nothing, where a probe of the structured prompt costs a 1,200-token prefill and a
multi-story answer on a CPU. The rule: no chat template -> opening; a local model under
:data:`SIMPLE_BELOW_PARAMS` parameters -> simple; anything else (hosted APIs, large local
models) -> structured. Dialogues and regulation pairs exist only in the structured style.
"""

from __future__ import annotations

from emocurate.errors import ConfigError

SIMPLE_BELOW_PARAMS = 3_000_000_000
"""Local instruct models smaller than this get the simple style under ``auto``. SmolLM2-135M
cannot follow the structured prompt; the threshold is a conservative guess for where the
delimited multi-story format becomes reliable (not measured above 135M here)."""

STYLED_KINDS = ("stories", "neutral")
"""Kinds with simple and opening styles; the others are structured only."""

LOCAL_BACKENDS = ("transformers",)


def choose_style(
    requested: str, *, kind: str, backend: str, chat: bool, n_params: int | None
) -> tuple[str, str]:
    """The style a run uses and why, or a one-line ConfigError for a style that cannot work.

    Args:
        requested: ``auto`` or an explicit style.
        kind: the generator kind.
        backend: the backend name (``transformers`` is local).
        chat: whether the model has a chat template.
        n_params: the model's parameter count when known (local models).
    """
    if kind not in STYLED_KINDS:
        if requested not in ("auto", "structured"):
            raise ConfigError(
                f"--prompt-style {requested} applies to stories and neutral only "
                f"({kind} are generated in the structured style)"
            )
        return "structured", f"{kind} have only the structured style"
    if requested == "auto":
        if not chat:
            return "opening", "the model has no chat template (a base model continues openings)"
        if backend in LOCAL_BACKENDS and n_params is not None and n_params < SIMPLE_BELOW_PARAMS:
            return "simple", (
                f"a local model of {n_params / 1e6:.0f}M parameters "
                f"(< {SIMPLE_BELOW_PARAMS / 1e9:.0f}B: one story per plain request)"
            )
        return "structured", "a hosted or large model follows the structured prompt"
    if requested in ("structured", "simple") and not chat:
        raise ConfigError(
            f"--prompt-style {requested} needs an instruct model with a chat template; "
            "this model has none: use --prompt-style opening (or auto)"
        )
    if requested == "opening" and backend not in LOCAL_BACKENDS:
        raise ConfigError(
            "--prompt-style opening continues raw text and needs a local model "
            "(--backend transformers); hosted chat APIs get structured or simple"
        )
    return requested, "asked for"
