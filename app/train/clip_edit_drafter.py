"""Teach the embedded video model's clip edit drafter: from an edit instruction's words and the source
clip's tracks, the target clip's tracks (app/core/frame_detector.py says how the product drafts edits).

    python -m app.train.video --recipe RECIPE --out RUN --teach-edit-drafter STEPS

The drafter is a LayoutDrafter with `reads_sources` (app/core/draft.py): the source's tracks join its memory
as objects, a referring head picks the one the words name, and the decoder writes the target's tracks left to
right. It starts from the run's track drafter (same rows, same decoder; the source rows and the referring head
start fresh), and it is taught on the tracks `source_tracks` finds on each training source clip with the
frame detector the product uses, not on the clip's true tracks, so that what it copies in teaching is what
it is given at drafting time. Nothing else in the model changes: the MLLM is frozen and the words' states are
what the product's drafting reads.
"""
from __future__ import annotations

import time
from dataclasses import replace

import numpy as np
import torch

from app.core.draft import DraftConfig, LayoutDrafter
from app.core.draft_rows import quantize_objects
from app.shapes.motion import MotionScene, render_clip
from app.shapes.palette import label_index
from app.shapes.video_edits import sample_video_edit, video_edit_kind
from app.train.video_data import VideoRecipe, track_rows


def clip_edit_config(track: DraftConfig) -> DraftConfig:
    """The clip edit drafter's config: the track drafter's rows, read from a source's tracks."""
    return replace(track, reads_sources=True)


def clip_edit_drafter(planner) -> LayoutDrafter:
    """A clip edit drafter starting from `planner`'s track drafter: its decoder, embeddings and heads copied
    (the source slots and the referring head are new)."""
    track = planner.drafter
    editor = LayoutDrafter(clip_edit_config(track.config), planner.hidden_size)
    missing, unexpected = editor.load_state_dict(track.state_dict(), strict=False)
    if unexpected:
        raise ValueError(f"the track drafter has weights a clip edit drafter lacks: {unexpected[:5]}")
    return editor.to(next(track.parameters()).device)


def target_rows(source: MotionScene, target: MotionScene, config: DraftConfig) -> np.ndarray:
    """An edit's target tracks in its source's order, as `source_tracks` lists the source (left to right by
    where each starts, then top to bottom): each kept or changed object where its source object is, a
    removed one left out, an added one last. So the drafter copies row i from source row i and writes the
    change in place; with both listed left to right, an added object fell between copied rows wherever its
    free place was, and after 3,500 steps no add was drafted right (200 edits, seed 7), against 0.95 for
    recolours, removals and replacements."""
    start = track_rows(source, config)
    order = sorted(range(len(source.objects)), key=lambda i: (start[i][1], start[i][2]))
    ranked = {id(source.objects[i]): rank for rank, i in enumerate(order)}
    changed = [m for m in source.objects if m not in target.objects]

    def rank(m) -> int:
        if m in source.objects:
            return ranked[id(next(o for o in source.objects if o == m))]
        if len(source.objects) == len(target.objects) and len(changed) == 1:
            return ranked[id(changed[0])]  # a recolour, replacement or new motion takes its source's place
        return len(source.objects)  # added
    return track_rows(MotionScene(tuple(sorted(target.objects, key=rank))), config)


def _named_row(found: torch.Tensor, source: MotionScene, target: MotionScene, instruction: str,
               config: DraftConfig) -> int:
    """Which of the found source tracks the instruction names: the found track of the changed object's label
    that starts nearest its true start; -1 for an add (it names no source object) or where none was found."""
    if video_edit_kind(instruction) == "add":
        return -1
    changed = [m for m in source.objects if m not in target.objects]
    if len(changed) != 1:
        return -1
    m = changed[0]
    true = quantize_objects([(label_index(m.obj.cls, m.obj.color), m.obj.cx, m.obj.cy, m.obj.half,
                              m.obj.cx + m.dx, m.obj.cy + m.dy)], config)[0]
    rows = found.tolist()
    same = [i for i, r in enumerate(rows) if r[0] == true[0]]
    if not same:
        return -1
    return min(same, key=lambda i: abs(rows[i][1] - true[1]) + abs(rows[i][2] - true[2]))


def clip_edit_batch(rng: np.random.Generator, recipe: VideoRecipe, planner, config: DraftConfig, batch: int) -> dict:
    """One teaching batch: instructions, the found source tracks, the named track and the target's tracks."""
    from app.core.frame_detector import source_tracks

    triples = [sample_video_edit(rng) for _ in range(batch)]
    clips = [render_clip(t.source, recipe.frames, recipe.size) for t in triples]
    found = source_tracks(planner, clips, config)
    return {"texts": [t.instruction for t in triples], "source_drafts": found,
            "named": torch.tensor([_named_row(found[i], t.source, t.target, t.instruction, config)
                                   for i, t in enumerate(triples)]),
            "draft": torch.from_numpy(np.stack([target_rows(t.source, t.target, config) for t in triples]))}


def teach_clip_edit_drafter(planner, recipe: VideoRecipe, steps: int, done: int = 0, batch: int = 32,
                            lr: float = 1e-3, log=print) -> LayoutDrafter:
    """`steps` teaching steps of `planner`'s clip edit drafter (a new one, from its track drafter, where it
    has none); `done` steps were taught before (it seeds the batches, so a second call sees new edits)."""
    if planner.drafter is None or not planner.drafter.config.track or planner.frame_detector is None:
        raise ValueError("a clip edit drafter needs the model's track drafter and frame detector")
    if planner.edit_drafter is None:
        planner.edit_drafter = clip_edit_drafter(planner)
    editor = planner.edit_drafter
    planner.requires_grad_(False).eval()
    editor.requires_grad_(True).train()
    opt = torch.optim.AdamW(editor.parameters(), lr=lr, weight_decay=0.0)
    rng = np.random.default_rng([recipe.seed, 5, done])
    t0 = time.time()
    for step in range(steps):
        data = clip_edit_batch(rng, recipe, planner, editor.config, batch)
        context, mask = planner.context_states(data["texts"])  # the words alone, as drafting reads them
        loss, stats = editor.loss(context, mask, data["draft"], source_drafts=data["source_drafts"],
                                  named=data["named"])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(editor.parameters(), recipe.grad_clip)
        opt.step()
        if step % 50 == 0 or step == steps - 1:
            log(f"edit drafter step {done + step + 1} ({time.time() - t0:.0f} s): "
                + " ".join(f"{k} {v:.3f}" for k, v in stats.items()))
    editor.requires_grad_(False).eval()
    return editor
