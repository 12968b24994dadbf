"""The emotion concepts: families, valence/arousal, word forms, named subsets.

Loaded from the bundled ``data/emotions.yaml`` (the anchor study's 171 concepts). The word
forms and synonyms are what the leakage validator and the generators' "do not name it" prompt
rules use; valence and arousal are used to orient the vectors' own geometry.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from pathlib import Path

import yaml
from pydantic import Field

from emocurate import yamlio
from emocurate.errors import ConfigError, UnknownEmotionError
from emocurate.records import Model


class Emotion(Model):
    """One emotion concept."""

    name: str
    family: str
    valence: float = Field(ge=-1.0, le=1.0)
    arousal: float = Field(ge=-1.0, le=1.0)
    forms: list[str]
    synonyms: list[str] = Field(default_factory=list)

    @property
    def leak_terms(self) -> list[str]:
        """Every word or phrase that names this emotion (forms then synonyms, de-duplicated)."""
        seen: dict[str, None] = {}
        for term in [*self.forms, *self.synonyms]:
            seen.setdefault(term.lower(), None)
        return list(seen)


class Taxonomy(Model):
    """All emotion concepts plus their families and named subsets."""

    version: int = 1
    families: dict[str, str]
    subsets: dict[str, list[str]]
    emotions: list[Emotion]

    def names(self) -> list[str]:
        """All concept names in file order."""
        return [e.name for e in self.emotions]

    def get(self, name: str) -> Emotion:
        """Look one concept up by name (case-insensitive)."""
        key = name.strip().lower()
        for e in self.emotions:
            if e.name == key:
                return e
        raise UnknownEmotionError(
            f"unknown emotion '{name}'", hint="see `emocurate emotions` for the 171 names"
        )

    def subset(self, name: str) -> list[str]:
        """A named subset: ``all`` or one declared in the file."""
        if name == "all":
            return self.names()
        if name not in self.subsets:
            raise UnknownEmotionError(
                f"unknown emotion subset '{name}'",
                hint=f"known subsets: all, {', '.join(sorted(self.subsets))}",
            )
        return list(self.subsets[name])

    def resolve(self, spec: str) -> list[str]:
        """An emotion SPEC: a subset name, or a comma list of names; validated, order kept."""
        spec = spec.strip()
        if not spec:
            raise UnknownEmotionError("empty emotion list")
        if "," not in spec and (spec == "all" or spec in self.subsets):
            return self.subset(spec)
        out: list[str] = []
        for part in spec.split(","):
            name = self.get(part).name
            if name not in out:
                out.append(name)
        return out

    def family_members(self, family: str) -> list[str]:
        """Names of every concept in one family (used for confusable judge distractors)."""
        return [e.name for e in self.emotions if e.family == family]


@cache
def load_taxonomy(path: str | None = None) -> Taxonomy:
    """Load and validate the bundled taxonomy (or a user file with the same schema)."""
    if path is None:
        text = resources.files("emocurate").joinpath("data/emotions.yaml").read_text("utf-8")
        where = "emocurate/data/emotions.yaml"
    else:
        p = Path(path)
        if not p.exists():
            raise ConfigError(f"taxonomy file not found: {p}")
        text, where = p.read_text("utf-8"), str(p)
    try:
        tax = Taxonomy.model_validate(yamlio.safe_load(text))
    except Exception as exc:  # pydantic or yaml: both become one line
        raise ConfigError(f"{where}: invalid taxonomy: {str(exc).splitlines()[0]}") from None
    known = set(tax.names())
    for e in tax.emotions:
        if e.family not in tax.families:
            raise ConfigError(f"{where}: emotion '{e.name}' has undeclared family '{e.family}'")
    for sub, members in tax.subsets.items():
        bad = [m for m in members if m not in known]
        if bad:
            raise ConfigError(f"{where}: subset '{sub}' names unknown emotions {bad}")
    return tax


class Topic(Model):
    """One everyday story premise."""

    id: str
    premise: str
    setting: str = ""
    stakes: str = "medium"
    protagonist: str = "person"


@cache
def bundled_topics() -> tuple[Topic, ...]:
    """The bundled premises in ``data/topics.yaml``."""
    text = resources.files("emocurate").joinpath("data/topics.yaml").read_text("utf-8")
    data = yamlio.safe_load(text)
    return tuple(Topic.model_validate(t) for t in data["topics"])


def resolve_topics(spec: str) -> list[Topic]:
    """A topic SPEC: a count N (first N bundled), ``all``, or a file (YAML list or one per line)."""
    spec = spec.strip()
    topics = list(bundled_topics())
    if spec == "all":
        return topics
    if spec.isdigit():
        n = int(spec)
        if n < 1:
            raise ConfigError("topic count must be at least 1")
        if n > len(topics):
            raise ConfigError(f"asked for {n} topics but only {len(topics)} are bundled")
        return topics[:n]
    p = Path(spec)
    if not p.exists():
        raise ConfigError(f"topic spec '{spec}' is neither a count, 'all', nor an existing file")
    out = _read_topic_file(p)
    if not out:
        raise ConfigError(f"topic file {p} contains no topics")
    return out


def _read_topic_file(p: Path) -> list[Topic]:
    """Topics of a user file (YAML list, ``topics:`` mapping, or one premise per line).

    Every problem is a one-line :class:`ConfigError` naming the file (and the topic's position).
    """
    from pydantic import ValidationError

    from emocurate.errors import first_problem

    if not p.is_file():
        raise ConfigError(f"topic file {p} is not a file")
    try:
        text = p.read_text("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"topic file {p} is not UTF-8 (byte {exc.start})") from None
    except OSError as exc:
        raise ConfigError(f"topic file {p} cannot be read ({exc.strerror})") from None
    if p.suffix not in {".yaml", ".yml"}:
        lines = [ln.strip() for ln in text.splitlines()]
        return [
            Topic(id=f"u{i + 1:03d}", premise=ln)
            for i, ln in enumerate(x for x in lines if x and not x.startswith("#"))
        ]
    try:
        data = yamlio.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"topic file {p}: invalid YAML ({str(exc).splitlines()[0]})") from None
    items = data.get("topics", []) if isinstance(data, dict) else data
    if items is None:
        return []
    if not isinstance(items, list):
        raise ConfigError(
            f"topic file {p}: expected a list of topics (premise strings or mappings with "
            f"'premise'), got {type(items).__name__}"
        )
    out: list[Topic] = []
    for i, item in enumerate(items):
        if isinstance(item, str):
            out.append(Topic(id=f"u{i + 1:03d}", premise=item))
            continue
        try:
            out.append(Topic.model_validate(item))
        except ValidationError as exc:
            loc, msg = first_problem(exc)
            where = f" field '{loc}'" if loc else ""
            raise ConfigError(f"topic file {p}: topic {i + 1}{where}: {msg}") from None
    return out
