"""Synthetic TinyStories-like texts for validator tests (no research data is used)."""

from __future__ import annotations

import random

NAMES = [
    "Lily",
    "Ben",
    "Tom",
    "Mia",
    "Sam",
    "Anna",
    "Max",
    "Zoe",
    "Leo",
    "Ella",
    "Jack",
    "Lucy",
    "Tim",
    "Sara",
    "Finn",
    "Nora",
    "Oscar",
    "Ruby",
    "Hugo",
    "Ivy",
]
ANIMALS = [
    "dog",
    "cat",
    "bird",
    "frog",
    "bunny",
    "duck",
    "fox",
    "bear",
    "mouse",
    "horse",
    "fish",
    "owl",
    "turtle",
    "lamb",
    "pig",
    "goat",
]
OBJECTS = [
    "ball",
    "kite",
    "boat",
    "hat",
    "cake",
    "drum",
    "book",
    "box",
    "car",
    "doll",
    "shell",
    "stone",
    "cup",
    "rope",
    "map",
    "key",
    "bell",
    "toy",
    "lamp",
    "coin",
    "leaf",
    "stick",
]
PLACES = [
    "park",
    "garden",
    "forest",
    "beach",
    "river",
    "house",
    "school",
    "shop",
    "hill",
    "farm",
    "lake",
    "yard",
    "street",
    "barn",
    "pond",
    "field",
]
ADJS = [
    "red",
    "big",
    "small",
    "shiny",
    "old",
    "new",
    "soft",
    "green",
    "blue",
    "tall",
    "round",
    "tiny",
    "yellow",
    "funny",
    "heavy",
    "bright",
    "dark",
    "warm",
    "cold",
    "fast",
]
VERBS = [
    "found",
    "saw",
    "took",
    "gave",
    "lost",
    "made",
    "threw",
    "held",
    "painted",
    "hid",
    "carried",
    "washed",
    "dropped",
    "fixed",
    "shared",
    "opened",
    "pushed",
    "pulled",
]
TEMPLATES = [
    "{n1} went to the {p} with a {a} {o}.",
    "One day {n1} {v} a {a} {o} near the {p}.",
    "The {an} ran to {n2} and {v} the {o}.",
    '{n2} said, "Look at the {a} {an}!"',
    "They played by the {p} until the sun went down.",
    "{n1} and {n2} {v} a {o} for the {an}.",
    "Then a {a} {an} came out of the {p}.",
    "{n2} put the {o} in a {a} box under the tree.",
    "At night {n1} thought about the {a} {o} and the {an}.",
    "Mom told {n1} to bring the {o} back to the {p}.",
    "The {o} was {a} and {n2} {v} it twice.",
    "{n1} asked the {an} where the {a} {o} was.",
]


def story(rng: random.Random, n_sentences: int | None = None) -> str:
    """A random short story of 6-10 template sentences."""
    n = n_sentences or rng.randint(6, 10)
    out = []
    for _ in range(n):
        t = rng.choice(TEMPLATES)
        n1, n2 = rng.sample(NAMES, 2)
        out.append(
            t.format(
                n1=n1,
                n2=n2,
                an=rng.choice(ANIMALS),
                o=rng.choice(OBJECTS),
                p=rng.choice(PLACES),
                a=rng.choice(ADJS),
                v=rng.choice(VERBS),
            )
        )
    return " ".join(out)


def light_edit(text: str, rng: random.Random) -> str:
    """1-3 light edits: swap two adjacent words, reorder two sentences, change punctuation."""
    for _ in range(rng.randint(1, 3)):
        op = rng.choice(["swap", "reorder", "punct"])
        if op == "swap":
            ws = text.split(" ")
            k = rng.randrange(len(ws) - 1)
            ws[k], ws[k + 1] = ws[k + 1], ws[k]
            text = " ".join(ws)
        elif op == "reorder":
            sents = [
                s for s in text.replace('!"', '!"|').replace(". ", ".|").split("|") if s.strip()
            ]
            if len(sents) > 2:
                i, j = rng.sample(range(len(sents)), 2)
                sents[i], sents[j] = sents[j], sents[i]
            text = " ".join(s.strip() for s in sents)
        else:
            choice = rng.choice([(". ", "! "), (" and ", ", and "), (",", ""), (". ", "; ")])
            text = text.replace(choice[0], choice[1], 1)
    return text


def dedup_set(n_unique: int, frac_dupes: float, seed: int) -> tuple[list[str], list[int]]:
    """Texts and, per text, the index of its original (-1 for unique ones).

    ``frac_dupes`` of the returned texts are light edits of unique ones, shuffled in.
    """
    rng = random.Random(seed)
    uniques = [story(rng) for _ in range(n_unique)]
    n_dupes = round(n_unique * frac_dupes / (1 - frac_dupes))
    items: list[tuple[str, int]] = [(t, -1) for t in uniques]
    for _ in range(n_dupes):
        src = rng.randrange(n_unique)
        items.append((light_edit(uniques[src], rng), src))
    order = list(range(len(items)))
    rng.shuffle(order)
    # map original ids through the shuffle so the caller can find clusters
    pos = {old: new for new, old in enumerate(order)}
    texts = [items[o][0] for o in order]
    origin = [pos[items[o][1]] if items[o][1] >= 0 else -1 for o in order]
    return texts, origin


CUES = {
    "sad": [
        "the rain kept falling",
        "she sat alone by the window",
        "the old dog was gone",
        "tears ran down his cheeks",
        "nobody came to the party",
        "the grey sky hung low",
    ],
    "happy": [
        "the sun was shining bright",
        "they laughed and danced",
        "the cake was huge and sweet",
        "everyone clapped and cheered",
        "she got the puppy she wanted",
        "they sang all the way home",
    ],
    "scared": [
        "a loud noise came from the dark",
        "his hands were shaking",
        "something moved under the bed",
        "the door creaked open slowly",
        "she hid under the blanket",
        "the shadow grew bigger",
    ],
}


def labelled_stories(n_per: int, seed: int) -> list[tuple[str, str]]:
    """(text, emotion) pairs whose emotion is visible from cue phrases, never named."""
    rng = random.Random(seed)
    out = []
    for emotion, cues in CUES.items():
        for _ in range(n_per):
            base = story(rng, rng.randint(3, 5)).split(". ")
            for cue in rng.sample(cues, 3):
                base.insert(rng.randrange(len(base) + 1), cue[0].upper() + cue[1:])
            out.append((". ".join(s.rstrip(".") for s in base) + ".", emotion))
    rng.shuffle(out)
    return out
