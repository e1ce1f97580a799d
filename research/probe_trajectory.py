"""When does a sample's layout get decided? Runs the Euler sampler with guidance and saves, every few
steps, the model's estimate of the clean image (x0 = x_t - t * v) beside the final result: one row per
(prompt, seed), one column per probed step; each column's noise level is printed. Text-to-image with a
model folder's own backbone (the embedded default's pixel-space SANA is what it was made for).

A model that has learned the high-noise end predicts a smooth, prompt-shaped average at t = 1 and
commits to objects gradually; one that has hardly seen t > 0.9 in training reads blobs into pure noise
at t = 1 and has fixed the scene (count, colours, shapes) by t = 0.88, whatever the prompt says.

    python research/probe_trajectory.py MODEL_FOLDER --out runs/trajectory.png [--shift 1] [--steps 24]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

DEFAULT_PROMPTS = ("a photo of a red circle", "a photo of three stars", "a photo of a circle left of a square")


def trajectory(pipe, prompts, seeds, steps: int = 24, every: int = 3, guidance: float = 3.0, shift: float = 1.0):
    """Returns (times, frames): frames[k] is uint8 [B, H, W, 3], the x0 estimate at times[k]; the last
    frame is the sample itself (time 0)."""
    from dataclasses import replace

    import numpy as np
    import torch

    from app.core.pipeline import make_scheduler

    for text in prompts:
        pipe.check_instruction(text)  # an unknown word: the pipeline's own message listing the vocabulary
    b = len(prompts)
    spec = pipe.canvas_spec_for(pipe.defaults.width)
    # The seeds draw each prompt's layout draft (and layout code), as pipe.sample's planner call does.
    plan = pipe.planner(list(prompts) + [""] * b, spec, seeds=list(seeds) * 2)
    plan_tokens = pipe.adapter.prepare_plan(plan.canvas) if pipe.adapter.canvas_connector is not None else None
    shape = pipe.codec.latent_shape(pipe.defaults.height, pipe.defaults.width, 1)
    x = torch.stack([torch.randn(shape, generator=torch.Generator().manual_seed(int(s))) for s in seeds])
    # The Euler scheduler's own sigmas, so the last frame is what `pipe.sample` gives with Euler.
    scheduler = make_scheduler(replace(pipe.defaults, solver="euler", shift=shift))
    scheduler.set_timesteps(steps)
    ts = scheduler.sigmas.float()

    def to_image(latents):
        return np.concatenate([pipe.codec.decode(latents[i:i + 1]) for i in range(b)])

    times, frames = [], []
    with torch.inference_mode():
        for i in range(steps):
            t = ts[i]
            if guidance > 1.0 and pipe.defaults.guided(float(t)):  # the model's guidance interval, as the pipeline
                v = pipe.adapter(torch.cat([x, x]), t.expand(2 * b), plan.context, plan.context_mask, plan_tokens=plan_tokens)
                cond, uncond = v.chunk(2)
                v = uncond + guidance * (cond - uncond)
            else:
                v = pipe.adapter(x, t.expand(b), plan.context[:b], plan.context_mask[:b],
                                 plan_tokens=None if plan_tokens is None else plan_tokens[:b])
            if i % every == 0:
                times.append(float(t))
                frames.append(to_image(x - t * v))
            x = x + (ts[i + 1] - t) * v
    times.append(0.0)
    frames.append(to_image(x))
    return times, frames


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--out", required=True)
    ap.add_argument("--prompts", nargs="+", default=list(DEFAULT_PROMPTS))
    ap.add_argument("--seeds", type=int, default=3, help="seeds per prompt")
    ap.add_argument("--steps", type=int, default=24)
    ap.add_argument("--every", type=int, default=3)
    ap.add_argument("--guidance", type=float, default=3.0)
    ap.add_argument("--shift", type=float, default=1.0)
    ap.add_argument("--scale", type=int, default=1, help="enlarge the grid this many times (nearest)")
    args = ap.parse_args()

    import numpy as np
    from PIL import Image

    from app.core.checkpoints import load_model

    pipe = load_model(args.model, device="cpu")
    prompts = [p for p in args.prompts for _ in range(args.seeds)]
    seeds = [s for _ in args.prompts for s in range(args.seeds)]
    times, frames = trajectory(pipe, prompts, seeds, args.steps, args.every, args.guidance, args.shift)
    grid = np.concatenate([np.concatenate(list(f), 0) for f in frames], 1)
    Image.fromarray(grid).resize((grid.shape[1] * args.scale, grid.shape[0] * args.scale), Image.NEAREST).save(args.out)
    print("columns at t =", ", ".join(f"{t:.3f}" for t in times))
    print(f"rows: {', '.join(args.prompts)} ({args.seeds} seeds each); saved {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
