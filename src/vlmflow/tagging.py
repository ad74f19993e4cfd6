"""Part-of-speech tagging of generated answers, for the open-ended flow's anchors (the paper tags
verbs with spaCy's `en_core_web_lg`).

A tagger maps a text to its words, each a `Word(start, end, pos)` with character offsets into the
text and a universal part-of-speech tag (VERB, AUX, NOUN, ...). Two are offered:
- `SpacyTagger`: a spaCy pipeline the user installs (`pip install spacy` and
  `python -m spacy download en_core_web_lg`, spaCy's own download; the model is named in the config);
- `LexiconTagger`: a word list (`lexicon.yaml` beside this file, or the config's own), for the default
  run and the tests, where no spaCy model can be downloaded. A word in no list is tagged X.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

LEXICON = Path(__file__).with_name("lexicon.yaml")


@dataclass(frozen=True)
class Word:
    start: int  # character offsets [start, end) in the tagged text
    end: int
    pos: str  # universal part-of-speech tag


class LexiconTagger:
    """Tags each word (letters and apostrophes) by the lexicon's lists, lower-cased; X if in none."""

    def __init__(self, lexicon: dict[str, list[str]] | None = None):
        if lexicon is None:
            import yaml

            lexicon = yaml.safe_load(LEXICON.read_text())
        self.pos = {}
        for tag, words in lexicon.items():
            for w in words:
                if self.pos.setdefault(str(w).lower(), tag) != tag:
                    raise ValueError(f"lexicon: {w!r} is listed as both {self.pos[str(w).lower()]} and {tag}")

    def __call__(self, text: str) -> list[Word]:
        return [
            Word(m.start(), m.end(), self.pos.get(m.group().lower(), "X"))
            for m in re.finditer(r"[A-Za-z][A-Za-z']*", text)
        ]


class SpacyTagger:
    """A spaCy pipeline's universal tags (`token.pos_`)."""

    def __init__(self, model: str):
        try:
            import spacy
        except ImportError as err:
            raise ImportError(
                "open_ended_flow.tagger: spacy needs the spaCy package: pip install spacy"
            ) from err
        try:
            self.nlp = spacy.load(model)
        except OSError as err:
            raise OSError(
                f"open_ended_flow.spacy_model: spaCy model {model!r} is not installed; install it "
                f"with `python -m spacy download {model}`, or set open_ended_flow.tagger: lexicon"
            ) from err

    def __call__(self, text: str) -> list[Word]:
        return [Word(t.idx, t.idx + len(t.text), t.pos_) for t in self.nlp(text) if not t.is_space]


def make_tagger(kind: str, spacy_model: str = "en_core_web_lg", lexicon: dict | None = None):
    """The configured tagger: "lexicon" (the packaged word list, or `lexicon`) or "spacy"."""
    if kind == "spacy":
        return SpacyTagger(spacy_model)
    if kind == "lexicon":
        return LexiconTagger(None if lexicon is None else {k: list(v) for k, v in lexicon.items()})
    raise ValueError(f"open_ended_flow.tagger must be 'lexicon' or 'spacy', got {kind!r}")
