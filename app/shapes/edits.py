"""Edit triples (source scene, instruction, target scene) of five kinds.

recolour "make the circle blue"; move "move the star to the right"; remove "remove the red square";
add "add a purple triangle above the circle"; replace "replace the square with a green star".

Only the named object changes; every other object is the same ShapeObject, so (objects being
rendered one by one and never sharing pixels) the target render equals the source render outside the
changed object's area. An object is named by its class when that is unique in the scene, else by
colour and class; scenes where neither is unique for the chosen object pick another object.

Targets follow fixed rules so a model can learn where things go: a move shifts the object by
MOVE_STEP of the frame (less when the frame's edge or another object is closer, but at least
MIN_MOVE); an added object sits next to its reference in the named direction, aligned with it, one
MARGIN beyond touching; a replacement keeps the replaced object's centre and size.
"""
from __future__ import annotations

from dataclasses import replace
from typing import NamedTuple

import numpy as np

from .palette import COLOR_NAMES
from .relations import relation_holds_robustly
from .scene import MARGIN, MAX_OBJECTS, Scene, ShapeObject, fits_with, random_class, random_color, random_half, random_scene
from .vocab import article

EDIT_KINDS: tuple[str, ...] = ("recolour", "move", "remove", "add", "replace")
MOVE_STEP = 0.25
MIN_MOVE = 0.15
# Direction word in a move instruction -> unit step (x, y) on screen (y grows downwards).
MOVES: dict[str, tuple[int, int]] = {"to the left": (-1, 0), "to the right": (1, 0), "up": (0, -1), "down": (0, 1)}
# Relation in an add instruction -> which side of the reference the new object goes.
ADD_SIDES: dict[str, tuple[int, int]] = {"to the left of": (-1, 0), "to the right of": (1, 0), "above": (0, -1), "below": (0, 1)}
_GENEVAL_REL = {"to the left of": "left of", "to the right of": "right of", "above": "above", "below": "below"}
_VERB_KIND = {"make": "recolour", "move": "move", "remove": "remove", "delete": "remove", "add": "add", "replace": "replace"}


class EditTriple(NamedTuple):
    source: Scene
    instruction: str
    target: Scene


def edit_kind(instruction: str) -> str:
    """The kind of an instruction this package wrote, from its verb."""
    verb = instruction.split()[0].lower()
    if verb not in _VERB_KIND:
        raise ValueError(f"not an edit instruction: {instruction!r}")
    return _VERB_KIND[verb]


def reference(scene: Scene, index: int) -> str | None:
    """'the circle' / 'the red circle' naming scene.objects[index] unambiguously, or None."""
    obj = scene.objects[index]
    if scene.count(obj.cls) == 1:
        return f"the {obj.cls}"
    if scene.count(obj.cls, obj.color) == 1:
        return f"the {obj.color} {obj.cls}"
    return None


def _nameable(scene: Scene) -> list[int]:
    return [i for i in range(len(scene)) if reference(scene, i) is not None]


def _others(scene: Scene, index: int) -> list[ShapeObject]:
    return [o for j, o in enumerate(scene.objects) if j != index]


def with_object(scene, index: int, obj):
    """`scene` (a Scene, or a MotionScene of moving objects) with object `index` replaced, or removed
    when `obj` is None; the scene's own type is kept."""
    objs = list(scene.objects)
    if obj is None:
        del objs[index]
    else:
        objs[index] = obj
    return type(scene)(tuple(objs))


def _has_twin(scene: Scene, index: int) -> bool:
    """Another object of scene.objects[index]'s class is in the scene: naming it takes its colour."""
    return scene.count(scene.objects[index].cls) > 1


