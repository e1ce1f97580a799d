"""A taught planner's folder: how a run saves its planner and loads one from another run or a model.

A run keeps the planner it trains with in `RUN/planner_taught` (the sub-folders a model folder has:
planner/, canvas_tokens/, and layout_drafter/ and edit_drafter/ where it drafts, plus teaching.json),
so every later process on the run, and a text-only baseline given the same folder, plans with it.
`load_planner` reads such a folder or an exported model folder (the same sub-folders).
"""
from __future__ import annotations

import json
from pathlib import Path

import torch

from app.core.canvas import CanvasSpec, CanvasTokens
from app.core.checkpoints import load_state, save_module

PLANNER_TAUGHT = "planner_taught"  # a run's own planner, once known
DRAFTER = "layout_drafter"  # the folder of a planner's layout drafter (app/core/draft.py), as in model folders
EDIT_DRAFTER = "edit_drafter"  # and of its drafter of edits (image edits, or a video model's clip edits)


def save_planner(planner, folder: Path, progress: dict, default_steps: int) -> None:
    """Write `planner` to `folder`, with teaching.json: how long it was taught (the run's record in
    `progress`, else `default_steps`) and its drafters' own steps."""
    folder.mkdir(parents=True, exist_ok=True)
    save_module(planner.model, folder / "planner", {"what": "taught planner weights"})
    save_module(planner.canvas_tokens, folder / "canvas_tokens", {"what": "taught canvas tokens"})
    if planner.drafter is not None:
        # The same config a model folder's drafter has, so a taught drafter can go into one as it is.
        save_module(planner.drafter, folder / DRAFTER, {"what": "layout drafter", "draft": planner.drafter.config.to_dict(),
                                                        "context_dim": planner.hidden_size})
    if planner.edit_drafter is not None:
        save_module(planner.edit_drafter, folder / EDIT_DRAFTER,
                    {"what": "edit drafter", "draft": planner.edit_drafter.config.to_dict(),
                     "context_dim": planner.hidden_size})
    record = {"steps": progress.get("teach_steps_done", default_steps),
              "seconds": round(progress.get("teach_seconds", 0.0), 1)}
    for key in ("drafter_steps", "edit_drafter_steps"):  # the drafters' own (teach_drafter_only)
        if progress.get(key):
            record[key] = progress[key]
    (folder / "teaching.json").write_text(json.dumps(record))


def load_planner(planner, folder: Path, progress: dict, log=print, resample_canvas: bool = False) -> None:
    """Load the taught planner in `folder` (a run's planner_taught folder or an exported model folder)
    into `planner`, and note in `progress` how long it and its drafters were taught.
    With `resample_canvas`, canvas tokens of another grid are interpolated to this planner's grid
    (bilinear: halving the grid averages each 2 x 2 block), and a missing layout drafter is allowed (the
    run teaches a new one)."""
    if not list((folder / "planner").glob("*.safetensors")) or not list((folder / "canvas_tokens").glob("*.safetensors")):
        raise ValueError(f"no planner in {folder}: expected a model folder or a run's planner_taught folder "
                         f"(with planner/ and canvas_tokens/ holding .safetensors)")
    state = load_state(folder / "planner")
    try:
        missing, unexpected = planner.model.load_state_dict(state, strict=False)
    except RuntimeError as e:  # a tensor of another shape: another planner size
        raise ValueError(f"planner weights in {folder} do not fit this recipe: {str(e).splitlines()[-1].strip()}") from e
    if unexpected or [k for k in missing if "lm_head" not in k]:
        raise ValueError(f"planner weights in {folder} do not fit this recipe: missing {missing[:5]}, unexpected {unexpected[:5]}")
    tokens = load_state(folder / "canvas_tokens")
    own = planner.canvas_tokens.tokens
    if resample_canvas and tokens["tokens"].shape != own.shape:
        k, h, w, d = tokens["tokens"].shape
        if d != own.shape[-1]:
            raise ValueError(f"canvas tokens in {folder} are {d} wide; this recipe's planner is {own.shape[-1]}")
        source = CanvasTokens(CanvasSpec(k, h, w), d)
        source.load_state_dict(tokens)
        with torch.no_grad():
            tokens = {"tokens": source(planner.canvas_tokens.spec).reshape(own.shape).clone()}
    onto_canvas = planner.drafts and not planner.drafts_to_context
    if planner.drafts_to_context and "draft_embedding" in tokens:
        # A MetaCanvas planner given to the text-path control: its drafters and MLLM serve as they are;
        # its canvas's draft embedding has no use where drafts go into the context.
        tokens = {k: v for k, v in tokens.items() if k != "draft_embedding"}
    if onto_canvas and "draft_embedding" not in tokens:
        if not resample_canvas:
            raise ValueError(f"the planner in {folder} has no layout drafter, and this recipe drafts layouts: "
                             f"teach one first (--planner teach:{folder} --teach-only)")
        log(f"{folder} has no layout drafter: this run teaches a new one")
        tokens = {**tokens, "draft_embedding": planner.canvas_tokens.draft_embedding.detach().clone()}
    elif "draft_embedding" in tokens and not onto_canvas:
        raise ValueError(f"the planner in {folder} drafts layouts; this recipe does not (model.canvas_drafts): "
                         f"use a recipe with drafts, or a planner without")
    planner.canvas_tokens.load_state_dict(tokens)
    if planner.drafts and (folder / DRAFTER).is_dir():
        missing, unexpected = planner.drafter.load_state_dict(load_state(folder / DRAFTER), strict=False)
        # A drafter whose drafts go into the context may come from one without that encoder (fresh, taught in stage 2).
        if unexpected or any(not k.startswith("context_encoder.") for k in missing):
            raise ValueError(f"the layout drafter in {folder} does not fit this recipe: missing {missing[:5]}, "
                             f"unexpected {unexpected[:5]}")
        if missing:
            log(f"{folder}'s layout drafter has no context-token encoder: this run's starts fresh")
    if planner.edit_drafter is not None and (folder / EDIT_DRAFTER).is_dir():
        planner.edit_drafter.load_state_dict(load_state(folder / EDIT_DRAFTER))
    taught, trained = folder / "teaching.json", folder / "training.json"
    record = None
    if taught.exists():  # how long it was taught, for this run's training.json
        record = json.loads(taught.read_text())
        progress["teach_steps_done"] = record["steps"]
    elif trained.exists():  # a model folder: its drafters' own steps are in its training record
        record = json.loads(trained.read_text())
    for key in ("drafter_steps", "edit_drafter_steps"):
        if record and record.get(key):
            progress[key] = record[key]


def taught_steps(folder: Path) -> int:
    """How many steps the planner in `folder` (a run's planner_taught or a model folder) was taught."""
    for name, key in (("teaching.json", "steps"), ("training.json", "teach_steps")):
        if (folder / name).exists():
            return int(json.loads((folder / name).read_text()).get(key, 0))
    return 0
