"""Speed of the embedded video model on this machine: one 17-frame clip per task at the model's default
steps (what a user waits for), and the step time of the keyframe study: the canvas branch off, and a plan
of 1, 3 (the model's) or all latent frames as keyframes, on the same trained DiT in one run.

    python bench/bench_video_speed.py [--model models/metacanvas-shapes-video] [--threads 2] [--repeats 3]

A step is one adapter call on the conditional and unconditional rows (guidance), as the sampler makes;
the plan is prepared once outside the loop, as the pipeline does. Repetitions interleave the variants so
drift hits all; medians are reported, and each variant's ratio to "no canvas" comes from the same run.
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

from bench.machine import others_cpu_seconds  # noqa: E402


def clip_inputs(size: int, frames: int):
    """A clip of the shapes world and an edit of an object it holds (an edit naming an object the clip lacks
    is not made, and would time nothing)."""
    import numpy as np

    from app.shapes.motion import random_motion_scene, render_clip

    scene = random_motion_scene(np.random.default_rng(7))
    first = scene.objects[0].obj
    return render_clip(scene, frames, size), f"remove the {first.color} {first.cls}"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="models/metacanvas-shapes-video")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--step-repeats", type=int, default=30)
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from app.core.checkpoints import load_model
    from app.core.request import GenerationRequest, Task

    cpu0 = others_cpu_seconds()
    t = time.perf_counter()
    pipe = load_model(args.model)
    load_s = time.perf_counter() - t
    d = pipe.defaults
    clip, edit = clip_inputs(d.width, d.frames)
    inputs = {Task.TEXT_TO_VIDEO: {}, Task.IMAGE_TO_VIDEO: {"images": [clip[0]]},
              Task.VIDEO_EDIT: {"video": clip}, Task.REFERENCE_TO_VIDEO: {"images": [clip[0], clip[-1]]}}
    words = {Task.TEXT_TO_VIDEO: "a red circle moves to the right", Task.IMAGE_TO_VIDEO: "a red circle moves up",
             Task.VIDEO_EDIT: edit,
             Task.REFERENCE_TO_VIDEO: "the circle from the first image moves right"}
    times: dict = {task: [] for task in inputs}
    for _ in range(args.repeats):
        for task, kw in inputs.items():
            request = GenerationRequest(task, words[task], width=d.width, height=d.height, frames=d.frames,
                                        steps=d.steps, guidance=d.guidance, seed=7, **kw)
            try:
                t = time.perf_counter()
                result = pipe(request)
                times[task].append(time.perf_counter() - t)
                if str(getattr(result, "unchanged_why", "")).startswith("not in clip"):
                    raise SystemExit(f"the timed edit '{words[task]}' was not made: {result.unchanged_why}")
            except ValueError as exc:  # a word this model does not know: say so, time the rest
                print(f"skipped {task.value}: {exc}", file=sys.stderr)
                break

    # Keyframe study, step time: the same latents and context, plans of K keyframes.
    adapter = pipe.adapter
    request = GenerationRequest(Task.TEXT_TO_VIDEO, words[Task.TEXT_TO_VIDEO], width=d.width, height=d.height,
                                frames=d.frames, guidance=d.guidance)
    plan = pipe.plan(request, with_unconditional=True)
    latent_shape = pipe.codec.latent_shape(d.height, d.width, d.frames)
    latents = torch.randn(2, *latent_shape)
    all_frames = latent_shape[1]
    variants = {"no canvas": None}
    with torch.inference_mode():
        for k in sorted({1, d.keyframes, all_frames}):
            canvas = plan.canvas  # [2, K, h, w, d] -> K keyframes, spread as the connector spreads them
            resized = torch.nn.functional.interpolate(canvas.permute(0, 4, 1, 2, 3), size=(k, *canvas.shape[2:4]),
                                                      mode="trilinear", align_corners=True).permute(0, 2, 3, 4, 1)
            variants[f"{k} keyframe{'s' if k > 1 else ''}" + (" (the model's)" if k == d.keyframes else "")
                     + (" (all latent frames)" if k == all_frames else "")] = adapter.prepare_plan(resized.contiguous())
        step_times: dict = {name: [] for name in variants}
        t_in = torch.full((2,), 0.5)
        for name, tokens in variants.items():  # warm-up
            adapter(latents, t_in, plan.context, plan.context_mask, plan_tokens=tokens)
        for r in range(args.step_repeats):
            order = list(variants.items())
            for name, tokens in (order if r % 2 == 0 else order[::-1]):
                t = time.perf_counter()
                adapter(latents, t_in, plan.context, plan.context_mask, plan_tokens=tokens)
                step_times[name].append(time.perf_counter() - t)
    busy = others_cpu_seconds() - cpu0

    print(f"machine: {platform.processor() or platform.machine()}, {args.threads} threads, torch {torch.__version__}; "
          f"other processes used {busy:.1f} CPU-seconds during the run")
    print(f"model: {args.model} ({d.width}x{d.height}, {d.frames} frames, {d.steps} steps, guidance {d.guidance}); "
          f"load {load_s:.2f} s\n")
    print("| task | one clip (median of %d) |" % args.repeats)
    print("|---|---|")
    for task, values in times.items():
        if values:
            print(f"| {task.value.replace('_', ' ')} | {statistics.median(values):.2f} s |")
    base = statistics.median(step_times["no canvas"])
    print("\n| keyframes | step time (median of %d, batch 2) | vs no canvas |" % args.step_repeats)
    print("|---|---|---|")
    for name, values in step_times.items():
        m = statistics.median(values)
        print(f"| {name} | {m * 1000:.1f} ms | {m / base:.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
