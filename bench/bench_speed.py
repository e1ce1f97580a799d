"""Speed of the embedded default on this machine: model load time, one 64 x 64 image at the model's
default steps (what a user waits for after pressing Generate), one edit, and the batched rate.

    python bench/bench_speed.py [--model models/metacanvas-shapes] [--threads 2] [--repeats 3]
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.machine import others_cpu_seconds as _others_cpu_seconds  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="models/metacanvas-shapes")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--guidance-interval", type=float, nargs=2, metavar=("LOW", "HIGH"), default=None,
                    help="override the model's guidance interval (sigmas); 0 1 = guidance at every step")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from app.core.checkpoints import load_model
    from app.core.request import GenerationRequest, Task

    t = time.perf_counter()
    pipe = load_model(args.model)
    load_s = time.perf_counter() - t
    if args.guidance_interval is not None:
        from dataclasses import replace

        pipe.defaults = replace(pipe.defaults, guidance_interval=tuple(args.guidance_interval))
    d = pipe.defaults

    others = {"cpu_s": 0.0, "wall_s": 0.0}

    def timed(request) -> float:
        o0, t0 = _others_cpu_seconds(), time.perf_counter()
        pipe(request)
        dt = time.perf_counter() - t0
        o1 = _others_cpu_seconds()
        if o0 is not None and o1 is not None:
            others["cpu_s"] += o1 - o0
            others["wall_s"] += dt
        return dt

    # The model's own defaults, as the studio's panel and the command line take them.
    t2i = GenerationRequest(Task.TEXT_TO_IMAGE, "a red circle left of a blue star", seed=1, steps=d.steps,
                            guidance=d.guidance)
    timed(t2i)  # warm-up: first-call allocations
    t2i_s = [timed(t2i) for _ in range(args.repeats)]
    src = pipe(t2i).frames[0]
    edit = GenerationRequest(Task.IMAGE_EDIT, "make the circle green", images=[src], seed=1, steps=d.steps,
                             guidance=d.guidance)
    edit_s = [timed(edit) for _ in range(args.repeats)]
    t0 = time.perf_counter()
    pipe.sample(["a photo of a green square"] * 16, list(range(16)))
    batch_rate = 16 / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    for _ in range(5):
        pipe.plan(t2i)
    plan_ms = (time.perf_counter() - t0) / 5 * 1000

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"{args.threads} threads; model {pipe.name}, {d.width}x{d.height}, {d.steps} steps, guidance {d.guidance} "
          f"at sigmas {d.guidance_interval[0]:g}-{d.guidance_interval[1]:g}")
    print("| measure | value |\n|---|---|")
    print(f"| model load | {load_s:.2f} s |")
    print(f"| one text-to-image ({d.steps} steps, guidance on), median of {args.repeats} | {statistics.median(t2i_s):.2f} s (min {min(t2i_s):.2f}) |")
    print(f"| one image edit ({d.steps} steps), median of {args.repeats} | {statistics.median(edit_s):.2f} s (min {min(edit_s):.2f}) |")
    print(f"| planner alone (the live plan) | {plan_ms:.0f} ms |")
    print(f"| batched text-to-image, 16 at once | {batch_rate:.1f} images/s |")
    if others["wall_s"]:
        print(f"other processes used {others['cpu_s'] / others['wall_s']:.2f} CPU cores on average during the "
              f"single-image timings (0 = idle machine; above ~0.05 the figures are not comparable)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
