"""Clip edits (source clip, instruction, target clip) and reference-image clips (stills, instruction, clip).

Edit kinds, as people ask for them:
  recolour "make the moving square blue"; remove "remove the star"; add "add a red circle moving left"
  (a still one: "add a red circle"); replace "replace the star with a green circle";
  motion "the circle moves down instead".
Only the named object changes, over the whole clip; every other MovingObject is the same, so (objects
never sharing pixels in any frame, see motion.py) the target clip equals the source clip outside the
changed object's pixels, frame by frame. Edits name objects that are on screen the whole clip in one
colour (plain ones), so "make the square blue" cannot mean before or after a colour change.

Rules a model can learn: recolour and replace keep the path and size; a motion change keeps the start
and the travel (shortened by 0.01 steps, down to MIN_TRAVEL, until the path fits; a still object gets
a random travel); an added object goes anywhere its whole path is clear (the instruction does not say
where).

An object is named by its class when that is unique in the clip, else by colour and class, or, when it
is the only moving one of its class, sometimes as "the moving square".

Reference-image clips: one or two still images, each holding the objects the instruction takes from it
(and maybe one more it does not name); the instruction says where each named object goes:
  "the circle from the first image moves right and the star from the second image moves left",
  "the red square from the image moves up". The target clip holds exactly the named objects, in their
reference colour and size, starting where the reference shows them.
"""
from __future__ import annotations

import re
from dataclasses import replace
from typing import NamedTuple

import numpy as np

from .motion import (DIRECTION_PHRASES, MAX_CLIP_OBJECTS, MIN_TRAVEL, MAX_TRAVEL, MotionScene,
                     MovingObject, motion_scene_for, path_fits_frame, paths_apart, place_moving, random_direction,
                     random_motion_scene, unit, PHRASE_DIRECTION)
from .palette import CLASSES, COLOR_NAMES
from .render import render
from .scene import Scene, place
from .vocab import article
from .edits import with_object

VIDEO_EDIT_KINDS: tuple[str, ...] = ("recolour", "remove", "add", "replace", "motion")
_VERB_KIND = {"make": "recolour", "remove": "remove", "delete": "remove", "add": "add", "replace": "replace"}
ORDINALS: tuple[str, ...] = ("first", "second")


class VideoEditTriple(NamedTuple):
    source: MotionScene
    instruction: str
    target: MotionScene


def video_edit_kind(instruction: str) -> str:
    """The kind of a clip edit instruction this module wrote."""
    words = instruction.lower().split()
    if words and words[0] == "the" and words[-1] == "instead":
        return "motion"
    if not words or words[0] not in _VERB_KIND:
        raise ValueError(f"not a clip edit instruction: {instruction!r}")
    return _VERB_KIND[words[0]]


def _taken(scene: MotionScene, skip: int | None = None) -> set[tuple[str, str]]:
    return {n for j, m in enumerate(scene.objects) if j != skip for n in m.names()}


def video_references(scene: MotionScene, index: int) -> list[str]:
    """Every phrase that names scene.objects[index] alone: "the square", "the blue square", "the moving
    square" (the last only when it is the one moving object of its class among several)."""
    m = scene.objects[index]
    cls = m.obj.cls
    same_class = [o for o in scene.objects if o.obj.cls == cls]
    out = []
    if len(same_class) == 1:
        out.append(f"the {cls}")
    if sum(1 for o in scene.objects if (cls, m.obj.color) in o.names()) == 1:
        out.append(f"the {m.obj.color} {cls}")
    if len(same_class) > 1 and m.moving and sum(1 for o in same_class if o.moving) == 1:
        out.append(f"the moving {cls}")
    return out


def _reference(rng: np.random.Generator, scene: MotionScene, index: int) -> str | None:
    refs = video_references(scene, index)
    if not refs:
        return None
    # Prefer the shortest name when the class is unique, as image edits do; otherwise pick a form.
    return refs[0] if refs[0].count(" ") == 1 else refs[int(rng.integers(len(refs)))]



