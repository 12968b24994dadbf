"""A curation policy: rules on metric columns and flags, rebalancing and sampling weights.

The policy is read from YAML by ``emocurate curate`` and written back into the curated folder's
manifest (:class:`emocurate.artifacts.CurateManifest`), so its models live apart from the
curation itself (:mod:`emocurate.corpus.curate`, polars): reading a manifest loads no table
library. Polars is imported only to turn a condition into an expression, pyarrow only to list
the scores table's metric columns.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from emocurate import yamlio
from emocurate.corpus.columns import COUNT_COLUMNS, METRIC_KEYS
from emocurate.errors import ConfigError, first_problem
from emocurate.records import FLAG_KINDS, Model

if TYPE_CHECKING:
    import polars as pl

Action = Literal["keep", "flag", "drop"]
OPS = {">": "gt", ">=": "ge", "<": "lt", "<=": "le", "==": "eq", "!=": "ne"}
PER_EMOTION = (
    "mean__",
    "p95__",
)  # per-emotion columns; which emotions exist is known at curate time


def did_you_mean(name: str, known: list[str] | tuple[str, ...]) -> str:
    """`` (did you mean 'x'?)`` for the closest known name, else the known names (shortened)."""
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    if close:
        return f" (did you mean '{close[0]}'?)"
    shown = ", ".join(known[:24]) + (", ..." if len(known) > 24 else "")
    return f" (known: {shown})"


def metric_columns() -> list[str]:
    """The numeric columns of every scores table (per-emotion ``mean__``/``p95__`` come on top),
    in the table's order; ``tests/corpus/test_policy_columns.py`` checks them against its schema."""
    return [*COUNT_COLUMNS, *METRIC_KEYS]


def check_metric_name(name: str) -> str:
    """``name`` if it can be a scores-table metric column, else ValueError with a hint."""
    if name.startswith(PER_EMOTION) and name.split("__", 1)[1]:
        return name
    known = metric_columns()
    if name not in known:
        raise ValueError(f"unknown metric '{name}'{did_you_mean(name, known)}")
    return name


class Condition(Model):
    """A test on one document: a metric comparison, a flag, or a combination."""

    metric: str | None = Field(
        default=None, description="column of the scores table, e.g. distress_max"
    )
    op: Literal[">", ">=", "<", "<=", "==", "!="] = ">"
    value: float | None = None
    flag: str | None = Field(default=None, description="the document has a flag of this kind")
    min_severity: float | None = Field(default=None, description="only flags at least this severe")
    all: list[Condition] | None = None
    any: list[Condition] | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Condition:
        kinds = sum(x is not None for x in (self.metric, self.flag, self.all, self.any))
        if kinds != 1:
            raise ValueError("a condition needs exactly one of: metric, flag, all, any")
        if self.metric is not None and self.value is None:
            raise ValueError(f"metric condition on '{self.metric}' needs a value")
        if self.metric is not None:
            check_metric_name(self.metric)
        if self.flag is not None and self.flag not in FLAG_KINDS:
            raise ValueError(f"unknown flag '{self.flag}'{did_you_mean(self.flag, FLAG_KINDS)}")
        return self

    def expr(self, columns: list[str]) -> pl.Expr:
        """The condition as a polars boolean expression (null metrics never match)."""
        import polars as pl

        if self.metric is not None:
            if self.metric not in columns:
                numeric = [c for c in metric_columns() if c in columns]
                per_emotion = [c for c in columns if c.startswith(PER_EMOTION)]
                close = difflib.get_close_matches(self.metric, numeric + per_emotion, n=1)
                hint = f"did you mean '{close[0]}'?" if close else f"e.g. {', '.join(numeric[:12])}"
                raise ConfigError(
                    f"policy names unknown metric '{self.metric}' (not a column of these scores; "
                    f"{hint})"
                )
            col = pl.col(self.metric).cast(pl.Float64)
            expr: pl.Expr = getattr(col, OPS[self.op])(self.value).fill_null(False)
            return expr
        if self.flag is not None:
            if self.min_severity is None:
                return pl.col("flag_kinds").list.contains(self.flag).fill_null(False)
            el = pl.element()
            return (
                pl.col("flags")
                .list.eval(
                    (el.struct.field("kind") == self.flag)
                    & (el.struct.field("severity") >= self.min_severity)
                )
                .list.any()
                .fill_null(False)
            )
        parts = [c.expr(columns) for c in (self.all or self.any or [])]
        if not parts:
            raise ConfigError("policy has an empty all/any condition")
        out = parts[0]
        for p in parts[1:]:
            out = (out & p) if self.all is not None else (out | p)
        return out


class Rule(Model):
    """One named rule of a policy."""

    name: str
    when: Condition
    action: Action
    description: str = ""


class Rebalance(Model):
    """Cap the share of any first-dominant emotion among the documents kept AFTER rebalancing.

    ``min_keep`` wins over ``max_share``: an emotion is never cut below it, so with few documents
    (or one emotion only) a share can stay above the cap.
    """

    max_share: float = Field(gt=0.0, le=1.0)
    min_keep: int = Field(
        default=10, ge=1, description="never cut an emotion below this many documents"
    )
    seed: int = 0


class WeightTerm(Model):
    """``scale * metric`` added to the log-weight (null metrics count as ``fill``)."""

    metric: str
    scale: float
    fill: float = 0.0

    @field_validator("metric")
    @classmethod
    def _known_metric(cls, v: str) -> str:
        return check_metric_name(v)


class Weights(Model):
    """Sampling weights ``exp(sum of terms)``, clipped, then normalised to mean 1 over kept documents."""

    terms: list[WeightTerm] = Field(default_factory=list)
    min: float = 0.1
    max: float = 10.0


class CuratePolicy(Model):
    """A curation policy (see ``emocurate/data/policy_default.yaml``)."""

    rules: list[Rule] = Field(default_factory=list)
    default: Literal["keep", "drop"] = "keep"
    rebalance: Rebalance | None = None
    weights: Weights | None = None

    @classmethod
    def load(cls, path: str | Path) -> CuratePolicy:
        """Read and validate a YAML policy, with a one-line error naming the file and field."""
        p = Path(path)
        if not p.exists():
            raise ConfigError(f"policy file not found: {p}")
        try:
            data = yamlio.safe_load(p.read_text("utf-8")) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{p}: invalid YAML ({str(exc).splitlines()[0]})") from None
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            loc, msg = first_problem(exc)
            raise ConfigError(f"{p}: invalid policy at '{loc}': {msg}") from None


def risky_actions(pol: CuratePolicy) -> list[str]:
    """The parts of a policy that remove documents."""
    out = [f"drop (rule {r.name})" for r in pol.rules if r.action == "drop"]
    if pol.rebalance is not None:
        out.append("rebalance")
    if pol.default == "drop":
        out.append("drop by default")
    return out


def flag_only(pol: CuratePolicy) -> CuratePolicy:
    """The same policy with every drop turned into a flag and no rebalancing."""
    return pol.model_copy(
        update={
            "rules": [
                r.model_copy(update={"action": "flag"}) if r.action == "drop" else r
                for r in pol.rules
            ],
            "rebalance": None,
            "default": "keep",
        }
    )
