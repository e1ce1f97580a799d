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


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="models/metacanvas-shapes")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from app.core.checkpoints import load_model
    from app.core.request import GenerationRequest, Task

    t = time.perf_counter()
    pipe = load_model(args.model)
    load_s = time.perf_counter() - t
    d = pipe.defaults

    def timed(request) -> float:
        t0 = time.perf_counter()
        pipe(request)
        return time.perf_counter() - t0

    t2i = GenerationRequest(Task.TEXT_TO_IMAGE, "a red circle left of a blue star", seed=1)
    timed(t2i)  # warm-up: first-call allocations
    t2i_s = [timed(t2i) for _ in range(args.repeats)]
    src = pipe(t2i).frames[0]
    edit = GenerationRequest(Task.IMAGE_EDIT, "make the circle green", images=[src], seed=1)
    edit_s = [timed(edit) for _ in range(args.repeats)]
    t0 = time.perf_counter()
    pipe.sample(["a photo of a green square"] * 16, list(range(16)))
    batch_rate = 16 / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    for _ in range(5):
        pipe.plan(t2i)
    plan_ms = (time.perf_counter() - t0) / 5 * 1000

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"{args.threads} threads; model {pipe.name}, {d.width}x{d.height}, {d.steps} steps, guidance {d.guidance}")
    print("| measure | value |\n|---|---|")
    print(f"| model load | {load_s:.2f} s |")
    print(f"| one text-to-image ({d.steps} steps, guidance on), median of {args.repeats} | {statistics.median(t2i_s):.2f} s |")
    print(f"| one image edit ({d.steps} steps), median of {args.repeats} | {statistics.median(edit_s):.2f} s |")
    print(f"| planner alone (the live plan) | {plan_ms:.0f} ms |")
    print(f"| batched text-to-image, 16 at once | {batch_rate:.1f} images/s |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