def _direction_phrase(rng: np.random.Generator, direction: str) -> str:
    phrases = DIRECTION_PHRASES[direction]
    return phrases[int(rng.integers(len(phrases)))]


def _try_video_edit(rng: np.random.Generator, kind: str, scene: MotionScene) -> tuple[str, MotionScene] | None:
    if kind == "add":
        if len(scene) >= MAX_CLIP_OBJECTS:
            return None
        cls, color = CLASSES[int(rng.integers(len(CLASSES)))], COLOR_NAMES[int(rng.integers(len(COLOR_NAMES)))]
        if (cls, color) in _taken(scene):
            return None
        direction = random_direction(rng) if rng.random() < 0.75 else None
        new = place_moving(rng, cls, color, direction, scene.objects)
        if new is None:
            return None
        words = f"{color} {cls}"
        text = f"add {article(words)} {words}" + (f" moving {_direction_phrase(rng, direction)}" if direction else "")
        return text, MotionScene(scene.objects + (new,))
    plain = [i for i, m in enumerate(scene.objects) if m.plain]
    if not plain:
        return None
    i = plain[int(rng.integers(len(plain)))]
    m, ref = scene.objects[i], _reference(rng, scene, i)
    if ref is None:
        return None
    if kind == "recolour":
        color = COLOR_NAMES[int(rng.integers(len(COLOR_NAMES)))]
        if color == m.obj.color or (m.obj.cls, color) in _taken(scene, i):
            return None
        return f"make {ref} {color}", with_object(scene, i, replace(m, obj=replace(m.obj, color=color)))
    if kind == "remove":
        if len(scene) < 2:
            return None  # an empty clip teaches nothing about keeping the rest
        return f"{'delete' if rng.random() < 0.2 else 'remove'} {ref}", with_object(scene, i, None)
    if kind == "replace":
        cls, color = CLASSES[int(rng.integers(len(CLASSES)))], COLOR_NAMES[int(rng.integers(len(COLOR_NAMES)))]
        if cls == m.obj.cls or (cls, color) in _taken(scene, i):
            return None  # a same-class replacement is a recolour; keep the kinds distinct
        words = f"{color} {cls}"
        new = replace(m, obj=replace(m.obj, cls=cls, color=color))
        return f"replace {ref} with {article(words)} {words}", with_object(scene, i, new)
    if kind == "motion":
        direction = random_direction(rng)
        if direction == m.direction:
            return None
        others = [o for j, o in enumerate(scene.objects) if j != i]
        travel = float(np.hypot(m.dx, m.dy)) if m.moving else float(rng.uniform(MIN_TRAVEL, MAX_TRAVEL))
        ux, uy = unit(direction)
        for step in np.arange(travel, MIN_TRAVEL - 1e-9, -0.01):
            moved = replace(m, dx=float(ux * step), dy=float(uy * step))
            if path_fits_frame(moved) and all(paths_apart(moved, o) for o in others):
                return f"{ref} moves {_direction_phrase(rng, direction)} instead", with_object(scene, i, moved)
        return None
    raise ValueError(f"unknown clip edit kind {kind!r}; known: {', '.join(VIDEO_EDIT_KINDS)}")


def random_video_edit(scene: MotionScene, rng: np.random.Generator, kind: str | None = None,
                      tries: int = 200) -> tuple[str, MotionScene]:
    """(instruction, target clip) for one edit of `kind` (random when None) on `scene`; ValueError when
    the clip allows none (say, remove on a one-object clip)."""
    if kind is not None and kind not in VIDEO_EDIT_KINDS:
        raise ValueError(f"unknown clip edit kind {kind!r}; known: {', '.join(VIDEO_EDIT_KINDS)}")
    for _ in range(tries):
        k = VIDEO_EDIT_KINDS[int(rng.integers(len(VIDEO_EDIT_KINDS)))] if kind is None else kind
        made = _try_video_edit(rng, k, scene)
        if made is not None:
            return made
    raise ValueError(f"no {kind or 'clip'} edit found for this clip")


