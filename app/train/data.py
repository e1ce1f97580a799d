"""Endless batches of the shapes world for training, made in worker processes.

Each batch is homogeneous: all text-to-image or all editing (an edit stacks its source below the
target, so the token count differs). `labels` is the target scene's label map on the canvas grid:
what the planner is taught to put on its canvas.
"""
from __future__ import annotations

import numpy as np
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from app.core.draft import DraftConfig, quantize_objects
from app.shapes.dataset import caption_order, edit_named_index, frame_order, label_map, sample_t2i_examples
from app.shapes.edits import sample_edit
from app.shapes.palette import label_index
from app.shapes.render import render
from app.shapes.scene import Scene


def draft_rows(scene: Scene, config: DraftConfig) -> np.ndarray:
    """The scene as a layout draft (app/core/draft.py): what the planner's drafter is taught to draw, and
    what the canvas is seeded with when the DiT trains on this scene. Objects in the order the caption
    names them (app/shapes/dataset.caption_order; app/core/draft.quantize_objects says why)."""
    return quantize_objects([(label_index(o.cls, o.color), o.cx, o.cy, o.half) for o in caption_order(scene)], config)


def edit_draft_rows(scene: Scene, config: DraftConfig) -> np.ndarray:
    """An edit's target (or source) scene as a draft, objects left to right (app/shapes/dataset.frame_order):
    the edit drafter reads them off the source image and copies all but the edited one, so it goes
    through the frame the way its memory is laid out."""
    return quantize_objects([(label_index(o.cls, o.color), o.cx, o.cy, o.half) for o in frame_order(scene)], config)


def make_batch(rng: np.random.Generator, batch: int, size: int, grid: int, edit: bool,
               ambiguous_fraction: float = 0.0, draft=None, edit_drafts: bool = False) -> dict:
    """`draft`: a DraftConfig when the planner drafts layouts; text-to-image batches then carry each
    scene as a draft (`draft`, [B, length, 4]) too, and with `edit_drafts` so do edit batches (each
    edit's target scene, objects left to right: edit_draft_rows), and each
    source scene's own draft (`source_draft`: what an edit drafter's pixel stem learns to read) and
    which of its objects the instruction names (`source_named`: what its referring head learns)."""
    if not edit:
        examples = sample_t2i_examples(rng, batch, size)
        out = {"kind": "t2i", "texts": [cs.caption for cs, _ in examples],
               "images": np.stack([im for _, im in examples]),
               "labels": np.stack([label_map(cs.scene, grid) for cs, _ in examples])}
        if draft is not None:
            out["draft"] = np.stack([draft_rows(cs.scene, draft) for cs, _ in examples])
        return out
    # At 0 the draws are exactly those of before the option (no extra random numbers taken).
    triples = [sample_edit(rng, ambiguous=bool(ambiguous_fraction) and rng.random() < ambiguous_fraction)
               for _ in range(batch)]
    out = {"kind": "edit", "texts": [t.instruction for t in triples],
           "sources": np.stack([render(t.source, size) for t in triples]),
           "images": np.stack([render(t.target, size) for t in triples]),
           "labels": np.stack([label_map(t.target, grid) for t in triples])}
    if draft is not None and edit_drafts:
        out["draft"] = np.stack([edit_draft_rows(t.target, draft) for t in triples])
        out["source_draft"] = np.stack([edit_draft_rows(t.source, draft) for t in triples])
        out["source_named"] = np.array([edit_named_index(t) for t in triples])
    return out


class ShapesStream(IterableDataset):
    """Batches with the planner's inputs already made (tokens, image patches): that work happens in
    the worker processes, not between GPU steps. `cfg_dropout` blanks instructions here, before
    tokenising, so the model also learns the unconditional velocity that guidance needs."""

    def __init__(self, recipe, seed: int, batch: int, edit_fraction: float, workers: int = 0,
                 cfg_dropout: float = 0.0, ambiguous_fraction: float = 0.0):
        self.recipe = recipe
        self.size = recipe.model.image_size
        self.grid = recipe.model.image_size // recipe.model.patch_size
        self.seed, self.batch, self.edit_fraction, self.workers = seed, batch, edit_fraction, workers
        self.cfg_dropout, self.ambiguous_fraction = cfg_dropout, ambiguous_fraction
        from app.train.build import draft_config

        self.draft = draft_config(recipe)
        self.edit_drafts = recipe.model.edit_drafts

    def __iter__(self):
        from app.core.planner import prefix_position_ids, vision_index_tensors
        from app.train.build import build_processor, rope_only_planner

        info = get_worker_info()
        rng = np.random.default_rng([self.seed, info.id if info else 0])
        processor = build_processor(self.recipe)
        rope_model = rope_only_planner(self.recipe, processor)
        while True:
            batch = make_batch(rng, self.batch, self.size, self.grid, bool(rng.random() < self.edit_fraction),
                               self.ambiguous_fraction, draft=self.draft,
                               edit_drafts=self.edit_drafts)
            if self.cfg_dropout:
                drop = rng.random(len(batch["texts"])) < self.cfg_dropout
                batch["texts"] = ["" if d else t for t, d in zip(batch["texts"], drop)]
                if "draft" in batch:  # an empty instruction is never drafted (app/core/draft.py)
                    batch["draft"][drop] = -1
            sources = batch.get("sources")
            inputs = processor(batch["texts"], images=[[s] for s in sources] if sources is not None else None)
            inputs.prefix_position_ids = prefix_position_ids(rope_model, inputs)
            if inputs.image_grid_thw is not None:
                inputs.image_vision_kwargs = vision_index_tensors(rope_model.config.vision_config, inputs.image_grid_thw)
            batch["planner_inputs"] = inputs
            yield batch

    def loader(self):
        if self.workers == 0:
            return self
        return DataLoader(self, batch_size=None, num_workers=self.workers, prefetch_factor=4,
                          persistent_workers=True, collate_fn=_keep_numpy)


def _keep_numpy(batch: dict) -> dict:
    return batch

