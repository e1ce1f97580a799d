"""The embedded default's evaluation, as the model card reports it: GenEval-style on the shapes
world (400+ prompts x 4 images), 200+ edits of the five kinds, and plan fidelity; for one or more
model folders (the MetaCanvas model and its text-only baseline), at one or more guidance scales.

    python bench/bench_quality.py models/metacanvas-shapes [OTHER_MODEL ...] --out docs/eval
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> int:
    from app.core.pipeline import SOLVERS, make_scheduler

    ap = argparse.ArgumentParser()
    ap.add_argument("models", nargs="+")
    ap.add_argument("--prompts", type=int, default=408)
    ap.add_argument("--images", type=int, default=4)
    ap.add_argument("--edits", type=int, default=200)
    ap.add_argument("--guidance", type=float, nargs="+", default=None, help="one or more scales (default: the model's own)")
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--shift", type=float, default=None, help="sampling shift (default: the model's own)")
    ap.add_argument("--solver", default=None, choices=SOLVERS, help="default: the model's own")
    ap.add_argument("--guidance-interval", type=float, nargs=2, metavar=("LOW", "HIGH"), default=None,
                    help="the sigmas at which guidance applies (default: the model's own; 0 1 = every step)")
    ap.add_argument("--no-drafters", action="store_true",
                    help="score the models with their drafters removed: what the canvas does without drafts")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--device", default=None)
    ap.add_argument("--out", default=None, help="write eval.json here")
    args = ap.parse_args()

    import torch

    from app.core.checkpoints import load_model
    from app.eval.model_eval import evaluate_model

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    rows = []
    for folder in args.models:
        pipe = load_model(folder, device=device)
        if args.no_drafters:
            # The same weights planning as METHOD.md does, without the layout/edit drafts that seed the canvas.
            pipe.planner.drafter = pipe.planner.edit_drafter = None
            pipe.name += " (drafters removed)"
        if args.guidance_interval is not None:
            pipe.defaults = replace(pipe.defaults, guidance_interval=tuple(args.guidance_interval))
        if args.shift is not None or args.solver is not None:
            pipe.defaults = replace(pipe.defaults, shift=pipe.defaults.shift if args.shift is None else args.shift,
                                    solver=args.solver or pipe.defaults.solver)
            pipe.scheduler = make_scheduler(pipe.defaults)
        for g in args.guidance or [pipe.defaults.guidance]:
            t0 = time.time()
            scores = evaluate_model(pipe, n_prompts=args.prompts, images_per_prompt=args.images, n_edits=args.edits,
                                    steps=args.steps, guidance=g, batch=args.batch, seed=7)
            row = {"model": pipe.name, "folder": str(folder), "guidance": g, "steps": args.steps or pipe.defaults.steps,
                   "solver": pipe.defaults.solver, "shift": pipe.defaults.shift,
                   "guidance_interval": list(pipe.defaults.guidance_interval),
                   "device": device, "seconds": round(time.time() - t0, 1), **scores}
            rows.append(row)
            print(json.dumps(row), flush=True)
    if args.out:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        (Path(args.out) / "eval.json").write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