def sample_video_edit(rng: np.random.Generator, kind: str | None = None) -> VideoEditTriple:
    """One clip edit triple of `kind` (random when None) on a random clip."""
    kind = VIDEO_EDIT_KINDS[int(rng.integers(len(VIDEO_EDIT_KINDS)))] if kind is None else kind
    for _ in range(1000):
        source = random_motion_scene(rng)
        try:
            instruction, target = random_video_edit(source, rng, kind, tries=20)
        except ValueError:
            continue
        return VideoEditTriple(source, instruction, target)
    raise RuntimeError(f"could not make a {kind} clip edit")


# ----- reference-image clips -----

class ReferenceVideo(NamedTuple):
    references: tuple[Scene, ...]  # the still images, as scenes
    instruction: str
    target: MotionScene

    def images(self, size: int = 64) -> list[np.ndarray]:
        return [render(s, size) for s in self.references]


class NamedFromImage(NamedTuple):
    """One part of a reference instruction: the object (class, colour or None) from image `image`
    (0-based) and the direction it moves."""

    image: int
    cls: str
    color: str | None
    direction: str


def _name_in(scene: Scene, cls: str, color: str) -> str:
    return cls if scene.count(cls) == 1 else f"{color} {cls}"


def random_reference_video(rng: np.random.Generator, n_images: int | None = None) -> ReferenceVideo:
    """One or two reference stills and an instruction moving objects taken from them (one per image with
    two images, one or two with one image), each image maybe holding one object more that is not named."""
    n_images = int(rng.integers(1, 3)) if n_images is None else n_images
    if n_images not in (1, 2):
        raise ValueError(f"one or two reference images, not {n_images}")
    n_named = 2 if n_images == 2 else int(rng.integers(1, 3))
    for _ in range(200):
        ids: list[tuple[str, str]] = []
        while len(ids) < n_named:
            pick = (CLASSES[int(rng.integers(len(CLASSES)))], COLOR_NAMES[int(rng.integers(len(COLOR_NAMES)))])
            if pick not in ids:
                ids.append(pick)
        target = motion_scene_for(rng, [(cls, color, "moves", None, None) for cls, color in ids])
        owner = [k if n_images == 2 else 0 for k in range(n_named)]
        stills = [[m.state(0.0) for k, m in enumerate(target.objects) if owner[k] == img] for img in range(n_images)]
        for objs in stills:
            if rng.random() < 0.5:
                cls, color = CLASSES[int(rng.integers(len(CLASSES)))], COLOR_NAMES[int(rng.integers(len(COLOR_NAMES)))]
                extra = place(rng, cls, color, objs)
                if extra is not None and (extra.cls, extra.color) not in {(o.cls, o.color) for o in objs}:
                    objs.append(extra)
        refs = tuple(Scene(tuple(objs)) for objs in stills)
        if not all(s.is_valid() for s in refs):
            continue
        parts = []
        for k, m in enumerate(target.objects):
            where = "the image" if n_images == 1 else f"the {ORDINALS[owner[k]]} image"
            name = _name_in(refs[owner[k]], m.obj.cls, m.obj.color)
            parts.append(f"the {name} from {where} moves {_direction_phrase(rng, m.direction)}")
        return ReferenceVideo(refs, " and ".join(parts), target)
    raise RuntimeError("could not make a reference clip")


_NAMED = re.compile(r"the (?:(\w+) )?(\w+) from the (?:(first|second) )?image moves (.+?)(?= and the |$)")


def parse_reference_instruction(text: str) -> list[NamedFromImage]:
    """The parts of an instruction made by random_reference_video."""
    out = []
    for color, cls, ordinal, phrase in _NAMED.findall(" ".join(text.lower().split())):
        if cls not in CLASSES or (color and color not in COLOR_NAMES) or phrase not in PHRASE_DIRECTION:
            raise ValueError(f"not a reference instruction: {text!r}")
        image = ORDINALS.index(ordinal) if ordinal else 0
        out.append(NamedFromImage(image, cls, color or None, PHRASE_DIRECTION[phrase]))
    if not out:
        raise ValueError(f"not a reference instruction: {text!r}")
    return out

