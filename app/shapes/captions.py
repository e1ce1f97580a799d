"""(scene, caption) pairs where the scene does what the caption says and nothing more.

Caption kinds:
- GenEval's six, with GenEval's templates and metadata (`metadata` holds the evaluation_metadata
  record, so the same generator feeds training and the benchmark):
  single_object "a photo of a circle"; two_object "a photo of a circle and a star";
  counting "a photo of three stars" (2-4, as words); colors "a photo of a red circle";
  position "a photo of a circle left of a square"; color_attr "a photo of a red circle and a blue square".
- Plain phrasings a person types: plain_count "two green triangles" / "one star", plain_relation "a blue star above
  a red square", plain_region "a yellow circle on the left".
- describe: a random scene with every object named ("a photo of a red circle, two blue squares and a
  green star"), for variety.

Every scene holds exactly the objects its caption names (counting three stars gives three stars and
nothing else), so no object contradicts the caption. Relations follow GenEval's rule with a margin
(`relation_holds_robustly`). Regions ("on the left", "at the top", ...) mean the object's centre lies
in that outer third of the frame: thirds rather than halves, so a centred object is in no region and
the phrase stays unambiguous to a person looking at the picture.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .palette import CLASSES, COLOR_NAMES
from .relations import RELATIONS, relation_holds_robustly
from .scene import MAX_OBJECTS, Scene, ShapeObject, place, place_all, random_class, random_color, random_scene
from .vocab import NUMBER_WORDS, article, plural

GENEVAL_TAGS: tuple[str, ...] = ("single_object", "two_object", "counting", "colors", "position", "color_attr")
PLAIN_KINDS: tuple[str, ...] = ("plain_count", "plain_relation", "plain_region")
CAPTION_KINDS: tuple[str, ...] = GENEVAL_TAGS + PLAIN_KINDS + ("describe",)

# Region phrase -> (x0, y0, x1, y1) range the centre must lie in. The 0.02 inset keeps a faithful
# render clear of the boundary a scorer would test.
REGIONS: dict[str, tuple[float, float, float, float]] = {
    "on the left": (0.0, 0.0, 1 / 3 - 0.02, 1.0),
    "on the right": (2 / 3 + 0.02, 0.0, 1.0, 1.0),
    "at the top": (0.0, 0.0, 1.0, 1 / 3 - 0.02),
    "at the bottom": (0.0, 2 / 3 + 0.02, 1.0, 1.0),
}
# Slack, in fractions of the side, that a relation must survive (about 1.3 px at 64 px).
RELATION_SLACK = 0.02


@dataclass(frozen=True)
class CaptionedScene:
    scene: Scene
    caption: str
    kind: str
    metadata: dict | None = field(default=None, compare=False)  # GenEval record for GenEval kinds


def _pick(rng: np.random.Generator, items, k: int = 1, replace: bool = False):
    idx = rng.choice(len(items), size=k, replace=replace)
    return [items[int(i)] for i in idx]


def _noun(color: str | None, cls: str) -> str:
    """'a red circle' / 'an orange star' / 'a circle'."""
    words = f"{color} {cls}" if color else cls
    return f"{article(words)} {words}"


# ----- GenEval prompts (templates as in GenEval's prompts/create_prompts.py) -----

def geneval_metadata(rng: np.random.Generator, tag: str) -> dict:
    """One GenEval evaluation_metadata record of `tag`, restricted to the shapes world."""
    if tag == "single_object":
        (cls,) = _pick(rng, CLASSES)
        return {"tag": tag, "include": [{"class": cls, "count": 1}], "prompt": f"a photo of {_noun(None, cls)}"}
    if tag == "two_object":
        a, b = _pick(rng, CLASSES, 2)
        return {"tag": tag, "include": [{"class": a, "count": 1}, {"class": b, "count": 1}],
                "prompt": f"a photo of {_noun(None, a)} and {_noun(None, b)}"}
    if tag == "counting":
        (cls,) = _pick(rng, CLASSES)
        n = int(rng.integers(2, 4, endpoint=True))
        return {"tag": tag, "include": [{"class": cls, "count": n}], "exclude": [{"class": cls, "count": n + 1}],
                "prompt": f"a photo of {NUMBER_WORDS[n]} {plural(cls)}"}
    if tag == "colors":
        (cls,), (color,) = _pick(rng, CLASSES), _pick(rng, COLOR_NAMES)
        return {"tag": tag, "include": [{"class": cls, "count": 1, "color": color}],
                "prompt": f"a photo of {_noun(color, cls)}"}
    if tag == "position":
        a, b = _pick(rng, CLASSES, 2)
        (rel,) = _pick(rng, RELATIONS)
        # GenEval lists the reference object B first; A's position is relative to include[0].
        return {"tag": tag, "include": [{"class": b, "count": 1}, {"class": a, "count": 1, "position": [rel, 0]}],
                "prompt": f"a photo of {_noun(None, a)} {rel} {_noun(None, b)}"}
    if tag == "color_attr":
        a, b = _pick(rng, CLASSES, 2)
        ca, cb = _pick(rng, COLOR_NAMES, 2)
        return {"tag": tag, "include": [{"class": a, "count": 1, "color": ca}, {"class": b, "count": 1, "color": cb}],
                "prompt": f"a photo of {_noun(ca, a)} and {_noun(cb, b)}"}
    raise ValueError(f"unknown GenEval tag {tag!r}; known: {', '.join(GENEVAL_TAGS)}")


def scene_for_metadata(metadata: dict, rng: np.random.Generator, tries: int = 400) -> Scene:
    """A scene with exactly the objects a GenEval record includes, in the required colours and
    relative positions (robustly), so a faithful render scores correct."""
    specs, groups = [], []
    for req in metadata["include"]:
        start = len(specs)
        for _ in range(req["count"]):
            specs.append((req["class"], req.get("color") or random_color(rng)))
        groups.append(range(start, len(specs)))
    for _ in range(tries):
        scene = place_all(rng, specs)
        if _positions_hold(scene, metadata, groups):
            return scene
    raise RuntimeError(f"could not build a scene for {metadata['prompt']!r}")


def _positions_hold(scene: Scene, metadata: dict, groups) -> bool:
    for req, group in zip(metadata["include"], groups):
        if "position" not in req:
            continue
        rel, target = req["position"]
        for i in group:
            for j in groups[target]:
                if not relation_holds_robustly(scene.objects[i].box, scene.objects[j].box, rel, RELATION_SLACK):
                    return False
    return True


def _related_pair(rng, a: tuple[str, str], b: tuple[str, str], rel: str, tries: int = 400) -> Scene:
    """Two objects, A `rel` B robustly."""
    for _ in range(tries):
        scene = place_all(rng, [a, b])
        oa, ob = scene.objects
        if relation_holds_robustly(oa.box, ob.box, rel, RELATION_SLACK):
            return scene
    raise RuntimeError(f"could not place {a} {rel} {b}")


# ----- plain phrasings and full descriptions -----

def describe(scene: Scene, prefix: str = "a photo of ") -> str:
    """Names every object, grouped by (colour, class) in order of first appearance."""
    groups: dict[tuple[str, str], int] = {}
    for o in scene.objects:
        groups[(o.color, o.cls)] = groups.get((o.color, o.cls), 0) + 1
    parts = [_noun(color, cls) if n == 1 else f"{NUMBER_WORDS[n]} {color} {plural(cls)}"
             for (color, cls), n in groups.items()]
    text = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    return prefix + text


def _distinct_pair(rng) -> tuple[tuple[str, str], tuple[str, str]]:
    """Two (class, colour) that differ, so "a red star above a red star" never happens."""
    while True:
        a = (random_class(rng), random_color(rng))
        b = (random_class(rng), random_color(rng))
        if a != b:
            return a, b


def sample_captioned_scene(rng: np.random.Generator, kind: str | None = None) -> CaptionedScene:
    """A (scene, caption) pair of `kind` (random kind when None; `describe` twice as often as each other
    kind so the model also sees busy scenes)."""
    if kind is None:
        weights = np.ones(len(CAPTION_KINDS))
        weights[-1] = 2.0
        kind = CAPTION_KINDS[int(rng.choice(len(CAPTION_KINDS), p=weights / weights.sum()))]
    if kind in GENEVAL_TAGS:
        meta = geneval_metadata(rng, kind)
        return CaptionedScene(scene_for_metadata(meta, rng), meta["prompt"], kind, meta)
    if kind == "plain_count":
        cls = random_class(rng)
        n = int(rng.integers(1, MAX_OBJECTS, endpoint=True))
        color = random_color(rng) if rng.random() < 0.7 else None
        scene = place_all(rng, [(cls, color or random_color(rng)) for _ in range(n)])
        caption = f"{NUMBER_WORDS[n]} {color + ' ' if color else ''}{plural(cls) if n > 1 else cls}"
        return CaptionedScene(scene, caption, kind)
    if kind == "plain_relation":
        a, b = _distinct_pair(rng)
        (rel,) = _pick(rng, RELATIONS)
        scene = _related_pair(rng, a, b, rel)
        # People say "to the left of"; GenEval's bare "left of" is kept for the GenEval kinds.
        phrase = {"left of": "to the left of", "right of": "to the right of"}.get(rel, rel)
        return CaptionedScene(scene, f"{_noun(a[1], a[0])} {phrase} {_noun(b[1], b[0])}", kind)
    if kind == "plain_region":
        cls, color = random_class(rng), random_color(rng)
        (phrase,) = _pick(rng, list(REGIONS))
        obj = None
        while obj is None:
            obj = place(rng, cls, color, [], region=REGIONS[phrase])
        return CaptionedScene(Scene((obj,)), f"{_noun(color, cls)} {phrase}", kind)
    if kind == "describe":
        scene = random_scene(rng)
        prefix = "a picture of " if rng.random() < 0.2 else ("a photo of " if rng.random() < 0.6 else "")
        return CaptionedScene(scene, describe(scene, prefix), kind)
    raise ValueError(f"unknown caption kind {kind!r}; known: {', '.join(CAPTION_KINDS)}")


def region_of(obj: ShapeObject) -> set[str]:
    """The region phrases whose third holds the object's centre (without the generator's inset)."""
    found = set()
    if obj.cx < 1 / 3:
        found.add("on the left")
    if obj.cx > 2 / 3:
        found.add("on the right")
    if obj.cy < 1 / 3:
        found.add("at the top")
    if obj.cy > 2 / 3:
        found.add("at the bottom")
    return found
