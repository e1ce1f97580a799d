"""Is a planner's text-to-image canvas a layout? For every ordered pair of classes, the canvas of
"a photo of a A left of a B" against that of "... right of ..." (and "above" against "below"):

- mirror correlation: the cosine between d = c(left) - c(right) and -flip(d), flipped left-right (or
  up-down). A canvas that places A on the named side has d = -flip(d): 1. A relation word that moves
  every cell alike (no layout) gives a d that is its own mirror image: -1.
- |d| / spread: how far the relation word moves the canvas, against how much the canvas varies
  over its cells.

    python research/probe_relations.py MODEL_FOLDER [MORE ...]
    python research/probe_relations.py --recipe RECIPE --planner RUN/planner_taught   (a taught planner, no DiT yet)

No sampling and no training: a few seconds a model on a CPU. research/LOG.md, "The text-to-image
canvas learns left and right", has the figures.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

PAIRS = (("left of", "right of", 1), ("above", "below", 0))  # the canvas axis each pair mirrors: [rows, cols]


def relation_layout(planner, spec, classes=("circle", "square", "triangle", "star")) -> dict[str, tuple[float, float]]:
    """{'left of': (mirror correlation, |d| / spread), 'above': (...)} averaged over the class pairs."""
    import torch

    out = {}
    for word, opposite, axis in PAIRS:
        corr, size = [], []
        for a in classes:
            for b in classes:
                if a == b:
                    continue
                with torch.no_grad():
                    canvas = planner([f"a photo of a {a} {word} a {b}", f"a photo of a {a} {opposite} a {b}"],
                                     spec).canvas[:, 0].float()  # [2, rows, cols, d]
                d = canvas[0] - canvas[1]
                mirrored = -d.flip(axis)
                corr.append(torch.nn.functional.cosine_similarity(d.flatten(), mirrored.flatten(), dim=0).item())
                size.append((d.norm() / (canvas[0] - canvas[0].mean((0, 1))).norm()).item())
        out[word] = (sum(corr) / len(corr), sum(size) / len(size))
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("models", nargs="*", help="model folders")
    ap.add_argument("--planner", action="append", default=[], help="a run's planner_taught folder (needs --recipe)")
    ap.add_argument("--recipe", help="the recipe that builds the planner given with --planner")
    args = ap.parse_args()
    planners = []
    if args.models:
        from app.core.checkpoints import load_model

        for folder in args.models:
            pipe = load_model(folder)
            planners.append((folder, pipe.planner.eval(), pipe.canvas_spec_for(pipe.defaults.width)))
    if args.planner:
        if not args.recipe:
            ap.error("--planner needs --recipe")
        import tempfile

        from app.train.loop import Trainer
        from app.train.recipe import Recipe
        from app.train.run_start import PlannerStart, RunStart

        recipe = Recipe.load(args.recipe)
        for folder in args.planner:
            with tempfile.TemporaryDirectory() as scratch:
                pipe = Trainer(recipe, scratch, start=RunStart.new(PlannerStart.taught(folder)), device="cpu", log=lambda *_: None).pipe
            planners.append((folder, pipe.planner.eval(), pipe.canvas_spec_for(recipe.model.image_size)))
    if not planners:
        ap.error("give a model folder or --planner")
    for name, planner, spec in planners:
        print(name)
        for word, (corr, size) in relation_layout(planner, spec).items():
            print(f"  {word:9s} mirror correlation {corr:+.2f}   |d| / spread {size:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
