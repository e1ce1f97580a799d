"""Batches of the shapes world for the training loop, and the label maps that teach the planner."""
from __future__ import annotations

import numpy as np

from .captions import CaptionedScene, sample_captioned_scene
from .palette import NUM_LABELS, label_index
from .render import SUPERSAMPLE, object_alpha, render
from .scene import Scene, ShapeObject


def sample_t2i_examples(rng: np.random.Generator, n: int, size: int = 64) -> list[tuple[CaptionedScene, np.ndarray]]:
    """(captioned scene, image) pairs: the scene is kept for label maps and scoring."""
    out = []
    for _ in range(n):
        cs = sample_captioned_scene(rng)
        out.append((cs, render(cs.scene, size)))
    return out


def label_map(scene: Scene, grid: int = 16) -> np.ndarray:
    """int64 [grid, grid]: per canvas cell, the label (1 + cls*6 + colour; see palette.label_index) of the
    object covering most of the cell, or 0 when the background covers more than any object does.

    Coverage is measured at 4 samples per cell side, so thin parts (star arms) count by their area.
    """
    res = grid * SUPERSAMPLE
    coverage = np.zeros((len(scene) + 1, res, res), np.float32)
    for k, obj in enumerate(scene.objects, start=1):
        y0, x0, alpha = object_alpha(obj, res)
        coverage[k, y0:y0 + alpha.shape[0], x0:x0 + alpha.shape[1]] = alpha
    coverage[0] = 1.0 - coverage[1:].sum(axis=0)
    per_cell = coverage.reshape(len(scene) + 1, grid, SUPERSAMPLE, grid, SUPERSAMPLE).sum(axis=(2, 4))
    winner = per_cell.argmax(axis=0)
    labels = np.array([0] + [label_index(o.cls, o.color) for o in scene.objects], np.int64)
    return labels[winner]


def caption_order(scene: Scene) -> list[ShapeObject]:
    """The scene's objects in the order its caption names them: scenes are built in the order of their
    caption's objects (GenEval's include order), and `describe` names (colour, class) groups in order of
    first appearance; so groups go in that order, and the objects of one group, which a caption does not
    tell apart, left to right. (A caption's layout draft lists them so: app/train/data.py.)"""
    first: dict[tuple[str, str], int] = {}
    for i, o in enumerate(scene.objects):
        first.setdefault((o.cls, o.color), i)
    return sorted(scene.objects, key=lambda o: (first[(o.cls, o.color)], o.cx, o.cy))


def frame_order(scene: Scene) -> list[ShapeObject]:
    """The scene's objects left to right (then top to bottom): how an edit's scenes are listed, since no
    caption names their objects in order."""
    return sorted(scene.objects, key=lambda o: (o.cx, o.cy))


def edit_named_index(triple) -> int:
    """Which of the source's objects the instruction names, counted in `frame_order`: the one it changes
    or removes, or the one an added object goes next to. What an edit drafter's referring head is
    taught to point at."""
    from app.shapes.edits import add_anchor, edit_kind

    source = triple.source
    if edit_kind(triple.instruction) == "add":
        named = add_anchor(triple)[0]
    else:
        changed = [o for o in source.objects if o not in triple.target.objects]
        if len(changed) != 1:
            raise ValueError(f"{triple.instruction!r} changes {len(changed)} objects of its source, not one")
        named = changed[0]
    return frame_order(source).index(named)


__all__ = ["caption_order", "frame_order", "edit_named_index", "sample_t2i_examples", "label_map", "NUM_LABELS"]
