"""Where a training step's time goes (flow-matching stage): steps/s and the top Python functions by
own time. Run on the machine you train on:  python research/profile_train_step.py [--steps 40] [--workers 7]
"""
from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--recipe", default="research/recipes/shapes-64.json")
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--workers", type=int, default=7)
    ap.add_argument("--batch", type=int, default=None)
    args = ap.parse_args()

    import torch

    from app.train.data import ShapesStream
    from app.train.loop import Trainer
    from app.train.recipe import Recipe

    recipe = Recipe.load(args.recipe)
    if args.batch:
        recipe.diffusion.batch = args.batch
    tr = Trainer(recipe, "runs/profile", workers=args.workers)
    adapter = tr.pipe.adapter.train()
    tr.pipe.planner.requires_grad_(False)
    opt = torch.optim.AdamW([p for p in adapter.parameters() if p.requires_grad], lr=1e-4)
    adapter, opt = tr.accelerator.prepare(adapter, opt)
    stream = iter(ShapesStream(recipe, seed=3, batch=recipe.diffusion.batch, edit_fraction=recipe.edit_fraction,
                               workers=args.workers, cfg_dropout=recipe.cfg_dropout).loader())
    gen = tr.noise_generator(0)
    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)

    def step(parts):
        t0 = time.perf_counter(); batch = next(stream); t1 = time.perf_counter()
        loss = tr._flow_matching_loss(batch, adapter, gen); sync(); t2 = time.perf_counter()
        opt.zero_grad(set_to_none=True); tr.accelerator.backward(loss); opt.step(); sync(); t3 = time.perf_counter()
        parts.append((batch["kind"], t1 - t0, t2 - t1, t3 - t2))

    warm = []
    for _ in range(5):
        step(warm)
    parts = []
    prof = cProfile.Profile()
    t = time.perf_counter()
    prof.enable()
    for _ in range(args.steps):
        step(parts)
    prof.disable()
    wall = time.perf_counter() - t
    print(f"device {tr.device}, batch {recipe.diffusion.batch}, workers {args.workers}: "
          f"{args.steps / wall:.2f} steps/s, {args.steps * recipe.diffusion.batch / wall:.0f} images/s")
    for kind in ("t2i", "edit"):
        rows = [p for p in parts if p[0] == kind]
        if rows:
            d, f, b = (sum(r[i] for r in rows) / len(rows) * 1000 for i in (1, 2, 3))
            print(f"  {kind:5s} x{len(rows)}: wait for data {d:.0f} ms, forward (planner + DiT) {f:.0f} ms, backward+step {b:.0f} ms")
    pstats.Stats(prof).sort_stats("tottime").print_stats(15)
    return 0


if __name__ == "__main__":
    sys.exit(main())
