"""Evaluate a loaded MetaCanvas model on the shapes world: GenEval, edits, plan fidelity.

Used during training (a small quick set, EMA weights) and for the figures in the model card
(bench/bench_quality.py: 400+ prompts x 4 images, 200+ edits).
"""
from __future__ import annotations

import numpy as np
import torch

from app.eval.drafts import draft_scene, score_drafts
from app.eval.edits import edit_success, edited_mask, make_edit_benchmark, psnr_outside
from app.eval.geneval import make_geneval_metadata, score_image, summarize
from app.eval.plan_fidelity import plan_iou
from app.shapes.render import render


def evaluate_model(pipe, *, n_prompts: int = 96, images_per_prompt: int = 1, n_edits: int = 60,
                   seed: int = 1234, steps: int | None = None, guidance: float | None = None,
                   use_canvas: bool = True, batch: int = 64, plan_fidelity: bool = True,
                   progress=None) -> dict:
    metas = make_geneval_metadata(n_prompts, seed=seed)
    jobs = [(i, j) for i in range(len(metas)) for j in range(images_per_prompt)]
    results = []
    ious = []
    drafts, draft_followed = [], []
    drafting = use_canvas and getattr(pipe.planner, "drafts", False)
    for start in range(0, len(jobs), batch):
        chunk = jobs[start:start + batch]
        seeds = [seed + 1000 * i + j for i, j in chunk]
        images = pipe.sample([metas[i]["prompt"] for i, _ in chunk], seeds, steps=steps, guidance=guidance,
                             use_canvas=use_canvas)
        for (i, j), im in zip(chunk, images):
            ok, _ = score_image(im, metas[i])
            results.append({"tag": metas[i]["tag"], "correct": ok, "metadata": str(i)})
        if plan_fidelity and use_canvas and pipe.adapter.canvas_connector is not None:
            prompts = [metas[i]["prompt"] for i, _ in chunk]
            plan = _plans(pipe, prompts, seeds)
            for k, im in enumerate(images):
                ious.append(plan_iou(plan.heatmap(item=k), im))
            if drafting:
                # The drafts the images were sampled with (the same seeds draw the same drafts).
                drafts.extend(plan.draft)
                draft_followed.extend(edit_success(im, draft_scene(d, pipe.planner.drafter.config))
                                      for d, im in zip(plan.draft, images))
        if progress:
            progress(min(start + batch, len(jobs)), len(jobs) + n_edits)
    summary = summarize(results)
    out = {"overall": summary["overall"], **{k: v["accuracy"] for k, v in summary["tags"].items()},
           "images": summary["total_images"]}
    if ious:
        out["plan_iou"] = float(np.mean(ious))
    if drafts:
        out.update(score_drafts(drafts, [metas[i] for i, _ in jobs], pipe.planner.drafter.config, pipe.defaults.width))
        out["draft_followed"] = float(np.mean(draft_followed))
    if n_edits:
        out.update(evaluate_edits(pipe, n_edits, seed=seed, steps=steps, guidance=guidance,
                                  use_canvas=use_canvas, batch=batch))
    return out


def _plans(pipe, prompts, seeds):
    with torch.no_grad():
        # The plan each image was sampled with: a drafting model drafts one per seed.
        plan = pipe.planner(prompts, pipe.canvas_spec_for(pipe.defaults.width), seeds=seeds)
        tokens = pipe.adapter.prepare_plan(plan.canvas.to(pipe.device, pipe.dtype))
        plan.strength = tokens.float().norm(dim=-1).to(plan.canvas.device)
    return plan


def evaluate_edits(pipe, n: int, *, seed: int = 1234, steps=None, guidance=None, use_canvas=True,
                   batch: int = 64) -> dict:
    triples = make_edit_benchmark(n, seed=seed)
    size = pipe.defaults.width
    ok, psnrs, by_kind = [], [], {}
    from app.shapes.edits import edit_kind

    drafting = use_canvas and getattr(pipe.planner, "edit_drafter", None) is not None
    draft_right, draft_followed = [], []
    for start in range(0, n, batch):
        chunk = triples[start:start + batch]
        sources = [render(t.source, size) for t in chunk]
        seeds = [seed + start + k for k in range(len(chunk))]
        results = pipe.sample([t.instruction for t in chunk], seeds,
                              sources=sources, steps=steps, guidance=guidance, use_canvas=use_canvas)
        if drafting:
            # The drafts the edits were sampled with (the same seeds draw the same drafts): is the
            # drafted target the true one, and does the result show what was drafted?
            with torch.no_grad():
                drafts = pipe.planner([t.instruction for t in chunk], pipe.canvas_spec_for(size),
                                      images=[[s] for s in sources], seeds=seeds).draft
            config = pipe.planner.edit_drafter.config
            for t, d, res in zip(chunk, drafts, results):
                drafted = draft_scene(d, config)
                draft_right.append(edit_success(render(drafted, size), t.target))
                draft_followed.append(edit_success(res, drafted))
        for t, res in zip(chunk, results):
            good = edit_success(res, t.target)
            ok.append(good)
            by_kind.setdefault(edit_kind(t.instruction), []).append(good)
            mask = edited_mask(t.source, t.target, size)
            if not mask.all():
                psnrs.append(min(psnr_outside(res, render(t.target, size), mask), 99.0))
    out = {"edit_success": float(np.mean(ok)), "edit_psnr_outside": float(np.mean(psnrs)) if psnrs else float("nan")}
    out.update({f"edit_{k}": float(np.mean(v)) for k, v in by_kind.items()})
    if draft_right:
        out["edit_draft_right"] = float(np.mean(draft_right))
        out["edit_draft_followed"] = float(np.mean(draft_followed))
    return out


def quick_eval(pipe, n_prompts: int, *, seed: int, steps: int, guidance: float, use_canvas: bool) -> dict:
    return evaluate_model(pipe, n_prompts=n_prompts, n_edits=max(20, n_prompts // 2), seed=seed, steps=steps,
                          guidance=guidance, use_canvas=use_canvas, plan_fidelity=False)
