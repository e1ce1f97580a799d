"""How good are a planner's layout drafts on their own? The drafter (app/core/draft.py) samples a
draft for each of the benchmark's prompts with the benchmark's seeds; each draft is drawn with the
shapes world's renderer and scored with the GenEval rules (app/eval/drafts.py). This is the ceiling
the plan sets: a DiT that drew every draft exactly would score this.

    python research/probe_drafts.py --recipe RECIPE PLANNER_TAUGHT_OR_MODEL [MORE ...] [--prompts 408 --images 4]

Seconds a planner on one CPU core: only the planner runs, never the DiT.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def draft_benchmark(planner, n_prompts: int, images: int, seed: int = 7, size: int = 64, batch: int = 256) -> dict:
    """The benchmark's prompts and seeds (as app/eval/model_eval.evaluate_model draws them)."""
    import torch

    from app.eval.drafts import score_drafts
    from app.eval.geneval import make_geneval_metadata

    metas = make_geneval_metadata(n_prompts, seed=seed)
    jobs = [(i, j) for i in range(len(metas)) for j in range(images)]
    spec = planner.canvas_tokens.spec
    drafts = []
    with torch.no_grad():
        for start in range(0, len(jobs), batch):
            chunk = jobs[start:start + batch]
            plan = planner([metas[i]["prompt"] for i, _ in chunk], spec,
                           seeds=[seed + 1000 * i + j for i, j in chunk])
            drafts.extend(plan.draft)
    return score_drafts(drafts, [metas[i] for i, _ in jobs], planner.drafter.config, size)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("planners", nargs="+", help="a run's planner_taught folder or a model folder")
    ap.add_argument("--recipe", required=True, help="a recipe with model.canvas_drafts")
    ap.add_argument("--prompts", type=int, default=408)
    ap.add_argument("--images", type=int, default=4)
    args = ap.parse_args()

    from app.train.loop import Trainer
    from app.train.recipe import Recipe
    from app.train.run_start import PlannerStart, RunStart

    recipe = Recipe.load(args.recipe)
    if not recipe.model.canvas_drafts:
        ap.error(f"{args.recipe} has no layout drafts (model.canvas_drafts)")
    with tempfile.TemporaryDirectory() as scratch:
        for folder in args.planners:
            t0 = time.time()
            planner = Trainer(recipe, Path(scratch) / Path(folder).name, start=RunStart.new(PlannerStart.taught(folder)), device="cpu",
                              log=lambda *_: None).pipe.planner.eval()
            scores = draft_benchmark(planner, args.prompts, args.images, size=recipe.model.image_size)
            print(json.dumps({"planner": folder, "seconds": round(time.time() - t0, 1),
                              **{k: round(v, 4) for k, v in scores.items()}}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
