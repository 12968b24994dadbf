"""What the four generators share: the plan/parse contract, ids, schemas and prompt rendering.

A generator turns a :class:`GenerateConfig` into a deterministic list of fully rendered
:class:`ChatRequest` s (:meth:`Generator.plan`; same config and seed, same requests, same
custom ids) and turns one completion back into records (:meth:`Generator.parse`, which raises
:class:`ParseError` on unusable output so the engine retries; any other exception is a bug and
stops the run).
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import ValidationError

from emocurate.configs import DEFAULT_MAX_TOKENS_PER_ITEM, GenerateConfig
from emocurate.generators.backends.base import ChatRequest, Completion, Message
from emocurate.generators.parse import ParseError, completion_items, delimited_instructions
from emocurate.generators.pricing import cacheable
from emocurate.generators.prompts import PromptFile, prompt_pair
from emocurate.records import Model, Provenance, stable_id
from emocurate.taxonomy import Taxonomy, Topic, load_taxonomy, resolve_topics

VARIETY_PLACES = (
    "in a small town",
    "in a big city",
    "at night",
    "early in the morning",
    "outdoors",
    "at work",
    "at home",
    "while travelling",
    "in winter",
    "in summer",
    "in a crowded place",
    "somewhere quiet",
)

SIMPLE_MAX_TOKENS = 256
"""Output budget of one simple-style answer (a ~120-word story is ~160 tokens)."""

STRUCTURED_NOTE = "Answer only through the structured output format provided (the '{name}' schema)."


class BackendInfo(Model):
    """What a generator needs to know about the backend it plans for."""

    name: str
    model: str
    chat: bool = True
    supports_schema: bool = True
    n_params: int | None = None
    """The model's parameter count when known (local models): ``auto`` style's size rule."""


def slug(text: str) -> str:
    """A custom-id-safe form of a name (batch APIs allow ``[A-Za-z0-9_-]`` only)."""
    return re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_") or "x"


def make_custom_id(*parts: str) -> str:
    """Readable, unique, at most 64 characters (batch APIs' limit)."""
    cid = "-".join(slug(p) for p in parts)
    if len(cid) > 64:
        cid = cid[:47] + "-" + hashlib.sha256(cid.encode()).hexdigest()[:16]
    return cid


def derived_seed(seed: int, *parts: str) -> int:
    """A per-request seed from the run seed and the request's identity (stable across runs)."""
    h = hashlib.sha256("\x1f".join([str(seed), *parts]).encode()).digest()
    return int.from_bytes(h[:4], "little")


Case = tuple[tuple[str, ...], Topic]
"""What one run of chunks is about: the emotions (one, a human/assistant pair, or none) and a
topic."""


@dataclass(frozen=True)
class Cell:
    """One planned request: its custom id, what it is about and how many records it asks for."""

    custom_id: str
    emotions: tuple[str, ...]
    """One emotion (stories, regulation), a (human, assistant) pair (dialogues), none (neutral)."""
    topic: Topic
    chunk: int
    """Position among the requests of the same emotions and topic (the custom id's last part)."""
    n: int
    """Records asked for (1 in the simple and opening styles)."""

    @property
    def emotion(self) -> str:
        """The emotion of a one-emotion cell."""
        (emotion,) = self.emotions
        return emotion

    def meta(self) -> dict[str, Any]:
        """The request meta it starts with: the emotion (when one), the topic and its id."""
        head = {"emotion": self.emotion} if len(self.emotions) == 1 else {}
        return {**head, "topic": self.topic.premise, "topic_id": self.topic.id}


def emotion_topic_cases(emotions: Iterable[str], topics: Sequence[Topic]) -> Iterator[Case]:
    """Every emotion with every topic, emotion-major (stories and regulation)."""
    return (((emotion,), topic) for emotion in emotions for topic in topics)


def plan_cells(
    prefix: str, cases: Iterable[Case], *, per_topic: int, per_request: int
) -> Iterator[Cell]:
    """The planning grid of every generator: each case's ``per_topic`` records in chunks of at
    most ``per_request``, in order, with custom ids ``<prefix>-<emotions>-<topic id>-<chunk>``.

    Custom ids key the response cache: this order and these ids are what a rerun finds paid for.
    """
    for emotions, topic in cases:
        done = chunk = 0
        while done < per_topic:
            n = min(per_request, per_topic - done)
            cid = make_custom_id(prefix, *emotions, topic.id, str(chunk))
            yield Cell(custom_id=cid, emotions=emotions, topic=topic, chunk=chunk, n=n)
            done += n
            chunk += 1


def items_schema(item_props: dict[str, Any], n: int) -> dict[str, Any]:
    """``{"items": [item x n]}`` with every property required (valid for strict OpenAI mode)."""
    return {
        "type": "object",
        "properties": {
            "items": {
                "type": "array",
                "minItems": n,
                "maxItems": n,
                "items": {
                    "type": "object",
                    "properties": item_props,
                    "required": list(item_props),
                    "additionalProperties": False,
                },
            }
        },
        "required": ["items"],
        "additionalProperties": False,
    }


TURNS_SCHEMA: dict[str, Any] = {
    "type": "array",
    "items": {
        "type": "object",
        "properties": {
            "speaker": {"type": "string", "enum": ["human", "assistant"]},
            "text": {"type": "string"},
        },
        "required": ["speaker", "text"],
        "additionalProperties": False,
    },
}


class Generator:
    """Base of the four generators."""

    kind: ClassVar[str] = ""
    item_props: ClassVar[dict[str, Any]] = {}
    text_fields: ClassVar[dict[str, str]] = {}

    def __init__(
        self, cfg: GenerateConfig, info: BackendInfo, taxonomy: Taxonomy | None = None
    ) -> None:
        self.cfg = cfg
        self.info = info
        self.tax = taxonomy or load_taxonomy()
        self.system_prompt, self.user_prompt, self.prompt_id, self.prompt_hash = prompt_pair(
            self.kind
        )
        from emocurate.generators.style import choose_style

        self.style, self.style_reason = choose_style(
            cfg.prompt_style,
            kind=self.kind,
            backend=info.name,
            chat=info.chat,
            n_params=info.n_params,
        )
        self.n_per_request = cfg.items_per_request(self.style)
        if self.style == "simple":
            from emocurate.generators.prompts import load_prompt

            self.prompt_id = f"{self.kind}/simple-v1"
            self.prompt_hash = load_prompt(f"{self.kind}_simple").hash

    def prompt_files(self) -> list[PromptFile]:
        """The prompt files this run's requests are rendered from (hashes go in the manifest)."""
        if self.style == "simple":
            from emocurate.generators.prompts import load_prompt

            return [load_prompt(f"{self.kind}_simple")]
        return [self.system_prompt, self.user_prompt]

    # -- to override --------------------------------------------------------------------------
    def plan(self) -> list[ChatRequest]:
        """The requests of this run, in a deterministic order."""
        raise NotImplementedError

    def build(
        self, request: ChatRequest, item: dict[str, Any], index: int, prov: Provenance | None
    ) -> Any:
        """One record from one parsed item (raise ParseError if the item is unusable)."""
        raise NotImplementedError

    # -- shared -------------------------------------------------------------------------------
    def cells(self, prefix: str, cases: Iterable[Case]) -> Iterator[Cell]:
        """This run's cells for ``cases``: ``per_topic`` records each, ``n_per_request`` at most
        per request (see :func:`plan_cells`)."""
        return plan_cells(
            prefix, cases, per_topic=self.cfg.per_topic, per_request=self.n_per_request
        )

    def topics(self) -> list[Topic]:
        """The topics named by the config's topic spec."""
        return resolve_topics(self.cfg.topics)

    def forbidden(self, emotion: str) -> list[str]:
        """The words a text about ``emotion`` must not contain."""
        return self.tax.get(emotion).leak_terms

    def format_note(self, n: int) -> str:
        """How to format the answer: the schema when supported, the delimiter layout otherwise."""
        if self.info.supports_schema:
            return STRUCTURED_NOTE.format(name=self.kind)
        return delimited_instructions(self.text_fields, n)

    def request(
        self, custom_id: str, user_values: dict[str, Any], n: int, meta: dict[str, Any]
    ) -> ChatRequest:
        """Render one chat request with the shared system prompt and this request's user prompt."""
        cfg = self.cfg
        system = self.system_prompt.render(format_note=self.format_note(n))
        user = self.user_prompt.render(variety=self.variety(custom_id), **user_values)
        max_tokens = cfg.max_tokens or DEFAULT_MAX_TOKENS_PER_ITEM[self.kind] * n + 200
        return ChatRequest(
            custom_id=custom_id,
            model=self.info.model,
            system=system,
            messages=[Message(role="user", content=user)],
            max_tokens=max_tokens,
            temperature=1.0 if cfg.temperature is None else cfg.temperature,
            top_p=cfg.top_p,
            seed=derived_seed(cfg.seed, custom_id),
            schema_name=self.kind if self.info.supports_schema else "",
            schema=items_schema(self.item_props, n) if self.info.supports_schema else {},
            # a marker on a prefix too short to be cached does nothing: do not send it
            cache_system=cfg.prompt_cache and cacheable(system),
            prompt_id=self.prompt_id,
            prompt_hash=self.prompt_hash,
            meta={"kind": self.kind, "n": n, **meta, "prompt_values": dict(user_values)},
        )

    def refill(self, request: ChatRequest, missing: int, round_: int) -> ChatRequest | None:
        """A request for the ``missing`` items a partial answer to ``request`` left out.

        Same emotion, topic and prompt, asking for ``missing`` items under a new custom id
        (``<id>-fill<round>``), so a rerun fills the gap instead of leaving it uncounted. None
        when the request was not rendered by :meth:`request` (nothing to re-render it from).
        """
        values = dict(request.meta.get("prompt_values") or {})
        if not values or missing < 1:
            return None
        skip = {"kind", "n", "prompt_values"}
        meta = {k: v for k, v in request.meta.items() if k not in skip}
        povs = meta.get("povs")
        if isinstance(povs, list) and povs:
            meta["povs"] = povs[-missing:]
            if "povs" in values:
                values["povs"] = ", ".join(meta["povs"])
        if "n" in values:
            values["n"] = missing
        meta.setdefault("refill_of", request.custom_id)
        cid = make_custom_id(request.custom_id, f"fill{round_}")
        return self.request(cid, values, missing, meta)

    def missing_items(self, request: ChatRequest, completion: Completion) -> int:
        """How many of the items ``request`` asked for its answer does not provide."""
        want = max(1, int(request.meta.get("n", 1)))
        try:
            got = len(self.parse(request, completion, None))
        except ParseError:
            got = 0
        return max(0, want - got)

    def parse(
        self, request: ChatRequest, completion: Completion, prov: Provenance | None = None
    ) -> list[Any]:
        """Records from one completion; ParseError when none are usable."""
        items = completion_items(completion, list(self.text_fields))
        want = int(request.meta.get("n", len(items)))
        records, problems = [], []
        for i, item in enumerate(items[:want]):
            try:
                records.append(self.build(request, item, i, prov))
            except (ParseError, ValidationError) as exc:
                # Only the model's fault: a parser's deliberate ParseError, or a record the
                # answer's values do not validate as. Any other exception (KeyError, TypeError,
                # ValueError) is a bug in our code: it propagates and stops the run, instead of
                # being retried as "malformed" and paid again.
                problems.append(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        if not records:
            why = problems[0] if problems else "no items"
            raise ParseError(f"no usable {self.kind} in the answer ({why})")
        return records

    def simple_request(
        self, custom_id: str, values: dict[str, Any], meta: dict[str, Any]
    ) -> ChatRequest:
        """One item asked for in plain words (``prompts/<kind>_simple.md``), through the chat
        template, no system prompt of ours; the whole answer is the item."""
        from emocurate.generators.prompts import load_prompt

        cfg = self.cfg
        prompt = load_prompt(f"{self.kind}_simple")
        return ChatRequest(
            custom_id=custom_id,
            model=self.info.model,
            messages=[Message(role="user", content=prompt.render(**values))],
            max_tokens=cfg.max_tokens or SIMPLE_MAX_TOKENS,
            temperature=0.8 if cfg.temperature is None else cfg.temperature,
            top_p=0.95 if cfg.top_p is None else cfg.top_p,
            seed=derived_seed(cfg.seed, custom_id),
            cache_system=False,
            prompt_id=self.prompt_id,
            prompt_hash=prompt.hash,
            meta={"kind": self.kind, "n": 1, "simple": True, **meta},
        )

    def opening_request(
        self, custom_id: str, opening: str, prompt_id: str, meta: dict[str, Any]
    ) -> ChatRequest:
        """A base model's request: continue ``opening`` (kept in ``meta`` for :meth:`continuation`)."""
        cfg = self.cfg
        return ChatRequest(
            custom_id=custom_id,
            model=self.info.model,
            messages=[Message(role="user", content=opening)],
            max_tokens=cfg.max_tokens or 120,
            temperature=0.8 if cfg.temperature is None else cfg.temperature,
            top_p=0.95 if cfg.top_p is None else cfg.top_p,
            seed=derived_seed(cfg.seed, custom_id),
            cache_system=False,
            prompt_id=prompt_id,
            prompt_hash=self.prompt_hash,
            meta={"kind": self.kind, "n": 1, "opening": opening, **meta},
            raw=self.info.chat,  # a chat model continues the opening, not a chat turn
        )

    @staticmethod
    def continuation(completion: Completion, min_words: int = 8) -> str:
        """The model's continuation up to its last full sentence; ParseError when too short.

        The backend decodes prompt and continuation together, so the continuation carries its
        own leading space: joining it to the opening as is never splits a word ("I" + "t was").
        """
        from emocurate.generators.text import trim_to_sentence

        cont = trim_to_sentence(completion.text)
        if len(cont.split()) < min_words:
            raise ParseError("continuation too short")
        return cont

    def record_id(self, request: ChatRequest, index: int) -> str:
        """Deterministic record id from the request's custom id and the item's position."""
        return stable_id(self.kind, request.custom_id, str(index), prefix=f"{self.kind[:2]}-")

    def variety(self, custom_id: str) -> str:
        """A per-request nudge so chunks of the same emotion and topic do not share one prompt
        (identical prompts give near-identical answers and waste the budget)."""
        rng = self.rng("variety", custom_id)
        letters = ", ".join(rng.sample("ABCDEFGHIJKLMNOPRSTVWY", 4))
        place = rng.choice(VARIETY_PLACES)
        return (
            f"give people names starting with {letters}; where the situation allows, let "
            f"at least one item take place {place}."
        )

    def rng(self, *parts: str) -> random.Random:
        """A private random stream for planning choices (stable across runs)."""
        return random.Random(derived_seed(self.cfg.seed, self.kind, *parts))


def require_text(item: dict[str, Any], key: str, *, min_words: int = 5) -> str:
    """A non-trivial text field or ParseError."""
    value = item.get(key)
    if not isinstance(value, str) or len(value.split()) < min_words:
        raise ParseError(f"item field '{key}' is missing or too short")
    return value.strip()


def check_prompt_file(p: PromptFile) -> str:
    """The id@hash label used in manifests."""
    return f"{p.id}@{p.hash}"
