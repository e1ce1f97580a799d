"""The words the embedded default model knows, and the check that refuses any other word.

The model is trained only on captions and instructions made by this package, so a word outside this
list would reach it as an unknown token and be silently ignored. `check_words` turns that into an
error the user can act on: it names the unknown words and lists the known ones.
"""
from __future__ import annotations

import re

from .palette import CLASSES, COLOR_NAMES

NUMBER_WORDS: dict[int, str] = {1: "one", 2: "two", 3: "three", 4: "four"}


def plural(cls: str) -> str:
    return cls + "s"


def article(word: str) -> str:
    """'a' or 'an' before `word`, as GenEval's `with_article` ("an orange star")."""
    return "an" if word[0] in "aeiou" else "a"


# Grouped so the error message reads as a small dictionary.
WORD_GROUPS: dict[str, tuple[str, ...]] = {
    "shapes": CLASSES + tuple(plural(c) for c in CLASSES),
    "colours": COLOR_NAMES,
    "numbers": tuple(NUMBER_WORDS.values()),
    "positions": ("left", "right", "above", "below", "top", "bottom", "up", "down"),
    "edits": ("make", "move", "remove", "delete", "add", "replace", "with"),
    # "picture" and "delete" are the two synonyms supported: the generators use them too, so the
    # model sees them in training.
    "other": ("a", "an", "the", "photo", "picture", "of", "and", "on", "at", "to"),
}

VOCABULARY: tuple[str, ...] = tuple(w for group in WORD_GROUPS.values() for w in group)
_KNOWN = frozenset(VOCABULARY)

# The words clips add (app/shapes/motion.py, video_edits.py). Kept out of VOCABULARY on purpose: the
# committed image model's tokenizer (models/.../planner/tokenizer.json) and every image trainer build
# from VOCABULARY, which holds only words the image generators use. A video tokenizer builds from
# VIDEO_VOCABULARY, which starts with VOCABULARY, so every image word keeps its token id there.
MOTION_WORD_GROUPS: dict[str, tuple[str, ...]] = {
    "motion": ("moves", "moving", "stays", "still", "appears", "disappears", "turns", "instead"),
    "references": ("from", "first", "second", "image"),
}
MOTION_WORDS: tuple[str, ...] = tuple(w for group in MOTION_WORD_GROUPS.values() for w in group)
VIDEO_WORD_GROUPS: dict[str, tuple[str, ...]] = {**WORD_GROUPS, **MOTION_WORD_GROUPS}
VIDEO_VOCABULARY: tuple[str, ...] = VOCABULARY + MOTION_WORDS
_KNOWN_VIDEO = frozenset(VIDEO_VOCABULARY)

# The words the clip generators use (captions, edits, reference instructions): a video model trained on them alone
# reads the others its tokenizer holds (counts, plurals, "move", "above", "photo": the stills' words) without ever
# having been taught what they do in a clip, so it is asked to refuse them (PipelineDefaults.trained_words).
# tests/shapes checks this list against what the generators write.
CLIP_WORDS: tuple[str, ...] = tuple(w for w in VIDEO_VOCABULARY if w not in {
    "circles", "squares", "triangles", "stars", "one", "two", "three", "four", "above", "below", "top", "bottom",
    "move", "photo", "picture", "of", "on", "at"})

# Words are runs of letters or digits; everything else (spaces, commas, full stops, hyphens)
# separates words and is dropped, since no punctuation changes what a caption asks for.
_WORD = re.compile(r"[a-z0-9]+")


class UnknownWordError(ValueError):
    """Raised for text holding words the model was never trained on."""

    def __init__(self, unknown: list[str], groups: dict[str, tuple[str, ...]] | None = None):
        self.unknown = unknown
        groups = WORD_GROUPS if groups is None else groups
        known = "; ".join(f"{name}: {', '.join(words)}" for name, words in groups.items())
        super().__init__(
            f"The model does not know the word{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(repr(w) for w in unknown)}. Rephrase with the words it knows: {known}."
        )


def tokenize_words(text: str) -> list[str]:
    """Lower-cased words of `text`; punctuation splits words and is dropped."""
    return _WORD.findall(text.lower())


def check_words(text: str) -> list[str]:
    """The words of `text`, or UnknownWordError naming every word outside VOCABULARY."""
    words = tokenize_words(text)
    unknown = list(dict.fromkeys(w for w in words if w not in _KNOWN))
    if unknown:
        raise UnknownWordError(unknown)
    return words


def check_video_words(text: str) -> list[str]:
    """check_words for clip captions and instructions: VIDEO_VOCABULARY instead of VOCABULARY."""
    words = tokenize_words(text)
    unknown = list(dict.fromkeys(w for w in words if w not in _KNOWN_VIDEO))
    if unknown:
        raise UnknownWordError(unknown, VIDEO_WORD_GROUPS)
    return words