def _try_edit(rng: np.random.Generator, kind: str, source: Scene, ambiguous: bool = False) -> EditTriple | None:
    names = [i for i in _nameable(source) if _has_twin(source, i)] if ambiguous else _nameable(source)
    if not names:
        return None
    i = names[int(rng.integers(len(names)))]
    obj, ref = source.objects[i], reference(source, i)
    if kind == "recolour":
        color = COLOR_NAMES[int(rng.integers(len(COLOR_NAMES)))]
        if color == obj.color:
            return None
        return EditTriple(source, f"make {ref} {color}", with_object(source, i, replace(obj, color=color)))
    if kind == "move":
        phrase = list(MOVES)[int(rng.integers(len(MOVES)))]
        ux, uy = MOVES[phrase]
        # The largest step up to MOVE_STEP that keeps the object in frame and clear of the others.
        for step in np.arange(MOVE_STEP, MIN_MOVE - 1e-9, -0.01):
            moved = obj.moved(obj.cx + ux * step, obj.cy + uy * step)
            if fits_with(moved, _others(source, i)):
                return EditTriple(source, f"move {ref} {phrase}", with_object(source, i, moved))
        return None
    if kind == "remove":
        if len(source) < 2:
            return None  # an empty target teaches nothing about keeping the rest
        verb = "delete" if rng.random() < 0.2 else "remove"
        return EditTriple(source, f"{verb} {ref}", with_object(source, i, None))
    if kind == "add":
        if len(source) >= MAX_OBJECTS:
            return None
        cls, color = random_class(rng), random_color(rng)
        phrase = list(ADD_SIDES)[int(rng.integers(len(ADD_SIDES)))]
        ux, uy = ADD_SIDES[phrase]
        half = random_half(rng)
        gap = obj.half + half + MARGIN
        new = ShapeObject(cls, color, obj.cx + ux * gap, obj.cy + uy * gap, half)
        if not fits_with(new, source.objects):
            return None
        if not relation_holds_robustly(new.box, obj.box, _GENEVAL_REL[phrase], 0.02):
            return None
        words = f"{color} {cls}"
        return EditTriple(source, f"add {article(words)} {words} {phrase} {ref}", Scene(source.objects + (new,)))
    if kind == "replace":
        cls, color = random_class(rng), random_color(rng)
        if cls == obj.cls:
            return None  # a same-class replacement is a recolour; keep the kinds distinct
        words = f"{color} {cls}"
        new = replace(obj, cls=cls, color=color)
        return EditTriple(source, f"replace {ref} with {article(words)} {words}", with_object(source, i, new))
    raise ValueError(f"unknown edit kind {kind!r}; known: {', '.join(EDIT_KINDS)}")


def add_anchor(edit: EditTriple) -> tuple[ShapeObject, tuple[int, int]]:
    """For an add edit: the object the new one is placed next to, and the side (x, y unit step)
    the instruction names ("add a red star above the circle" -> the circle, (0, -1))."""
    if edit_kind(edit.instruction) != "add":
        raise ValueError(f"not an add instruction: {edit.instruction!r}")
    phrase = next((p for p in ADD_SIDES if f" {p} the " in edit.instruction), None)
    if phrase is None:
        raise ValueError(f"no side ({', '.join(ADD_SIDES)}) named in {edit.instruction!r}")
    ref_words = edit.instruction.split(f" {phrase} ", 1)[1]
    for i, obj in enumerate(edit.source.objects):
        if reference(edit.source, i) == ref_words:
            return obj, ADD_SIDES[phrase]
    raise ValueError(f"no object in the source is {ref_words!r}")


def sample_edit(rng: np.random.Generator, kind: str | None = None, ambiguous: bool = False) -> EditTriple:
    """One edit triple of `kind` (random when None) on a random 1-4 object source scene. With
    `ambiguous`, the object the instruction names (an add's reference) has another of its class
    beside it, so only its colour tells them apart ("make the blue star purple" beside an orange star)."""
    kind = EDIT_KINDS[int(rng.integers(len(EDIT_KINDS)))] if kind is None else kind
    if kind not in EDIT_KINDS:
        raise ValueError(f"unknown edit kind {kind!r}; known: {', '.join(EDIT_KINDS)}")
    for _ in range(1000):
        triple = _try_edit(rng, kind, random_scene(rng), ambiguous)
        if triple is not None:
            return triple
    raise RuntimeError(f"could not make a {kind} edit")
