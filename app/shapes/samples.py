"""The bundled sample media (resources/samples), drawn by the shapes world itself.

Every sample is a Scene of the world the embedded model is trained on: palette colours on the
palette background, half-sizes within MIN_HALF..MAX_HALF, objects inside the frame and apart
(Scene.is_valid), rendered by app/shapes/render. So the first edits a newcomer tries on them are the
edits the model learnt: each sample comes with suggested first edits, in the instruction forms of
app/shapes/edits.py, and the target scene those edits' rules give (checked by tests with the real
model and the detector).

Positions are fractions of the side, so the 64 px image (the model's size) and the 256 px one are
the same scene. Everything is deterministic: the same call writes the same files.

    python -m app.shapes.samples resources/samples
"""
from __future__ import annotations

import os
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

from .edits import ADD_SIDES, MIN_MOVE, MOVE_STEP, MOVES, EditTriple, edit_kind, reference
from .render import render
from .scene import MARGIN, MAX_HALF, MIN_HALF, Scene, ShapeObject, fits_with

S = ShapeObject

# name -> scene. A red circle, a blue square on the left (room to move it right), a green triangle,
# a yellow star, and three shapes for the edits that need company (remove: the model learnt it only
# on scenes of two or more objects).
SAMPLE_SCENES: dict[str, Scene] = {
    "red_circle": Scene((S("circle", "red", 0.5, 0.5, 0.14),)),
    "blue_square_left": Scene((S("square", "blue", 0.25, 0.5, 0.10),)),
    "green_triangle": Scene((S("triangle", "green", 0.5, 0.5, 0.13),)),
    "yellow_star": Scene((S("star", "yellow", 0.45, 0.45, 0.12),)),
    "three_shapes": Scene((S("circle", "red", 0.27, 0.3, 0.12), S("square", "blue", 0.73, 0.3, 0.12),
                           S("star", "yellow", 0.5, 0.72, 0.13))),
}

# name -> the edits to try first, the first one being the suggestion. Words of the model's vocabulary
# only, in the forms app/shapes/edits.py trains on.
FIRST_EDITS: dict[str, tuple[str, ...]] = {
    "red_circle": ("make the circle blue", "make the circle green"),
    "blue_square_left": ("move the square to the right",),
    "green_triangle": ("make the triangle red",),
    "yellow_star": ("make the star red", "replace the star with a red circle"),
    "three_shapes": ("remove the star",),
}

SIZES: tuple[int, ...] = (64, 256)

# The video sample: a red ball rolling to the right above a green square, at 128 px.
CLIP_NAME = "ball_rolls_right.mp4"
CLIP_FRAMES = 24
CLIP_SIZE = 128
CLIP_FPS = 12.0
_BALL = S("circle", "red", 0.15, 0.4, 0.12)
_GROUND = S("square", "green", 0.5, 0.8, 0.08)


def clip_scenes(frames: int = CLIP_FRAMES) -> list[Scene]:
    """The clip's frames as scenes: the ball from x 0.15 to 0.85, the square standing still."""
    return [Scene((_BALL.moved(0.15 + 0.7 * k / max(1, frames - 1), _BALL.cy), _GROUND)) for k in range(frames)]


def edit_target(source: Scene, instruction: str, new_half: float = (MIN_HALF + MAX_HALF) / 2) -> Scene:
    """The target scene app/shapes/edits.py's rules give for `instruction` on `source`: recolour and
    replace keep the object's centre and size, a move steps MOVE_STEP (less when the frame or another
    object is closer, at least MIN_MOVE), an added object (half-size `new_half`, which the instruction
    does not fix) sits beside its reference one MARGIN beyond touching. ValueError for anything else."""
    words = instruction.lower().split()
    kind = edit_kind(instruction)

    def find(ref: str) -> int:
        for i in range(len(source)):
            if reference(source, i) == ref:
                return i
        raise ValueError(f"no object in the scene is {ref!r}: {instruction!r}")

    def new_object(phrase: str) -> tuple[str, str]:  # "a green star" -> ("star", "green")
        parts = phrase.split()
        if len(parts) != 3 or parts[0] not in ("a", "an"):
            raise ValueError(f"expected 'a <colour> <shape>', got {phrase!r}")
        return parts[2], parts[1]

    objs = list(source.objects)
    if kind == "recolour":  # make <ref> <colour>
        i = find(" ".join(words[1:-1]))
        objs[i] = replace(objs[i], color=words[-1])
    elif kind == "remove":  # remove <ref>
        del objs[find(" ".join(words[1:]))]
    elif kind == "replace":  # replace <ref> with a <colour> <shape>
        ref, new = " ".join(words[1:]).split(" with ", 1)
        i = find(ref)
        cls, color = new_object(new)
        objs[i] = replace(objs[i], cls=cls, color=color)
    elif kind == "move":  # move <ref> <direction>
        text = " ".join(words[1:])
        phrase = next((p for p in MOVES if text.endswith(" " + p)), None)
        if phrase is None:
            raise ValueError(f"no direction ({', '.join(MOVES)}) in {instruction!r}")
        i = find(text[: -len(phrase) - 1])
        (ux, uy), obj = MOVES[phrase], objs[i]
        others = objs[:i] + objs[i + 1:]
        for step in np.arange(MOVE_STEP, MIN_MOVE - 1e-9, -0.01):
            moved = obj.moved(obj.cx + ux * step, obj.cy + uy * step)
            if fits_with(moved, others):
                objs[i] = moved
                break
        else:
            raise ValueError(f"no room to {instruction!r}")
    else:  # add a <colour> <shape> <side> <ref>
        text = " ".join(words[1:])
        phrase = next((p for p in ADD_SIDES if f" {p} " in text), None)
        if phrase is None:
            raise ValueError(f"no side ({', '.join(ADD_SIDES)}) in {instruction!r}")
        new, ref = text.split(f" {phrase} ", 1)
        cls, color = new_object(new)
        anchor = objs[find(ref)]
        (ux, uy), gap = ADD_SIDES[phrase], anchor.half + new_half + MARGIN
        added = S(cls, color, anchor.cx + ux * gap, anchor.cy + uy * gap, new_half)
        if not fits_with(added, objs):
            raise ValueError(f"no room to {instruction!r}")
        objs.append(added)
    return Scene(tuple(objs))


def first_edits(name: str) -> list[EditTriple]:
    """The suggested first edits of sample `name`, with the target scenes the model should draw."""
    source = SAMPLE_SCENES[name]
    return [EditTriple(source, text, edit_target(source, text)) for text in FIRST_EDITS[name]]


def sample_image(name: str, size: int = 64) -> np.ndarray:
    """Sample `name` rendered at `size` px, uint8 [size, size, 3] (what the PNG holds)."""
    return render(SAMPLE_SCENES[name], size)


def write_samples(folder: str | os.PathLike, sizes: tuple[int, ...] = SIZES, overwrite: bool = True) -> list[Path]:
    """Write every sample scene at every size (`<name>_<size>.png`) and the H.264 clip. Returns the
    paths written."""
    from app.media.export import export_image, export_video

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name in SAMPLE_SCENES:
        for size in sizes:
            path = folder / f"{name}_{size}.png"
            export_image(sample_image(name, size), path, "png", overwrite=overwrite)
            written.append(path)
    path = folder / CLIP_NAME
    export_video([render(s, CLIP_SIZE) for s in clip_scenes()], path, CLIP_FPS, crf=23, overwrite=overwrite)
    written.append(path)
    return written


if __name__ == "__main__":
    for p in write_samples(sys.argv[1] if len(sys.argv) > 1 else "resources/samples"):
        print(p, p.stat().st_size)
