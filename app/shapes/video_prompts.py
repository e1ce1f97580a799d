"""GenEval-style prompts for clips of the shapes world: records, ground-truth clips, and the per-clip score.

A record is laid out like GenEval's evaluation_metadata (one JSON object per line of a .jsonl file):
  {"tag": "two_move", "prompt": "a green star moves left and a yellow triangle moves down", "frames": 16,
   "include": [{"class": "star", "color": "green", "count": 1, "action": "moves", "direction": "left"},
               {"class": "triangle", "color": "yellow", "count": 1, "action": "moves", "direction": "down"}]}
"include" lists every object of the prompt with what it does ("direction" for moves, "to_color" for
turns); a clip shows exactly these objects. Tags:
  one_moves   "a red circle moves to the right"                (a cardinal direction)
  diagonal    "a blue square moves up to the left"
  two_move    "a green star moves left and a yellow triangle moves down"
  moves_still "a red circle moves down and a blue star stays still"
  appears     "a red circle moves left and a blue star appears"      (likewise disappears, turns)
The per-clip score (`score_clip`) applies motion_measure's checks; GenEval's summary rule holds:
per tag the mean over clips, overall the mean of the tags.

    python -m app.shapes.video_prompts OUT.jsonl [N [SEED]]
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from .motion import (ACTIONS, CARDINAL, DEFAULT_FRAMES, DIRECTIONS, Clause, MotionScene, clause_text,
                     distinct_identities, join_clauses, motion_scene_for)
from .motion_measure import (FLICKER_LIMIT, OBJECTS_RIGHT_FRACTION, clip_scores, flicker, static_mask_from_tracks,
                             tracks)

VIDEO_TAGS: tuple[str, ...] = ("one_moves", "diagonal", "two_move", "moves_still", "appears", "disappears", "turns")
_TAG_ACTIONS = {"one_moves": ["moves"], "diagonal": ["moves"], "two_move": ["moves", "moves"],
                "moves_still": ["moves", "stays"], "appears": ["moves", "appears"],
                "disappears": ["moves", "disappears"], "turns": ["moves", "turns"]}


def video_metadata(rng: np.random.Generator, tag: str, frames: int = DEFAULT_FRAMES) -> dict:
    """One record of `tag`."""
    if tag not in VIDEO_TAGS:
        raise ValueError(f"unknown video tag {tag!r}; known: {', '.join(VIDEO_TAGS)}")
    actions = _TAG_ACTIONS[tag]
    ids = distinct_identities(rng, len(actions), [a == "turns" for a in actions])
    include, clauses = [], []
    used_directions: list[str] = []
    for (cls, color, turn), action in zip(ids, actions):
        req = {"class": cls, "color": color, "count": 1, "action": action}
        arg = None
        if action == "moves":
            pool = list(DIRECTIONS)[4:] if tag == "diagonal" else [d for d in CARDINAL if d not in used_directions]
            arg = pool[int(rng.integers(len(pool)))]
            used_directions.append(arg)  # two movers go different ways, so neither can pass for the other
            req["direction"] = arg
        elif action == "turns":
            arg = turn
            req["to_color"] = turn
        include.append(req)
        clauses.append(Clause(cls, color, action, arg))
    prompt = join_clauses([clause_text(c, rng) for c in clauses])
    return {"tag": tag, "prompt": prompt, "frames": frames, "include": include}


def check_video_record(metadata: dict) -> None:
    """ValueError naming what a video record lacks or gets wrong, in the layout above: a hand-written record
    is checked before any clip is made for it, not when its clips are scored."""
    from .palette import CLASSES, COLOR_NAMES

    if not isinstance(metadata.get("prompt"), str) or not metadata["prompt"].strip():
        raise ValueError("a video record needs a \"prompt\"")
    if metadata.get("tag") not in VIDEO_TAGS:
        raise ValueError(f"its \"tag\" is {metadata.get('tag')!r}; a video record's tag is one of "
                         f"{', '.join(VIDEO_TAGS)}")
    include = metadata.get("include")
    if not isinstance(include, list) or not include or not all(isinstance(r, dict) for r in include):
        raise ValueError("its \"include\" must list the prompt's objects, e.g. [{\"class\": \"circle\", \"color\": "
                         "\"red\", \"count\": 1, \"action\": \"moves\", \"direction\": \"right\"}]")
    for r in include:
        if r.get("class") not in CLASSES or r.get("color") not in COLOR_NAMES:
            raise ValueError(f"object {r}: \"class\" is one of {', '.join(CLASSES)} and \"color\" one of "
                             f"{', '.join(COLOR_NAMES)}")
        if r.get("action") not in ACTIONS:
            raise ValueError(f"object {r}: \"action\" is one of {', '.join(ACTIONS)}, not {r.get('action')!r}")
        if r["action"] == "moves" and r.get("direction") not in DIRECTIONS:
            raise ValueError(f"object {r}: a mover's \"direction\" is one of {', '.join(DIRECTIONS)}")
        if r["action"] == "turns" and r.get("to_color") not in COLOR_NAMES:
            raise ValueError(f"object {r}: a colour change's \"to_color\" is one of {', '.join(COLOR_NAMES)}")


def metadata_clauses(metadata: dict) -> list[Clause]:
    return [Clause(r["class"], r.get("color"), r["action"], r.get("direction") or r.get("to_color"))
            for r in metadata["include"]]


def scene_for_video_metadata(metadata: dict, rng: np.random.Generator) -> MotionScene:
    """A ground-truth clip of the record: what a perfect generator makes."""
    return motion_scene_for(rng, [(c.cls, c.color, c.action, c.arg if c.action == "moves" else None,
                                   c.arg if c.action == "turns" else None) for c in metadata_clauses(metadata)])


def make_video_metadata(n_prompts: int, seed: int = 43, frames: int = DEFAULT_FRAMES) -> list[dict]:
    """`n_prompts` records, the tags taking turns, a prompt repeated within a tag only when no new one
    turns up in 200 draws (as make_geneval_metadata does for images)."""
    rng = np.random.default_rng(seed)
    return take_turns(VIDEO_TAGS, n_prompts, lambda tag: video_metadata(rng, tag, frames))


def take_turns(tags, n_prompts: int, draw) -> list[dict]:
    """`n_prompts` records from `draw(tag)`, the tags taking turns; within a tag a record repeats only
    after 200 draws found no new one (then a new round of that tag starts)."""
    seen: dict[str, set[str]] = {t: set() for t in tags}
    out = []
    for i in range(n_prompts):
        tag = tags[i % len(tags)]
        for _ in range(200):
            meta = draw(tag)
            key = json.dumps(meta, sort_keys=True)
            if key not in seen[tag]:
                break
        else:
            seen[tag].clear()  # every distinct record of this tag is used: start a new round
        seen[tag].add(key)
        out.append(meta)
    return out


def write_video_metadata(path: str | os.PathLike, records: list[dict]) -> Path:
    """GenEval's evaluation_metadata.jsonl layout: one JSON object per line."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def read_video_metadata(path: str | os.PathLike) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def score_clip(frames, metadata: dict) -> dict:
    """One clip against one record: objects right per frame (fraction), motion followed, events
    followed, identity kept, flicker of what should stand still; `correct` when the first four pass."""
    frames = np.asarray(frames)
    clauses = metadata_clauses(metadata)
    found = tracks(frames)
    out = clip_scores(frames, clauses, found)
    out["flicker"] = flicker(frames, static_mask_from_tracks(found, len(frames), frames.shape[2]))
    out["correct"] = bool(out["objects_right"] >= OBJECTS_RIGHT_FRACTION and out["motion_followed"]
                          and out["events_followed"] and out["identity_kept"])
    out["steady"] = bool(out["flicker"] <= FLICKER_LIMIT)
    return out


def summarize_clips(results: list[tuple[dict, dict]]) -> dict:
    """(record, score) pairs -> per-tag accuracy and overall (mean of the tags, as GenEval)."""
    per_tag: dict[str, list[bool]] = {}
    for meta, score in results:
        per_tag.setdefault(meta["tag"], []).append(bool(score["correct"]))
    tags = {t: float(np.mean(v)) for t, v in per_tag.items()}
    correct = [s["correct"] for _, s in results]
    return {"tags": tags, "overall": float(np.mean(list(tags.values()))) if tags else 0.0,
            "clips": len(results), "correct_clips": float(np.mean(correct)) if correct else 0.0}


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(prog="python -m app.shapes.video_prompts",
                                     description="Write GenEval-style prompt records for clips (one JSON object a line).")
    parser.add_argument("out", nargs="?", default="video_metadata.jsonl", help="the .jsonl file to write")
    parser.add_argument("n", nargs="?", type=int, default=140, help="how many records (default 140)")
    parser.add_argument("seed", nargs="?", type=int, default=43, help="the records' seed (default 43)")
    args = parser.parse_args()
    print(write_video_metadata(args.out, make_video_metadata(args.n, args.seed)))
