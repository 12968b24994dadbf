"""Guardrail: a curation policy may only drop documents on vectors that beat chance.

A drop (or a rebalance, or ``default: drop``) removes data for good, on the strength of the
vectors the corpus was scored with. If those vectors' held-out accuracy interval overlaps
chance (or they were never evaluated on held-out rows), their flags carry no evidence, so
``curate`` refuses such actions unless the user says ``--force``; ``--flag-only`` keeps every
document and turns the drops into flags instead. What was decided, and why, goes into the
curate manifest and the report.
"""

from __future__ import annotations

import json
from pathlib import Path

from emocurate.artifacts import Guardrail, HeldOut, Untrusted
from emocurate.errors import InputError

EVALUATION_FILE = "evaluation.json"


def vector_trust(vectors_dir: str | Path | None) -> tuple[bool, str]:
    """Whether the vectors' held-out accuracy interval lies above chance, and a sentence why."""
    if not vectors_dir:
        return False, "the scores do not name the vector set they were made with"
    path = Path(vectors_dir) / EVALUATION_FILE
    if not path.is_file():
        return False, f"the vector set has no held-out evaluation ({path} not found)"
    try:
        ev = HeldOut.model_validate(json.loads(path.read_text("utf-8")))
    except (ValueError, OSError) as exc:
        return False, f"{path}: unreadable evaluation ({str(exc).splitlines()[0]})"
    if ev.accuracy is None or ev.accuracy_ci is None:
        return False, "the vectors were not evaluated on held-out rows (holdout 0)"
    lo, hi = ev.accuracy_ci
    where = f"held-out accuracy {ev.accuracy:.2f} (95% interval {lo:.2f}-{hi:.2f})"
    if lo <= ev.chance:
        return False, f"the vectors' {where} overlaps chance {ev.chance:.2f}"
    # held-out rows come from the fitting distribution; text the vectors were not fitted on
    # (saved by `vectors evaluate --save`) must also be read better than its majority class
    from emocurate.artifacts import read_transfers

    try:
        transfers = read_transfers(vectors_dir)
    except InputError as exc:
        return False, exc.message
    for t in transfers:
        if t.accuracy_ci[0] <= t.majority:
            return False, (
                f"the vectors' {where} is above chance {ev.chance:.2f}, but on {t.source} "
                f"(not fitted on) their accuracy {t.accuracy:.2f} (95% interval "
                f"{t.accuracy_ci[0]:.2f}-{t.accuracy_ci[1]:.2f}) does not beat its majority "
                f"class ({t.majority_label}, {t.majority:.2f})"
            )
    return True, f"the vectors' {where} is above chance {ev.chance:.2f}" + (
        f" and above the majority class on {len(transfers)} transfer set(s)" if transfers else ""
    )


def check(
    vectors_dir: str | Path | None, risky: list[str], mode: Untrusted = "refuse"
) -> Guardrail:
    """Decide whether ``risky`` actions may run; raise a one-line error when refused."""
    trusted, reason = vector_trust(vectors_dir)
    if not risky:
        decision = "not needed"
    elif trusted:
        decision = "allowed"
    elif mode == "force":
        decision = "forced"
    elif mode == "flag-only":
        decision = "flag-only"
    else:
        raise InputError(
            f"curate refuses to {', '.join(risky)}: {reason}; pass --flag-only to keep every "
            "document and flag instead, or --force to drop anyway"
        )
    return Guardrail(
        vectors_dir=str(vectors_dir or ""),
        trusted=trusted,
        reason=reason,
        risky_actions=risky,
        decision=decision,  # type: ignore[arg-type]
    )
