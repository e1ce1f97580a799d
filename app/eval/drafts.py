"""How good is a planner's layout draft (app/core/draft.py) on its own, and does the image follow it?

A draft is a scene, so it can be scored like an image: draw the drafted objects with the shapes
world's renderer and score the drawing with the same GenEval rules. That separates the plan's errors
(a draft with three stars for "four stars") from the DiT's (a right draft drawn wrong).
"""
from __future__ import annotations

import numpy as np
import torch

from app.core.draft import DraftConfig, draft_objects
from app.shapes.palette import CLASSES, COLOR_NAMES
from app.shapes.scene import Scene, ShapeObject


def draft_scene(rows, config: DraftConfig) -> Scene:
    """One item's draft as a shapes-world scene (labels are the palette's: 1 + class * 6 + colour)."""
    objects = []
    for label, cx, cy, half in draft_objects(rows, config):
        cls, color = divmod(label - 1, len(COLOR_NAMES))
        objects.append(ShapeObject(CLASSES[cls], COLOR_NAMES[color], cx, cy, half))
    return Scene(tuple(objects))


def score_drafts(drafts: torch.Tensor, metas: list[dict], config: DraftConfig, size: int = 64) -> dict:
    """GenEval per tag on the drafts' drawings, and the share of drafts that are valid scenes
    (inside the frame, objects apart) — what the shapes world's own scenes always are."""
    from app.eval.geneval import score_image, summarize
    from app.shapes.render import render

    results, valid = [], []
    for i, (rows, meta) in enumerate(zip(drafts, metas)):
        scene = draft_scene(rows, config)
        valid.append(scene.is_valid())
        ok, _ = score_image(render(scene, size), meta)
        results.append({"tag": meta["tag"], "correct": ok, "metadata": str(i)})
    summary = summarize(results)
    return {"draft_overall": summary["overall"],
            **{f"draft_{k}": v["accuracy"] for k, v in summary["tags"].items()},
            "draft_valid": float(np.mean(valid))}


def track_draft_clip(rows, config: DraftConfig, frames: int, size: int) -> np.ndarray:
    """One item's track draft (DraftConfig.track) drawn as a clip: each object on its drafted path,
    on screen the whole clip in its drafted colour (events are not drafted: the words carry them)."""
    from app.shapes.motion import MotionScene, MovingObject, render_clip

    moving = []
    for label, cx, cy, half, ex, ey in draft_objects(rows, config):
        cls, color = divmod(label - 1, len(COLOR_NAMES))
        moving.append(MovingObject(ShapeObject(CLASSES[cls], COLOR_NAMES[color], cx, cy, half), ex - cx, ey - cy))
    return render_clip(MotionScene(tuple(moving)), frames, size)


def track_drafts_motion_followed(drafts, metas: list[dict], config: DraftConfig, frames: int, size: int) -> float:
    """The share of text-to-video records whose track draft, drawn, moves each named object the named
    way (app/shapes/motion_measure.motion_followed, the judge the clips get): the drafter's own figure,
    apart from whether the DiT follows it."""
    from app.shapes.motion_measure import motion_followed
    from app.shapes.video_prompts import metadata_clauses

    right = [bool(motion_followed(track_draft_clip(rows, config, frames, size), metadata_clauses(meta)))
             for rows, meta in zip(drafts, metas)]
    return float(np.mean(right)) if right else 0.0
