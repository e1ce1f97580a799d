"""Words a word-level planner (the embedded models') would read as <unk>, or that its model never trained on.

One check, used twice: by a loaded pipeline (`MetaCanvasPipeline.check_instruction`) and by the CLI straight from a
model folder's `planner/tokenizer.json` and `model_index.json` before the model loads
(`check_words_in_folder`), so that an unknown word is said in a fraction of a second, not after seconds of
loading. A real Qwen2.5-VL tokenizer reads any text: nothing is checked for it.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

# The chat format's own words and marks (app/core/planner.py): not the user's to type, never listed as known.
CHAT_WORDS = ["user", "assistant", "system", ".", ",", "!", "?", ";", ":", "'", "-"]


class UnknownWordsError(ValueError):
    """A word-level planner (the embedded default) met words outside its vocabulary."""

    def __init__(self, unknown: list[str], known: list[str]):
        self.unknown, self.known = unknown, known
        # The message quotes what was typed, so it is bounded: a pasted 10,000-character "word"
        # gives a one-line message, not a wall of text.
        shown = [repr(w if len(w) <= 24 else w[:24] + "…") for w in unknown[:5]]
        more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
        super().__init__(f"The model does not know the word{'s' if len(unknown) > 1 else ''} "
                         f"{', '.join(shown)}{more}. It knows: {' '.join(known)}.")


def check_words(backend, vocab: dict, special: set, trained_words, text: str, video_edit: bool = False) -> None:
    """Raise when `text` holds a word `backend` (a `tokenizers.Tokenizer` with a WordLevel model) lacks, or one
    outside `trained_words` where the model says them. With `video_edit`, an edit joining two changes with "and"
    is refused by a model that says its trained words (the embedded one): it was taught one change an edit, and
    made neither of two."""
    if video_edit and trained_words and "and" in re.findall(r"[a-z]+", text.lower())[1:]:
        raise ValueError("this model makes one change an edit (it was taught no edit joined by 'and'): ask "
                         "for one change, then edit the result for the next")
    normalised = backend.normalizer.normalize_str(text) if backend.normalizer is not None else text
    words = [w for w, _ in backend.pre_tokenizer.pre_tokenize_str(normalised)]
    trained = set(trained_words)
    # Punctuation is the tokenizer's own (a caption's commas, a full stop): never held to the trained words.
    unknown = list(dict.fromkeys(w for w in words if w not in vocab or trained and w.isalpha() and w not in trained))
    if unknown:
        known = sorted(w for w in vocab if w not in special and w not in CHAT_WORDS and w.isalpha()
                       and (not trained or w in trained))
        raise UnknownWordsError(unknown, known)


def check_words_in_folder(folder: str | Path, text: str, task: str | None = None) -> None:
    """`check_words` for the model in `folder`, read from its files without loading it. Does nothing where the
    folder has no word-level planner tokenizer (a real checkpoint, or a folder the loader will refuse and explain),
    or where its model does not do `task` (a task's value, "video_edit"): the loaded model says that first."""
    folder = Path(folder)
    try:
        index = json.loads((folder / "model_index.json").read_text(encoding="utf-8"))
        defaults = index.get("defaults") or {}
        if task is not None and task not in defaults.get("tasks", ()):
            return
        spec = json.loads((folder / str(index.get("planner", "planner")) / "tokenizer.json").read_text(encoding="utf-8"))
        if spec.get("model", {}).get("type") != "WordLevel" or spec.get("pre_tokenizer") is None:
            return
        from tokenizers import Tokenizer

        backend = Tokenizer.from_str(json.dumps(spec))
        trained = tuple(str(w) for w in defaults.get("trained_words") or ())
        special = {t["content"] for t in spec.get("added_tokens", []) if t.get("special")}
    except Exception:  # a missing or unreadable file is the loader's to explain, in its own words
        return
    check_words(backend, backend.get_vocab(with_added_tokens=True), special, trained, text,
                video_edit=task == "video_edit")
